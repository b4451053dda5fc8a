"""Compaction of the feature log: a day partition's many small files merged into one.

A live flow writes one Parquet file per flush per day per view, and every reader of the
log (``historical``, profiles, backfills) pays a fixed cost per file. Compacting a day:

1. list the files that count (:func:`~basketflow.sinks.offline_layout.partition_files`:
   those a compacted file replaces are left out already);
2. read them whole and write their rows as one file, ``compact-<digest>.parquet``, whose
   footer names every file it replaces (:mod:`basketflow.sinks.compacted_files`), through
   :func:`~basketflow.sinks.offline_store.write_atomically` (a hidden temporary name, then
   a rename), like every other write of the store;
3. delete the replaced files (at once, or for a compaction beside a running flow only
   once they have been replaced for ``keep_seconds``, so a reader that listed them just
   before can still open them).

A kill at any point leaves either the old files (no compacted file yet) or the compacted
file with some of the old ones, which readers leave out: no row is ever counted twice,
and running it again finishes the deletes. Files written to the day during a compaction
are not in its list and stay as they are; the next compaction takes them in. The rows,
and so what ``historical`` returns, are the same; their order within the day is the
files' order. Running it again on a compacted day does nothing.

Then each closed month (:func:`compact_months`) is moved into one month file the same way
(:mod:`basketflow.sinks.month_files`): its rows written whole under a hidden name,
renamed into place and synced, then the day files and earlier month file it holds
deleted; readers leave out what a present month file holds, so a kill at any point
counts each row once, and the store holds a closed month once.

The digest is of the replaced names, so two compactions of the same files write the same
name (the second rename replaces the first file by an equal one). Two compactions of one
store that saw different files must not run at once: :func:`compact_store` holds a lock
file in the store while it works (a local lock: on object storage run one compactor).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from basketflow.errors import BasketflowError
from basketflow.offline_uri import StoreDir, StorePath
from basketflow.sinks.compacted_files import (
    COMPACTED_PREFIX,
    REPLACES_KEY,
    is_compacted,
    replaced_by,
)
from basketflow.sinks.month_files import (
    HOLDS_KEY,
    MONTHS,
    Recorded,
    Span,
    all_month_files,
    by_month,
    counting,
    is_month_file,
    month_name,
    read_span,
    span_name,
)
from basketflow.sinks.offline_layout import (
    FEATURES,
    day_files,
    files_of,
    log_by_day,
    partition_day,
    partition_files,
    partition_name,
)
from basketflow.sinks.offline_store import reading, write_atomically
from basketflow.sinks.store_writes import writing

log = logging.getLogger(__name__)

#: The lock file, under the store's root, held while a compaction runs.
LOCK_NAME = ".compact.lock"


@dataclass
class Compacted:
    """What a compaction did: days merged, files replaced by them, rows written, files
    deleted (old ones, possibly of an earlier compaction, and those moved into a month
    file), days left as they were because a file could not be read or their files
    disagree on a column's type, and closed months moved into a month file."""

    days: int = 0
    files_replaced: int = 0
    rows: int = 0
    files_deleted: int = 0
    skipped: list[str] = field(default_factory=list)
    #: Closed months moved into a month file (:mod:`basketflow.sinks.month_files`).
    months: int = 0

    def add(self, other: Compacted) -> None:
        """Count ``other``'s work in too."""
        self.months += other.months
        self.days += other.days
        self.files_replaced += other.files_replaced
        self.rows += other.rows
        self.files_deleted += other.files_deleted
        self.skipped += other.skipped


def compacted_name(replaced: list[str]) -> str:
    """The name of the file that replaces these file names: fixed by the names.

    >>> compacted_name(["part-a.parquet", "part-b.parquet"])
    'compact-8d41aec97514022710d1572f.parquet'
    """
    digest = hashlib.blake2b("\n".join(sorted(replaced)).encode(), digest_size=12)
    return f"{COMPACTED_PREFIX}{digest.hexdigest()}.parquet"


