"""Secrets and secure connections: the one place every client and every printed line goes
through.

- **Redaction** (:func:`redact`): passwords and keys are never printed. Every line the
  command line writes (results, ``--json``, errors, logs, a flow part's relayed output)
  passes through :func:`redact`, which masks the password of any URL
  (``redis://user:***@host``), ``password=`` query parameters, and the value of every
  secret the environment holds (:data:`SECRET_ENVS`, the keys of ``BASKETFLOW_API_KEYS``)
  or that a command registered (:func:`register_secret`).
- **Redis** (:func:`redis_client`): every Redis client is built here, so
  ``redis://user:pass@`` (an ACL user), ``rediss://`` (TLS, the certificate checked
  against ``REDIS_SSL_CA`` or the system's CAs, and the host name always) and a client
  certificate (``REDIS_SSL_CERT``, ``REDIS_SSL_KEY``) work for the flow, ``serve`` and
  every command alike; with ``REDIS_CLUSTER=1`` (:func:`redis_cluster_mode`) it is a
  Redis Cluster client, with the same credentials and TLS for every node.
  :func:`redis_failure` turns a refused password or certificate, or the wrong
  ``REDIS_CLUSTER`` for the server, into a message that says which and what to do.
- **Kafka** (:func:`kafka_security`): the SASL and TLS settings of the environment, as
  librdkafka options, merged into every producer, consumer and admin client.
- **Files** (:func:`private_dir`, :func:`write_private`): what holds customers' data or
  a secret is its owner's alone: folders 0700, files 0600.

It sits below the settings (it reads the environment itself) and imports redis lazily,
so a command that never talks to Redis does not pay for it.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from basketflow.errors import BasketflowError

if TYPE_CHECKING:
    import redis

MASK = "***"

ENV_REDIS_SSL_CA = "REDIS_SSL_CA"
"""PEM file of the CA that signed a ``rediss://`` server's certificate."""
ENV_REDIS_CLUSTER = "REDIS_CLUSTER"
"""Set to 1 when ``REDIS_URL`` names one node of a Redis Cluster (any node: the client
finds the others)."""
ENV_REDIS_SSL_CERT = "REDIS_SSL_CERT"
ENV_REDIS_SSL_KEY = "REDIS_SSL_KEY"
"""A client certificate and its key, for a server that asks for one (``tls-auth-clients``)."""

ENV_KAFKA_SECURITY_PROTOCOL = "KAFKA_SECURITY_PROTOCOL"
ENV_KAFKA_SASL_MECHANISM = "KAFKA_SASL_MECHANISM"
ENV_KAFKA_SASL_USERNAME = "KAFKA_SASL_USERNAME"
ENV_KAFKA_SASL_PASSWORD = "KAFKA_SASL_PASSWORD"
ENV_KAFKA_SASL_PASSWORD_FILE = "KAFKA_SASL_PASSWORD_FILE"
ENV_KAFKA_SSL_CA = "KAFKA_SSL_CA_LOCATION"
ENV_KAFKA_SSL_CERT = "KAFKA_SSL_CERTIFICATE_LOCATION"
ENV_KAFKA_SSL_KEY = "KAFKA_SSL_KEY_LOCATION"
ENV_KAFKA_SSL_KEY_PASSWORD = "KAFKA_SSL_KEY_PASSWORD"
ENV_API_KEYS = "BASKETFLOW_API_KEYS"

#: Variables whose whole value is a secret, masked wherever it appears.
SECRET_ENVS = (ENV_KAFKA_SASL_PASSWORD, ENV_KAFKA_SSL_KEY_PASSWORD)
#: Kafka's variables and the librdkafka option each sets (the password is read apart).
KAFKA_OPTIONS = {
    ENV_KAFKA_SECURITY_PROTOCOL: "security.protocol",
    ENV_KAFKA_SASL_MECHANISM: "sasl.mechanism",
    ENV_KAFKA_SASL_USERNAME: "sasl.username",
    ENV_KAFKA_SSL_CA: "ssl.ca.location",
    ENV_KAFKA_SSL_CERT: "ssl.certificate.location",
    ENV_KAFKA_SSL_KEY: "ssl.key.location",
    ENV_KAFKA_SSL_KEY_PASSWORD: "ssl.key.password",
}
KAFKA_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
KAFKA_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

