"""The event ids an entity has folded in, kept compactly so that snapshots stay cheap.

Every entity remembers the ids of the events it has folded in, so a line replayed twice
(from the same file or another copy of it) counts once. The state of every entity that
changed is pickled at each Bytewax epoch, so a set of id strings would make each snapshot
grow with the history, and the flow stalls while it is written. Ids of the form events
get (:func:`~basketflow.schemas.events.event_id`: 16 hex digits) are kept here as a
sorted array of 64-bit numbers, which copies and pickles as one block of memory, 8 bytes
an id; any other id goes to a set.

>>> seen = SeenIds()
>>> seen.add("00000000000000ff"), seen.add("000000000000000a"), seen.add("00000000000000ff")
(True, True, False)
>>> seen.add("other-id"), seen.add("other-id"), len(seen)
(True, False, 3)
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from basketflow.schemas.events import Transaction, is_event_id


class SeenIds:
    """A set of event ids with ``add`` (True when the id is new) and cheap copies."""

    __slots__ = ("numbers", "other")

    def __init__(self) -> None:
        self.numbers = array("Q")
        self.other: set[str] = set()

    @classmethod
    def of(cls, ids: "SeenIds | set[str]") -> "SeenIds":
        """``ids`` as SeenIds (a state may hold a plain set of ids).

        >>> SeenIds.of({"f:1", "00000000000000ff"}).add("00000000000000ff")
        False
        """
        if isinstance(ids, SeenIds):
            return ids
        seen = cls()
        for event_id in ids:
            seen.add(event_id)
        return seen

    def add(self, event_id: str) -> bool:
        """Remember ``event_id``; True when it was not seen before."""
        if is_event_id(event_id):
            number = int(event_id, 16)
            numbers = self.numbers
            i = bisect_left(numbers, number)
            if i < len(numbers) and numbers[i] == number:
                return False
            numbers.insert(i, number)
            return True
        if event_id in self.other:
            return False
        self.other.add(event_id)
        return True

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
        add = self.add
        return [e for e in events if add(e.event_id)]

    def __len__(self) -> int:
        return len(self.numbers) + len(self.other)

    def __reduce__(self) -> tuple[Any, tuple[bytes, set[str]]]:
        """Pickled as the numbers' bytes: an ``array`` pickles through a slow
        Python-level reduction, paid per entity at every snapshot.

        >>> import pickle
        >>> seen = SeenIds.of({"000000000000000a", "00000000000000ff", "x"})
        >>> copy = pickle.loads(pickle.dumps(seen))
        >>> copy.add("00000000000000ff"), copy.add("x"), copy.add("0000000000000001"), len(copy)
        (False, False, True, 4)
        """
        return _restore_ids, (self.numbers.tobytes(), self.other)


def _restore_ids(numbers: bytes, other: set[str]) -> SeenIds:
    """The :class:`SeenIds` that ``__reduce__`` pickled."""
    seen = SeenIds()
    seen.numbers.frombytes(numbers)
    seen.other = other
    return seen
