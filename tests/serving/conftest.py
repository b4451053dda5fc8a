"""A real ``basketflow serve`` process on a free loopback port, on the session's Valkey
and broker (tests/conftest.py), and helpers to put values in its online store."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from basketflow.app.services import free_port
from basketflow.config import (
    ENV_DATA_DIR,
    ENV_DEAD_TOPIC,
    ENV_KAFKA,
    ENV_PREFIX,
    ENV_REDIS,
    ENV_TOPIC,
    Settings,
)


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
    """The environment of a server (or command) on ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASKETFLOW_")}
    assert settings.redis_url
    env |= {ENV_DATA_DIR: str(settings.data_dir), ENV_REDIS: settings.redis_url,
            ENV_TOPIC: settings.topic, ENV_DEAD_TOPIC: settings.dead_topic,
            ENV_PREFIX: settings.prefix}
    if settings.kafka_bootstrap:
        env[ENV_KAFKA] = settings.kafka_bootstrap
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
