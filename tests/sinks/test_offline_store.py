"""The offline logs stay idempotent on their row ids while keeping only the ids of the
days they wrote to last in memory."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from basketflow.schemas.events import Transaction, parse_row
from basketflow.sinks.offline_layout import events_dir
from basketflow.sinks.offline_store import DAYS_REMEMBERED, ParquetEventStore


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
