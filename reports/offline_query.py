"""DuckDB over the offline store: chosen date partitions of events and logs as views.

Why a module of its own: every batch job over the offline store (the daily report today,
training sets later) needs the same things, done the same way:

- which days the store holds, listed by :mod:`basketflow.sinks.offline_layout` (from its
  day partitions' folders: cheap, no file is opened), so a job reads only the partitions
  it needs;
- a SQL view over exactly those partitions' Parquet files (the store's finished files
  only), with the partition day as a ``date`` column (the store derives it from the
  event time; nothing here re-derives it). A remote store's files are read by Arrow
  and handed to DuckDB (:mod:`basketflow.sinks.offline_scan`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

import duckdb
import pyarrow as pa

from basketflow.offline_uri import StoreDir, StorePath
from basketflow.sinks.offline_layout import (
    as_root,
    dead_letters_dir,
    events_dir,
    files_by_day,
    files_of,
    late_events_dir,
    scores_dir,
)
from basketflow.sinks.offline_scan import parquet_source
from basketflow.sinks.offline_store import CorruptFile, first_unreadable


def arrow_table(con: duckdb.DuckDBPyConnection, query: str,
                params: dict[str, Any] | None = None) -> pa.Table:
    """A query's result as an Arrow table, without the extra copy of a DB-API cursor.

    (``to_arrow_table`` in DuckDB 2, ``fetch_arrow_table`` before.)
    """
    relation = con.sql(query, params=params)
    fetch = getattr(relation, "to_arrow_table", None) or relation.fetch_arrow_table
    return fetch()


class OfflineQuery:
    """One in-memory DuckDB connection over one offline store directory.

    The partitions are listed once, when the object is made. Views and tables created
    through it live in the connection and disappear with it (use it as a context manager).
    """

    def __init__(self, offline_dir: StoreDir) -> None:
        self.offline_dir = as_root(offline_dir)
        self.event_files = files_by_day(events_dir(self.offline_dir))
        self.dead_files = files_by_day(dead_letters_dir(self.offline_dir))
        self.has_dead_letters = dead_letters_dir(self.offline_dir).is_dir()
        self.score_files = files_by_day(scores_dir(self.offline_dir))
        self.late_files = files_by_day(late_events_dir(self.offline_dir))
        self.con = duckdb.connect()

    def __enter__(self) -> OfflineQuery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.con.close()

    def drop_unreadable(self) -> dict[date, CorruptFile]:
        """Leave out every day one of whose files (events, dead letters, late events,
        scores) cannot be opened as Parquet; return those days, each with the error of
        its first such file. A job then works on the other days, and says which it left
        out, rather than failing for every day."""
        logs = (self.event_files, self.dead_files, self.late_files, self.score_files)
        bad: dict[date, CorruptFile] = {}
        for by_day in logs:
            for day, files in by_day.items():
                if day not in bad and (error := first_unreadable(files)) is not None:
                    bad[day] = error
        for by_day in logs:
            for day in bad:
                by_day.pop(day, None)
        return dict(sorted(bad.items()))

    @property
    def days(self) -> list[date]:
        """Days with at least one stored event, oldest first."""
        return list(self.event_files)

    def events_view(self, name: str, days: Iterable[date]) -> None:
        """Create view ``name``: every event of ``days`` (at least one must be stored)."""
        files = files_of(self.event_files, days)
        if not files:
            raise ValueError(f"no events stored for any of the days asked for ({name})")
        self._view(name, files)

    def dead_letters_view(self, name: str, days: Iterable[date]) -> None:
        """Create view ``name`` (date, reason): the dead letters of ``days``, maybe none."""
        self._log_view(name, self.dead_files, days, {"date": "DATE", "reason": "VARCHAR"})

    def scores_view(self, name: str, days: Iterable[date]) -> None:
        """Create view ``name`` (date, entity_id, ts, seq, invoice, category): the live
        predictions of the score log stored for ``days``, maybe none."""
        self._log_view(name, self.score_files, days,
                       {"date": "DATE", "entity_id": "VARCHAR", "ts": "TIMESTAMPTZ",
                        "seq": "BIGINT", "invoice": "VARCHAR", "category": "VARCHAR"})

    def late_events_view(self, name: str, days: Iterable[date]) -> None:
        """Create view ``name`` (date, event_id): the late events of ``days`` (by their own
        event date), maybe none."""
        self._log_view(name, self.late_files, days, {"date": "DATE", "event_id": "VARCHAR"})

    def _log_view(self, name: str, by_day: dict[date, list[StoreDir]], days: Iterable[date],
                  columns: dict[str, str]) -> None:
        """A view of some columns of a partitioned log's files of ``days``; with no file, an
        empty view of the same columns and types."""
        files = files_of(by_day, days)
        if files:
            self._view(name, files, columns=", ".join(columns))
        else:
            empty = ", ".join(f"NULL::{kind} AS {column}" for column, kind in columns.items())
            self.con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {empty} LIMIT 0")

    def _view(self, name: str, files: Sequence[StoreDir], columns: str = "*") -> None:
        """A view over Parquet files, with the partition day as column ``date`` (DATE).

        The file names are a parameter, never SQL text (a path may hold a quote); a view
        cannot take a prepared parameter, so they are held in a session variable of the
        view's name. A remote store's files are one registered Arrow table."""
        if isinstance(files[0], StorePath):
            source = parquet_source(self.con, files, hive=True, union_by_name=True)
            self.con.execute(
                f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {columns} FROM {source.sql}")
            return
        self.con.execute(f"SET VARIABLE {name}_files = $files",
                         {"files": [str(p) for p in files]})
        self.con.execute(
            f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {columns} FROM read_parquet("
            f"getvariable('{name}_files'), hive_partitioning = true, union_by_name = true, "
            "hive_types = {'date': DATE})")

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> None:
        """Run a statement (CREATE TABLE ... AS ..., for instance)."""
        self.con.execute(sql, params)

    def create_table(self, name: str, columns: dict[str, list[Any]]) -> None:
        """Create table ``name`` from equal-length Python lists (a small lookup built in
        Python), passed as list parameters: no Arrow or pandas round trip."""
        select = ", ".join(f"unnest(${column}) AS {column}" for column in columns)
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {select}", columns)

    def rows(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple]:
        """All rows of a query."""
        return self.con.execute(sql, params).fetchall()