def _replaced_names(files: list[Path]) -> list[str]:
    """The names the merge of ``files`` replaces: theirs, and those each compacted one
    among them replaced (still in the folder after a kill, or not)."""
    names = {p.name for p in files}
    for path in files:
        if is_compacted(path):
            names |= replaced_by(path)
    return sorted(names)


def _merged(files: list[Path]) -> pa.Table:
    """The rows of ``files``, in order, as one table (columns matched by name; a column
    some files lack is null there)."""
    tables = []
    for path in files:
        with reading(path), pq.ParquetFile(path) as stored:
            tables.append(stored.read())
    return pa.concat_tables(tables, promote_options="default")


def _made_durable(path: Path) -> Path:
    """Sync a file just renamed into place, and its folder, to disk: the files it
    replaces are deleted next, and a crash of the machine must not leave the rename
    without the bytes."""
    with open(path, "rb") as stored:
        os.fsync(stored.fileno())
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return path


def _old_enough(path: Path, now: float, keep_seconds: float) -> bool:
    """Whether ``path`` was made at least ``keep_seconds`` before ``now`` (False when it
    is gone)."""
    try:
        return now - path.stat().st_mtime >= keep_seconds
    except FileNotFoundError:
        return False


def _delete_replaced(folder: Path, keep_seconds: float) -> int:
    """Delete the files that a compacted file of ``folder`` replaces, once it is older
    than ``keep_seconds``; how many were deleted."""
    deleted = 0
    now = time.time()
    for path in sorted(folder.glob(f"{COMPACTED_PREFIX}*.parquet")):
        if not _old_enough(path, now, keep_seconds):
            continue
        for name in replaced_by(path):
            old = folder / name
            if name != path.name and old.exists():
                with writing(folder):
                    old.unlink(missing_ok=True)
                deleted += 1
    return deleted


def own_files(folder: Path) -> list[Path]:
    """The counted files of one day partition folder of a feature log that no month
    file holds (those a month file holds are its rows already)."""
    day = partition_day(folder.name)
    listed = partition_files(folder) if day is None else day_files(folder.parent, day)
    return [p for p in listed if not is_month_file(p)]  # type: ignore[misc]


def compact_day(folder: Path, keep_seconds: float = 0.0) -> Compacted:
    """Merge the counted files of one day partition folder that no month file holds
    into one (see the module); a folder with one such file is only cleaned of the files
    it replaces."""
    done = Compacted()
    files = own_files(folder)
    if len(files) > 1:
        try:
            table = _merged(files)
        except (pa.ArrowException, OSError) as exc:  # a damaged file, or types that differ
            done.skipped.append(f"{folder}: {exc}")
            log.warning("not compacted: %s (%s)", folder, exc)
            return done
        replaced = _replaced_names(files)
        metadata = dict(table.schema.metadata or {})
        metadata[REPLACES_KEY] = json.dumps(replaced).encode()
        _made_durable(write_atomically(table.replace_schema_metadata(metadata), folder,
                                       compacted_name(replaced)))  # type: ignore[arg-type]
        done.days, done.files_replaced, done.rows = 1, len(files), table.num_rows
    done.files_deleted = _delete_replaced(folder, keep_seconds)
    return done


def closed_months(by_day: dict[date, list[Path]], open_days: int) -> list[list[date]]:
    """The days of each month of a log whose days are all closed (before the newest
    ``open_days`` days, and in a month before theirs), oldest first.

    >>> days = {date(2011, 1, 30): [], date(2011, 1, 31): [], date(2011, 2, 1): []}
    >>> closed_months(days, 1), len(closed_months(days, 0))
    ([[datetime.date(2011, 1, 30), datetime.date(2011, 1, 31)]], 2)
    """
    closed = closed_days(by_day, open_days)
    still_open = sorted(by_day)[len(closed):]
    first_open = month_name(still_open[0]) if still_open else None
    return [days for month, days in by_month(closed) if month != first_open]


