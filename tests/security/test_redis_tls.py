"""``rediss://`` against a real TLS Redis (Debian's redis-server): the certificate is
checked against ``REDIS_SSL_CA`` and the host name; a wrong CA, a self-signed, an expired
or another host's certificate is refused with one ``Error:`` line that says what to do;
a password over TLS works and a wrong one is refused without being printed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from basketflow.config import Settings
from basketflow.security import ENV_REDIS_SSL_CA
from basketflow.sinks.online_store import RedisUnavailable, open_online_store
from tests.cli.commands import basketflow, error_lines, user_env
from tests.security.certificates import Pair, issue, make_ca
from tests.security.servers import tls_redis

pytestmark = pytest.mark.server
PASSWORD = "tls-Pw-71be3c"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pair]:
    """A CA with a valid, an expired and another host's certificate; another CA; a
    self-signed certificate."""
    folder = tmp_path_factory.mktemp("pki")
    ca, ca_cert, ca_key = make_ca(folder)
    other_ca, _, _ = make_ca(folder, "other-ca")
    return {"ca": ca, "other-ca": other_ca,
            "valid": issue(folder, "valid", (ca_cert, ca_key)),
            "expired": issue(folder, "expired", (ca_cert, ca_key), expired=True),
            "other-host": issue(folder, "other-host", (ca_cert, ca_key), "db.example.com"),
            "self-signed": issue(folder, "self-signed", None)}


@pytest.fixture(scope="module")
def good_port(pki: dict[str, Pair], tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[int]:
    """A TLS server with a valid certificate, asking for :data:`PASSWORD`."""
    with tls_redis(tmp_path_factory.mktemp("tls"), pki["valid"], pki["ca"].cert,
                   PASSWORD) as port:
        yield port


def test_a_good_ca_and_password_reach_the_online_store(
        pki: dict[str, Pair], good_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_REDIS_SSL_CA, str(pki["ca"].cert))
    store = open_online_store(f"rediss://:{PASSWORD}@127.0.0.1:{good_port}", "tls")
    store.write_progress("", {"events": 7})
    assert store.read_progress() == {"events": "7"}
    store.close()


def test_commands_run_over_tls(pki: dict[str, Pair], good_port: int, tmp_path: Path) -> None:
    env = user_env(tmp_path, Settings(tmp_path, None, f"rediss://:{PASSWORD}@127.0.0.1:"
                                                      f"{good_port}", prefix="tls"),
                   **{ENV_REDIS_SSL_CA: str(pki["ca"].cert)})
    done = basketflow("status", "--json", env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["services"]["redis"]["alive"] and report["online"]["error"] is None
    assert report["services"]["redis"]["address"] == f"rediss://:***@127.0.0.1:{good_port}"
    done = basketflow("features", "12345", env=env)  # read, not found: the store answered
    assert error_lines(done) == [f"Error: no features for '12345' in the online store: is "
                                 "the id right (`basketflow entities` lists some), and has "
                                 "the flow run (`basketflow run`)?"]


def _refused(port: int, ca: Path | None, tmp_path: Path, password: str = PASSWORD
             ) -> list[str]:
    """The ``Error:`` lines of ``basketflow features 1`` on the TLS server at ``port``,
    trusting ``ca`` (the system's CAs when None)."""
    url = f"rediss://:{password}@127.0.0.1:{port}"
    extra = {ENV_REDIS_SSL_CA: str(ca)} if ca else {}
    done = basketflow("features", "1", env=user_env(tmp_path, Settings(tmp_path, None, url),
                                                    **extra))
    assert done.returncode == 1 and password not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return error_lines(done)


def test_a_wrong_ca_or_none_is_refused(pki: dict[str, Pair], good_port: int,
                                       tmp_path: Path) -> None:
    for ca in (pki["other-ca"].cert, None):
        [line] = _refused(good_port, ca, tmp_path)
        assert "TLS certificate" in line and ENV_REDIS_SSL_CA in line, line


@pytest.mark.parametrize("certificate", ["self-signed", "expired", "other-host"])
def test_a_bad_server_certificate_is_refused(certificate: str, pki: dict[str, Pair],
                                             tmp_path: Path) -> None:
    with tls_redis(tmp_path, pki[certificate], pki["ca"].cert, PASSWORD) as port:
        [line] = _refused(port, pki["ca"].cert, tmp_path)
    assert "TLS certificate" in line and "was refused" in line, line


def test_a_wrong_password_is_refused_and_not_printed(pki: dict[str, Pair], good_port: int,
                                                     tmp_path: Path) -> None:
    [line] = _refused(good_port, pki["ca"].cert, tmp_path, password="not-the-Pw-1234")
    assert "refused the user or password" in line and "rediss://:***@" in line, line


def test_the_python_api_raises_the_same_error(pki: dict[str, Pair], good_port: int,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_REDIS_SSL_CA, str(pki["other-ca"].cert))
    with pytest.raises(RedisUnavailable, match="TLS certificate"):
        open_online_store(f"rediss://:{PASSWORD}@127.0.0.1:{good_port}", "tls")
