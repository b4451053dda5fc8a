"""Closed months of the feature log stored once: a compaction moves a closed month's rows
into one month file and deletes the day files it holds, and every reader answers as
before, in each state a kill leaves behind.

The answers compared (:func:`answers`): ``historical`` at random times (the whole log),
drift's samples of each day and a day's drift report (readers by day), the row ids the
writer reads back for each day (its idempotent writes), and the days the log spans. The
month is December 2010: the seeded stream of tests/sinks/test_compaction.py spans its
first four days.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from tests.object_stores import (  # noqa: F401 (fixtures)
    azure_server, gcs_server, offline_root, s3_server)
from tests.sinks.test_compaction import stream, training, write_in_flushes, written  # noqa: F401

from basketflow.app.check import check
from basketflow.config import Settings
from basketflow.offline_uri import StoreDir
from basketflow.reports.drift import drift_report, view_samples
from basketflow.schemas.features import registry
from basketflow.sinks.compaction import compact_months, compact_store
from basketflow.sinks.month_files import all_month_files, is_month_file
from basketflow.sinks.offline_layout import (
    CorruptFile,
    feature_log_days,
    feature_log_dir,
    feature_log_files,
    files_by_day,
    files_of,
)
from basketflow.sinks.offline_store import FeatureLog

DAYS = [date(2010, 12, d) for d in range(1, 5)]


def log_dir(root: StoreDir) -> StoreDir:
    return feature_log_dir(root, "customer")


def day_files(root: StoreDir) -> list[StoreDir]:
    """The counted files of the log's day folders (not its month files)."""
    return files_of(files_by_day(log_dir(root)))


def on_disk(root: Path) -> int:
    """Rows in every finished Parquet file of the log, wherever it lies: what the store
    holds on disk."""
    return sum(pq.ParquetFile(p).metadata.num_rows for p in log_dir(root).rglob("*.parquet")
               if not p.name.startswith((".", "_")))


def answers(root: StoreDir, seed: int) -> dict[str, Any]:
    """What every reader of the log gives (see the module docstring)."""
    view = registry()["customer"]
    samples = {str(day): sorted(map(str, view_samples(root, view, [day]).to_pylist()))
               for day in DAYS}
    report = drift_report(root, DAYS[3], reference=(DAYS[0], DAYS[2])).to_json()
    log = FeatureLog(root, "customer")
    ids = {str(day): sorted(log._ids_in(str(day))) for day in DAYS}
    return {"training": training(root, seed), "samples": samples, "report": report,
            "ids": ids, "days": feature_log_days(root, "customer")}


def assert_same(found: dict[str, Any], expected: dict[str, Any]) -> None:
    pd.testing.assert_frame_equal(found.pop("training"), expected["training"])
    assert found == {k: v for k, v in expected.items() if k != "training"}


def test_a_closed_month_is_stored_once_and_read_the_same(
        written: tuple[Path, int, pd.DataFrame]) -> None:
    root, seed, _before = written
    before = answers(root, seed)
    done = compact_store(root)
    assert done.months == 1 and day_files(root) == []  # the month's day files are gone
    assert on_disk(root) == 1500  # each row once
    [span] = feature_log_files(root, "customer")
    assert is_month_file(span)
    # a reader up to a day inside the month gets the month file (and cuts rows by ts)
    assert feature_log_files(root, "customer", until=DAYS[1]) == [span]
    assert_same(answers(root, seed), before)
    again = compact_store(root)  # idempotent
    assert (again.days, again.months, again.files_deleted) == (0, 0, 0)
    assert feature_log_files(root, "customer") == [span]


@pytest.mark.parametrize("deleted_share", [0.0, 0.5, 1.0])
def test_every_state_a_kill_leaves_counts_each_row_once(
        written: tuple[Path, int, pd.DataFrame], deleted_share: float) -> None:
    """The month file renamed in (a temporary one of a later try left over), none, some
    or all of the day files it holds deleted; then a compaction finishes the job."""
    root, seed, _before = written
    before = answers(root, seed)
    held = day_files(root)
    assert compact_months(log_dir(root), keep_seconds=3600).months == 1  # no delete yet
    [span] = all_month_files(log_dir(root))
    (span.parent / ".span-left-over.parquet.tmp").write_bytes(b"PAR1 cut short")
    for path in held[:int(len(held) * deleted_share)]:
        path.unlink()
    assert_same(answers(root, seed), before)
    compact_store(root)
    assert day_files(root) == [] and on_disk(root) == 1500
    assert_same(answers(root, seed), before)


