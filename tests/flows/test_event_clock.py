"""The flow's event-time clock: a watermark over the partitions that waits for the
slowest, and stops waiting for a partition silent for IDLE_AFTER of wall time."""

from __future__ import annotations

from datetime import datetime, timezone

from basketflow.flows.event_clock import IDLE_AFTER, PartitionClock, _ClockLogic


class FakeTime:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 5, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


def test_the_clock_waits_for_every_partition_then_not_for_an_idle_one() -> None:
    wall = FakeTime()
    logic = _ClockLogic(list, ("p0", "p1"), None, now=wall)
    out, _ = logic.on_item(("p0", 500, ["a"]))
    assert out == [(["a"], 0)]  # p1 has delivered nothing yet
    assert logic.notify_at() == wall.now + IDLE_AFTER
    wall.now += IDLE_AFTER / 2
    assert logic.on_notify()[0] == []  # not idle yet
    out, _ = logic.on_item(("p0", 900, ["b"]))
    assert out == [(["b"], 0)]
    wall.now += IDLE_AFTER / 2  # p1 silent for IDLE_AFTER, p0 for half of it
    assert logic.on_notify()[0] == [([], 900)]
    assert logic.clock.idle == {"p1"}
    assert logic.notify_at() == wall.now + IDLE_AFTER / 2  # when p0 could go idle
    out, _ = logic.on_item(("p1", 300, ["c"]))  # p1 is back, behind: the clock waits again
    assert out == [(["c"], 300)] and logic.clock.idle == set()
    wall.now += IDLE_AFTER * 2
    assert logic.on_notify()[0] == []  # both idle: the newest of all, passed on already
    assert logic.notify_at() is None


def test_a_snapshot_keeps_the_newest_times_and_a_resumed_clock_starts_afresh() -> None:
    wall = FakeTime()
    clock = PartitionClock(("p0", "p1"))
    clock.add("p0", 500)
    clock.add("p1", 700)
    clock.idle = frozenset({"p1"})
    resumed = _ClockLogic(list, ("p0", "p1", "p2"), clock.copy(), now=wall)
    assert resumed.clock.idle == set() and resumed.clock.newest == {"p0": 500, "p1": 700}
    assert resumed.on_item(("p0", 600, []))[0] == [([], 0)]  # p2 is new: it is waited for
    assert resumed.on_eof()[0] == [([], 700)]