#: How the error of a Redis Cluster client that found no node begins.
_NO_CLUSTER = "no Redis Cluster answers at"
#: A secret shorter than this is not masked as a bare value (it would mask ordinary
#: words); in a URL or a ``password=`` parameter it is masked whatever its length.
MIN_SECRET = 6

_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):[^@\s]+@")
_PARAM_PASSWORD = re.compile(r"(?P<head>[?&;](?:password|sasl\.password|ssl_password)=)"
                             r"[^&\s\"']+", re.IGNORECASE)
_registered: set[str] = set()


class SecurityConfigError(BasketflowError, ValueError):
    """A security setting of the environment is malformed; the message names it."""


# --------------------------------------------------------------------------- redaction


def register_secret(value: str | None) -> None:
    """Mask ``value`` in everything :func:`redact` sees from now on (a generated password,
    an API key read from a file)."""
    if value and len(value) >= MIN_SECRET:
        _registered.add(value)


def secrets_in_environment(env: Mapping[str, str] | None = None) -> set[str]:
    """The secret values the environment holds: :data:`SECRET_ENVS`, the password of a
    password file, and each key of ``BASKETFLOW_API_KEYS`` (``KEY:ROLES``).

    >>> sorted(secrets_in_environment({"KAFKA_SASL_PASSWORD": "s3cret-pw",
    ...                                "BASKETFLOW_API_KEYS": "key-one-123:read;x:push"}))
    ['key-one-123', 's3cret-pw']
    """
    env = os.environ if env is None else env
    found = {env.get(name, "") for name in SECRET_ENVS}
    password_file = env.get(ENV_KAFKA_SASL_PASSWORD_FILE)
    if password_file:
        try:
            found.add(Path(password_file).read_text().strip())
        except OSError:
            pass  # kafka_security says it is unreadable where it is used
    for entry in re.split(r"[;\n]", env.get(ENV_API_KEYS, "")):
        found.add(entry.partition(":")[0].strip())
    return {value for value in found if len(value) >= MIN_SECRET}


def redact(text: str) -> str:
    """``text`` with every password and key masked: in URLs (``scheme://user:***@``),
    in ``password=`` parameters, and every secret value known (see the module).

    >>> redact("no server at rediss://writer:pa55w0rd@10.0.0.5:6380/0 (refused)")
    'no server at rediss://writer:***@10.0.0.5:6380/0 (refused)'
    >>> redact("redis://:x@h:1 and redis://h:2/0?password=hunter22&db=1")
    'redis://:***@h:1 and redis://h:2/0?password=***&db=1'
    """
    if not text:
        return text
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}:{MASK}@", text)
    text = _PARAM_PASSWORD.sub(lambda m: f"{m['head']}{MASK}", text)
    for secret in sorted(secrets_in_environment() | _registered, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def redact_data(data: Any) -> Any:
    """``data`` (JSON-like: dicts, lists, strings, numbers) with every string redacted, for
    a result that names servers (``status``) to be safe to show or return.

    >>> redact_data({"redis": {"address": "redis://:pw@h:1", "pid": 7}, "n": [1, "x"]})
    {'redis': {'address': 'redis://:***@h:1', 'pid': 7}, 'n': [1, 'x']}
    """
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, dict):
        return {key: redact_data(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [redact_data(value) for value in data]
    return data


class RedactingStream(io.TextIOBase):
    """A text stream that writes everything through :func:`redact` to another one: the
    command line's standard output and error, so no line it prints can carry a secret.
    A secret is masked when one write holds it whole, as every line printed does (a
    result, a log record, a table)."""

    def __init__(self, inner: TextIO) -> None:
        super().__init__()
        self.inner = inner

    def write(self, text: str) -> int:
        """Write ``text``, redacted; returns the length given, as a stream must."""
        self.inner.write(redact(text))
        return len(text)

    def flush(self) -> None:
        """Flush the stream underneath."""
        self.inner.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        """What the stream underneath says, so colours and progress bars stay as they were."""
        return self.inner.isatty()

    def fileno(self) -> int:
        """The file descriptor underneath (for ``os.get_terminal_size`` and the like)."""
        return self.inner.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.inner, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self.inner, "errors", None)


class RedactingFilter(logging.Filter):
    """A logging filter that formats each record's message and redacts it, so a log
    handler writing to a file (``serve``'s, a flow's) never holds a secret either."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace the record's message by its redacted text; never drops a record."""
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def redact_log_handlers() -> None:
    """Give every log handler configured now (the root's, uvicorn's, ...) a
    :class:`RedactingFilter`, once: for processes whose output does not pass through the
    command line's streams, such as ``serve``'s worker processes."""
    loggers = [logging.getLogger(), *(logger for logger in
                                      logging.Logger.manager.loggerDict.values()
                                      if isinstance(logger, logging.Logger))]
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())


