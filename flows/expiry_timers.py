"""The flow's event-time clock, and waking the entities whose windows move on without events.

**The clock** is the newest event time the flow has processed: each batch carries its
newest event time, and every shard below keeps the greatest it has seen (every shard
sees every batch, so all agree). It is kept in the recovery state with the shards, and
shown by ``basketflow status`` (:mod:`basketflow.flows.progress` keeps the same value).
A partition that is slow or idle does not hold it back: its events arrive behind the
clock, and the feature step writes the rows after them again
(:mod:`basketflow.features.entity_features`), so the rows in effect do not depend on the
clock.

**Timers.** A windowed value changes without an event when one of the entity's hourly
tiles leaves a window: a tile of hour ``h`` leaves the ``W``-day window when hour
``h + W*24`` begins. Each shard keeps a timer wheel: the entities to wake, by the hour of
each such moment, scheduled from the hours of their events. When the clock reaches a
moment, its entities get a :class:`~basketflow.schemas.records.Work` without events,
and their feature step writes the rows of the moments passed. The cost is proportional
to the entities whose windows change, not to all entities.

Stream by stream, for one entity kind::

    batches      list[Transaction]
    to-shards    -> (shard, ShardBatch): every shard gets its entities' events and the
                    batch's newest event time (an empty batch of events if it has none)
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
from typing import NamedTuple
from zlib import crc32

from basketflow.schemas.events import Transaction
from basketflow.schemas.features import CUSTOMER
from basketflow.schemas.records import Work

HOUR = 3600
#: Shards of the timer wheels: every batch sends each one an item (its clock), and
#: Bytewax spreads them over the workers.
TIMER_SHARDS = 4
#: Hours after an event's hour at which a customer's tile leaves one of its windows.
CUSTOMER_WAKE_HOURS = tuple(days * 24 for days in CUSTOMER.windows_days)

#: Events of one entity in a batch.
Group = tuple[str, list[Transaction]]


class ShardBatch(NamedTuple):
    """A batch's events of one shard's entities, grouped by entity in order, and the
    batch's newest event time (of all its events, so every shard's clock agrees)."""

    groups: list[Group]
    newest: int


def shard_of(entity: str, shards: int = TIMER_SHARDS) -> int:
    """An entity's timer shard: the CRC-32 of its id (the same in every process)."""
    return crc32(entity.encode()) % shards


def to_shards(groups: list[Group], newest: int,
              known: dict[str, int]) -> list[tuple[str, ShardBatch]]:
    """One item per shard: its entities' groups and the batch's newest event time.
    ``known`` keeps each entity's shard (ids repeat)."""
    by_shard: list[list[Group]] = [[] for _ in range(TIMER_SHARDS)]
    for group in groups:
        shard = known.get(group[0])
        if shard is None:
            shard = known[group[0]] = shard_of(group[0])
        by_shard[shard].append(group)
    return [(str(i), ShardBatch(g, newest)) for i, g in enumerate(by_shard)]


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
        clock = max(wheel.clock, batch.newest)
        out: list[tuple[str, Work]] = []
        for entity, events in batch.groups:
            wheel.schedule(entity, _hours(events), wake_hours)
            out.append((entity, Work(entity, events, clock)))
        due = wheel.advance(clock)
        if due:
            due.difference_update(entity for entity, _ in batch.groups)
            out.extend((entity, Work(entity, [], clock)) for entity in sorted(due))
        return wheel, out

    return mapper


def _hours(events: list[Transaction]) -> list[int]:
    """The distinct event hours of some events, in order of first appearance."""
    return list(dict.fromkeys(e.ts // HOUR for e in events))
