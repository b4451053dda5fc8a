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
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from basketflow.errors import BasketflowError


class RecoveryDamaged(BasketflowError):
    """A recovery partition (a SQLite file) cannot be read, or is damaged. The message
    names the file and the ways out: ``basketflow run --rebuild-state`` makes the state
    again from the offline store (:mod:`basketflow.flows.rebuild`), or ``basketflow
    check --repair`` sets the part's recovery state aside, and the next run rebuilds it
    from the topic's start (every write is idempotent, so nothing is doubled)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"the recovery state {path} is damaged ({reason}): run `basketflow run "
            "--rebuild-state` to make it again from the offline store, or `basketflow check "
            "--repair` to set it aside, then run again: the flow rebuilds its state from "
            "the topic's start, which needs its events still in Kafka")
        self.path = Path(path)
        self.reason = reason


class OldEventIdState(RecoveryDamaged):
    """A flow's recovery state made before event ids came from content: its entities
    remember the events they folded by ``<file>:<line>``, so the same transactions would
    be folded again under their new ids. The way out is the one of a damaged state."""

    def __init__(self, path: Path, reason: str) -> None:
        BasketflowError.__init__(
            self, f"the recovery state in {path} {reason}: run `basketflow check --repair` "
            "to set it aside, then run again: the flow rebuilds its state from the topic's "
            "start (messages of an older replay on it are dead letters: replay its files "
            "again)")
        self.path = Path(path)
        self.reason = reason


#: Written beside a flow's recovery partitions when they are made: their states remember
#: events by content ids (:func:`basketflow.schemas.events.event_id`). Partitions without
#: it were made when ids were ``<file>:<line>``.
CONTENT_IDS_FILE = "content-ids"
OLD_IDS_REASON = ("was made when event ids were a file's name and line, so it would "
                  "count the same transactions again under their ids from content")


def mark_content_ids(recovery_dir: Path) -> None:
    """Record that the partitions just made in ``recovery_dir`` hold content ids."""
    (Path(recovery_dir) / CONTENT_IDS_FILE).write_text(
        "event ids: basketflow.schemas.events.event_id\n")


def old_event_ids(recovery_dir: Path) -> tuple[Path, str] | None:
    """``(recovery_dir, reason)`` when its partitions were made before content ids (no
    :data:`CONTENT_IDS_FILE` beside them), else None."""
    recovery_dir = Path(recovery_dir)
    if partitions(recovery_dir) and not (recovery_dir / CONTENT_IDS_FILE).is_file():
        return recovery_dir, OLD_IDS_REASON
    return None


def partitions(recovery_dir: Path) -> list[Path]:
    """The SQLite partitions of one recovery directory, by name."""
    return sorted(Path(recovery_dir).glob("part-*.sqlite3"))


@contextmanager
def _opened(part: Path) -> Iterator[sqlite3.Connection]:
    """A connection to one partition; a SQLite error as :class:`RecoveryDamaged`."""
    try:
        with closing(sqlite3.connect(part)) as db:
            yield db
    except sqlite3.DatabaseError as exc:
        raise RecoveryDamaged(part, str(exc)) from exc


def damage(part: Path) -> str | None:
    """Why one partition cannot be used (None: it can): its write-ahead log ends inside
    a frame (:func:`wal_damage`), SQLite's ``PRAGMA integrity_check`` finds fault with
    it, or it lacks Bytewax's tables. The log is looked at first, and the partition is
    then opened read-only: a connection that writes would fold the log into the
    database on closing, and the evidence of a torn write with it."""
    torn = wal_damage(part)
    if torn is not None:
        return torn
    try:
        with closing(sqlite3.connect(f"{part.resolve().as_uri()}?mode=ro", uri=True)) as db:
            found = [row[0] for row in db.execute("PRAGMA integrity_check")]
            tables = {row[0] for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        return str(exc)
    if found != ["ok"]:
        return "; ".join(found[:3])
    lacking = sorted({"exs", "fronts", "commits", "snaps"} - tables)
    return f"no table {', '.join(lacking)}" if lacking else None


#: A write-ahead log's header, and each frame's header before its page.
WAL_HEADER, FRAME_HEADER = 32, 24


def wal_damage(part: Path) -> str | None:
    """Why a partition's write-ahead log (``<part>-wal``) was cut short, if it was: it
    ends inside its header or inside a frame. SQLite writes whole frames, and drops a
    partial one with every frame after it when it opens the log, silently: a power loss
    with unsynced writes (a torn write) leaves the partition at an older epoch than the
    others. None: no log, or a log of whole frames.

    >>> import tempfile
    >>> part = Path(tempfile.mkdtemp()) / "part-0.sqlite3"
    >>> header = (0x377F0682).to_bytes(4, "big") + (3007000).to_bytes(4, "big") + (4096).to_bytes(4, "big")
    >>> _ = Path(f"{part}-wal").write_bytes(header + bytes(20) + bytes(24 + 4096))
    >>> wal_damage(part) is None
    True
    >>> _ = Path(f"{part}-wal").write_bytes(header + bytes(20) + bytes(24 + 2000))
    >>> wal_damage(part)
    'its write-ahead log ends inside a frame (2024 of 4120 bytes): a write was torn'
    """
    wal = Path(f"{part}-wal")
    try:
        with open(wal, "rb") as f:
            header = f.read(WAL_HEADER)
            size = f.seek(0, 2)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"its write-ahead log cannot be read ({exc.strerror or exc})"
    if size == 0:
        return None
    if size < WAL_HEADER:
        return "its write-ahead log ends inside its header: a write was torn"
    frame = FRAME_HEADER + int.from_bytes(header[8:12], "big")
    left = (size - WAL_HEADER) % frame
    if left:
        return f"its write-ahead log ends inside a frame ({left} of {frame} bytes): a write was torn"
    return None


#: How far (in epochs) one partition's commit may lag another's. Each partition commits
#: on its own, an epoch or two behind the frontier; one that lags further lost writes
#: that the others kept (a torn write: its write-ahead log cut short by a power loss).
COMMIT_SPREAD = 3


def disagreement(recovery_dir: Path) -> tuple[Path, str] | None:
    """The partition that disagrees with the others on where the store resumes from, and
    why (None: they agree): a commit beyond the epoch to resume from (the executions and
    frontiers that moved it on were lost), or one more than :data:`COMMIT_SPREAD` epochs
    behind another partition's (its latest snapshots were lost)."""
    known: dict[Path, int] = {}
    for part in partitions(recovery_dir):
        with _opened(part) as db:
            (commit,) = db.execute("SELECT max(commit_epoch) FROM commits").fetchone()
        if commit is not None:
            known[part] = commit
    epoch = resume_epoch(recovery_dir)
    if not known or epoch is None:
        return None
    ahead = [part for part, e in known.items() if e > epoch]
    if ahead:
        return ahead[0], (f"it committed epoch {known[ahead[0]]}, beyond epoch {epoch} the "
                          "store would resume from: another partition lost its latest writes")
    latest = max(known.values())
    behind = min(known, key=known.__getitem__)
    if latest - known[behind] > COMMIT_SPREAD:
        return behind, (f"its last commit is epoch {known[behind]}, another partition's "
                        f"{latest}: it lost its latest writes (a torn write)")
    return None


