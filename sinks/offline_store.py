"""The offline store: every valid event, appended to Parquet partitioned by event date, and
the logs beside it (dead letters, late events, live predictions, each view's feature
log), written where :mod:`basketflow.sinks.offline_layout` says, with the Arrow schemas
of each (the one table of a feature's dtype -> Arrow type is :data:`ARROW_TYPES`).

Each write lands atomically, so a reader never sees a half-written file: in a local
folder it is written to a hidden temporary name, then renamed; on a remote filesystem
(:class:`~basketflow.offline_uri.StorePath`: an object store has no rename) it is one
object written whole in one request, named by its content (:func:`content_name`), so a
write repeated after a crash replaces the same object with the same bytes. Writes are
idempotent on the row id: the store remembers the ids already in each date partition
(read back from the files the first time the partition is touched), so events replayed
after a crash or a second replay of the same file are not written twice.

A write that fails (full disk, a file where a directory must be, no permission) raises
:class:`StoreUnwritable`, which stops the flow: the flow writes its offline rows before
the offsets past them are committed, so nothing is lost, and the next run rewrites what
was not written.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq
from msgspec.structs import astuple

from basketflow.offline_uri import StoreDir, StorePath
from basketflow.schemas.events import FIELD_NAMES, Rejection, Transaction
from basketflow.schemas.features import FeatureView, registry
from basketflow.schemas.records import LateEvent, LogRow, ScoreRow, ShadowScoreRow
from basketflow.sinks.offline_layout import (
    DEAD_LETTERS,
    EVENTS,
    FEATURES,
    LATE_EVENTS,
    SCORES,
    SECONDS_PER_DAY,
    SHADOW_SCORES,
    CorruptFile,
    as_root,
    damage,
    ensure_whole,
    first_damaged,
    day_files,
    day_of,
    dead_letters_dir,
    events_dir,
    feature_log_dir,
    late_events_dir,
    partition_files,
    partition_name,
    scores_dir,
    shadow_scores_dir,
)
from basketflow.sinks.month_files import is_month_file
from basketflow.sinks.store_writes import writing

#: The columns every event file has: a :class:`Transaction`'s fields.
EVENT_COLUMNS = pa.schema([
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
assert tuple(EVENT_COLUMNS.names) == FIELD_NAMES, "offline schema must follow Transaction"

#: Where a row's message sits on the flow's topic, written after a row's own columns:
#: null for a row from elsewhere (a backfill from a file, a dead letter of the producer's
#: read back from the dead topic), and absent from files written before they were kept
#: (readers match columns by name). ``basketflow run --rebuild-state`` reads them
#: (:mod:`basketflow.flows.rebuild`).
POSITION_COLUMNS = [pa.field("kafka_partition", pa.int32()), pa.field("kafka_offset", pa.int64())]

#: The position of a row from elsewhere than the topic.
NOWHERE = (None, None)


class PlacedEvents(NamedTuple):
    """Events, and where they sat on the topic: the partition they were read from and
    each one's offset there (None: from elsewhere, a backfill's). A list and a list of
    offsets, not a pair per event: the flow makes one per batch and day."""

    events: list[Transaction]
    partition: int | None = None
    offsets: list[int] | None = None

EVENT_SCHEMA = pa.schema([*EVENT_COLUMNS, *POSITION_COLUMNS])

def ensure_writable(*directories: StoreDir) -> None:
    """Create each directory and write, sync and delete a probe file in it; raise
    :class:`StoreUnwritable` when that fails, so a run fails at its start rather than
    mid-run. A real write, since permission bits do not stop root.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = (Path(tmp) / "offline").write_text("a file in the way")
    ...     ensure_writable(Path(tmp) / "offline")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    basketflow.sinks.store_writes.StoreUnwritable: cannot write ...
    """
    for directory in directories:
        probe = directory / f".write-probe-{uuid.uuid4().hex}"
        with writing(directory):
            directory.mkdir(parents=True, exist_ok=True)
            if isinstance(probe, StorePath):
                probe.write_bytes(b"basketflow")
                probe.unlink(missing_ok=True)
                continue
            try:
                with open(probe, "wb") as f:
                    f.write(b"basketflow")
                    f.flush()
                    os.fsync(f.fileno())
            finally:
                probe.unlink(missing_ok=True)


@contextmanager
def reading(path: StoreDir) -> Iterator[None]:
    """Turn an error met reading a stored file (an OS error, or Arrow's on a file that is
    not whole Parquet, or lacks a column) into :class:`CorruptFile` naming it."""
    try:
        yield
    except CorruptFile:
        raise
    except (OSError, pa.ArrowException, KeyError) as exc:
        raise CorruptFile(path, damage(path) or _first_line(exc)) from exc


def _first_line(exc: BaseException) -> str:
    """An error's message, on one line, at most 200 characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


