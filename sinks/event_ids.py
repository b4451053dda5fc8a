"""Offline stores written before event ids were made from content: found, and migrated.

Until ids came from a transaction's content (:func:`~basketflow.schemas.events.event_id`),
an event's id was ``<file name>:<line>``, so the same transactions replayed from a
renamed or gzipped copy were stored again. A store that still holds ids of that form
would do the same against the new ids: a run or a backfill refuses it
(:func:`ensure_content_ids`, one :class:`OldEventIds` line), and ``basketflow check
--repair`` migrates it (:func:`migrate_event_ids`).

The migration is exact: an old id names the file and line, so each source's lines are
taken in file order and placed among identical lines of their invoice as a reader of
that file would (:class:`~basketflow.schemas.events.Occurrences`); the same transaction
stored twice under two files' names ends as one row. An invoice's lines share its
date, so each day partition is migrated on its own; the late events of a day (stored
under the same day) get the new ids of that day's events, before the events do (the old
ids are the map). Every file is rewritten atomically in place, the store's first file
last: it is the one the check reads, so a migration cut short is found again and
finished by the next ``check --repair``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from basketflow.errors import BasketflowError
from basketflow.schemas.events import (
    FIELD_NAMES,
    Occurrences,
    Transaction,
    event_id,
    is_event_id,
)
from basketflow.sinks.offline_layout import (
    event_files,
    events_dir,
    files_by_day,
    late_events_dir,
    partition_files,
    partition_name,
)
from basketflow.sinks.offline_store import parquet_file, reading, write_atomically

MIGRATE = ("run `basketflow check --repair` to give every stored event its id from its "
           "content (the same transaction stored twice is then kept once)")


class OldEventIds(BasketflowError):
    """The offline event store holds ids of the old form; the message says what to do."""

    def __init__(self, path: Path, old_id: str) -> None:
        super().__init__(
            f"{path}: the offline event store holds event ids of the old form "
            f"({old_id!r}: a file's name and line), under which the same transaction "
            f"from another copy of a file is stored twice; {MIGRATE}")
        self.path = path


def old_event_id(offline_dir: Path) -> tuple[Path, str] | None:
    """The store's first event file and its first id when that id is of the old form
    (None: a store of content ids, or no events). One file is enough: a store is written
    by one version, and a migration rewrites this file last."""
    for path in event_files(offline_dir):
        with reading(path), parquet_file(path) as stored:
            if stored.metadata.num_rows == 0:
                continue
            first = stored.read_row_group(0, columns=["event_id"]).column(0)[0].as_py()
        return None if is_event_id(first) else (path, first)
    return None


def ensure_content_ids(offline_dir: Path) -> None:
    """Raise :class:`OldEventIds` when the store holds ids of the old form: before a run
    or a backfill writes to it or reads it."""
    found = old_event_id(offline_dir)
    if found is not None:
        raise OldEventIds(*found)


@dataclass(frozen=True)
class Migrated:
    """What a migration did: files rewritten, event rows given new ids, rows dropped as
    the same transaction stored twice, late rows given new ids."""

    files: int = 0
    events: int = 0
    duplicates: int = 0
    late: int = 0


def migrate_event_ids(offline_dir: Path) -> Migrated:
    """Give every stored event (and late event) its content id, keep one row per id; see
    the module docstring. A store of content ids is left as it is."""
    sentinel = next(iter(event_files(offline_dir)), None)
    deferred: list[tuple[pa.Table, Path]] = []
    totals = [0, 0, 0, 0]
    for day, files in sorted(files_by_day(events_dir(offline_dir)).items()):
        renamed, tables = _new_ids(files)
        if not renamed:
            continue
        late_dir = late_events_dir(offline_dir) / partition_name(day)
        totals[3] += _migrate_late(partition_files(late_dir), renamed)  # first: see above
        totals[1] += len(renamed)
        seen: set[str] = set()
        for path, table in zip(files, tables):
            kept = _first_of_each_id(table, seen)
            totals[2] += table.num_rows - kept.num_rows
            if path == sentinel:
                deferred.append((kept, path))
            else:
                _rewrite(kept, path)
            totals[0] += 1
    for table, path in deferred:
        _rewrite(table, path)
    return Migrated(*totals)


def _new_ids(files: list[Path]) -> tuple[dict[str, str], list[pa.Table]]:
    """The day's tables, their old ids replaced by content ids; and the old -> new map."""
    tables = []
    for path in files:
        with reading(path), parquet_file(path) as stored:
            tables.append(stored.read())
    rows = [(t, r) for t, table in enumerate(tables) for r in range(table.num_rows)]
    columns = [{name: table.column(name).to_pylist() for name in FIELD_NAMES}
               for table in tables]
    old = [(columns[t]["event_id"][r], t, r) for t, r in rows
           if not is_event_id(columns[t]["event_id"][r])]
    renamed: dict[str, str] = {}
    by_source: dict[str, Occurrences] = {}
    for old_id, t, r in sorted(old, key=_file_order):
        source = old_id.rpartition(":")[0]
        event = _event(columns[t], r)
        placed = by_source.setdefault(source, Occurrences()).placed(event)
        renamed[old_id] = columns[t]["event_id"][r] = placed.event_id
    new_tables = [table.set_column(table.schema.get_field_index("event_id"), "event_id",
                                   pa.array(columns[t]["event_id"], pa.string()))
                  for t, table in enumerate(tables)]
    return renamed, new_tables


def _file_order(item: tuple[str, int, int]) -> tuple[str, int, str]:
    """An old id's source and line, for sorting (an id without a line number last)."""
    source, _, line = item[0].rpartition(":")
    return (source, int(line), "") if line.isdigit() else (item[0], -1, item[0])


def _event(columns: dict[str, list], row: int) -> Transaction:
    """One stored row as a Transaction with its content id (occurrence 1)."""
    values = {name: columns[name][row] for name in FIELD_NAMES}
    values["ts"] = int(values["ts"].timestamp())
    content = [values[name] for name in ("invoice", "stock_code", "description", "quantity",
                                         "unit_price", "ts", "customer_id", "country")]
    return Transaction(**(values | {"event_id": event_id(*content)}))


def _first_of_each_id(table: pa.Table, seen: set[str]) -> pa.Table:
    """The rows of ``table`` whose id is not in ``seen`` nor earlier in the table; each
    kept id is added to ``seen``."""
    keep = []
    for event in table.column("event_id").to_pylist():
        keep.append(event not in seen)
        seen.add(event)
    return table.filter(pa.array(keep, pa.bool_()))


def _migrate_late(files: list[Path], renamed: dict[str, str]) -> int:
    """Late rows of one day: old ids replaced through ``renamed``, one row per id;
    return how many rows got a new id."""
    changed = 0
    seen: set[str] = set()
    for path in files:
        with reading(path), parquet_file(path) as stored:
            table = stored.read()
        ids = table.column("event_id").to_pylist()
        new = [renamed.get(i, i) for i in ids]
        changed += sum(a != b for a, b in zip(ids, new))
        table = table.set_column(table.schema.get_field_index("event_id"), "event_id",
                                 pa.array(new, pa.string()))
        _rewrite(_first_of_each_id(table, seen), path)
    return changed


def _rewrite(table: pa.Table, path: Path) -> None:
    """Replace ``path`` with ``table`` atomically; remove it when no row is left."""
    if table.num_rows == 0:
        path.unlink()
    else:
        write_atomically(table, path.parent, path.name)
