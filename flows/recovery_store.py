"""Bytewax's recovery store, and the one repair it needs before a resume.

Bytewax (0.21) keeps recovery in SQLite partitions: ``snaps`` holds each step's state
per key and epoch, ``exs`` each execution with the epoch it resumed from, ``fronts`` each
worker's frontier (the first epoch it has not finished) per execution, and ``commits``
how far old snapshots may be garbage-collected. A new execution resumes from the
frontier of the last one (:func:`resume_epoch`) with each key's latest snapshot before
that epoch.

A process killed while closing an epoch leaves snapshots of that unfinished epoch in
the store. The resumed execution numbers its epochs from the same point, and at that
epoch's close it rewrites only the keys *it* touched in it; a key the killed execution
touched but the new one did not keeps the killed execution's snapshot, which the next
resume then loads. That key's state is then ahead of the input offsets: it has counted
events the input will deliver again, and the feature log misses the rows of events the
restored state had already seen. :func:`discard_unfinished` deletes those stale
snapshots before the flow starts, so every key resumes from a finished epoch.

The epoch to resume from is read the way Bytewax reads it, from the executions and
their frontiers, not from ``commits``. Each partition commits, and then compacts each
key's older snapshots into its latest committed one, on its own, behind the frontier
(by an epoch or two, unequally between partitions), and Bytewax resumes from the
frontier whatever the commits say. Discarding every snapshot after the lowest commit
instead would delete the only snapshot of keys whose partition had already compacted into
a later epoch: they would resume from an older state, or none, behind the input offsets,
and store feature-log rows twice. ``tests/flows/test_recovery_store.py`` builds that
store.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path


def _rows(recovery_dir: Path, query: str) -> list[tuple[int, ...]]:
    """The rows of one query over every partition of the store."""
    rows: list[tuple[int, ...]] = []
    for part in sorted(recovery_dir.glob("part-*.sqlite3")):
        with closing(sqlite3.connect(part)) as db:
            rows.extend(db.execute(query))
    return rows


def resume_epoch(recovery_dir: Path) -> int | None:
    """The epoch the next execution resumes from (None: no execution has started yet).

    It is the last execution's frontier: the lowest of its workers' frontiers, a worker
    that recorded none counting as the epoch that execution itself resumed from.
    """
    executions = _rows(recovery_dir, "SELECT ex_num, worker_count, resume_epoch FROM exs")
    if not executions:
        return None
    ex_num, worker_count, resumed_at = max(executions)
    frontiers = {worker: frontier for ex, worker, frontier in _rows(
        recovery_dir, "SELECT ex_num, worker_index, worker_frontier FROM fronts")
        if ex == ex_num}
    return min(frontiers.get(worker, resumed_at) for worker in range(worker_count))


def discard_unfinished(recovery_dir: Path) -> int:
    """Delete the snapshots of the epoch to resume from and later; return how many."""
    epoch = resume_epoch(recovery_dir)
    deleted = 0
    for part in sorted(recovery_dir.glob("part-*.sqlite3")):
        with closing(sqlite3.connect(part)) as db, db:
            if epoch is None:
                deleted += db.execute("DELETE FROM snaps").rowcount
            else:
                deleted += db.execute("DELETE FROM snaps WHERE snap_epoch >= ?",
                                      (epoch,)).rowcount
    return deleted
