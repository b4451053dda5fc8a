"""A real ``basketflow serve`` process on a free loopback port, on the session's Valkey
and broker (tests/conftest.py), and helpers to put values in its online store."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from basketflow.app.flow_processes import child_env
from basketflow.app.services import free_port
from basketflow.config import ENV_KAFKA, Settings
from basketflow.features.entity_features import CustomerFolder
from basketflow.schemas.events import Transaction, parse_row
from basketflow.schemas.features import registry
from basketflow.serving.auth import ENV_API_KEYS
from basketflow.sinks.online_store import RedisOnlineStore, connect

CUSTOMER = "17850"
CLOCK = 1291200000  # 2010-12-01 10:40 UTC: the flow's event-time clock in these tests
LINES = [["536365", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", "6", "12/1/2010 8:26",
          "2.55", CUSTOMER, "United Kingdom"],
         ["536365", "71053", "WHITE METAL LANTERN", "6", "12/1/2010 8:26", "3.39", CUSTOMER,
          "United Kingdom"],
         ["536366", "22633", "HAND WARMER UNION JACK", "6", "12/1/2010 8:28", "1.85",
          CUSTOMER, "United Kingdom"]]


def events(rows: list[list[str]]) -> list[Transaction]:
    parsed = [parse_row(row, f"t:{n}") for n, row in enumerate(rows)]
    assert all(isinstance(t, Transaction) for t in parsed)
    return parsed  # type: ignore[return-value]


def store_of(settings: Settings) -> RedisOnlineStore:
    assert settings.redis_url
    return RedisOnlineStore(connect(settings.redis_url), settings.prefix)


def write_customer(settings: Settings, entity: str, rows: list[list[str]],
                   ) -> dict[str, tuple[int, dict[str, Any]]]:
    """Fold the lines by the flow's own folder and write its latest values per view, as
    the flow does; return them (view -> (event time, values))."""
    update = CustomerFolder().fold(entity, events(rows), 3600)
    assert update is not None
    store = store_of(settings)
    for view, values in update.values.items():
        store.write(registry()[view], {entity: (update.times[view], values)})
    store.write_progress("", {"clock": CLOCK})
    return {view: (update.times[view], values) for view, values in update.values.items()}


@dataclass
class Server:
    """A running server: its base URL, its log file, its process."""

    url: str
    log: Path
    proc: subprocess.Popen[bytes]
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, timeout=10, verify=False)

    def stop(self) -> str:
        """Stop the server (SIGTERM) and return its log."""
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        return self.log.read_text()


def server_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a server (or command) on ``settings``: the flow's children's
    (:func:`~basketflow.app.flow_processes.child_env`), without a broker where
    ``settings`` has none, and without keys unless ``extra`` has them."""
    env = child_env(replace(settings, kafka_bootstrap=settings.kafka_bootstrap or "-"))
    env.pop(ENV_API_KEYS, None)
    if not settings.kafka_bootstrap:
        env.pop(ENV_KAFKA)
    return env | extra


def start_server(settings: Settings, *args: str, env: dict[str, str] | None = None,
                 scheme: str = "http") -> Server:
    """``basketflow serve`` on a free port; waits until it answers."""
    port = free_port()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log = settings.data_dir / f"serve-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "basketflow.cli", "serve", "--port", str(port), *args],
            env=env or server_env(settings), stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"{scheme}://127.0.0.1:{port}", log, proc)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited {proc.returncode}: {log.read_text()}")
        try:
            server.client.get("/health/live")
            return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.stop()
    raise AssertionError(f"the server did not answer in 30 s: {log.read_text()}")


@pytest.fixture
def server(settings: Settings) -> Iterator[Server]:
    """An open server (no keys) on the test's settings."""
    running = start_server(settings)
    try:
        yield running
    finally:
        running.stop()
