"""The offline store's layout: where each of its logs lives, how a day partition is named,
and which finished files it holds. The one place that knows the folders; every job that
reads the store (reports, training sets, the backfill, ``basketflow status``) gets its
files from here, and :mod:`basketflow.sinks.offline_store` writes where this says.

Under the store's root (``<data dir>/offline``)::

    events/date=YYYY-MM-DD/part-<uuid>.parquet          every valid event
    dead/date=YYYY-MM-DD/...                            dead letters
    late/date=YYYY-MM-DD/...                            events too late for the online values
    scores/date=YYYY-MM-DD/...                          the classifier's live predictions
    features/<view>/date=YYYY-MM-DD/...                 each view's feature log
    features/<view>/months/month=YYYY-MM/span-*.parquet  its closed months, compacted

A row's day partition is the UTC day of its event time (:func:`day_of`). A file is
written under a hidden temporary name and renamed into place, so the readers here list
only finished files: never a hidden (``.x``) or temporary (``_x``) one.

A file that is not a whole Parquet file (empty, cut short, overwritten) is named by
:class:`CorruptFile`; :func:`first_damaged` finds such files by their first and last
bytes, cheaply enough to run before every flow starts (``basketflow check`` reads them
whole).

The root is a local folder or a folder of a remote filesystem
(:class:`~basketflow.offline_uri.StorePath`, ``s3://...``): every function here takes
either. On a remote one a log's files are listed in one request for the whole tree.

Kept apart from the writers (and free of Arrow) so that listing the store, or naming its
folders, costs a command nothing to import.

>>> partition_name(date(2010, 12, 1)), partition_day("date=2010-12-01")
('date=2010-12-01', datetime.date(2010, 12, 1))
>>> feature_log_dir(Path("offline"), "basket").as_posix()
'offline/features/basket'
>>> day_of(1_291_191_960)
'2010-12-01'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timezone
from pathlib import Path

from basketflow.errors import BasketflowError
from basketflow.offline_uri import PARALLEL_REQUESTS, StoreDir, StorePath, open_for_reading
from basketflow.sinks.compacted_files import counted
from basketflow.sinks.month_files import (
    MONTHS,
    all_month_files,
    counted_spans,
    month_files,
    month_name,
    with_months,
)

#: The store's folders under its root (see the module docstring).
EVENTS, DEAD_LETTERS, LATE_EVENTS, SCORES, FEATURES = "events", "dead", "late", "scores", "features"
#: The challenger's predictions, made in shadow (never served).
SHADOW_SCORES = "shadow-scores"
#: A day partition's folder: ``date=YYYY-MM-DD``.
PARTITION_PREFIX = "date="


def events_dir(root: StoreDir) -> StoreDir:
    """Where the events live: ``<root>/events``."""
    return as_root(root) / EVENTS


def dead_letters_dir(root: StoreDir) -> StoreDir:
    """Where the dead letters live: ``<root>/dead``."""
    return as_root(root) / DEAD_LETTERS


def late_events_dir(root: StoreDir) -> StoreDir:
    """Where the late events live: ``<root>/late``."""
    return as_root(root) / LATE_EVENTS


def scores_dir(root: StoreDir) -> StoreDir:
    """Where the live predictions live: ``<root>/scores``."""
    return as_root(root) / SCORES


def shadow_scores_dir(root: StoreDir) -> StoreDir:
    """Where the challenger's predictions live: ``<root>/shadow-scores``."""
    return as_root(root) / SHADOW_SCORES


def feature_log_dir(root: StoreDir, view: str) -> StoreDir:
    """Where a view's feature log lives: ``<root>/features/<view>``."""
    return as_root(root) / FEATURES / view


def as_root(root: StoreDir | str) -> StoreDir:
    """A store's root as given (a :class:`~basketflow.offline_uri.StorePath`), or as a
    local :class:`~pathlib.Path`."""
    return root if isinstance(root, StorePath) else Path(root)


def feature_log_pattern(view: str) -> str:
    """The files of a view's feature log, relative to the store's root, as a pattern
    (what ``basketflow features describe`` shows).

    >>> feature_log_pattern("customer")
    'features/customer/date=YYYY-MM-DD/*.parquet'
    """
    return f"{FEATURES}/{view}/{partition_name('YYYY-MM-DD')}/*.parquet"


def partition_name(day: date | str) -> str:
    """The folder of a day partition: ``date=YYYY-MM-DD`` (``day`` a date or its ISO text)."""
    return f"{PARTITION_PREFIX}{day}"


