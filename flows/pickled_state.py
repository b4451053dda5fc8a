"""A stateful operator whose recovery snapshots are pickled once, never deep-copied.

Bytewax's ``stateful_flat_map`` snapshots every key whose state changed in an epoch with
``copy.deepcopy`` when the epoch closes, and the runtime then pickles that copy: two
walks of every changed state, both on the worker's thread, while no line is processed:
a stall that every line consumed meanwhile waits out, growing with the states changed
per epoch (``benchmarks/freshness.py`` measures it).

:func:`pickled_flat_map` is ``stateful_flat_map`` with the snapshot taken as the pickled
bytes of the state: bytes are immutable, so no copy is needed, and the runtime pickles
them for nothing. A state that has stopped changing is pickled before the epoch ends, in
an idle moment of the flow (:mod:`basketflow.flows.idle_work`), so the snapshot only pickles the
states changed in the last moments. On resume the bytes are unpickled; a snapshot of the plain
``stateful_flat_map`` (an earlier version of the flow) is taken as it is, and the step
ids are the same, so an existing recovery directory resumes.

A flow run with no recovery directory keeps no snapshot: Bytewax still asks for one of
every changed state at each epoch's end, and drops it. While such a flow runs
(:func:`snapshots_dropped`), states are never pickled, ahead of time or at the epoch's
end, and the snapshot is empty bytes.

>>> import bytewax.operators as op
>>> from bytewax.dataflow import Dataflow
>>> from bytewax.testing import TestingSink, TestingSource, run_main
>>> flow = Dataflow("count")
>>> keyed = op.key_on("key", op.input("in", flow, TestingSource(["a", "b", "a"])),
...                   lambda x: x)
>>> out = []
>>> counts = pickled_flat_map("count", keyed, lambda n, _x: ((n or 0) + 1, [(n or 0) + 1]))
>>> op.output("out", counts, TestingSink(out))
>>> run_main(flow)
>>> out
[('a', 1), ('b', 1), ('a', 2)]
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

import bytewax.operators as op
from bytewax.dataflow import operator
from bytewax.operators import KeyedStream, StatefulLogic

from basketflow.flows import idle_work

V = TypeVar("V")
W = TypeVar("W")
S = TypeVar("S")

Mapper = Callable[[S | None, V], tuple[S | None, Iterable[W]]]

#: Whether the flow running in this process drops its snapshots (no recovery directory).
_dropped = False


@contextmanager
def snapshots_dropped(dropped: bool) -> Iterator[None]:
    """While the block runs a flow, its states are pickled (``dropped`` False: a
    recovery directory keeps the snapshots) or not (True: Bytewax drops them). The
    setting is the process's (Bytewax's workers are threads of their own): a process runs
    one flow at a time, as every command does."""
    global _dropped
    before, _dropped = _dropped, dropped
    try:
        yield
    finally:
        _dropped = before


class _PickledStateLogic(StatefulLogic[V, W, bytes], Generic[V, W, S]):
    """One key's state, handed to the mapper per item and snapshotted as pickled bytes,
    pickled ahead of the snapshot in an idle moment once it has stopped changing
    (:mod:`basketflow.flows.idle_work`); never pickled while snapshots are dropped (the
    snapshot is then empty bytes)."""

    def __init__(self, mapper: Mapper[S, V, W], state: S | None) -> None:
        self.mapper = mapper
        self.state = state
        self.pickled: bytes | None = b"" if _dropped else None

    def on_item(self, value: V) -> tuple[Iterable[W], bool]:
        state, out = self.mapper(self.state, value)
        if state is None:
            return out, StatefulLogic.DISCARD
        self.state = state
        if not _dropped:
            self.pickled = None
            idle_work.this_thread().defer(id(self), self._pickle)
        return out, StatefulLogic.RETAIN

    def _pickle(self) -> None:
        """Pickle the state as it is now, unless that is done already."""
        if self.pickled is None:
            self.pickled = pickle.dumps(self.state, protocol=pickle.HIGHEST_PROTOCOL)

    def snapshot(self) -> bytes:
        self._pickle()
        assert self.pickled is not None
        return self.pickled


def _restored(resume_state: Any) -> Any:
    """The state a snapshot holds: pickled bytes, or an earlier version's plain object."""
    return pickle.loads(resume_state) if isinstance(resume_state, bytes) else resume_state


@operator
def pickled_flat_map(step_id: str, up: KeyedStream[V],
                     mapper: Mapper[S, V, W]) -> KeyedStream[W]:
    """Transform values one-to-many with a persistent state per key, as
    ``stateful_flat_map`` does (``mapper(state or None, value) -> (state, values)``; a
    state of None is discarded), snapshotting each changed state as its pickled bytes.

    :arg step_id: Unique ID.
    :arg up: Keyed stream.
    :arg mapper: Called with the key's last state (None at first) and each value.
    :returns: A keyed stream of the emitted values.
    """
    return op.stateful("stateful", up, lambda resume_state: _PickledStateLogic(
        mapper, _restored(resume_state)))
