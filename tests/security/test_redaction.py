"""No command prints a secret: every command of the session, their ``--json`` forms,
their errors (with ``--debug`` too), ``serve``'s log and the demo run as a user would,
with credentials set (a Redis password in ``REDIS_URL``, a Kafka SASL password, API keys),
and their whole output is searched for each secret."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from basketflow.app.services import free_port
from basketflow.config import Settings
from basketflow.security import ENV_API_KEYS, ENV_KAFKA_SASL_PASSWORD
from tests.cli.commands import basketflow, error_lines, user_env
from tests.security.servers import WRITER_PASSWORD, AclServer, acl_valkey

pytestmark = [pytest.mark.server, pytest.mark.slow]
KAFKA_PASSWORD = "Kf5sG8yN3vD7"
API_KEY = "Ak2wE9rT6uY3"
SECRETS = (WRITER_PASSWORD, KAFKA_PASSWORD, API_KEY)


@pytest.fixture(scope="module")
def acl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclServer]:
    with acl_valkey(tmp_path_factory.mktemp("acl"), "red") as server:
        yield server


@pytest.fixture
def env(acl: AclServer, broker: str, tmp_path: Path) -> dict[str, str]:
    """A user's environment with every kind of credential set."""
    settings = Settings(tmp_path / "data", broker, acl.writer, topic=f"red-{tmp_path.name}",
                        dead_topic=f"red-{tmp_path.name}.dead", prefix=acl.prefix)
    return user_env(settings.data_dir, settings, **{ENV_KAFKA_SASL_PASSWORD: KAFKA_PASSWORD,
                                                    ENV_API_KEYS: f"{API_KEY}:admin"})


def assert_clean(args: tuple[str, ...], done: subprocess.CompletedProcess[str],
                 secrets: tuple[str, ...] = SECRETS) -> None:
    """No secret in the command's output, and no traceback unless it asked for one."""
    text = done.stdout + done.stderr
    for secret in secrets:  # any 5 characters: a table may fold a value over two lines
        for start in range(len(secret) - 4):
            assert secret[start:start + 5] not in text, \
                f"basketflow {' '.join(args)} printed (part of) a secret:\n{text}"
    if "--debug" not in args:
        assert "Traceback" not in text, text


def test_every_command_of_a_session(env: dict[str, str], tmp_path: Path) -> None:
    sample = tmp_path / "sample.csv"
    session: list[tuple[str, ...]] = [
        ("generate", "--rows", "3000", "--seed", "7", "--out", str(sample)),
        ("up",), ("up", "--json"), ("replay", str(sample)), ("run", "--stop-at-end"),
        ("status",), ("status", "--json"), ("entities", "--limit", "2"),
        ("entities", "--json"), ("features", "13436"), ("features", "13436", "--json"),
        ("features", "list"), ("score", "13436"),
        ("backfill", "--from", str(sample), "--materialize", "--processes", "1"),
        ("check",), ("categories",), ("security", "redis-acl"), ("down",), ("down", "--json"),
        ("-v", "status"), ("--debug", "status", "--json"),
    ]
    for args in session:
        done = basketflow(*args, env=env)
        assert_clean(args, done)
        if args[0] in ("generate", "replay", "run", "status", "backfill", "check", "up"):
            assert done.returncode == 0, (args, done.stderr)
    status = json.loads(basketflow("status", "--json", env=env).stdout)
    assert status["services"]["redis"]["address"].startswith("redis://basketflow-writer:***@")
    offline_commands(env, tmp_path, sample)


def offline_commands(env: dict[str, str], tmp_path: Path, sample: Path) -> None:
    """The commands that read the offline store, the registries and the project, on the
    session's stores, with the same credentials set: each one's output is clean."""
    entities = tmp_path / "entities.csv"
    entities.write_text("customer_id,timestamp\n13436,2011-09-30T12:00:00Z\n")
    commands: list[tuple[str, ...]] = [
        ("segment", "fit", "--until", "2011-12-31"), ("segment", "assign"),
        ("segment", "show"), ("models", "train"), ("models", "list"),
        ("models", "list", "--json"), ("models", "show", "1"),
        ("report", "--date", "2011-06-01", "--out", str(tmp_path / "reports"), "--mkdir"),
        ("drift", "--date", "2011-06-01"), ("drift", "--date", "2011-06-01", "--json"),
        ("historical", "--entities", str(entities), "--features", "customer:spend_30d",
         "--out", str(tmp_path / "train.parquet")),
        ("predict", "--entities", str(entities), "--out", str(tmp_path / "p.parquet")),
        ("evaluate", "--split", "2011-06-01"), ("plan",), ("features", "describe", "customer"),
        ("init", str(tmp_path / "shop")),
    ]
    for args in commands:
        assert_clean(args, basketflow(*args, env=env))


def test_errors_never_show_the_password(env: dict[str, str], acl: AclServer) -> None:
    wrong = env | {"REDIS_URL": acl.url("basketflow-writer", "Wx" + WRITER_PASSWORD[2:])}
    gone = env | {"REDIS_URL": f"redis://u:{WRITER_PASSWORD}@127.0.0.1:{free_port()}"}
    for case, args in ((wrong, ("features", "1")), (wrong, ("run", "--stop-at-end")),
                       (gone, ("features", "1", "--json")), (gone, ("status",)),
                       (wrong, ("--debug", "features", "1")), (gone, ("entities",))):
        done = basketflow(*args, env=case)
        assert_clean(args, done, SECRETS + ("Wx" + WRITER_PASSWORD[2:],))
        assert done.returncode != 0 or args[0] == "status"
        if "--debug" not in args and args[0] != "status":
            assert len(error_lines(done)) == 1, done.stderr


def test_serve_and_its_log(env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "basketflow.cli", "serve", "--port", str(port)], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        for path in ("/health", "/customers/1/features", "/metrics"):
            request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                             headers={"Authorization": f"Bearer {API_KEY}"})
            try:
                urllib.request.urlopen(request, timeout=10).read()
            except urllib.error.HTTPError:
                pass  # a 404 or 503 is an answer too: its log line is what is checked
    finally:
        server.terminate()
        out, err = server.communicate(timeout=30)
    assert_clean(("serve",), subprocess.CompletedProcess([], 0, out, err))
    assert "/customers/{customer_id}/features" in err or "features" in err


def test_the_demo_never_shows_its_generated_password(tmp_path: Path) -> None:
    env = user_env(tmp_path / "data")
    args = ("demo", "--rows", "10000", "--keep-running")
    done = basketflow(*args, env=env)
    try:
        assert done.returncode == 0, done.stderr
        state = tmp_path / "data" / "demo" / "services.json"
        password = json.loads(state.read_text())["redis_password"]
        assert_clean(args, done, (password,))
        demo = ("--data-dir", str(tmp_path / "data" / "demo"))
        for more in (("status", "--json"), ("up", "--json"), ("features", "13436")):
            assert_clean(more, basketflow(*demo, *more, env=env), (password,))
    finally:
        basketflow("--data-dir", str(tmp_path / "data" / "demo"), "down", env=env)
