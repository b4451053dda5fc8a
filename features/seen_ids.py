"""The event ids an entity has folded in, kept compactly so that snapshots stay cheap.

Every entity remembers the ids of the events it has folded in, so a line replayed twice
counts once. The state of every entity that changed is pickled at each Bytewax
epoch, so a set of id strings would make each snapshot grow with the history, and the
flow stalls while it is written. Ids of the producer's form ``<source>:<line>`` are kept
here as a sorted array of line numbers per source, which copies and pickles as one block
of memory; any other id goes to a set.

>>> seen = SeenIds()
>>> seen.add("data.csv:12"), seen.add("data.csv:7"), seen.add("data.csv:12")
(True, True, False)
>>> seen.add("other-id"), seen.add("other-id"), len(seen)
(True, False, 3)
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from basketflow.schemas.events import Transaction


class SeenIds:
    """A set of event ids with ``add`` (True when the id is new) and cheap copies."""

    __slots__ = ("lines", "other")

    def __init__(self) -> None:
        self.lines: dict[str, array[int]] = {}
        self.other: set[str] = set()

    @classmethod
    def of(cls, ids: "SeenIds | set[str]") -> "SeenIds":
        """``ids`` as SeenIds: recovery snapshots of earlier versions hold a plain set.

        >>> SeenIds.of({"f:1", "f:2"}).add("f:2")
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
        source, sep, line = event_id.rpartition(":")
        if sep and line.isdigit() and len(line) < 18:
            number = int(line)
            lines = self.lines.get(source)
            if lines is None:
                lines = self.lines[source] = array("q")
            if not lines or number > lines[-1]:  # lines mostly come in file order
                lines.append(number)
                return True
            i = bisect_left(lines, number)
            if i < len(lines) and lines[i] == number:
                return False
            lines.insert(i, number)
            return True
        if event_id in self.other:
            return False
        self.other.add(event_id)
        return True

    def fresh(self, events: Sequence[Transaction]) -> list[Transaction]:
        """The events whose ids were not seen yet, in order, each remembered as by
        :meth:`add`; called once per entity and batch.

        A batch's ids mostly come from one source, in file order: those are appended in
        one step each here, without a call of :meth:`add` per event.

        >>> from basketflow.schemas.events import parse_row
        >>> row = ["1", "85123A", "HEART", "6", "12/1/2010 8:26", "2.55", "17850", "UK"]
        >>> seen = SeenIds()
        >>> [e.event_id for e in seen.fresh([parse_row(row, i) for i in
        ...                                  ("f:3", "f:5", "f:4", "f:5", "x", "x")])]
        ['f:3', 'f:5', 'f:4', 'x']
        """
        out: list[Transaction] = []
        by_source = self.lines
        source: str | None = None
        lines = array("q")
        for e in events:
            event_id = e.event_id
            name, sep, line = event_id.rpartition(":")
            if sep and line.isdigit() and len(line) < 18:
                if name != source:
                    source = name
                    lines = by_source.get(name) or by_source.setdefault(name, array("q"))
                number = int(line)
                if not lines or number > lines[-1]:
                    lines.append(number)
                    out.append(e)
                    continue
            if self.add(event_id):
                out.append(e)
        return out

    def __len__(self) -> int:
        return sum(map(len, self.lines.values())) + len(self.other)

    def __reduce__(self) -> tuple[Any, tuple[dict[str, bytes], set[str]]]:
        """Pickled as each source's line numbers in bytes: an ``array`` pickles through
        a slow Python-level reduction, paid per entity at every snapshot.

        >>> import pickle
        >>> seen = SeenIds.of({"f:1", "f:5", "x"})
        >>> copy = pickle.loads(pickle.dumps(seen))
        >>> copy.add("f:5"), copy.add("x"), copy.add("f:6"), len(copy)
        (False, False, True, 4)
        """
        return _restore, ({s: a.tobytes() for s, a in self.lines.items()}, self.other)


def _restore(lines: dict[str, bytes], other: set[str]) -> SeenIds:
    """The :class:`SeenIds` that ``__reduce__`` pickled."""
    seen = SeenIds()
    for source, raw in lines.items():
        numbers = seen.lines[source] = array("q")
        numbers.frombytes(raw)
    seen.other = other
    return seen
