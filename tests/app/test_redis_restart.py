"""The embedded Redis killed under a running flow and started again by `basketflow up`
(issue #20, item 5).

A Valkey killed while the flow was connected leaves its side of those connections in
FIN_WAIT/TIME_WAIT, and a plain bind of its port failed, so `up` chose another port and
the flow retried the old address forever. Now `up` keeps the port; and when the port
really is taken (here by a listener of the test's own), the flow follows the new address
from the services state, and `status` says so while it has not yet.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from basketflow.app.services import REDIS, address_port, down, read_state
from basketflow.app.status import consumed
from basketflow.config import (
    ENV_DATA_DIR,
    ENV_KAFKA,
    ENV_PREFIX,
    ENV_REDIS,
    ENV_TOPIC,
    Settings,
    load_settings,
)
from basketflow.producers.synthetic import write_csv
from basketflow.security import redact
from basketflow.sinks.flow_health import read_health

pytestmark = pytest.mark.server  # servers of their own, started and stopped here


@pytest.fixture
def local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings of a private data directory, topic and prefix, with no server addresses
    from the environment (so the command uses `basketflow up`'s); stopped afterwards."""
    for name in (ENV_KAFKA, ENV_REDIS):
        monkeypatch.delenv(name, raising=False)
    unique = f"t-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(ENV_TOPIC, unique)
    monkeypatch.setenv(ENV_PREFIX, unique)
    monkeypatch.setenv(ENV_DATA_DIR, str(tmp_path / "data"))
    settings = load_settings()
    try:
        yield settings
    finally:
        down(settings)


def cli(*args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    """The real command with ``--json`` (and ``env`` added to the environment); its
    output."""
    done = subprocess.run([sys.executable, "-m", "basketflow.cli", *args, "--json"],
                          capture_output=True, text=True, timeout=120,
                          env=os.environ | (env or {}))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def replay(tmp_path: Path, seed: int, env: dict[str, str] | None = None) -> int:
    """Replay 500 generated events of their own; how many were sent."""
    path = tmp_path / f"events-{seed}.csv"
    write_csv(path, rows=500, seed=seed, start=date(2011, 2, seed), end=date(2011, 2, seed + 6))
    return int(cli("replay", str(path), env=env)["sent"])  # type: ignore[call-overload]


def wait_consumed(settings: Settings, redis_url: str, total: int,
                  flow: subprocess.Popen[bytes], seconds: float = 60) -> None:
    """Wait until the flow's progress hash at ``redis_url`` shows ``total`` messages."""
    deadline = time.monotonic() + seconds
    seen = -1
    while time.monotonic() < deadline:
        assert flow.poll() is None, flow.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
        try:
            seen = consumed(redis_url, settings.prefix, settings.topic, parts=("",))
        except Exception:  # Redis not there (yet)
            seen = -1
        if seen >= total:
            return
        time.sleep(0.1)
    raise AssertionError(f"the flow consumed {seen} of {total} at {redis_url} in {seconds} s")


def kill_redis(settings: Settings) -> str:
    """SIGKILL the embedded Valkey while the flow is connected; return its address."""
    old = read_state(settings)[REDIS]
    os.kill(old.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while old.is_running():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return old.address


def test_redis_back_on_its_port_and_the_flow_follows_a_new_one(local: Settings,
                                                               tmp_path: Path) -> None:
    cli("up")
    total = replay(tmp_path, 1)
    flow = subprocess.Popen([sys.executable, "-m", "basketflow.cli", "run", "--one-process",
                             "--snapshot-interval", "0.5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = str(read_state(local)[REDIS].address)
        wait_consumed(local, url, total, flow)

        # Killed with the flow's connections open: `up` starts it on the same port.
        old = kill_redis(local)
        assert cli("up")["redis"] == redact(old)  # shown without its password
        assert read_state(local)[REDIS].address == old  # the same password, the same port
        total += replay(tmp_path, 4)
        wait_consumed(local, old, total, flow)

        # Killed again, its port taken by another listener: `up` starts it elsewhere.
        broker = str(read_state(local)["broker"].address)
        kill_redis(local)
        total += replay(tmp_path, 7, env={ENV_KAFKA: broker, ENV_REDIS: old})
        deadline = time.monotonic() + 30
        while (read_health(local.data_dir) or {}).get("redis") != "down":
            assert time.monotonic() < deadline, "the flow did not notice the outage"
            time.sleep(0.05)
        flow.send_signal(signal.SIGSTOP)  # hold it while `up` moves Redis
        with socket.socket() as taken:
            taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            taken.bind(("127.0.0.1", address_port(old)))
            taken.listen()
            shown = str(cli("up")["redis"])
        new = read_state(local)[REDIS].address
        assert new != old and shown == redact(new)
        notes = cli("status")["flow"]["notes"]  # type: ignore[index]
        assert any(f"writes to Redis at {redact(old)}, but Redis is now at {redact(new)}"
                   in note for note in notes), notes
        flow.send_signal(signal.SIGCONT)
        wait_consumed(local, new, total, flow)
        health = read_health(local.data_dir) or {}
        assert (health.get("redis"), health.get("url")) == ("up", new), health
    finally:
        flow.send_signal(signal.SIGCONT)
        flow.send_signal(signal.SIGTERM)
        flow.communicate(timeout=60)