@contextmanager
def parquet_file(path: StoreDir) -> Iterator[pq.ParquetFile]:
    """A stored Parquet file, opened to read its footer or columns, local or remote (a
    remote one fetched whole in one request: the store's files are small, and a ranged
    read asks for the size, the footer and each column chunk apart)."""
    if isinstance(path, StorePath):
        with pq.ParquetFile(pa.BufferReader(path.read_bytes())) as stored:
            yield stored
    else:
        with pq.ParquetFile(path) as stored:
            yield stored


def read_metadata(path: StoreDir) -> pq.FileMetaData:
    """A stored Parquet file's footer (its row count, columns, row groups)."""
    if isinstance(path, StorePath):
        with parquet_file(path) as stored:
            return stored.metadata
    return pq.read_metadata(path)


def content_name(row_ids: Iterable[str]) -> str:
    """A file's name from the ids of the rows it holds: the same rows, the same name.

    >>> content_name(["b", "a"]) == content_name(["a", "b"]) != content_name(["a"])
    True
    """
    digest = hashlib.sha256("\n".join(sorted(row_ids)).encode()).hexdigest()
    return f"part-{digest[:32]}.parquet"


def write_atomically(table: pa.Table, directory: StoreDir, name: str) -> StoreDir:
    """Write a Parquet file under a hidden temporary name, then rename it into place;
    :class:`StoreUnwritable` when it cannot be written (the temporary file is removed).
    On a remote filesystem, one object written whole under ``name`` (no rename there).

    The file is encoded in memory and written with one call: Arrow's file stream makes a
    system call per page header and page, a few hundred for a feature-log file (the
    bytes are the same).
    """
    final = directory / name
    tmp = directory / f".{name}.tmp"
    encoded = pa.BufferOutputStream()
    pq.write_table(table, encoded, compression="snappy",  # less CPU per small file than zstd
                   **encodings(table.schema))
    if isinstance(final, StorePath):
        with writing(directory):
            final.write_bytes(encoded.getvalue().to_pybytes())
        return final
    with writing(directory):
        if not directory.is_dir():
            directory.mkdir(parents=True, exist_ok=True)
        try:
            with open(tmp, "wb") as out:
                out.write(encoded.getvalue())
            os.replace(tmp, final)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
    return final


def encodings(schema: pa.Schema) -> dict[str, Any]:
    """How a file of ``schema`` is encoded, beyond Parquet's defaults: offsets on the topic
    by their differences (runs of consecutive offsets, a batch's, take a few bits a row
    rather than a dictionary's index or eight bytes)."""
    if "kafka_offset" not in schema.names:
        return {}
    return {"use_dictionary": [n for n in schema.names if n != "kafka_offset"],
            "column_encoding": {"kafka_offset": "DELTA_BINARY_PACKED"}}


#: The date partitions whose row ids a log keeps in memory, those touched last: a live
#: flow writes to the newest days (product rows and late events lag by days).
DAYS_REMEMBERED = 16


