"""Work a flow does while its input has nothing new, instead of at the epoch's end.

Bytewax snapshots every state that changed in an epoch when the epoch closes, on the
worker's thread, while no line is processed: pickling the changed customers is a large
part of the serve part's stall at each epoch's end, the time every score waits
(``benchmarks/freshness.py`` measures it). A flow that keeps up has idle moments between
polls, so :mod:`basketflow.flows.pickled_state` pickles a state here
once it has been left alone for :data:`QUIET_SECONDS`, and the epoch's snapshot takes the
bytes already made. A state still changing is not pickled early, so a customer in the
middle of a basket is pickled once, not at every line.

Work is kept per thread (:func:`this_thread`): each Bytewax worker is a thread that
drives its own sources and states, so a worker only ever runs the work of the states it
owns.

>>> idle, done = IdleWork(), []
>>> idle.defer("a", lambda: done.append("a"), now=0.0)
>>> idle.defer("b", lambda: done.append("b"), now=0.4)
>>> idle.run(budget=1.0, now=0.6)  # "a" has been quiet for QUIET_SECONDS, "b" not yet
1
>>> idle.defer("b", lambda: done.append("b again"), now=0.7)  # changed: waits anew
>>> idle.run(budget=1.0, now=1.1), idle.run(budget=1.0, now=1.3), done
(0, 1, ['a', 'b again'])
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable

#: A state is pickled ahead of the snapshot once it has not changed for this long.
QUIET_SECONDS = 0.5
#: The most time one idle moment (a poll that found nothing) spends on deferred work.
IDLE_BUDGET_SECONDS = 0.002


class IdleWork:
    """One thread's deferred work, oldest first."""

    def __init__(self) -> None:
        self._queue: dict[Hashable, tuple[float, Callable[[], None]]] = {}

    def defer(self, key: Hashable, work: Callable[[], None], now: float | None = None) -> None:
        """Run ``work`` in an idle moment once ``key`` has been quiet for
        :data:`QUIET_SECONDS`; deferring the same key again replaces its work and
        restarts its wait."""
        self._queue.pop(key, None)
        self._queue[key] = (time.monotonic() if now is None else now, work)

    def run(self, budget: float = IDLE_BUDGET_SECONDS, now: float | None = None) -> int:
        """Run the work that has waited long enough, oldest first, for at most
        ``budget`` seconds; return how many pieces ran."""
        start = time.monotonic()
        ready_before = (start if now is None else now) - QUIET_SECONDS
        ran = 0
        while self._queue:
            key, (since, work) = next(iter(self._queue.items()))
            if since > ready_before:
                break
            del self._queue[key]
            work()
            ran += 1
            if time.monotonic() - start >= budget:
                break
        return ran

    def clear(self) -> None:
        """Forget every piece of work (a flow ended: its states are gone)."""
        self._queue.clear()


_local = threading.local()


def this_thread() -> IdleWork:
    """The calling thread's :class:`IdleWork`."""
    work = getattr(_local, "work", None)
    if work is None:
        work = _local.work = IdleWork()
    return work
