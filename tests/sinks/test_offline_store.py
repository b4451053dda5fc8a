"""The offline logs stay idempotent on their row ids while keeping only the ids of the
days they wrote to last in memory."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from basketflow.flows.backfill import offline_events
from basketflow.reports.offline_query import OfflineQuery
from basketflow.reports.predictions import customers_of_day
from basketflow.schemas.events import Transaction, parse_row
from basketflow.sinks.offline_layout import events_dir
from basketflow.sinks.offline_store import (
    DAYS_REMEMBERED,
    EVENT_COLUMNS,
    ParquetEventStore,
    PlacedEvents,
    verify_file,
)


def line(day: int, n: int) -> Transaction:
    """Line ``n`` of an invoice on January ``day`` 2011."""
    event = parse_row([f"5{day:02d}{n:03d}", "85123A", "HEART", str(n + 1), f"1/{day}/2011 9:00",
                       "2.55", "17850", "United Kingdom"], f"test:{day}:{n}")
    assert isinstance(event, Transaction)
    return event


def stored_rows(root: Path) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in events_dir(root).glob("*/*.parquet"))


def test_a_day_forgotten_in_memory_is_still_written_once(tmp_path: Path) -> None:
    store = ParquetEventStore(tmp_path)
    days = range(1, DAYS_REMEMBERED + 10)
    for day in days:
        assert store.append([line(day, n) for n in range(5)]) == 5
    assert len(store._seen) == DAYS_REMEMBERED  # the days written to last
    # The first days are read back from their files: a replay writes nothing.
    assert store.append([line(day, n) for day in days for n in range(5)]) == 0
    assert store.append([line(1, 5), line(1, 0)]) == 1
    assert stored_rows(tmp_path) == 5 * len(days) + 1
    # A new writer (a restarted flow) knows them from the files alone.
    assert ParquetEventStore(tmp_path).append([line(2, n) for n in range(6)]) == 1


def test_files_with_and_without_positions_are_read_together(tmp_path: Path) -> None:
    """A store written before positions were kept, and on since: every reader takes both
    kinds of file, in either order (DuckDB takes a first file's columns unless told to
    match them by name)."""
    placed, older = line(3, 0), line(3, 1)
    ParquetEventStore(tmp_path).append_placed([PlacedEvents([placed], 1, [5])])
    day = events_dir(tmp_path) / "date=2011-01-03"
    next(day.glob("part-*.parquet")).rename(day / "part-0-new.parquet")
    pq.write_table(pa.Table.from_pylist([msgspec.structs.asdict(older)], schema=EVENT_COLUMNS),
                   day / "part-1-older.parquet")

    assert list(offline_events(tmp_path)()) == [placed, older]  # backfill --from-offline
    assert [verify_file(tmp_path, f) for f in sorted(day.iterdir())] == [None, None]  # check
    assert customers_of_day(tmp_path, date(2011, 1, 3)) == ["17850"]  # evaluate, reports
    with OfflineQuery(tmp_path) as query:  # the daily report
        query.events_view("e", query.days)
        assert sorted(query.con.execute("SELECT event_id, kafka_offset FROM e").fetchall(),
                      key=str) == sorted([(placed.event_id, 5), (older.event_id, None)], key=str)
    assert ParquetEventStore(tmp_path).append([placed, older]) == 0  # both ids known