class PartitionedLog:
    """An append-only, idempotent, date-partitioned Parquet log of rows with unique ids.

    ``append_rows`` takes ``(event time, row id, row values in schema order)``; a row whose id
    is already stored in its date partition is skipped (a row's id fixes its date).
    """

    def __init__(self, directory: StoreDir, schema: pa.Schema, id_column: str) -> None:
        self.directory = directory
        self.schema = schema
        self.id_column = id_column
        self._seen: OrderedDict[str, set[str]] = OrderedDict()
        self._day_names: dict[int, str] = {}

    def partition_dir(self, day: str) -> StoreDir:
        """The directory of one date."""
        return self.directory / partition_name(day)

    def _ids_in(self, day: str) -> set[str]:
        """The row ids already stored for a day: read from its files when the day is not
        among the :data:`DAYS_REMEMBERED` touched last, so memory follows the days written
        to, not the history."""
        seen = self._seen.get(day)
        if seen is not None:
            self._seen.move_to_end(day)
            return seen
        seen = set()
        for path in self._files_of_day(day):
            seen.update(self._ids_of_day(path, day))
        self._seen[day] = seen
        if len(self._seen) > DAYS_REMEMBERED:
            self._seen.popitem(last=False)
        return seen

    def _stored_ids(self, path: StoreDir) -> list[str]:
        """The row ids stored in one file (read as one file: ``pq.read_table`` sets up a
        dataset per call, which costs more than reading a small file's column)."""
        with reading(path), parquet_file(path) as stored:
            return stored.read(columns=[self.id_column]).column(0).to_pylist()

    def _files_of_day(self, day: str) -> list[StoreDir]:
        """The files that hold a day's rows: its partition's counted files."""
        return partition_files(self.partition_dir(day))

    def _ids_of_day(self, path: StoreDir, day: str) -> list[str]:
        """The row ids of ``day``'s rows in one of :meth:`_files_of_day`: all of them."""
        return self._stored_ids(path)

    def _day(self, ts: int) -> str:
        """Cached :func:`day_of` (the day of every row is asked for)."""
        key = ts // SECONDS_PER_DAY
        name = self._day_names.get(key)
        if name is None:
            name = self._day_names[key] = day_of(ts)
        return name

    def append_rows(self, rows: Iterable[tuple[int, str, Sequence[Any]]]) -> int:
        """Store the rows not stored yet; return how many were written.

        The fresh rows of every day become one Arrow table, written a day a file (a slice
        each, the same bytes as a table of its own): a conversion costs a fixed time per
        call and column, which a flush over many days (a backlog read) paid per day."""
        by_day: dict[str, dict[str, Sequence[Any]]] = defaultdict(dict)
        for ts, row_id, values in rows:
            by_day[self._day(ts)][row_id] = values
        days: list[tuple[str, set[str], list[str]]] = []
        fresh: list[Sequence[Any]] = []
        for day, batch in by_day.items():
            seen = self._ids_in(day)
            ids = [row_id for row_id in batch if row_id not in seen]
            if ids:
                days.append((day, seen, ids))
                fresh.extend(batch[row_id] for row_id in ids)
        if not fresh:
            return 0
        table, start = self._table(fresh), 0
        for day, seen, ids in days:
            directory = self.partition_dir(day)
            name = (content_name(ids) if isinstance(directory, StorePath)
                    else f"part-{uuid.uuid4().hex}.parquet")
            write_atomically(table.slice(start, len(ids)), directory, name)
            seen.update(ids)
            start += len(ids)
        return len(fresh)

    def _table(self, rows: list[Sequence[Any]]) -> pa.Table:
        """Rows -> an Arrow table of the log's schema, built column by column."""
        columns = list(zip(*rows))
        return pa.Table.from_arrays(
            [pa.array(col, type=f.type) for col, f in zip(columns, self.schema)],
            schema=self.schema)


class ParquetEventStore(PartitionedLog):
    """Every valid event under ``<root>/events/``, idempotent on ``event_id``."""

    def __init__(self, root: str | StoreDir) -> None:
        super().__init__(events_dir(root), EVENT_SCHEMA, "event_id")

    def append(self, events: Iterable[Transaction]) -> int:
        """Store the events not stored yet, from elsewhere than the topic (no position);
        return how many were written."""
        return self.append_placed([PlacedEvents(list(events))])

    def append_placed(self, groups: Iterable[PlacedEvents]) -> int:
        """Store the events not stored yet, each with its position on the topic; return
        how many were written. A row already stored keeps the position it has: the
        first copy of a transaction written is the one kept."""
        return self.append_rows(row for group in groups for row in _placed_rows(group))


#: The columns every dead-letter file has.
DEAD_COLUMNS = pa.schema([
    ("dead_id", pa.string()),
    ("event_id", pa.string()),
    ("reason", pa.string()),
    ("raw", pa.string()),
    ("source", pa.string()),
    ("ts", pa.timestamp("s", tz="UTC")),
])
DEAD_SCHEMA = pa.schema([*DEAD_COLUMNS, *POSITION_COLUMNS])


