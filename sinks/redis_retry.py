"""Redis writes on the flow's hot path that wait out an outage instead of failing.

While the Redis-protocol server is unreachable (on a Redis Cluster: a node, or the
cluster while it declares itself down, see :data:`OUTAGE_ERRORS`), :meth:`RedisRetry.call` retries the
write with exponential backoff (0.1 s doubling to 5 s), so the flow blocks on the write
and keeps its state rather than dropping it; writes are absolute values, so repeating one
is harmless. One warning is logged when an outage starts and one line when the server is
back, and the outage is recorded in the flow's health file (``flow-health.json``,
:mod:`basketflow.sinks.flow_health`), which ``basketflow status`` reads, since status
cannot ask Redis while it is down.

**An embedded Redis that comes back elsewhere.** When the flow writes to the Valkey that
``basketflow up`` started (its address is the one the services state file lists) and
that server dies, ``basketflow up`` starts a new one, normally on the same port but on
another one when that port is taken. While an outage lasts, :class:`RedisRetry` reads the
services state about once a second, and when it lists Redis at another address, it
follows: :attr:`RedisRetry.url` changes, and the sinks' stores
(:class:`~basketflow.sinks.flow_sinks.OnlineFeatureSink` and the others) reconnect there.
An address from ``REDIS_URL`` is never in the state file, so it is never changed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import redis

from basketflow.sinks.flow_health import HEALTH_FILE, FlowHealth, Outage, read_health

log = logging.getLogger("basketflow.flow")
T = TypeVar("T")

__all__ = ["HEALTH_FILE", "RedisRetry", "read_health", "recorded_redis_url"]

FOLLOW_EVERY = 1.0
"""Seconds between two reads of the services state during an outage."""
#: What an outage raises: a server that does not answer, and on a Redis Cluster a node
#: that is down (``CLUSTERDOWN``, ``TRYAGAIN``, a slot no node serves for now).
OUTAGE_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterError,
                 redis.exceptions.TryAgainError, redis.exceptions.SlotNotCoveredError,
                 redis.exceptions.RedisClusterUnreachableError)


def recorded_redis_url(state_file: Path | None) -> str | None:
    """The Redis address ``basketflow up`` recorded in its state file
    (:func:`basketflow.app.services.write_state`: ``{"redis": {"address": ...}}``), or
    None when there is none."""
    if state_file is None:
        return None
    try:
        address = json.loads(state_file.read_text())["redis"]["address"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return address if isinstance(address, str) else None


class RedisRetry:
    """Retries Redis calls on connection errors; shared by the sinks of one process.
    ``state_file``: the services state, whose Redis address the flow follows when it
    started on it (see the module docstring)."""

    def __init__(self, url: str, health_path: Path | None = None, first: float = 0.1,
                 cap: float = 5.0, state_file: Path | None = None) -> None:
        self.url = url
        self.first = first
        self.cap = cap
        self.health = FlowHealth.at(health_path)
        self.outage = Outage("redis", f"Redis at {url}", self.health)
        self.state_file = state_file if recorded_redis_url(state_file) == url else None
        self._next_look = 0.0

    def call(self, write: Callable[[], T]) -> T:
        """Run ``write`` until it succeeds, waiting out connection errors."""
        delay = self.first
        while True:
            try:
                result = write()
            except OUTAGE_ERRORS as exc:
                self.outage.down(exc, "the flow waits and retries with backoff up to "
                                      f"{self.cap:.0f} s, nothing is dropped", {"url": self.url})
                self._follow()
                time.sleep(delay)
                delay = min(delay * 2, self.cap)
                continue
            self.outage.back("the flow catches up")
            return result

    def _follow(self) -> None:
        """During an outage: move to the address the services state lists now, if it
        changed (at most one look per :data:`FOLLOW_EVERY`)."""
        if self.state_file is None or time.monotonic() < self._next_look:
            return
        self._next_look = time.monotonic() + FOLLOW_EVERY
        recorded = recorded_redis_url(self.state_file)
        if recorded is None or recorded == self.url:
            return
        log.warning("Redis is now at %s (restarted by `basketflow up`), no longer at %s; "
                    "the flow writes there", recorded, self.url)
        self.url = recorded
        self.outage.what = f"Redis at {recorded}"
        self.health.update({"url": recorded})
