"""The event ids an entity has folded in, by event day, kept for as long as they matter.

Every entity remembers the ids of the events it has folded in, so a line replayed twice
(from the same file or another copy of it) counts once. An event's id fixes its event
time, so its copy is looked for only among the ids of the same event day. Ids are kept
by day, and the days an entity no longer needs are forgotten (:meth:`SeenIds.forget`):
the folder forgets what lies behind both its rule for late events (anything older is
left out, seen or not) and its longest window, so memory follows the windows and the
entities, not the history.

Ids of the form events get (:func:`~basketflow.schemas.events.event_id`: 16 hex digits)
are kept as 64-bit numbers, pickled per day as one block of memory (8 bytes an id: the
state of every entity that changed is pickled at each Bytewax epoch); any other id is
kept as its string.

>>> seen = SeenIds()
>>> seen.add("00000000000000ff", 0), seen.add("000000000000000a", 0), seen.add("00000000000000ff", 0)
(True, True, False)
>>> seen.add("other-id", 86_400), seen.add("other-id", 86_400), len(seen)
(True, False, 3)
>>> seen.forget(86_400); len(seen), seen.add("00000000000000ff", 0)
(1, True)
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Any

from basketflow.schemas.events import Transaction, is_event_id

DAY = 86_400


def _key(event_id: str) -> int | str:
    """What is kept of an id: its number where it is an event id, else the string."""
    return int(event_id, 16) if is_event_id(event_id) else event_id


class SeenIds:
    """Event ids by event day, with ``add`` (True when the id is new), ``fresh`` and
    ``forget``; ids of snapshots older than the days (``legacy``) are kept apart."""

    __slots__ = ("days", "oldest", "legacy")

    def __init__(self) -> None:
        self.days: dict[int, set[int | str]] = {}
        self.oldest: int | None = None  # the first day kept (None: none)
        self.legacy: set[int | str] = set()

    @classmethod
    def of(cls, ids: "SeenIds | set[str]") -> "SeenIds":
        """``ids`` as SeenIds: a state of an older snapshot may hold a plain set of ids,
        with no event times, kept (as :attr:`legacy`) until the entity is rebuilt.

        >>> SeenIds.of({"f:1", "00000000000000ff"}).add("00000000000000ff", 0)
        False
        """
        if isinstance(ids, SeenIds):
            return ids
        seen = cls()
        seen.legacy = {_key(event_id) for event_id in ids}
        return seen

    def add(self, event_id: str, ts: int) -> bool:
        """Remember ``event_id`` of an event at ``ts``; True when it was not seen before."""
        key = _key(event_id)
        if key in self.legacy:
            return False
        day = ts // DAY
        bucket = self.days.get(day)
        if bucket is None:
            bucket = self._new_day(day)
        elif key in bucket:
            return False
        bucket.add(key)
        return True

    def _new_day(self, day: int) -> set[int | str]:
        """An empty set for the ids of ``day``."""
        bucket: set[int | str] = set()
        self.days[day] = bucket
        if self.oldest is None or day < self.oldest:
            self.oldest = day
        return bucket

    def fresh(self, events: Sequence[Transaction]) -> list[Transaction]:
        """The events whose ids were not seen yet, in order, each remembered as by
        :meth:`add`; called once per entity and batch.

        >>> from basketflow.schemas.events import parse_row
        >>> row = ["1", "85123A", "HEART", "6", "12/1/2010 8:26", "2.55", "17850", "UK"]
        >>> a, b = parse_row(row, "f:1"), parse_row(row[:3] + ["7"] + row[4:], "f:2")
        >>> seen = SeenIds()
        >>> [e.quantity for e in seen.fresh([a, b, a, b])], seen.fresh([b])
        ([6, 7], [])
        """
        days, legacy, out = self.days, self.legacy, []
        for e in events:  # add(), inline: it runs once per event
            event_id = e.event_id
            key = int(event_id, 16) if is_event_id(event_id) else event_id
            if legacy and key in legacy:
                continue
            day = e.ts // DAY
            bucket = days.get(day)
            if bucket is None:
                bucket = self._new_day(day)
            elif key in bucket:
                continue
            bucket.add(key)
            out.append(e)
        return out

    def forget(self, before: int) -> None:
        """Forget the ids of the days that end at or before ``before`` (an event time):
        a copy of such an event is no longer recognised as one."""
        cutoff = before // DAY
        if self.oldest is None or self.oldest >= cutoff:
            return
        days = self.days
        for day in [d for d in days if d < cutoff]:
            del days[day]
        self.oldest = min(days, default=None)

    def __len__(self) -> int:
        return sum(len(ids) for ids in self.days.values()) + len(self.legacy)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickled as each day's numbers' bytes (an ``array`` pickles through a slow
        Python-level reduction, paid per entity at every snapshot) and other ids.

        >>> import pickle
        >>> seen = SeenIds()
        >>> seen.add("000000000000000a", 5), seen.add("00000000000000ff", 90_000), seen.add("x", 5)
        (True, True, True)
        >>> copy = pickle.loads(pickle.dumps(seen))
        >>> copy.add("00000000000000ff", 90_000), copy.add("x", 5), copy.add("0000000000000001", 5)
        (False, False, True)
        >>> len(copy), copy.oldest
        (4, 0)
        """
        numbers = {day: array("Q", [k for k in ids if isinstance(k, int)]).tobytes()
                   for day, ids in self.days.items()}
        other = {day: [k for k in ids if isinstance(k, str)] for day, ids in self.days.items()}
        return _restore_days, (numbers, {d: ids for d, ids in other.items() if ids},
                               self.legacy)


def _restore_days(numbers: dict[int, bytes], other: dict[int, list[str]],
                  legacy: set[int | str]) -> SeenIds:
    """The :class:`SeenIds` that ``__reduce__`` pickled."""
    seen = SeenIds()
    for day, block in numbers.items():
        ids = array("Q")
        ids.frombytes(block)
        seen.days[day] = set(ids)
    for day, strings in other.items():
        seen.days.setdefault(day, set()).update(strings)
    seen.oldest = min(seen.days, default=None)
    seen.legacy = legacy
    return seen


def _restore_ids(numbers: bytes, other: set[str]) -> SeenIds:
    """A :class:`SeenIds` of a snapshot written before ids were kept by day: every id is
    kept, as :attr:`~SeenIds.legacy`."""
    block = array("Q")
    block.frombytes(numbers)
    seen = SeenIds()
    seen.legacy = set(block) | other
    return seen
