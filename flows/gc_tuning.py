"""Fewer garbage-collector passes while a dataflow runs.

A flow allocates millions of small containers (tiles, feature values, log rows), most of
which live on in the entity state. With CPython's default thresholds a young collection
starts every 700 net allocations, survivors are promoted, and each full collection walks
every object alive, the imported libraries' included: a noticeable share of a flow's CPU
(docs/PERFORMANCE.md). While a flow runs, what existed before it is frozen (left out of
collections) and the young generation is collected every 200,000 net allocations, so a
whole backfill needs only a few collections. Cycles are still found and freed. Both
settings are undone when the flow ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: ``gc.set_threshold`` while a flow runs (CPython's default: 700, 10, 10).
FLOW_THRESHOLDS = (200_000, 20, 10)


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Freeze the objects that exist and raise the collection thresholds, until exit.

    >>> before = gc.get_threshold()
    >>> with fewer_collections():
    ...     gc.get_threshold() == FLOW_THRESHOLDS
    True
    >>> gc.get_threshold() == before
    True
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*FLOW_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
