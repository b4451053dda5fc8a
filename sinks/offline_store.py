"""The offline store: every valid event, appended to Parquet partitioned by event date.

Layout: ``<root>/events/date=YYYY-MM-DD/part-<uuid>.parquet``. Each write lands
atomically (written to a hidden temporary name, then renamed), so a reader never sees a
half-written file, and idempotently on ``event_id``: the store remembers the ids already
in each date partition (read back from the files the first time the partition is
touched), so events replayed after a crash or a second replay of the same file are not
written twice.
"""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.events import FIELD_NAMES, Transaction

EVENT_SCHEMA = pa.schema([
    ("event_id", pa.string()),
    ("invoice", pa.string()),
    ("stock_code", pa.string()),
    ("description", pa.string()),
    ("quantity", pa.int64()),
    ("unit_price", pa.float64()),
    ("ts", pa.timestamp("s", tz="UTC")),
    ("customer_id", pa.string()),
    ("country", pa.string()),
    ("is_cancellation", pa.bool_()),
    ("is_adjustment", pa.bool_()),
    ("is_product", pa.bool_()),
])
assert tuple(EVENT_SCHEMA.names) == FIELD_NAMES, "offline schema must follow Transaction"

SECONDS_PER_DAY = 86_400


def day_of(ts: int) -> str:
    """Epoch seconds -> ``YYYY-MM-DD`` (UTC), the partition the event belongs to."""
    return datetime.fromtimestamp(ts - ts % SECONDS_PER_DAY, tz=timezone.utc).strftime("%Y-%m-%d")


def write_atomically(table: pa.Table, directory: Path, name: str) -> Path:
    """Write a Parquet file under a hidden temporary name, then rename it into place."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / name
    tmp = directory / f".{name}.tmp"
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, final)
    return final


class ParquetEventStore:
    """Append-only, idempotent, date-partitioned Parquet store of events."""

    def __init__(self, root: str | Path) -> None:
        self.events_dir = Path(root) / "events"
        self._seen: dict[str, set[str]] = {}
        self._day_names: dict[int, str] = {}

    def partition_dir(self, day: str) -> Path:
        """The directory of one event date."""
        return self.events_dir / f"date={day}"

    def _ids_in(self, day: str) -> set[str]:
        """The event ids already stored for a day (read from its files once)."""
        seen = self._seen.get(day)
        if seen is None:
            seen = set()
            directory = self.partition_dir(day)
            if directory.is_dir():
                for path in sorted(directory.glob("*.parquet")):
                    column = pq.read_table(path, columns=["event_id"]).column(0)
                    seen.update(column.to_pylist())
            self._seen[day] = seen
        return seen

    def _day(self, ts: int) -> str:
        """Cached :func:`day_of` (the day of every event is asked for)."""
        key = ts // SECONDS_PER_DAY
        name = self._day_names.get(key)
        if name is None:
            name = self._day_names[key] = day_of(ts)
        return name

    def append(self, events: Iterable[Transaction]) -> int:
        """Store the events not stored yet; return how many were written."""
        by_day: dict[str, list[Transaction]] = defaultdict(list)
        for e in events:
            by_day[self._day(e.ts)].append(e)
        written = 0
        for day, batch in by_day.items():
            seen = self._ids_in(day)
            fresh = {e.event_id: e for e in batch if e.event_id not in seen}
            if not fresh:
                continue
            rows = list(fresh.values())
            write_atomically(to_table(rows), self.partition_dir(day),
                             f"part-{uuid.uuid4().hex}.parquet")
            seen.update(fresh)
            written += len(rows)
        return written


def to_table(events: Sequence[Transaction]) -> pa.Table:
    """Events -> an Arrow table of :data:`EVENT_SCHEMA`, column by column."""
    columns = [[getattr(e, name) for e in events] for name in FIELD_NAMES]
    return pa.Table.from_arrays(
        [pa.array(col, type=field.type) for col, field in zip(columns, EVENT_SCHEMA)],
        schema=EVENT_SCHEMA)