def test_rows_written_to_a_moved_month_count_once_and_are_moved_next_time(
        tmp_path: Path) -> None:
    rows = stream(3, 1200)
    write_in_flushes(tmp_path, rows[:800], flush=50)
    compact_store(tmp_path)
    assert FeatureLog(tmp_path, "customer").append(rows[:800]) == 0  # a replay adds nothing
    assert on_disk(tmp_path) == 800
    [first] = feature_log_files(tmp_path, "customer")
    write_in_flushes(tmp_path, rows[800:], flush=50)  # late rows for the month's days
    reference = tmp_path / "reference"
    write_in_flushes(reference, rows, flush=1200)
    expected = answers(reference, 3)
    assert_same(answers(tmp_path, 3), expected)
    # killed after the new month file's rename: the old one and the late files still there
    assert compact_months(log_dir(tmp_path), keep_seconds=3600).months == 1
    assert first.exists() and len(day_files(tmp_path)) > 0
    assert_same(answers(tmp_path, 3), expected)
    compact_store(tmp_path)
    assert not first.exists() and day_files(tmp_path) == [] and on_disk(tmp_path) == 1200
    assert_same(answers(tmp_path, 3), expected)
    assert FeatureLog(tmp_path, "customer").append(rows) == 0


def test_a_copy_of_an_earlier_version_is_never_read_and_is_deleted(
        written: tuple[Path, int, pd.DataFrame]) -> None:
    """A month file of the version that copied months (footer ``basketflow.days``, its
    day files kept) holds rows its day files hold too: it is left out, then replaced."""
    import pyarrow as pa
    root, seed, _before = written
    before = answers(root, seed)
    tables = [pq.read_table(p) for p in day_files(root)]
    copy = pa.concat_tables(tables).replace_schema_metadata({b"basketflow.days": b"{}"})
    folder = log_dir(root) / "months" / "month=2010-12"
    folder.mkdir(parents=True)
    pq.write_table(copy, folder / "span-copy.parquet")
    assert feature_log_files(root, "customer") == day_files(root)
    assert_same(answers(root, seed), before)
    compact_store(root)
    assert not (folder / "span-copy.parquet").exists() and on_disk(root) == 1500
    assert_same(answers(root, seed), before)


def test_a_damaged_month_file_is_named_and_set_aside_by_check(
        written: tuple[Path, int, pd.DataFrame], tmp_path: Path) -> None:
    root, seed, _before = written
    compact_store(root)
    settings = Settings(tmp_path / "data", None, None, offline_store=root)
    assert check(settings).ok
    [span] = feature_log_files(root, "customer")
    span.write_bytes(span.read_bytes()[:-100])
    with pytest.raises(CorruptFile, match=span.name):  # never silently fewer rows
        training(root, seed)
    assert [f.path for f in check(settings).findings] == [span]
    [finding] = check(settings, repair=True).findings
    assert finding.moved_to is not None and not span.exists()
    assert "backfill --from-offline" in finding.restore and check(settings).ok


def test_a_compacted_store_copied_to_any_store_reads_the_same(
        offline_root: StoreDir, tmp_path: Path) -> None:
    """Compaction runs on a local store; its files copied to object storage (S3, GCS,
    Azure) or another folder give every reader the same answers, replays included."""
    rows = stream(7, 600)
    local = tmp_path / "local"
    write_in_flushes(local, rows, flush=40)
    compact_store(local)
    write_in_flushes(local, rows[::7], flush=40)  # replayed: nothing new
    write_in_flushes(local, stream(8, 60), flush=20)  # late rows beside the month file
    expected = answers(local, 7)
    for path in log_dir(local).rglob("*.parquet"):
        target = offline_root / path.relative_to(local).as_posix()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    assert_same(answers(offline_root, 7), expected)
    assert FeatureLog(offline_root, "customer").append(rows) == 0
    assert check(Settings(tmp_path / "data", None, None, offline_store=offline_root)).ok


def test_a_backfilled_store_reports_and_profiles_the_same_once_its_months_are_moved(
        tmp_path: Path) -> None:
    """Every view's log of two generated months (``backfill --from FILE``): a day's
    report (its drift and moves sections read the feature logs by day) and the customer
    profiles up to a day inside the moved month (cut by ``until``) are the same after the
    compaction moves March into month files."""
    import shutil

    from basketflow.flows.backfill import file_events, run_backfill
    from basketflow.flows.live import FeatureOutputs, RunOptions
    from basketflow.producers.synthetic import write_csv
    from basketflow.reports.daily import daily_report
    from basketflow.reports.profiles import customer_profiles
    source = tmp_path / "events.csv"
    write_csv(source, rows=2_000, seed=17, start=date(2011, 3, 1), end=date(2011, 4, 10))
    root = tmp_path / "offline"
    run_backfill(file_events(source, [0]), FeatureOutputs(None, "x", root), RunOptions())
    moved = tmp_path / "moved"
    shutil.copytree(root, moved)
    assert compact_store(moved, open_days=2).months == 3  # March, of each view
    assert not list(feature_log_dir(moved, "customer").glob("date=2011-03-*/*.parquet"))
    day, until = date(2011, 3, 29), date(2011, 3, 15)
    report, expected = daily_report(moved, day), daily_report(root, day)
    assert report.pop("store")["path"] != expected.pop("store")["path"]
    assert report == expected and report["sections"]["drift"]["available"]
    pd.testing.assert_frame_equal(customer_profiles(moved, until), customer_profiles(root, until))
