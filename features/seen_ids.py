"""The event ids an entity has folded in, kept compactly so that snapshots stay cheap.

Every entity remembers the ids of the events it has folded in, so a line replayed twice
(from the same file or another copy of it) counts once. The state of every entity that
changed is pickled at each Bytewax epoch, so a set of id strings would make each snapshot
grow with the history, and the flow stalls while it is written. Ids of the form events
get (:func:`~basketflow.schemas.events.event_id`: 16 hex digits) are kept here as 64-bit
numbers: in memory a set of them (a lookup per event must be cheap), pickled as one
block of memory, 8 bytes an id; any other id goes to a set of strings.

>>> seen = SeenIds()
>>> seen.add("00000000000000ff"), seen.add("000000000000000a"), seen.add("00000000000000ff")
(True, True, False)
>>> seen.add("other-id"), seen.add("other-id"), len(seen)
(True, False, 3)
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Any

from basketflow.schemas.events import Transaction, is_event_id


class SeenIds:
    """A set of event ids with ``add`` (True when the id is new) and cheap copies."""

    __slots__ = ("numbers", "other")

    def __init__(self) -> None:
        self.numbers: set[int] = set()
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
            if number in numbers:
                return False
            numbers.add(number)
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
        numbers, other, out = self.numbers, self.other, []
        for e in events:  # add(), inline: it runs once per event
            event_id = e.event_id
            if is_event_id(event_id):
                number = int(event_id, 16)
                if number in numbers:
                    continue
                numbers.add(number)
            elif event_id in other:
                continue
            else:
                other.add(event_id)
            out.append(e)
        return out

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
        return _restore_ids, (array("Q", self.numbers).tobytes(), self.other)


def _restore_ids(numbers: bytes, other: set[str]) -> SeenIds:
    """The :class:`SeenIds` that ``__reduce__`` pickled."""
    seen = SeenIds()
    block = array("Q")
    block.frombytes(numbers)
    seen.numbers = set(block)
    seen.other = other
    return seen