def _placed_rows(group: PlacedEvents) -> Iterator[tuple[int, str, tuple[Any, ...]]]:
    """The rows :meth:`PartitionedLog.append_rows` takes, of a group of events."""
    if group.offsets is None:
        for e in group.events:
            yield e.ts, e.event_id, astuple(e) + NOWHERE
        return
    partition = group.partition
    for e, offset in zip(group.events, group.offsets):
        yield e.ts, e.event_id, astuple(e) + (partition, offset)


class DeadLetterStore(PartitionedLog):
    """Every dead letter under ``<root>/dead/``, idempotent on ``dead_id``.

    A dead letter's date is the invoice date of its line when that can be read, else
    the time it was dead-lettered: the daily report counts rejected lines per day.
    """

    def __init__(self, root: str | StoreDir) -> None:
        super().__init__(dead_letters_dir(root), DEAD_SCHEMA, "dead_id")

    def append(self, letters: Iterable[tuple[str, int, Rejection]]) -> int:
        """Store the dead letters ``(dead_id, ts, rejection)`` not stored yet; return how
        many were written. The flow's own (``source="flow"``) are named by their message's
        place on the topic (``<topic>:<partition>:<offset>``), which their position
        columns repeat; the producer's, read back from the dead topic, have none."""
        return self.append_rows(
            (ts, dead_id, (dead_id, r.event_id, r.reason, r.raw, r.source, ts,
                           *(message_position(dead_id) if r.source == "flow" else NOWHERE)))
            for dead_id, ts, r in letters)


def message_position(message_id: str) -> tuple[int, int]:
    """The partition and offset of a message named ``<topic>:<partition>:<offset>``.

    >>> message_position("transactions:2:41")
    (2, 41)
    """
    _topic, partition, offset = message_id.rsplit(":", 2)
    return int(partition), int(offset)


LATE_SCHEMA = pa.schema([
    ("event_id", pa.string()),
    ("entity_id", pa.string()),
    ("ts", pa.timestamp("s", tz="UTC")),
    ("entity_latest_ts", pa.timestamp("s", tz="UTC")),
])


class LateEventLog(PartitionedLog):
    """Every event too late for the online values, under ``<root>/late/`` by its event date,
    with its entity's latest event time when it arrived; idempotent on ``event_id``."""

    def __init__(self, root: str | StoreDir) -> None:
        super().__init__(late_events_dir(root), LATE_SCHEMA, "event_id")

    def append(self, rows: Iterable[LateEvent]) -> int:
        """Store the late events not stored yet (a :class:`LateEvent`'s fields are the
        columns, in order)."""
        return self.append_rows((row[2], row[0], row) for row in rows)


#: A feature's dtype -> the Arrow type of its feature-log column.
ARROW_TYPES: dict[str, pa.DataType] = {"str_list": pa.list_(pa.string()),
                                       "int": pa.int64(), "float": pa.float64(),
                                       "str": pa.string(), "epoch_s": pa.int64()}


def feature_log_schema(view: FeatureView) -> pa.Schema:
    """Columns of a view's feature log: entity, event time, order, version, stored
    features (request-time ones are computed when read)."""
    return pa.schema([("entity_id", pa.string()), ("ts", pa.timestamp("s", tz="UTC")),
                      ("seq", pa.int64()), ("version", pa.string())]
                     + [(f.name, ARROW_TYPES[f.dtype]) for f in view.log_features])


class EntityRowLog(PartitionedLog):
    """A log whose row ids are ``<entity>:<seq>`` (the entity's events folded in so far),
    derived from its ``entity_id`` and ``seq`` columns rather than stored."""

    def _stored_ids(self, path: StoreDir) -> list[str]:
        """Ids are ``entity:seq``, derived from two stored columns."""
        with reading(path), parquet_file(path) as stored:
            table = stored.read(columns=["entity_id", "seq"])
        return [f"{e}:{s}" for e, s in zip(table.column(0).to_pylist(),
                                           table.column(1).to_pylist())]


