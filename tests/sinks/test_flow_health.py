"""The health file's outages when the flow's writer threads see a server fail and come
back at once: the file ends as the last of them left it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from basketflow.sinks.flow_health import FlowHealth, Outage, read_health


class HeldHealth(FlowHealth):
    """A health file whose recording of an outage's start waits for ``gate``, as a
    thread preempted on its way to the file does."""

    def __init__(self, path: Path, gate: threading.Event) -> None:
        super().__init__(path)
        self.gate = gate

    def update(self, fields: dict[str, object], drop: tuple[str, ...] = ()) -> None:
        if fields.get("redis") == "down":
            self.gate.wait(5)
        super().update(fields, drop)


def test_an_outage_ended_while_its_start_is_being_recorded_ends_up(tmp_path: Path) -> None:
    """One writer thread fails (the outage starts) and, before that is in the file,
    another one succeeds (it ends): the file says the server is up, as it is, and not
    down for ever (no later write would end an outage the file shows)."""
    gate = threading.Event()
    outage = Outage("redis", "Redis", HeldHealth(tmp_path / "flow-health.json", gate))
    failing = threading.Thread(target=outage.down, args=(ConnectionError("refused"), "retry"))
    failing.start()
    deadline = time.monotonic() + 5
    while outage.since is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    succeeding = threading.Thread(target=outage.back, args=("caught up",))
    succeeding.start()
    succeeding.join(timeout=0.5)  # it waits for the start to be recorded first
    gate.set()
    failing.join(timeout=5)
    succeeding.join(timeout=5)
    health = read_health(tmp_path) or {}
    assert health.get("redis") == "up", health
    assert outage.since is None and outage.started == 1
