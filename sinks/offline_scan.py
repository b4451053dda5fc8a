"""Stored Parquet files as a table of a DuckDB query, wherever the store lives.

A local store's files are read by DuckDB itself (``read_parquet($files, ...)``: the file
list a parameter, never SQL text). DuckDB reads object storage only through its
``httpfs`` extension, which it downloads at first use; that download is not possible
everywhere (not on this project's machines), and it would not cover every filesystem
``pyarrow.fs`` reaches (HDFS, Azure). So a remote store's files are read by Arrow, in
parallel, and handed to DuckDB as one registered Arrow table with the same columns
``read_parquet`` gives: ``date`` from the day partition's folder (``hive``), matched by
column name across files (``union_by_name``), ``filename`` and ``file_row_number``.
The query text is the same either way.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from basketflow.offline_uri import PARALLEL_REQUESTS, StoreDir, StorePath
from basketflow.sinks.offline_layout import partition_day
from basketflow.sinks.offline_store import parquet_file, reading

_names = itertools.count()


@dataclass(frozen=True)
class ParquetSource:
    """What a query reads the files as: ``sql`` goes after FROM; ``params`` are the
    parameters it needs (merge them with the query's own)."""

    sql: str
    params: dict[str, Any] = field(default_factory=dict)


def parquet_source(con: Any, files: Sequence[StoreDir], *, hive: bool = False,
                   union_by_name: bool = False, filename: bool = False,
                   file_row_number: bool = False,
                   columns: Sequence[str] | None = None) -> ParquetSource:
    """The files as a source of ``con``'s queries (see the module docstring): with
    ``hive``, their day partition as a ``date`` column (DATE). ``columns``: the only
    stored columns the query uses, when known (a remote file's others are not read;
    DuckDB reads only the used columns of a local file by itself)."""
    if files and isinstance(files[0], StorePath):
        table = remote_table(files, hive=hive, filename=filename,
                             file_row_number=file_row_number, columns=columns)
        name = f"_stored_files_{next(_names)}"
        con.register(name, table)
        return ParquetSource(name)
    options = [f"hive_partitioning = {str(hive).lower()}"]
    if hive:
        options.append("hive_types = {'date': DATE}")
    for flag, on in (("union_by_name", union_by_name), ("filename", filename),
                     ("file_row_number", file_row_number)):
        if on:
            options.append(f"{flag} = true")
    return ParquetSource(f"read_parquet($files, {', '.join(options)})",
                         {"files": [str(p) for p in files]})


def remote_table(files: Sequence[StoreDir], *, hive: bool = False, filename: bool = False,
                 file_row_number: bool = False,
                 columns: Sequence[str] | None = None) -> pa.Table:
    """Every file read (its ``columns`` it has, else whole) and put end to end, columns
    matched by name (a column a file lacks is null there), with the extra columns
    :func:`parquet_source` describes."""
    def read(path: StoreDir) -> pa.Table:
        with reading(path), parquet_file(path) as stored:
            names = stored.schema_arrow.names
            table = stored.read(columns=None if columns is None else
                                [c for c in columns if c in names])
        if filename:
            table = table.append_column("filename", pa.array([str(path)] * table.num_rows))
        if file_row_number:
            table = table.append_column("file_row_number",
                                        pa.array(range(table.num_rows), pa.int64()))
        if hive:
            day: date | None = partition_day(path.parent.name)
            table = table.append_column("date", pa.array([day] * table.num_rows, pa.date32()))
        return table

    with ThreadPoolExecutor(PARALLEL_REQUESTS) as pool:
        tables = list(pool.map(read, files))
    return pa.concat_tables(tables, promote_options="permissive")
