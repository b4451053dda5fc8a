"""An event's identity does not depend on its source (issue #20, item 3), through the real
command, broker and Valkey: the same transactions backfilled from a gzipped copy and
replayed from the plain file under another name, or from a file split in two, are
stored once; exact duplicate lines stay distinct events; a store of the old
``<file>:<line>`` ids is refused with one line, and ``check --repair`` migrates it.
"""

from __future__ import annotations

import gzip
import subprocess
from datetime import date
from pathlib import Path

import msgspec
import pyarrow.dataset as ds
import pytest
from tests.cli.commands import basketflow, user_env
from tests.user_errors import one_error_line

from basketflow.config import Settings
from basketflow.producers.csv_source import read_events
from basketflow.producers.synthetic import write_csv
from basketflow.schemas.events import Transaction
from basketflow.schemas.records import LateEvent
from basketflow.sinks.offline_store import LateEventLog, ParquetEventStore

#: Lines of the generated file repeated right after themselves (the same invoice).
REPEATED = (5, 40, 41, 700)


def command(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command with the test's servers and data directory."""
    return basketflow(*args, env=user_env(settings.data_dir, settings), timeout=300)


def ok(settings: Settings, *args: str) -> str:
    """Run the command; assert it succeeded; its output."""
    done = command(settings, *args)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def stored_ids(settings: Settings) -> list[str]:
    """The event_id of every row of the offline event store."""
    table = ds.dataset(settings.offline_dir / "events", format="parquet",
                       partitioning="hive").to_table(columns=["event_id"])
    return table.column("event_id").to_pylist()


@pytest.fixture
def lines(tmp_path: Path) -> list[str]:
    """A generated file's lines (header first) with some lines repeated at once, as the
    real file's exact duplicates are."""
    source = tmp_path / "generated.csv"
    write_csv(source, rows=1500, seed=9, start=date(2011, 3, 1), end=date(2011, 3, 20))
    text = source.read_bytes().decode("latin-1").splitlines(keepends=True)
    out: list[str] = []
    for i, line in enumerate(text):
        out.extend([line, line] if i in REPEATED else [line])
    return out


def write(path: Path, lines: list[str]) -> Path:
    """The lines as a file (gzipped for a ``.gz`` name)."""
    data = "".join(lines).encode("latin-1")
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def test_a_gzipped_copy_backfilled_then_the_plain_file_replayed_stores_each_once(
        settings: Settings, tmp_path: Path, lines: list[str]) -> None:
    """The issue's case: ``backfill --from data.csv.gz`` then a replay of ``data.csv``
    under another name; exact duplicate lines are kept, as distinct events."""
    copy = write(tmp_path / "monday-export.csv.gz", lines)
    plain = write(tmp_path / "data.csv", lines)
    data_lines = len(lines) - 1
    ok(settings, "backfill", "--from", str(copy), "--processes", "1")
    assert len(stored_ids(settings)) == data_lines
    ok(settings, "replay", str(plain))
    ok(settings, "run", "--stop-at-end", "--one-process")
    ids = stored_ids(settings)
    assert len(ids) == len(set(ids)) == data_lines  # duplicates in, nothing twice
    assert sorted(ids) == sorted(e.event_id for e in read_events(plain))


def test_a_file_split_in_two_gives_the_ids_of_the_whole(
        settings: Settings, tmp_path: Path, lines: list[str]) -> None:
    """Split inside an invoice (not between its identical lines), each half replayed,
    after a backfill of the whole file under another name."""
    header, body = lines[0], lines[1:]
    cut = next(i for i in range(len(body) // 2, len(body))
               if body[i].split(",")[0] == body[i - 1].split(",")[0] != body[i + 1].split(",")[0]
               and body[i] != body[i - 1])
    first = write(tmp_path / "part-1.csv", [header, *body[:cut]])
    second = write(tmp_path / "part-2.csv", [header, *body[cut:]])
    whole = write(tmp_path / "whole.csv.gz", lines)
    halves = [e.event_id for path in (first, second) for e in read_events(path)]
    assert halves == [e.event_id for e in read_events(whole)]
    ok(settings, "backfill", "--from", str(whole), "--processes", "1")
    for part in (first, second):
        ok(settings, "replay", str(part))
    ok(settings, "run", "--stop-at-end", "--one-process")
    ids = stored_ids(settings)
    assert len(ids) == len(set(ids)) == len(body)


def old_form(events: list[Transaction], source: str) -> list[Transaction]:
    """The events as the code before content ids named them: ``<source>:<line>``."""
    return [msgspec.structs.replace(e, event_id=f"{source}:{n}")
            for n, e in enumerate(events, start=2)]


def test_a_store_of_old_ids_is_refused_then_migrated_by_check_repair(
        settings: Settings, tmp_path: Path, lines: list[str]) -> None:
    plain = write(tmp_path / "data.csv", lines)
    events = [e for e in read_events(plain) if isinstance(e, Transaction)]
    store = ParquetEventStore(settings.offline_dir)
    # what the old code stored for a backfill of data.csv.gz, then a replay of data.csv
    # (a second file, half of it), and one late event
    store.append(old_form(events, "data.csv.gz"))
    store.append(old_form(events, "data.csv")[: len(events) // 2])
    late = events[100]
    LateEventLog(settings.offline_dir).append(
        [LateEvent("data.csv.gz:102", late.entity_id, late.ts, late.ts + 7200)])
    assert len(stored_ids(settings)) == len(events) + len(events) // 2

    for args in (("backfill", "--from-offline"), ("backfill", "--from", str(plain)),
                 ("run", "--stop-at-end", "--one-process")):
        one_error_line(command(settings, *args), "old form", "basketflow check --repair")
    one_error_line(command(settings, "check"), "damaged file", "basketflow check --repair")

    repaired = ok(settings, "check", "--repair")
    assert "migrated in place" in repaired
    ids = stored_ids(settings)
    assert sorted(ids) == sorted(e.event_id for e in events)  # duplicate lines kept
    late_ids = ds.dataset(settings.offline_dir / "late", format="parquet",
                          partitioning="hive").to_table().column("event_id").to_pylist()
    assert late_ids == [late.event_id]
    assert "nothing damaged" in ok(settings, "check")
    ok(settings, "replay", str(plain))
    ok(settings, "run", "--stop-at-end", "--one-process")
    assert sorted(stored_ids(settings)) == sorted(e.event_id for e in events)


def test_a_recovery_state_of_old_ids_is_refused_then_set_aside(
        settings: Settings, tmp_path: Path, lines: list[str]) -> None:
    """A flow state made before content ids (no marker beside its partitions) would fold
    the same transactions again under their new ids."""
    ok(settings, "replay", str(write(tmp_path / "data.csv", lines)))
    ok(settings, "run", "--stop-at-end", "--one-process")
    state = next(p.parent for p in settings.recovery_dir.rglob("part-*.sqlite3"))
    (state / "content-ids").unlink(missing_ok=True)  # as before content ids
    one_error_line(command(settings, "run", "--stop-at-end", "--one-process"),
                   str(state), "file's name and line", "basketflow check --repair")
    ok(settings, "check", "--repair")
    ok(settings, "run", "--stop-at-end", "--one-process")
    ids = stored_ids(settings)
    assert len(ids) == len(set(ids)) == len(lines) - 1
