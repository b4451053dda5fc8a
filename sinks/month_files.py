"""Month files of the feature log: a closed month's day files copied into one file, read
in their place by the readers of the whole log.

A reader of a view's whole log (``historical``, profiles, the evaluations) pays a fixed
cost per file: with one file per view and day, a year is 365 files per view. A month
file holds the rows of every day of a closed month, in day order and file order, and
its Parquet footer records, under :data:`DAYS_KEY`, each day's file names it was made
from (a JSON object, day -> names). The day files stay where they are: every reader by
day (drift, the flow's read-back of stored ids, ``check``) goes on reading them, and
nothing of theirs changes.

The reading rule (:func:`whole_log_files`): a month's days are read from its month file
only when that file records exactly the month's current days and files; after any
change to them (rows written to a closed day late, a day compacted again, a day left
out by ``until``) the month's day files are read instead, until a compaction makes the
month file again. A file that cannot be opened is never used. So a reader counts each
row once, from the month file or from the day files, never both, and a kill at any
moment of the month file's write (a hidden temporary name, then a rename) leaves the
store as readable as before.

Month files live apart from the day partitions, in ``<view>/months/month=YYYY-MM/``,
named by a digest of what they record (the same files give the same name).

>>> month_name(date(2011, 1, 31))
'month=2011-01'
>>> span_name({"2011-01-01": ["part-a.parquet"]})
'span-eeb6d3ad6ec813180c4f8a8c.parquet'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from datetime import date
from itertools import groupby
from pathlib import Path

#: The folder of a view's log that holds its month files.
MONTHS = "months"
#: A month's folder: ``month=YYYY-MM``.
MONTH_PREFIX = "month="
#: The name of every month file starts so.
SPAN_PREFIX = "span-"
#: The footer metadata key recording the days and file names a month file holds.
DAYS_KEY = b"basketflow.days"

#: Day -> the names of its counted files, in order (what a month file records).
Recorded = dict[str, list[str]]


def month_name(day: date) -> str:
    """The folder of the month of ``day``."""
    return f"{MONTH_PREFIX}{day:%Y-%m}"


def span_name(recorded: Recorded) -> str:
    """The name of the month file of these days and files: fixed by them."""
    text = json.dumps(recorded, sort_keys=True)
    return f"{SPAN_PREFIX}{hashlib.blake2b(text.encode(), digest_size=12).hexdigest()}.parquet"


def recorded(by_day: dict[date, list[Path]], days: Sequence[date]) -> Recorded:
    """What a month file of ``days`` records of the files listed now."""
    return {str(day): [p.name for p in by_day[day]] for day in days}


def by_month(days: Sequence[date]) -> Iterator[tuple[str, list[date]]]:
    """``days`` (sorted) grouped by month folder name, in order."""
    for month, grouped in groupby(days, key=month_name):
        yield month, list(grouped)


def month_files(view_dir: Path, month: str) -> list[Path]:
    """The finished month files of one month of a view's log, by name."""
    folder = view_dir / MONTHS / month
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"{SPAN_PREFIX}*.parquet") if p.is_file())


def all_month_files(view_dir: Path) -> list[Path]:
    """Every finished month file of a view's log (current or not), by month and name:
    what ``check`` verifies and a compaction deletes when it no longer records its month."""
    folder = view_dir / MONTHS
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"{MONTH_PREFIX}*/{SPAN_PREFIX}*.parquet")
                  if p.is_file())


def read_recorded(path: Path) -> Recorded | None:
    """What a month file records, from its footer; None when it cannot be read."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        metadata = pq.read_schema(path).metadata or {}
        found = json.loads(metadata[DAYS_KEY])
    except (OSError, pa.ArrowException, ValueError, KeyError):
        return None
    return found if isinstance(found, dict) else None


def current_span(view_dir: Path, month: str, now: Recorded) -> Path | None:
    """The month file that records exactly ``now`` (the month's days and files as listed),
    if there is one."""
    wanted = span_name(now)
    for path in month_files(view_dir, month):
        if path.name == wanted and read_recorded(path) == now:
            return path
    return None


def whole_log_files(view_dir: Path, by_day: dict[date, list[Path]]) -> list[Path]:
    """The files to read for the days of ``by_day`` (a view's listing, maybe cut by a
    reader's ``until``), oldest first: a month's day files replaced by its month file
    where that records them exactly (see the module)."""
    if not (view_dir / MONTHS).is_dir():
        return [p for day in sorted(by_day) for p in by_day[day]]
    files: list[Path] = []
    for month, days in by_month(sorted(by_day)):
        span = current_span(view_dir, month, recorded(by_day, days))
        files += [span] if span else [p for day in days for p in by_day[day]]
    return files
