"""The flow's event-time clock, and waking the entities whose windows move on without events.

**The clock** is a watermark: the oldest of the newest event times of the input's
partitions that have delivered events (Kafka partitions; a backfill's one ordered
stream is one partition), and 0 until every partition of the topic has delivered.
Events are keyed by customer, so each partition holds its customers' events in order;
while one partition runs ahead of the others (a replay reads thousands of messages per
poll of each), the clock waits for the slowest, so the windows it moves on are not moved
before their events arrive. A partition that is empty or falls quiet holds the clock
back until its reader says it has read everything there is (:data:`CAUGHT_UP`) and
nothing more comes for :data:`IDLE_AFTER` of wall time, then is idle (left out) until it
delivers again, as a source that declares itself idle is in Flink; a partition read to
its end by ``run --stop-at-end`` (:data:`ENDED`) is idle at once. A flow that is merely
busy (a backlog, a slow snapshot) never makes a partition with messages waiting idle. At the end of the input (``run --stop-at-end``, a
backfill; not a run stopped by a signal, whose partitions may lag) the clock moves on to
the newest event time of all. It is kept in the recovery state (:func:`event_clock`),
written to the progress hash (``clock``) and shown by ``basketflow status``.

An event that arrives behind the clock anyway (its partition was idle, or out of order)
is still folded in: the feature step writes the rows after it again
(:mod:`basketflow.features.entity_features`), so the rows in effect never depend on the
clock, only on the events.

**Timers.** A windowed value changes without an event when one of the entity's hourly
tiles leaves a window: a tile of hour ``h`` leaves the ``W``-day window when hour
``h + W*24`` begins (a product's values change at hour ends). Each shard keeps a timer
wheel: the entities to wake, by the hour of each such moment, scheduled from the hours of
their events. When the clock reaches a moment, its entities get a
:class:`~basketflow.schemas.records.Work` without events, and their feature step writes
the rows of the moments passed. The cost is proportional to the entities whose windows
change, not to all entities.

Stream by stream, for one entity kind::

    event-clock  (partition, newest event time, batch) -> (batch, clock)
    to-shards    -> (shard, ShardBatch): every shard gets its entities' events and the
                    clock (an empty batch of events if it has none)
    timers       -> (entity, Work) for each entity with events, then each one woken
    *-features   the feature step (:func:`basketflow.features.entity_features.folder_step`)

>>> from basketflow.schemas.events import parse_row
>>> row = ["536365", "85123A", "HEART", "6", "12/1/2010 8:26", "2.55", "17850", "UK"]
>>> e = parse_row(row, "f:2")
>>> step = timer_step(CUSTOMER_WAKE_HOURS)
>>> wheel, out = step(None, ShardBatch([("17850", [e])], e.ts))
>>> [(entity, len(work.events)) for entity, work in out]
[('17850', 1)]
>>> wheel, out = step(wheel, ShardBatch([], e.ts + 86_400))  # a day later: 1-day window
>>> [(entity, len(work.events), work.clock - e.ts) for entity, work in out]
[('17850', 0, 86400)]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import NamedTuple, TypeVar

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import StatefulLogic

from basketflow.features.entity_features import CUSTOMER_ENGINE
from basketflow.features.feature_state import HOUR, PRODUCT_CHANGE_HOURS
from basketflow.flows import stopping
from basketflow.flows.shards import shard_of
from basketflow.schemas.events import Transaction
from basketflow.schemas.records import Work

#: Shards of the timer wheels: every batch sends each one an item (its clock), and
#: Bytewax spreads them over the workers.
TIMER_SHARDS = 4
#: Hours after an event's hour at whose start a customer's tile leaves one of its
#: windows.
CUSTOMER_WAKE_HOURS = CUSTOMER_ENGINE.spans
#: Hours after an event's hour by whose start a product's values changed: the product
#: changes at hour ends (:class:`~basketflow.features.feature_state.ProductState`).
PRODUCT_WAKE_HOURS = tuple(hours + 1 for hours in PRODUCT_CHANGE_HOURS)

#: A partition whose reader has read everything there is and that delivers nothing for
#: this long (wall time) stops holding the clock back until it delivers again, as an
#: idle source does in Flink: a topic with an empty or quiet partition still has its
#: windows moved on.
IDLE_AFTER = timedelta(seconds=10)
#: What a batch item says of its partition: it delivered (events or not), its reader has
#: read everything there is for now, or it has read its partition to the end for good.
DELIVERING, CAUGHT_UP, ENDED = 0, 1, 2
#: Events of one entity in a batch.
Group = tuple[str, list[Transaction]]
P = TypeVar("P")


class ClockedBatch(NamedTuple):
    """A batch of events and the clock after it; for a batch read from the topic (a poll
    of one partition), that partition and each event's offset there, in the same order
    (None: events from elsewhere, a backfill's)."""

    events: list[Transaction]
    clock: int
    partition: int | None = None
    offsets: list[int] | None = None


class PartitionClock:
    """The newest event time of each partition; the clock is the oldest of them among the
    partitions not ``idle``, and 0 while one of them (or of the ``expected`` ones) has
    not delivered events yet. When every partition is idle it is the newest of all.

    >>> c = PartitionClock(("p0", "p1"))
    >>> c.add("p0", 500), c.add("p1", 300), c.add("p0", 900), c.add("p1", 800)
    (0, 300, 300, 800)
    >>> c.idle = frozenset({"p1"})  # p1 has delivered nothing for a while
    >>> c.now(), c.add("p1", 850), c.end()
    (900, 850, 900)
    """

    __slots__ = ("newest", "expected", "idle")

    def __init__(self, expected: tuple[str, ...] = ()) -> None:
        self.newest: dict[str, int] = {}
        self.expected = expected
        self.idle: frozenset[str] = frozenset()

    def add(self, partition: str, newest: int) -> int:
        """Fold in a batch of ``partition`` whose newest event time is ``newest`` (0: no
        events; the partition is no longer idle); the clock after it."""
        if newest > self.newest.get(partition, 0):
            self.newest[partition] = newest
        if partition in self.idle:
            self.idle = self.idle - {partition}
        return self.now()

    def now(self) -> int:
        """The clock (see the class)."""
        newest = self.newest
        active = [p for p in (*self.expected, *newest) if p not in self.idle]
        if not active:
            return self.end()
        if any(p not in newest for p in active):
            return 0
        return min(newest[p] for p in active)

    def end(self) -> int:
        """The clock at the end of the input: the newest event time of all."""
        return max(self.newest.values(), default=0)

    def copy(self) -> PartitionClock:
        """A copy that does not change with this one (for a snapshot)."""
        clock = PartitionClock(self.expected)
        clock.newest = dict(self.newest)
        clock.idle = self.idle
        return clock


def _utc_now() -> datetime:
    """The wall clock, for idleness."""
    return datetime.now(timezone.utc)


class _ClockLogic(StatefulLogic[tuple[str, int, int, P], tuple[P, int], PartitionClock]):
    """The one clock of a flow (every batch goes through one key), with the moment each
    quiet partition becomes idle: :data:`IDLE_AFTER` after its reader said it had read
    everything (:data:`CAUGHT_UP`), at once when read to its end (:data:`ENDED`), never
    while it delivers (resumed, every partition starts afresh)."""

    def __init__(self, empty: Callable[[], P], expected: tuple[str, ...],
                 resumed: PartitionClock | None,
                 now: Callable[[], datetime] = _utc_now) -> None:
        self.empty = empty
        self.clock = resumed or PartitionClock()
        self.clock.expected = expected  # the input's partitions now
        self.clock.idle = frozenset()
        self._now = now
        self.idle_at: dict[str, datetime] = {}
        self.emitted = 0

    def on_item(self, value: tuple[str, int, int, P]) -> tuple[list[tuple[P, int]], bool]:
        partition, newest, quiet, batch = value
        if newest or quiet == DELIVERING:
            self.clock.add(partition, newest)
        now = self._now()
        if quiet == DELIVERING:
            self.idle_at.pop(partition, None)
        elif quiet == ENDED:
            self.idle_at[partition] = now
        else:
            self.idle_at.setdefault(partition, now + IDLE_AFTER)
        clock = self._mark_idle(now)
        self.emitted = max(self.emitted, clock)
        return [(batch, clock)], StatefulLogic.RETAIN

    def _mark_idle(self, now: datetime) -> int:
        """Mark the partitions whose moment to be idle has come; the clock."""
        self.clock.idle = frozenset(p for p, t in self.idle_at.items() if t <= now)
        return self.clock.now()

    def notify_at(self) -> datetime | None:
        """When the next quiet partition becomes idle, if it delivers nothing."""
        waiting = [t for p, t in self.idle_at.items() if p not in self.clock.idle]
        return min(waiting) if waiting else None

    def on_notify(self) -> tuple[list[tuple[P, int]], bool]:
        """Mark the partitions quiet long enough idle; pass a moved clock on."""
        clock = self._mark_idle(self._now())
        if clock <= self.emitted:
            return [], StatefulLogic.RETAIN
        self.emitted = clock
        return [(self.empty(), clock)], StatefulLogic.RETAIN

    def on_eof(self) -> tuple[list[tuple[P, int]], bool]:
        if stopping.requested():  # stopped, not at the end: the partitions may lag
            return [], StatefulLogic.RETAIN
        return [(self.empty(), self.clock.end())], StatefulLogic.RETAIN

    def snapshot(self) -> PartitionClock:
        return self.clock.copy()


@operator
def event_clock(step_id: str, up: Stream[tuple[str, int, int, P]], empty: Callable[[], P],
                partitions: tuple[str, ...] = ()) -> Stream[tuple[P, int]]:
    """Pass each batch on with the flow's clock after it (see the module docstring); at
    the end of the input, pass ``empty()`` on with the newest event time of all.

    :arg step_id: Unique ID.
    :arg up: ``(partition, newest event time of the batch or 0, quiet, batch)`` items,
        ``quiet`` one of :data:`DELIVERING`, :data:`CAUGHT_UP`, :data:`ENDED`.
    :arg empty: Makes the batch that carries the clock at the end of the input.
    :arg partitions: The input's partitions: the clock waits for each to deliver.
    :returns: ``(batch, clock)`` items, in order, through one worker.
    """
    keyed = op.key_on("key", up, lambda _item: "all")
    clocked = op.stateful("clock", keyed, lambda resumed: _ClockLogic(
        empty, partitions, resumed))
    return op.key_rm("unkey", clocked)


class ShardBatch(NamedTuple):
    """A batch's events of one shard's entities, grouped by entity in order, and the
    clock after the batch."""

    groups: list[Group]
    clock: int


def to_shards(groups: list[Group], clock: int,
              known: dict[str, int]) -> list[tuple[str, ShardBatch]]:
    """One item per shard: its entities' groups and the clock. ``known`` keeps each
    entity's shard (ids repeat)."""
    by_shard: list[list[Group]] = [[] for _ in range(TIMER_SHARDS)]
    for group in groups:
        shard = known.get(group[0])
        if shard is None:
            shard = known[group[0]] = shard_of(group[0], TIMER_SHARDS)
        by_shard[shard].append(group)
    return [(str(i), ShardBatch(g, clock)) for i, g in enumerate(by_shard)]


class TimerWheel:
    """One shard's clock and timers: entities to wake, by hour."""

    __slots__ = ("clock", "through", "buckets", "scheduled")

    def __init__(self) -> None:
        self.clock = 0
        #: Every bucket up to this hour has been woken (None: nothing yet).
        self.through: int | None = None
        self.buckets: dict[int, list[str]] = {}
        #: Each entity's latest event hour scheduled, so a run of events in one hour
        #: schedules it once.
        self.scheduled: dict[str, int] = {}

    def schedule(self, entity: str, hours: Iterable[int], wake_hours: tuple[int, ...]) -> None:
        """Wake ``entity`` ``wake_hours`` after each of the event hours ``hours``; a
        moment the clock has passed already is the feature step's to handle now."""
        through = self.through if self.through is not None else -1
        for hour in hours:
            if self.scheduled.get(entity) == hour:
                continue
            self.scheduled[entity] = hour
            for after in wake_hours:
                moment = hour + after
                if moment > through:
                    self.buckets.setdefault(moment, []).append(entity)

    def forget_passed(self, woken: Iterable[str], last_wake: int) -> None:
        """Forget the latest scheduled hour of each woken entity whose last moment
        (``last_wake`` hours after it) the clock has reached: nothing of it is left in the
        wheel, so an entity that never comes back (a guest) is not kept for ever."""
        scheduled, through = self.scheduled, self.through
        if through is None:
            return
        for entity in woken:
            hour = scheduled.get(entity)
            if hour is not None and hour + last_wake <= through:
                del scheduled[entity]

    def advance(self, clock: int) -> set[str]:
        """Move the clock on to ``clock`` (never back); the entities whose moments it
        reached."""
        self.clock = clock = max(self.clock, clock)
        hour = clock // HOUR
        through = self.through
        self.through = hour
        if through is None or hour <= through:
            return set()
        buckets = self.buckets
        due: set[str] = set()
        if hour - through > len(buckets):  # a long jump: look at the buckets there are
            hours: Iterable[int] = sorted(h for h in buckets if through < h <= hour)
        else:
            hours = range(through + 1, hour + 1)
        for h in hours:
            entities = buckets.pop(h, None)
            if entities:
                due.update(entities)
        return due


def timer_step(wake_hours: tuple[int, ...]) -> Callable[
        [TimerWheel | None, ShardBatch], tuple[TimerWheel, list[tuple[str, Work]]]]:
    """A ``pickled_flat_map`` mapper for one shard: schedule the batch's entities, move
    the clock on, and hand each entity its :class:`Work`: those with events first, in
    the batch's order, then those woken."""
    def mapper(wheel: TimerWheel | None,
               batch: ShardBatch) -> tuple[TimerWheel, list[tuple[str, Work]]]:
        wheel = wheel or TimerWheel()
        since = wheel.clock
        due = wheel.advance(batch.clock)  # moments it passes now are the folders' to write
        clock = wheel.clock
        out: list[tuple[str, Work]] = []
        for entity, events in batch.groups:
            wheel.schedule(entity, _hours(events), wake_hours)
            out.append((entity, Work(entity, events, clock, since)))
        if due:
            wheel.forget_passed(due, max(wake_hours))
            due.difference_update(entity for entity, _ in batch.groups)
            out.extend((entity, Work(entity, [], clock, since)) for entity in sorted(due))
        return wheel, out

    return mapper


def _hours(events: list[Transaction]) -> list[int]:
    """The distinct event hours of some events, in order of first appearance."""
    return list(dict.fromkeys(e.ts // HOUR for e in events))