def ensure_sound(recovery_dir: Path) -> None:
    """Raise :class:`RecoveryDamaged` for the first damaged partition (see :func:`damage`),
    or one that disagrees with the others (:func:`disagreement`), and
    :class:`OldEventIdState` for partitions made before content ids
    (:func:`old_event_ids`): run before a resume, so a damaged store stops the run
    naming the file."""
    for part in partitions(recovery_dir):
        reason = damage(part)
        if reason is not None:
            raise RecoveryDamaged(part, reason)
    torn = disagreement(recovery_dir)
    if torn is not None:
        raise RecoveryDamaged(*torn)
    old = old_event_ids(recovery_dir)
    if old is not None:
        raise OldEventIdState(*old)


def _rows(recovery_dir: Path, query: str) -> list[tuple[int, ...]]:
    """The rows of one query over every partition of the store."""
    rows: list[tuple[int, ...]] = []
    for part in partitions(recovery_dir):
        with _opened(part) as db:
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
    for part in partitions(recovery_dir):
        with _opened(part) as db, db:
            if epoch is None:
                deleted += db.execute("DELETE FROM snaps").rowcount
            else:
                deleted += db.execute("DELETE FROM snaps WHERE snap_epoch >= ?",
                                      (epoch,)).rowcount
    return deleted