class FeatureLog(EntityRowLog):
    """Every new value row of one view under ``<root>/features/<view>/``, idempotent on
    ``<entity>:<ts>:<seq>``, stamped with the view's current version.

    An entity has several rows with one ``seq`` where its windows move on without events
    (one per moment), so the id holds the row's time too, which fixes its date. (Bytewax
    flushes sinks before it commits an epoch, so a kill between the two replays rows that
    are already stored.)
    """

    def __init__(self, root: str | StoreDir, view: str | FeatureView) -> None:
        """The log of the built-in view called ``view``, or of a declared view."""
        self.view = registry()[view] if isinstance(view, str) else view
        super().__init__(feature_log_dir(root, self.view.name), feature_log_schema(self.view),
                         "row_id")
        self.names = tuple(f.name for f in self.view.log_features)
        self.version = self.view.version

    def append(self, rows: Iterable[LogRow]) -> int:
        """Store the rows not stored yet (the view's stored features taken from
        ``values`` in the log's column order)."""
        names, version = self.names, self.version
        return self.append_rows(
            (ts, f"{entity}:{ts}:{seq}",
             (entity, ts, seq, version, *map(values.__getitem__, names)))
            for _view, entity, ts, seq, values in rows)

    def _files_of_day(self, day: str) -> list[StoreDir]:
        """The files that hold a day's rows: the month file holding the day, if any, and
        the day's own files (:func:`~basketflow.sinks.offline_layout.day_files`)."""
        return day_files(self.directory, date.fromisoformat(day))

    def _ids_of_day(self, path: StoreDir, day: str) -> list[str]:
        """The row ids of ``day``'s rows in one file: a month file holds its whole month,
        each row of the day of its ``ts``."""
        ids = self._stored_ids(path)
        if not is_month_file(path):
            return ids
        with reading(path), parquet_file(path) as stored:
            ts = stored.read(columns=["ts"]).column(0)
        seconds = ts.cast(pa.timestamp("s", tz="UTC")).cast(pa.int64()).to_pylist()
        return [row_id for row_id, t in zip(ids, seconds) if self._day(t) == day]

    def _stored_ids(self, path: StoreDir) -> list[str]:
        """Ids are ``entity:ts:seq`` (``ts`` in epoch seconds), derived from stored columns."""
        with reading(path), parquet_file(path) as stored:
            table = stored.read(columns=["entity_id", "ts", "seq"])
        # Parquet has no seconds unit: the column reads back in milliseconds.
        seconds = table.column(1).cast(pa.timestamp("s", tz="UTC")).cast(pa.int64()).to_pylist()
        return [f"{e}:{t}:{s}" for e, t, s in zip(table.column(0).to_pylist(), seconds,
                                                  table.column(2).to_pylist())]


SCORE_SCHEMA = pa.schema([
    ("entity_id", pa.string()),
    ("ts", pa.timestamp("s", tz="UTC")),
    ("seq", pa.int64()),
    ("invoice", pa.string()),
    ("category", pa.string()),
    ("probabilities", pa.string()),  # JSON object: category -> probability
    ("model_version", pa.string()),
])


class ScoreLog(EntityRowLog):
    """Every live prediction under ``<root>/scores/``, idempotent on ``<entity>:<seq>``: what
    the model said about a basket when it said it (the daily report and ``evaluate`` read
    the prediction at the end of each customer's first basket from here)."""

    def __init__(self, root: str | StoreDir) -> None:
        super().__init__(scores_dir(root), SCORE_SCHEMA, "row_id")

    def append(self, rows: Iterable[ScoreRow]) -> int:
        """Store the predictions not stored yet (probabilities as a JSON object)."""
        dumps = json.dumps
        return self.append_rows(
            (r.ts, f"{r.entity}:{r.seq}", (r.entity, r.ts, r.seq, r.invoice, r.score.category,
                                           dumps(r.score.probabilities), r.score.model_version))
            for r in rows)


SHADOW_SCORE_SCHEMA = SCORE_SCHEMA.append(pa.field("alias", pa.string())).append(
    pa.field("registry_version", pa.int64()))