def partition_day(name: str) -> date | None:
    """The day of a partition folder's name; None for a name that is not one.

    >>> partition_day("date=2010-12-32") is None, partition_day("events") is None
    (True, True)
    """
    if not name.startswith(PARTITION_PREFIX):
        return None
    try:
        return date.fromisoformat(name[len(PARTITION_PREFIX):])
    except ValueError:
        return None


def partition_files(directory: StoreDir) -> list[StoreDir]:
    """The finished Parquet files of one partition folder, by name (hidden ``.x`` and
    temporary ``_x`` files are writes in flight), less those a compacted file replaces
    (:func:`~basketflow.sinks.compacted_files.counted`)."""
    return counted(sorted(p for p in directory.glob("*.parquet")
                          if not p.name.startswith((".", "_")) and p.is_file()))


def files_by_day(directory: StoreDir) -> dict[date, list[StoreDir]]:
    """The finished Parquet files of each day partition under ``directory`` (one of the
    folders above), by day, oldest first.

    Days whose folder holds no finished file are left out: nothing is stored for them
    yet. A folder that does not exist gives {}.
    """
    if isinstance(directory, StorePath):
        return _remote_files_by_day(directory)
    days: dict[date, list[StoreDir]] = {}
    if not directory.is_dir():
        return days
    for folder in sorted(directory.iterdir()):
        day = partition_day(folder.name)
        if day is not None and folder.is_dir() and (files := partition_files(folder)):
            days[day] = files
    return days


def _remote_files_by_day(directory: StorePath) -> dict[date, list[StoreDir]]:
    """:func:`files_by_day` of a remote folder, from one listing of its tree."""
    days: dict[date, list[StoreDir]] = {}
    for path in directory.glob(f"{PARTITION_PREFIX}*/*.parquet"):
        day = partition_day(path.parent.name)
        if day is not None and path.is_file() and not path.name.startswith((".", "_")):
            days.setdefault(day, []).append(path)
    return {day: sorted(days[day]) for day in sorted(days)}


def files_of(by_day: dict[date, list[StoreDir]], days: Iterable[date] | None = None,
             until: date | None = None) -> list[StoreDir]:
    """The files of :func:`files_by_day`'s (or :func:`log_by_day`'s) days, oldest first,
    each once (a month file is listed under every day it holds): of ``days`` only when
    given, and of days on or before ``until`` when given."""
    chosen = sorted(by_day) if days is None else sorted(set(days) & set(by_day))
    return list(dict.fromkeys(p for day in chosen if until is None or day <= until
                              for p in by_day[day]))


def log_by_day(directory: StoreDir) -> dict[date, list[StoreDir]]:
    """The files that hold each day's rows of a log (a view's feature log, the one kind
    with month files), oldest day first: the month file holding the day, if any, then
    the day's own files, less those that month file holds
    (:mod:`basketflow.sinks.month_files`). Every reader of a feature log lists it
    through here (or :func:`day_files` for one day), so each row counts once. A month
    file holds its whole month: a reader of some days only keeps their rows by ``ts``
    (a feature-log row's day partition is the UTC day of its ``ts``)."""
    return with_months(files_by_day(directory), counted_spans(all_month_files(directory)))


def day_files(directory: StoreDir, day: date) -> list[StoreDir]:
    """:func:`log_by_day`'s files of one day, listing only that day's folder and its
    month's folder (what a writer reads back when it first touches a day)."""
    own = partition_files(directory / partition_name(day))
    spans = counted_spans(month_files(directory / MONTHS / month_name(day)))
    return with_months({day: own} if own else {}, spans).get(day, [])


def event_days(root: StoreDir) -> list[date]:
    """The days with at least one stored event, oldest first."""
    return list(files_by_day(events_dir(root)))


def event_files(root: StoreDir, days: Iterable[date] | None = None) -> list[StoreDir]:
    """The event files of ``days`` (of every day when None), oldest first."""
    return files_of(files_by_day(events_dir(root)), days)


def feature_log_files(root: StoreDir, view: str,
                      until: date | None = None) -> list[StoreDir]:
    """The files of a view's feature log (of the days on or before ``until`` when given:
    a closed month's file holds rows after ``until`` too, so a reader cut by ``until``
    cuts the rows by ``ts``), oldest partition first (:func:`log_by_day`); [] when
    nothing was logged for the view yet."""
    return files_of(log_by_day(feature_log_dir(root, view)), until=until)