def compact_months(folder: Path, open_days: int = 0, keep_seconds: float = 0.0,
                   min_files: int = 2) -> Compacted:
    """Move each closed month of a view's log folder held in at least ``min_files``
    files, one of them not in a month file yet, into one month file
    (:mod:`basketflow.sinks.month_files`): its current month file, if any, and the day
    files it does not hold. Then delete what a month file holds, once it is older than
    ``keep_seconds`` (so a reader that listed those files can still open them). A month
    whose files cannot be read, or disagree on a column's type, is left as it was."""
    done = Compacted()
    by_day: dict[date, list[Path]] = log_by_day(folder)  # type: ignore[assignment]
    for days in closed_months(by_day, open_days):
        sources: list[Path] = files_of(by_day, days)  # type: ignore[assignment]
        if all(is_month_file(p) for p in sources) or len(sources) < min_files:
            continue
        done.add(_move_month(folder / MONTHS / month_name(days[0]), by_day, days, sources))
    done.files_deleted += _delete_moved(folder, keep_seconds)
    return done


def _move_month(target: Path, by_day: dict[date, list[Path]], days: list[date],
                sources: list[Path]) -> Compacted:
    """Write the rows of ``sources`` (one month's files) as its month file, holding
    what they hold, and sync it (see :func:`compact_months`)."""
    done = Compacted()
    try:
        table = _merged(sources)
    except (pa.ArrowException, OSError) as exc:
        done.skipped.append(f"{target}: {exc}")
        log.warning("month not moved: %s (%s)", target, exc)
        return done
    spans = [read_span(p) for p in sources if is_month_file(p)]
    holds = _holds(by_day, days, spans)
    metadata = dict(table.schema.metadata or {})
    metadata[HOLDS_KEY] = json.dumps(holds).encode()
    metadata[REPLACES_KEY] = json.dumps(sorted(s.path.name for s in spans)).encode()
    _made_durable(write_atomically(table.replace_schema_metadata(metadata), target,
                                   span_name(holds)))  # type: ignore[arg-type]
    done.months = 1
    return done


def _holds(by_day: dict[date, list[Path]], days: list[date], spans: list[Span]) -> Recorded:
    """What a month file made of ``spans`` and the day files of ``days`` holds: theirs,
    and what each held (a compacted file's replaced names, a month file's day files)."""
    holds: Recorded = {}
    for day in days:
        names = set(_replaced_names([p for p in by_day[day] if not is_month_file(p)]))
        for span in spans:
            names |= set((span.holds or {}).get(str(day), []))
        holds[str(day)] = sorted(names)
    return holds


def _delete_moved(folder: Path, keep_seconds: float) -> int:
    """Delete, once a month file that counts is older than ``keep_seconds``, the day
    files and month files it holds or replaces, and copies of an earlier version;
    how many were deleted."""
    deleted, now = 0, time.time()
    spans = [read_span(p) for p in all_month_files(folder)]
    doomed = [Path(s.path) for s in spans if s.copy and _old_enough(Path(s.path), now,
                                                                     keep_seconds)]
    for span in counting(spans):
        if span.holds is None or not _old_enough(Path(span.path), now, keep_seconds):
            continue
        doomed += [folder / partition_name(day) / name
                   for day, names in span.holds.items() for name in names]
        doomed += [Path(span.path).parent / name for name in span.replaces]
    for path in doomed:
        if path.exists():
            with writing(path.parent):
                path.unlink(missing_ok=True)
            deleted += 1
    return deleted


def feature_log_folders(root: Path) -> list[Path]:
    """Every view's feature-log folder in the store."""
    features = Path(root) / FEATURES
    return sorted(p for p in features.iterdir() if p.is_dir()) if features.is_dir() else []


def closed_days(by_day: dict[date, list[Path]], open_days: int) -> list[date]:
    """The days of a log before its newest ``open_days`` days (those the flow may still
    be writing to), oldest first.

    >>> days = {date(2011, 1, d): [] for d in (1, 2, 5)}
    >>> closed_days(days, 2), closed_days(days, 0) == sorted(days)
    ([datetime.date(2011, 1, 1)], True)
    """
    ordered = sorted(by_day)
    return ordered[:max(len(ordered) - open_days, 0)]