class ShadowScoreLog(EntityRowLog):
    """Every prediction made in shadow (the challenger's) under
    ``<root>/shadow-scores/``, marked with the alias and the registry version that made
    it, idempotent on ``<entity>:<seq>:<version>``."""

    def __init__(self, root: str | StoreDir) -> None:
        super().__init__(shadow_scores_dir(root), SHADOW_SCORE_SCHEMA, "row_id")

    def _stored_ids(self, path: StoreDir) -> list[str]:
        with reading(path), parquet_file(path) as stored:
            table = stored.read(columns=["entity_id", "seq", "registry_version"])
        return [f"{e}:{s}:{v}" for e, s, v in zip(*(c.to_pylist() for c in table.columns))]

    def append(self, rows: Iterable[ShadowScoreRow]) -> int:
        """Store the shadow predictions not stored yet."""
        dumps = json.dumps
        return self.append_rows(
            (s.row.ts, f"{s.row.entity}:{s.row.seq}:{s.version}",
             (s.row.entity, s.row.ts, s.row.seq, s.row.invoice, s.row.score.category,
              dumps(s.row.score.probabilities), s.row.score.model_version, s.alias,
              s.version))
            for s in rows)


#: Each log folder of the store -> the columns (with their Arrow types) its files must
#: have. A feature log's files must have its key columns only: a view's features change
#: with its definition, and its readers match columns by name. An event's or a dead
#: letter's position columns are not required: files written before them lack them.
REQUIRED_COLUMNS: dict[str, pa.Schema] = {
    EVENTS: EVENT_COLUMNS, DEAD_LETTERS: DEAD_COLUMNS, LATE_EVENTS: LATE_SCHEMA,
    SCORES: SCORE_SCHEMA,
    SHADOW_SCORES: SHADOW_SCORE_SCHEMA,
    FEATURES: pa.schema([("entity_id", pa.string()), ("ts", pa.timestamp("s", tz="UTC")),
                         ("seq", pa.int64()), ("version", pa.string())]),
}


def required_columns(root: StoreDir, path: StoreDir) -> pa.Schema | None:
    """The columns a file of the store under ``root`` must have (see
    :data:`REQUIRED_COLUMNS`); None for a file outside the store's logs.

    >>> required_columns(Path("o"), Path("o/features/basket/date=2011-01-01/p.parquet")).names
    ['entity_id', 'ts', 'seq', 'version']
    """
    try:
        top = as_root(path).relative_to(as_root(root)).parts[0]
    except (ValueError, IndexError):
        return None
    return REQUIRED_COLUMNS.get(top)


def footer_damage(path: StoreDir) -> str | None:
    """Why a file cannot be opened as Parquet (None: it can), from its first and last
    bytes and its footer only: what a reader checks of every file it will read before it
    starts, cheaply (:func:`verify_file` reads the whole file)."""
    reason = damage(path)
    if reason is None:
        try:
            read_metadata(path)
        except (OSError, pa.ArrowException) as exc:
            reason = _first_line(exc)
    return reason


def first_unreadable(files: Iterable[StoreDir]) -> CorruptFile | None:
    """The :class:`CorruptFile` of the first file :func:`footer_damage` finds fault with."""
    return first_damaged(files, footer_damage)


def ensure_readable(files: Iterable[StoreDir]) -> None:
    """Raise :class:`CorruptFile` for the first file that cannot be opened as Parquet
    (see :func:`footer_damage`): what a job runs before it reads the files."""
    ensure_whole(files, footer_damage)


def verify_file(root: StoreDir, path: StoreDir) -> str | None:
    """Why a file of the store under ``root`` cannot be used (None: it can): it is read
    whole, and must hold its log's columns with their types (see :data:`REQUIRED_COLUMNS`)."""
    reason = damage(path)
    if reason is not None:
        return reason
    try:
        with parquet_file(path) as stored:
            table = stored.read()
    except (OSError, pa.ArrowException) as exc:
        return _first_line(exc)
    required = required_columns(root, path)
    for field in required or ():
        if field.name not in table.schema.names:
            return f"no column {field.name!r}: not a file of this log"
        kind = table.schema.field(field.name).type
        if kind != field.type and not (pa.types.is_timestamp(kind)  # stored as ms or us
                                       and pa.types.is_timestamp(field.type)):
            return f"column {field.name!r} is {kind}, not {field.type}"
    return None
