"""Month files of the feature log: a closed month's rows moved out of its day partitions
into one file, so the store holds them once.

A reader of a view's whole log (``historical``, profiles, the evaluations) pays a fixed
cost per file: with one file per view and day, a year is 365 files per view. A compaction
(:mod:`basketflow.sinks.compaction`) merges a closed month's day files into one month
file, ``<view>/months/month=YYYY-MM/span-<digest>.parquet``, whose Parquet footer records
under :data:`HOLDS_KEY` each day's file names whose rows it holds (a JSON object, day ->
names; transitively: the names an earlier month file or a compacted day file held too),
and under :data:`~basketflow.sinks.compacted_files.REPLACES_KEY` the earlier month files
of the month it merged. Once it is renamed into place and synced, the day files and month
files it holds are deleted.

The reading rule (:func:`counted_spans`, applied to every listing by
:mod:`basketflow.sinks.offline_layout`): a month file counts unless another one present
replaces it, and the day files a counting month file holds are left out of their day.
So after a kill at any point a reader counts the day files (no month file yet) or the
month file (with none, some or all of the files it holds still there), never both; rows
written to a day of the month afterwards are in files it does not hold, so they count
too, and the next compaction moves them in. A month file whose footer cannot be read is
listed under its month's first day, so the checks every job runs name it (``basketflow
check --repair`` quarantines it); a month file whose footer records no day files (an
earlier version's copy of a month, ``basketflow.days``: its day files were kept) is
never read and is deleted by the next compaction.

>>> month_name(date(2011, 1, 31)), month_day("month=2011-01")
('month=2011-01', datetime.date(2011, 1, 1))
>>> span_name({"2011-01-01": ["part-a.parquet"]})
'span-eeb6d3ad6ec813180c4f8a8c.parquet'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from itertools import groupby

from basketflow.offline_uri import StoreDir, StorePath
from basketflow.sinks.compacted_files import REPLACES_KEY

#: The folder of a view's log that holds its month files.
MONTHS = "months"
#: A month's folder: ``month=YYYY-MM``.
MONTH_PREFIX = "month="
#: The name of every month file starts so.
SPAN_PREFIX = "span-"
#: The footer metadata key recording the days and file names whose rows a month file holds.
HOLDS_KEY = b"basketflow.holds"

#: Day (ISO text) -> the names of the day's files whose rows a month file holds.
Recorded = dict[str, list[str]]


@dataclass(frozen=True)
class Span:
    """One month file as its footer describes it: the day files it holds (None: the
    footer cannot be read, or records none, see :attr:`copy`) and the month files it
    replaces. ``copy``: a footer that records no day files, as an earlier version's
    copies of a month (``basketflow.days``, the day files kept) have: never read."""

    path: StoreDir
    holds: Recorded | None
    replaces: frozenset[str] = frozenset()
    copy: bool = False


def month_name(day: date) -> str:
    """The folder of the month of ``day``."""
    return f"{MONTH_PREFIX}{day:%Y-%m}"


def month_day(folder: str) -> date | None:
    """The first day of a month folder's month; None for a name that is not one."""
    try:
        return date.fromisoformat(f"{folder.removeprefix(MONTH_PREFIX)}-01") \
            if folder.startswith(MONTH_PREFIX) else None
    except ValueError:
        return None


def span_name(holds: Recorded) -> str:
    """The name of the month file holding these days' files: fixed by them."""
    text = json.dumps(holds, sort_keys=True)
    return f"{SPAN_PREFIX}{hashlib.blake2b(text.encode(), digest_size=12).hexdigest()}.parquet"


def by_month(days: Sequence[date]) -> Iterator[tuple[str, list[date]]]:
    """``days`` (sorted) grouped by month folder name, in order."""
    for month, grouped in groupby(days, key=month_name):
        yield month, list(grouped)


def is_month_file(path: StoreDir) -> bool:
    """Whether ``path`` is a month file (by where it lies and its name)."""
    return path.name.startswith(SPAN_PREFIX) and path.parent.parent.name == MONTHS


def month_files(folder: StoreDir) -> list[StoreDir]:
    """The finished month files of one month folder, by name."""
    return sorted(p for p in folder.glob(f"{SPAN_PREFIX}*.parquet") if p.is_file())


def all_month_files(view_dir: StoreDir) -> list[StoreDir]:
    """Every finished month file of a view's log (counting or not), by month and name:
    what ``check`` verifies and a compaction cleans up after."""
    return sorted(p for p in (view_dir / MONTHS).glob(f"{MONTH_PREFIX}*/{SPAN_PREFIX}*.parquet")
                  if p.is_file())


def footer_metadata(path: StoreDir) -> dict[bytes, bytes]:
    """A Parquet file's key-value metadata, from its footer only (a remote file read by
    ranges, not whole: a month file is large)."""
    import pyarrow.parquet as pq
    if isinstance(path, StorePath):
        with path.open_input() as stored:
            return pq.read_schema(stored).metadata or {}
    return pq.read_schema(path).metadata or {}


def read_span(path: StoreDir) -> Span:
    """A month file's :class:`Span`, from its footer."""
    import pyarrow as pa
    try:
        metadata = footer_metadata(path)
        holds = json.loads(metadata[HOLDS_KEY]) if HOLDS_KEY in metadata else None
        replaces = json.loads(metadata.get(REPLACES_KEY, b"[]"))
    except (OSError, pa.ArrowException, ValueError):
        return Span(path, None)
    if not isinstance(holds, dict):
        return Span(path, None, copy=True)
    return Span(path, holds, frozenset(replaces))


def counted_spans(paths: Iterable[StoreDir]) -> list[Span]:
    """The month files of ``paths`` (of one month or several) that readers count (see
    :func:`counting`)."""
    return counting([read_span(p) for p in paths])


def counting(spans: Sequence[Span]) -> list[Span]:
    """The month files of ``spans`` that readers count: all but copies of an earlier
    version and those another readable one of their month replaces. An unreadable one
    counts, holding nothing, so that the checks name it."""
    replaced = {(s.path.parent.name, name) for s in spans for name in s.replaces}
    return [s for s in spans if not s.copy
            and (s.path.parent.name, s.path.name) not in replaced]


def with_months(by_day: dict[date, list[StoreDir]],
                spans: Iterable[Span]) -> dict[date, list[StoreDir]]:
    """Each day's files with the month files counted: a month file first under each day
    it holds (under its month's first day when its footer cannot be read), then the
    day's own files, less those a month file holds; days oldest first."""
    days = {day: list(files) for day, files in by_day.items()}
    for span in spans:
        for day, hidden in _held(span).items():
            days[day] = [span.path, *(p for p in days.get(day, []) if p.name not in hidden)]
    return {day: days[day] for day in sorted(days)}


def _held(span: Span) -> dict[date, set[str]]:
    """Day -> the names a month file holds; for one whose footer cannot be read, its
    month's first day, holding nothing (no file of a misnamed folder)."""
    if span.holds is not None:
        return {date.fromisoformat(day): set(names) for day, names in span.holds.items()}
    first = month_day(span.path.parent.name)
    return {} if first is None else {first: set()}
