"""The live flow's progress: next offsets and counts, kept in the recovery state.

Counting in the sinks would count per process: after a crash, the restarted process
starts from zero while the offsets resume from the last snapshot. Kept in a
``stateful_map`` instead, the counts are snapshotted with the offsets. And a message is
counted only if its offset is at or past the partition's next offset already recorded,
so the counts are idempotent on position like every sink: a state restored ahead of the
input (see :mod:`basketflow.flows.recovery_store`) cannot count a message twice. After any
number of restarts the progress hash holds the same totals as an uninterrupted run.

>>> p = FlowProgress()
>>> p.add({"offset:tx:0": 3}, {"offset:tx:0": [0, 2]}, {"offset:tx:0": [1]},
...       newest_ts=1_291_191_960, clock=1_291_191_960)
>>> p.add({"offset:tx:0": 5, "offset:tx:1": 1}, {"offset:tx:0": [2, 3, 4], "offset:tx:1": [0]},
...       {}, newest_ts=0, clock=1_291_191_960)
>>> p.fields()
{'offset:tx:0': 5, 'offset:tx:1': 1, 'events': 5, 'dead_letters': 1, 'event_time': '2010-12-01T08:26:00+00:00', 'clock': 1291191960}

``clock`` is the flow's **event-time clock** (epoch seconds; a watermark over the topic's
partitions, :mod:`basketflow.flows.event_clock`, at most ``event_time``, the newest event
time seen): online reads are as of it (see :mod:`basketflow.app.features`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from basketflow.sinks.online_store import CLOCK_FIELD

#: The part of the flow's progress hash in the online store that the serve part alone, in
#: a process of its own, writes (``<prefix>:flow:progress:serve``); a flow with the store
#: part writes the whole flow's, part ``""`` (``<prefix>:flow:progress``). See
#: :func:`basketflow.sinks.online_store.progress_key`.
SERVE_PROGRESS = "serve"


@dataclass
class FlowProgress:
    """Next offset per ``offset:<topic>:<partition>``, events and dead letters decoded so
    far, and the newest event time seen (epoch seconds, 0 for none)."""

    offsets: dict[str, int] = field(default_factory=dict)
    events: int = 0
    dead_letters: int = 0
    newest_ts: int = 0
    #: The flow's event-time clock (:mod:`basketflow.flows.event_clock`); a progress of an
    #: earlier version, restored, has none and takes this class default.
    clock: int = 0

    def add(self, offsets: dict[str, int], events: dict[str, list[int]],
            dead: dict[str, list[int]], *, newest_ts: int, clock: int = 0) -> None:
        """Fold one decoded batch in: the next offset per partition, and the offsets of
        its events and dead letters per partition (those already counted are skipped)."""
        self.events += self._fresh(events)
        self.dead_letters += self._fresh(dead)
        for name, offset in offsets.items():
            self.offsets[name] = max(self.offsets.get(name, 0), offset)
        self.newest_ts = max(self.newest_ts, newest_ts)
        self.clock = max(self.clock, clock)

    def _fresh(self, positions: dict[str, list[int]]) -> int:
        """How many of the offsets are not counted yet."""
        return sum(sum(1 for o in offsets if o >= self.offsets.get(name, 0))
                   for name, offsets in positions.items())

    def fields(self) -> dict[str, int | str]:
        """The progress hash's fields (without the wall-clock ``updated_at``); no
        ``clock`` while the clock has not started (every partition has not delivered).""" 
        when = (datetime.fromtimestamp(self.newest_ts, tz=timezone.utc).isoformat()
                if self.newest_ts else "")
        clock = {CLOCK_FIELD: self.clock} if self.clock else {}
        return {**self.offsets, "events": self.events, "dead_letters": self.dead_letters,
                "event_time": when, **clock}