@contextmanager
def store_lock(root: Path) -> Iterator[None]:
    """Hold the store's compaction lock (waiting for another compaction to end)."""
    with open(root / LOCK_NAME, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class CompactionUnsupported(BasketflowError):
    """The store is not on a local filesystem: compaction renames and locks files, which
    object storage cannot (see docs/DESIGN.md, "Known not to work yet")."""


def compact_store(root: StoreDir, views: list[str] | None = None, *, open_days: int = 0,
                  min_files: int = 2, keep_seconds: float = 0.0) -> Compacted:
    """Compact the feature log of ``views`` (None: every view in the store): each day but
    the newest ``open_days`` of each view that holds at least ``min_files`` files that
    count, or files a compacted one replaces. :class:`CompactionUnsupported` for a store
    on a filesystem other than the local one."""
    if isinstance(root, StorePath):
        raise CompactionUnsupported(
            f"the offline store {root} is not a local folder: `basketflow compact` works "
            "on a local store only (a compacted file is renamed into place and the store "
            "locked while it runs)")
    done = Compacted()
    root = Path(root)
    if not root.is_dir():
        return done
    with store_lock(root):
        for folder in feature_log_folders(root):
            if views is not None and folder.name not in views:
                continue
            by_day = log_by_day(folder)
            for day in closed_days(by_day, open_days):
                day_folder = folder / partition_name(day)
                own = [p for p in by_day[day] if not is_month_file(p)]
                if len(own) >= min_files or _has_replaced(day_folder):
                    done.add(compact_day(day_folder, keep_seconds))
            done.add(compact_months(folder, open_days, keep_seconds))
    return done


def _has_replaced(folder: Path) -> bool:
    """Whether ``folder`` holds files besides its counted ones (a compaction's deletes
    not done yet)."""
    finished = [p for p in folder.glob("*.parquet") if not p.name.startswith((".", "_"))]
    return len(finished) > len(partition_files(folder))


def keep_compacting(root: Path, stop: threading.Event, every: float, open_days: int,
                    min_files: int, keep_seconds: float) -> None:
    """Compact the store's closed days every ``every`` seconds until ``stop`` is set (the
    loop of :func:`compacting`); a failure is logged and tried again next time."""
    while not stop.wait(every):
        try:
            done = compact_store(root, open_days=open_days, min_files=min_files,
                                 keep_seconds=keep_seconds)
        except OSError as exc:  # StoreUnwritable and the like: the flow reports its own
            log.warning("feature-log compaction failed: %s", exc)
            continue
        if done.days or done.months or done.files_deleted:
            log.info("feature log compacted: %d day(s), %d files into %d, %d month(s) "
                     "moved into month files, %d old files deleted", done.days,
                     done.files_replaced, done.days, done.months, done.files_deleted)


#: Seconds between two compactions beside a running flow.
EVERY_SECONDS = 300.0
#: The newest days of a view's log that a compaction beside a running flow leaves alone.
OPEN_DAYS = 2
#: The fewest files of a day worth compacting beside a running flow.
MIN_FILES = 8


@contextmanager
def compacting(root: StoreDir, every: float = EVERY_SECONDS) -> Iterator[None]:
    """Compact the feature log's closed days in a thread, every ``every`` seconds, while
    the block runs (beside a running flow, in the process that supervises it: off the
    flow's own processes). Replaced files are deleted a compaction later, so a reader
    that listed them just before the rename can still open them. Nothing for a store on
    another filesystem than the local one (:class:`CompactionUnsupported`)."""
    if isinstance(root, StorePath):  # compaction is for a local store only
        yield
        return
    stop = threading.Event()
    thread = threading.Thread(target=keep_compacting, name="compaction", daemon=True,
                              args=(Path(root), stop, every, OPEN_DAYS, MIN_FILES, every))
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