# --------------------------------------------------------------------------- files


def private_dir(path: Path) -> Path:
    """Create the folder ``path`` (and its parents) if missing, and make it 0700: only
    its owner may list or enter it. Returns ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_private(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` atomically (a temporary file, then a rename) as a file
    of mode 0600 from its first byte: no moment where another user could read it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
        os.chmod(tmp, 0o600)  # an existing file kept its old mode through O_CREAT
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- Redis


def redis_tls_options(url: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """redis-py's TLS options for ``url``: none for ``redis://``; for ``rediss://`` the
    certificate and the host name always checked, against ``REDIS_SSL_CA`` when set (the
    system's CAs otherwise), with the client certificate of ``REDIS_SSL_CERT`` and
    ``REDIS_SSL_KEY`` when set.

    >>> redis_tls_options("redis://h:1", {"REDIS_SSL_CA": "/etc/hostname"})
    {}
    >>> redis_tls_options("rediss://h:1", {"REDIS_SSL_CA": "/etc/hostname"})
    {'ssl_cert_reqs': 'required', 'ssl_check_hostname': True, 'ssl_ca_certs': '/etc/hostname'}
    """
    env = os.environ if env is None else env
    if not url.lower().startswith("rediss://"):
        return {}
    options: dict[str, Any] = {"ssl_cert_reqs": "required", "ssl_check_hostname": True}
    for name, option in ((ENV_REDIS_SSL_CA, "ssl_ca_certs"), (ENV_REDIS_SSL_CERT, "ssl_certfile"),
                         (ENV_REDIS_SSL_KEY, "ssl_keyfile")):
        path = env.get(name)
        if path:
            if not Path(path).is_file():
                raise SecurityConfigError(f"{name}={path} is not a readable file; point it "
                                          "at a PEM file or unset it")
            options[option] = path
    return options


def redis_cluster_mode(env: Mapping[str, str] | None = None) -> bool:
    """Whether ``REDIS_CLUSTER`` says the online store is a Redis Cluster: ``1``,
    ``true``, ``yes`` or ``on`` (any case) for a cluster; unset, empty, ``0``, ``false``,
    ``no`` or ``off`` for one server.

    >>> redis_cluster_mode({"REDIS_CLUSTER": "1"}), redis_cluster_mode({})
    (True, False)
    """
    env = os.environ if env is None else env
    value = env.get(ENV_REDIS_CLUSTER, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise SecurityConfigError(f"{ENV_REDIS_CLUSTER}={value!r}: give 1 for a Redis Cluster "
                              "or 0 (or leave it unset) for one server")


def redis_client(url: str, *, cluster: bool | None = None,
                 **options: Any) -> "redis.Redis":
    """A redis-py client for ``url`` with its credentials and TLS settings (see
    :func:`redis_tls_options`); ``options`` are redis-py's (timeouts, retry). One
    server's client connects at its first command.

    On a Redis Cluster (``cluster``, by default :func:`redis_cluster_mode`), a
    ``RedisCluster`` started from the node ``url`` names: it asks that node for the slot
    map at once, and a cluster that does not answer raises ``redis.ConnectionError``
    (which the flow's retries wait out, like one server's outage). The ACL user and TLS
    settings of ``url`` apply to every node."""
    import redis

    options = redis_tls_options(url) | options
    if not (redis_cluster_mode() if cluster is None else cluster):
        return redis.Redis.from_url(url, **options)
    return _lazy_cluster_class()(url, options)  # type: ignore[no-any-return]


@functools.cache
def _lazy_cluster_class() -> type:
    """The class of a Redis Cluster client that connects at its first command (defined
    at the first use, so that importing this module does not import redis)."""
    import redis
    from redis.cluster import RedisCluster

    class LazyRedisCluster(RedisCluster):
        """A ``RedisCluster`` that reads the slot map at its first command, not when it
        is built (``RedisCluster`` does at once), as one server's client connects: so a
        flow's sink or ``serve`` built while the cluster is down waits for it, or
        answers 503, like on one server. When no node answers, the command raises
        ``redis.ConnectionError`` and the next one tries again."""

        def __init__(self, url: str, options: dict[str, Any]) -> None:  # noqa: D107
            self.__dict__.update(_pending=(url, options), _starting=threading.RLock())

        def __getattr__(self, name: str) -> Any:
            """An attribute the cluster client sets up when it starts: start it first."""
            state = self.__dict__
            if "_pending" not in state or name.startswith("__") or state.get("_in_start"):
                raise AttributeError(name)
            with state["_starting"]:
                if "_pending" in state:
                    url, options = state["_pending"]
                    state["_in_start"] = True
                    try:
                        RedisCluster.__init__(self, url=url, **options)
                    except redis.exceptions.RedisClusterException as exc:
                        for key in [k for k in state if not k.startswith("_")]:
                            del state[key]  # what a failed start set up half
                        raise redis.ConnectionError(
                            f"{_NO_CLUSTER} {redact(url)} ({redact(str(exc))})") from exc
                    finally:
                        state.pop("_in_start", None)
                    del state["_pending"]
            return getattr(self, name)

        def close(self) -> None:
            """Close the nodes' connections, if it ever started."""
            if "_pending" not in self.__dict__:
                super().close()

        def __del__(self) -> None:
            if "_pending" not in self.__dict__:
                super().__del__()

    return LazyRedisCluster


def redis_failure(url: str, exc: Exception) -> str:
    """What went wrong connecting to ``url`` and what to do, without the password: a
    refused password or user, a refused certificate, or no answer.

    >>> import redis
    >>> redis_failure("redis://u:pw@h:1", redis.AuthenticationError("invalid password"))
    'Redis at redis://u:***@h:1 refused the user or password (invalid password); check the user and password in REDIS_URL'
    """
    import redis

    shown = redact(url)
    detail = redact(str(exc))
    if isinstance(exc, redis.AuthenticationError) or "WRONGPASS" in detail \
            or "NOAUTH" in detail or "NOPERM" in detail \
            or "invalid username-password pair" in detail:
        return (f"Redis at {shown} refused the user or password ({detail}); check the user "
                "and password in REDIS_URL")
    if "Cluster mode is not enabled" in detail:
        return (f"Redis at {shown} is one server, not a Redis Cluster; unset "
                f"{ENV_REDIS_CLUSTER} (or set it to 0)")
    if isinstance(exc, redis.exceptions.MovedError):
        return (f"Redis at {shown} is a Redis Cluster (MOVED {detail}); set "
                f"{ENV_REDIS_CLUSTER}=1")
    if "CERTIFICATE_VERIFY_FAILED" in detail or "certificate verify failed" in detail:
        return (f"the TLS certificate of Redis at {shown} was refused ({detail}); set "
                f"{ENV_REDIS_SSL_CA} to the PEM file of the CA that signed it")
    if "SSL" in detail and url.lower().startswith("rediss://"):
        return (f"no TLS connection to Redis at {shown} ({detail}); check that the server "
                "speaks TLS on that port and that the certificate is valid")
    if detail.startswith(_NO_CLUSTER):
        return (f"{detail}; check that REDIS_URL names a node of a running cluster, or "
                f"unset {ENV_REDIS_CLUSTER} for one server")
    return (f"no Redis-protocol server answers at {shown} ({detail}); start one with "
            "`basketflow up` or set REDIS_URL")


# --------------------------------------------------------------------------- Kafka


def kafka_security(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """librdkafka's security options from the environment (see :data:`KAFKA_OPTIONS`),
    for every producer, consumer and admin client; {} when none is set (plaintext). The
    broker's host name is always checked against its certificate.

    >>> kafka_security({"KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
    ...                 "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    ...                 "KAFKA_SASL_USERNAME": "flow", "KAFKA_SASL_PASSWORD": "pw"})
    ... # doctest: +NORMALIZE_WHITESPACE
    {'security.protocol': 'SASL_SSL', 'sasl.mechanism': 'SCRAM-SHA-512',
     'sasl.username': 'flow', 'sasl.password': 'pw',
     'ssl.endpoint.identification.algorithm': 'https'}
    """
    env = os.environ if env is None else env
    config = {option: env[name] for name, option in KAFKA_OPTIONS.items() if env.get(name)}
    if not config and not env.get(ENV_KAFKA_SASL_PASSWORD) \
            and not env.get(ENV_KAFKA_SASL_PASSWORD_FILE):
        return {}
    protocol = config.setdefault("security.protocol", "PLAINTEXT").upper()
    config["security.protocol"] = protocol
    if protocol not in KAFKA_PROTOCOLS:
        raise SecurityConfigError(f"{ENV_KAFKA_SECURITY_PROTOCOL}={protocol} is not one of "
                                  f"{', '.join(KAFKA_PROTOCOLS)}")
    mechanism = config.get("sasl.mechanism", "").upper()
    if mechanism:
        if mechanism not in KAFKA_MECHANISMS:
            raise SecurityConfigError(f"{ENV_KAFKA_SASL_MECHANISM}={mechanism} is not one of "
                                      f"{', '.join(KAFKA_MECHANISMS)}")
        config["sasl.mechanism"] = mechanism
    password = _kafka_password(env)
    if password:
        config["sasl.password"] = password
    if protocol.startswith("SASL") and not ("sasl.username" in config and password):
        raise SecurityConfigError(
            f"{ENV_KAFKA_SECURITY_PROTOCOL}={protocol} needs {ENV_KAFKA_SASL_USERNAME} and "
            f"{ENV_KAFKA_SASL_PASSWORD} (or {ENV_KAFKA_SASL_PASSWORD_FILE})")
    if protocol.endswith("SSL"):
        config["ssl.endpoint.identification.algorithm"] = "https"
    return config


def _kafka_password(env: Mapping[str, str]) -> str:
    """The SASL password: ``KAFKA_SASL_PASSWORD``, else the first line of the file
    ``KAFKA_SASL_PASSWORD_FILE`` names ('' when neither is set)."""
    if env.get(ENV_KAFKA_SASL_PASSWORD):
        return env[ENV_KAFKA_SASL_PASSWORD]
    path = env.get(ENV_KAFKA_SASL_PASSWORD_FILE)
    if not path:
        return ""
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise SecurityConfigError(f"cannot read {ENV_KAFKA_SASL_PASSWORD_FILE}={path} "
                                  f"({exc.strerror}); fix the path or its mode") from exc
