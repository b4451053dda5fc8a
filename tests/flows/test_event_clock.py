"""The flow's event-time clock: a watermark over the partitions that waits for the
slowest, and stops waiting for a partition only once its reader has read everything there
is and nothing more came for IDLE_AFTER of wall time (at once for a partition read to its
end), never because the flow was busy."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from basketflow.app.flow_processes import child_env
from basketflow.app.status import flow_progress
from basketflow.config import Settings
from basketflow.flows.event_clock import (
    CAUGHT_UP,
    DELIVERING,
    ENDED,
    IDLE_AFTER,
    PartitionClock,
    _ClockLogic,
)
from basketflow.producers.replay import replay
from basketflow.schemas.events import HEADER


class FakeTime:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 5, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


def test_the_clock_waits_for_every_partition_then_not_for_an_idle_one() -> None:
    wall = FakeTime()
    logic = _ClockLogic(list, ("p0", "p1"), None, now=wall)
    out, _ = logic.on_item(("p0", 500, DELIVERING, ["a"]))
    assert out == [(["a"], 0)]  # p1 has delivered nothing yet
    assert logic.notify_at() is None  # and has not said it has nothing: it is waited for
    out, _ = logic.on_item(("p1", 0, CAUGHT_UP, []))  # p1 is empty, for now
    assert out == [([], 0)] and logic.notify_at() == wall.now + IDLE_AFTER
    wall.now += IDLE_AFTER / 2
    assert logic.on_notify()[0] == []  # not idle yet
    out, _ = logic.on_item(("p0", 900, DELIVERING, ["b"]))
    assert out == [(["b"], 0)]
    wall.now += IDLE_AFTER / 2  # p1 quiet for IDLE_AFTER
    assert logic.on_notify()[0] == [([], 900)]
    assert logic.clock.idle == {"p1"}
    assert logic.notify_at() is None  # p0 delivers: it never goes idle by itself
    out, _ = logic.on_item(("p1", 300, DELIVERING, ["c"]))  # p1 is back, behind: it waits
    assert out == [(["c"], 300)] and logic.clock.idle == set()
    logic.on_item(("p0", 0, CAUGHT_UP, []))
    logic.on_item(("p1", 0, CAUGHT_UP, []))
    wall.now += IDLE_AFTER * 2
    assert logic.on_notify()[0] == []  # both idle: the newest of all, passed on already
    assert logic.notify_at() is None


def test_a_busy_flow_never_makes_a_partition_with_messages_waiting_idle() -> None:
    """A poll of a partition may come long after the last (a backlog, a slow snapshot):
    without its reader saying it has read everything, it still holds the clock."""
    wall = FakeTime()
    logic = _ClockLogic(list, ("p0", "p1"), None, now=wall)
    logic.on_item(("p0", 500, DELIVERING, ["a"]))
    logic.on_item(("p1", 300, DELIVERING, ["b"]))
    for step in range(1, 10):
        wall.now += IDLE_AFTER * 3
        out, _ = logic.on_item(("p0", 500 + 100 * step, DELIVERING, ["a"]))
        assert out == [(["a"], 300)] and logic.on_notify()[0] == []


def test_a_partition_read_to_its_end_is_idle_at_once() -> None:
    wall = FakeTime()
    logic = _ClockLogic(list, ("p0", "p1", "p2"), None, now=wall)
    logic.on_item(("p0", 500, DELIVERING, ["a"]))
    assert logic.on_item(("p2", 0, ENDED, []))[0] == [([], 0)]  # empty; p1 not heard yet
    assert logic.on_item(("p1", 800, ENDED, ["b"]))[0] == [(["b"], 500)]
    assert logic.clock.idle == {"p1", "p2"}
    assert logic.on_item(("p0", 900, DELIVERING, ["c"]))[0] == [(["c"], 900)]


def test_a_snapshot_keeps_the_newest_times_and_a_resumed_clock_starts_afresh() -> None:
    wall = FakeTime()
    clock = PartitionClock(("p0", "p1"))
    clock.add("p0", 500)
    clock.add("p1", 700)
    clock.idle = frozenset({"p1"})
    resumed = _ClockLogic(list, ("p0", "p1", "p2"), clock.copy(), now=wall)
    assert resumed.clock.idle == set() and resumed.clock.newest == {"p0": 500, "p1": 700}
    assert resumed.on_item(("p0", 600, DELIVERING, []))[0] == [([], 0)]  # p2 is waited for
    assert resumed.on_eof()[0] == [([], 700)]


@pytest.mark.slow
def test_a_tailing_flow_moves_its_clock_past_empty_partitions(
        settings: Settings, tmp_path: Path) -> None:
    """Through the real command, broker and Valkey: one customer's lines all land on one
    partition of three; the other two are empty, say so, and after IDLE_AFTER no longer
    hold the clock, which reaches the newest event time while the flow tails."""
    assert settings.kafka_bootstrap and settings.redis_url
    path = tmp_path / "one.csv"
    lines = [["536365", "85123A", "HEART", "6", "3/1/2011 10:05", "2.55", "17850", "UK"],
             ["536366", "71053", "LANTERN", "2", "3/2/2011 11:20", "3.39", "17850", "UK"]]
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([list(HEADER), *lines])
    replay(path, settings.kafka_bootstrap, settings.topic, settings.dead_topic)
    run = subprocess.Popen([sys.executable, "-m", "basketflow.cli", "run"],
                           env=child_env(settings), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + IDLE_AFTER.total_seconds() + 60
        clock = None
        while clock != 1_299_064_800:  # 2011-03-02 11:20 UTC, the newest event
            assert run.poll() is None, run.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, f"the clock stayed at {clock}"
            time.sleep(0.2)
            clock = flow_progress(settings.redis_url, settings.prefix)["clock"]
    finally:
        run.send_signal(signal.SIGINT)
        run.wait(timeout=60)