def feature_log_days(root: StoreDir, view: str) -> list[date]:
    """The days a view's feature log holds rows of, oldest first."""
    return list(log_by_day(feature_log_dir(root, view)))


SECONDS_PER_DAY = 86_400


def day_of(ts: int) -> str:
    """Epoch seconds -> ``YYYY-MM-DD`` (UTC), the partition the event belongs to."""
    return datetime.fromtimestamp(ts - ts % SECONDS_PER_DAY, tz=timezone.utc).strftime("%Y-%m-%d")


#: The first and last four bytes of every Parquet file.
PARQUET_MAGIC = b"PAR1"


class CorruptFile(BasketflowError):
    """A file of the offline store cannot be read (empty, cut short, not Parquet, or not
    of its log's columns). The message names the file and says what to do: ``basketflow
    check --repair`` sets it aside in ``<data>/quarantine/`` and says how to restore its
    rows.

    >>> str(CorruptFile(Path("/d/offline/events/date=2011-01-05/part-1.parquet"), "empty"))
    ... # doctest: +ELLIPSIS
    'cannot read /d/offline/events/date=2011-01-05/part-1.parquet (empty): run ...'
    """

    def __init__(self, path: StoreDir, reason: str) -> None:
        super().__init__(
            f"cannot read {path} ({reason}): run `basketflow check --repair` to move it "
            "to quarantine/ and see how to restore its rows, then run the same command again")
        self.path = as_root(path)
        self.reason = reason


def damage(path: StoreDir) -> str | None:
    """Why a file is plainly not a whole Parquet file (empty, too short, no ``PAR1`` at
    its start or end), from its size and first and last bytes; None when it looks whole.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     empty = Path(tmp) / "a.parquet"; _ = empty.write_bytes(b"")
    ...     cut = Path(tmp) / "b.parquet"; _ = cut.write_bytes(b"PAR1" + b"x" * 20)
    ...     damage(empty), damage(cut)
    ('empty file', 'cut short: no Parquet footer')
    """
    try:
        with open_for_reading(path) as f:
            size = f.seek(0, 2)
            if size == 0:
                return "empty file"
            if size < 12:
                return f"{size} bytes: too short for Parquet"
            f.seek(0)
            head = f.read(4)
            f.seek(size - 4)
            tail = f.read(4)
    except OSError as exc:
        return exc.strerror or str(exc)
    if head != PARQUET_MAGIC:
        return "not a Parquet file"
    if tail != PARQUET_MAGIC:
        return "cut short: no Parquet footer"
    return None


def log_dirs(root: StoreDir) -> list[StoreDir]:
    """Every log folder of the store (each view's feature log included) that exists."""
    root = as_root(root)
    folders = [events_dir(root), dead_letters_dir(root), late_events_dir(root), scores_dir(root)]
    features = root / FEATURES
    if features.is_dir():
        folders += sorted(p for p in features.iterdir() if p.is_dir())
    return [p for p in folders if p.is_dir()]


def store_files(root: StoreDir) -> list[StoreDir]:
    """Every finished Parquet file of the store, log by log, oldest partition first (a
    feature log's month files after its days, counted or not)."""
    return [p for folder in log_dirs(root)
            for p in [*files_of(files_by_day(folder)), *all_month_files(folder)]]


def first_damaged(files: Iterable[StoreDir],
                  check: Callable[[StoreDir], str | None] = damage) -> CorruptFile | None:
    """The :class:`CorruptFile` of the first file ``check`` (by default :func:`damage`)
    finds fault with. A remote store's files are checked several at a time."""
    files = list(files)
    if files and isinstance(files[0], StorePath):
        with ThreadPoolExecutor(PARALLEL_REQUESTS) as pool:
            for path, reason in zip(files, pool.map(check, files)):
                if reason is not None:
                    return CorruptFile(path, reason)
        return None
    for path in files:
        reason = check(path)
        if reason is not None:
            return CorruptFile(path, reason)
    return None


def ensure_whole(files: Iterable[StoreDir],
                 check: Callable[[StoreDir], str | None] = damage) -> None:
    """Raise :class:`CorruptFile` for the first file ``check`` (by default :func:`damage`)
    finds fault with: what a job reading the store runs first, so it fails naming the
    file rather than midway, or inside a running dataflow."""
    error = first_damaged(files, check)
    if error is not None:
        raise error
