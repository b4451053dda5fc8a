"""Redis writes on the flow's hot path that wait out an outage instead of failing.

While the Redis-protocol server is unreachable, :meth:`RedisRetry.call` retries the
write with exponential backoff (0.1 s doubling to 5 s), so the flow blocks on the write
and keeps its state rather than dropping it; writes are absolute values, so repeating one
is harmless. One warning is logged when an outage starts and one line when the server is
back, and the outage is recorded in a small JSON file in the data directory
(``flow-health.json``), which ``basketflow status`` reads, since status cannot ask Redis
while it is down.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

import redis

log = logging.getLogger("basketflow.flow")
T = TypeVar("T")

HEALTH_FILE = "flow-health.json"


class RedisRetry:
    """Retries Redis calls on connection errors; shared by the sinks of one process."""

    def __init__(self, url: str, health_path: Path | None = None, first: float = 0.1,
                 cap: float = 5.0) -> None:
        self.url = url
        self.health_path = health_path
        self.first = first
        self.cap = cap
        self.lock = threading.Lock()
        self.down_since: float | None = None

    def call(self, write: Callable[[], T]) -> T:
        """Run ``write`` until it succeeds, waiting out connection errors."""
        delay = self.first
        while True:
            try:
                result = write()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self._down(exc)
                time.sleep(delay)
                delay = min(delay * 2, self.cap)
                continue
            if self.down_since is not None:
                self._back()
            return result

    def _down(self, exc: Exception) -> None:
        with self.lock:
            if self.down_since is not None:
                return
            self.down_since = time.time()
        log.warning("Redis at %s is unreachable (%s); the flow waits and retries with "
                    "backoff up to %.0f s, nothing is dropped", self.url, exc, self.cap)
        self._record({"redis": "down", "since": _iso(self.down_since), "error": str(exc)})

    def _back(self) -> None:
        with self.lock:
            since, self.down_since = self.down_since, None
        if since is None:
            return
        log.warning("Redis at %s is back after %.1f s; the flow catches up", self.url,
                    time.time() - since)
        self._record({"redis": "up", "last_outage_from": _iso(since),
                      "last_outage_seconds": round(time.time() - since, 1)})

    def _record(self, fields: dict[str, object]) -> None:
        """Write the health file atomically (never fails the flow)."""
        if self.health_path is None:
            return
        doc = fields | {"url": self.url, "pid": os.getpid(), "updated_at": _iso(time.time())}
        try:
            tmp = self.health_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc))
            os.replace(tmp, self.health_path)
        except OSError as exc:
            log.warning("cannot record the flow's health in %s: %s", self.health_path, exc)


def read_health(data_dir: Path) -> dict[str, object] | None:
    """The flow's health file, or None when there is none or it cannot be read."""
    try:
        return json.loads((data_dir / HEALTH_FILE).read_text())
    except (OSError, ValueError):
        return None


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="seconds")
