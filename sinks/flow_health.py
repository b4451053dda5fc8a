"""The flow's health file: outages of the servers a running flow needs, for ``basketflow
status``, which cannot ask a server that is down.

``<data_dir>/flow-health.json`` holds one JSON document, rewritten whole (atomically) on
every change by the process that saw it: for each server (``redis``, ``broker``) ``"down"``
with when the outage started and the error, or ``"up"`` with the last outage's start and
length. Redis's fields keep their first names (``since``, ``error``, ``last_outage_from``,
``last_outage_seconds``, ``url``); the broker's carry a ``broker_`` prefix. Every write also
says which process wrote it (``pid``) and when (``updated_at``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger("basketflow.flow")

HEALTH_FILE = "flow-health.json"


class FlowHealth:
    """This process's view of the health file at one path (one per path, shared by every
    sink and reader of the process, so each writes the others' fields too)."""

    _by_path: dict[Path, FlowHealth] = {}
    _lock = threading.Lock()

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.doc: dict[str, object] = {}

    @classmethod
    def at(cls, path: Path | None) -> FlowHealth:
        """The process's health of ``path`` (None: one that records nothing)."""
        if path is None:
            return cls(None)
        with cls._lock:
            return cls._by_path.setdefault(path, cls(path))

    def update(self, fields: dict[str, object], drop: tuple[str, ...] = ()) -> None:
        """Set ``fields``, remove ``drop``, and write the file (never fails the flow)."""
        if self.path is None:
            return
        with self._lock:
            for name in drop:
                self.doc.pop(name, None)
            self.doc |= fields | {"pid": os.getpid(), "updated_at": iso(time.time())}
            text = json.dumps(self.doc)
            try:
                tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
                tmp.write_text(text)
                os.replace(tmp, self.path)
            except OSError as exc:
                log.warning("cannot record the flow's health in %s: %s", self.path, exc)


class Outage:
    """One server's outages as a flow sees them: :meth:`down` on each failure logs one
    warning when an outage starts and records it; :meth:`back` logs one line when it
    ends and records how long it was. Thread-safe; ``fields`` prefixes the recorded names
    (``""`` for Redis, ``"broker_"`` for the broker). ``failures`` counts every failure
    noted and ``started`` the outages, for the flow's metrics."""

    def __init__(self, name: str, what: str, health: FlowHealth, fields: str = "") -> None:
        self.name = name
        self.what = what
        self.health = health
        self.fields = fields
        self.lock = threading.Lock()
        self.since: float | None = None
        self.failures = 0
        self.started = 0

    def down(self, error: object, waiting: str,
             extra: dict[str, object] | None = None) -> bool:
        """Note a failure; True when it starts an outage (then logged and recorded, with
        ``extra`` fields)."""
        f = self.fields
        with self.lock:  # recorded under the lock: a back() of another thread comes after
            self.failures += 1
            if self.since is not None:
                return False
            since = self.since = time.time()
            self.started += 1
            self.health.update({self.name: "down", f"{f}since": iso(since),
                                f"{f}error": str(error)} | (extra or {}))
        log.warning("%s is unreachable (%s); %s", self.what, error, waiting)
        return True

    def back(self, then: str) -> None:
        """Note a success: ends the outage, if there was one."""
        if self.since is None:
            return
        f = self.fields
        with self.lock:
            since, self.since = self.since, None
            if since is None:
                return
            seconds = time.time() - since
            self.health.update({self.name: "up", f"{f}last_outage_from": iso(since),
                                f"{f}last_outage_seconds": round(seconds, 1)},
                               drop=(f"{f}since", f"{f}error"))
        log.warning("%s is back after %.1f s; %s", self.what, seconds, then)


def read_health(data_dir: Path) -> dict[str, object] | None:
    """The flow's health file, or None when there is none or it cannot be read."""
    try:
        return json.loads((data_dir / HEALTH_FILE).read_text())
    except (OSError, ValueError):
        return None


def iso(t: float) -> str:
    """Epoch seconds as an ISO time in UTC, to the second."""
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="seconds")
