"""Compaction of the feature log changes nothing a reader sees.

A seeded stream of customer log rows is written by the real writer (``FeatureLog``) in
many small flushes, as a live flow writes it; ``historical`` over random label rows is
taken before and must be equal after: a compaction, each state a kill can leave behind
(the compacted file renamed in with none, some or all of the old files still there, a
temporary file left over), rows written to a day after its compaction, and a second
compaction (which must do nothing). The stream's days are one month, which a compaction
of the whole store then moves into a month file (tests/sinks/test_month_files.py); the
tests of days alone compact each day folder.
"""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest

from basketflow.reports.historical import get_historical_features
from basketflow.schemas.records import LogRow
from basketflow.sinks.compacted_files import is_compacted, replaced_by
from basketflow.sinks.compaction import Compacted, compact_day, compact_store
from basketflow.sinks.offline_layout import (
    feature_log_dir,
    feature_log_files,
    files_by_day,
    files_of,
)
from basketflow.sinks.offline_store import FeatureLog

DEC_1 = 1_291_161_600
CUSTOMERS = [str(12_346 + i) for i in range(40)]
FEATURES = ["customer:spend_7d", "customer:orders_30d", "customer:first_purchase",
            "customer:lifetime_spend"]


def stream(seed: int, rows: int) -> list[LogRow]:
    """Seeded log rows over four days: random customers, times and values, several rows
    of one customer in one second (by ``seq``)."""
    rng = random.Random(seed)
    log = FeatureLog(Path("unused"), "customer")
    out: list[LogRow] = []
    seqs: dict[str, int] = {}
    for _ in range(rows):
        entity = rng.choice(CUSTOMERS)
        seqs[entity] = seqs.get(entity, 0) + 1
        values = {}
        for feature in log.view.log_features:
            if rng.random() < 0.1:
                values[feature.name] = None
            elif feature.dtype == "float":
                values[feature.name] = round(rng.uniform(0, 500), 2)
            else:
                values[feature.name] = rng.randrange(0, 1000) if feature.dtype == "int" \
                    else DEC_1 + rng.randrange(0, 4 * 86_400)
        out.append(LogRow("customer", entity, DEC_1 + rng.randrange(0, 4 * 86_400),
                          seqs[entity], values))
    return out


def write_in_flushes(root: Path, rows: list[LogRow], flush: int) -> None:
    """The rows written ``flush`` at a time, one file per flush per day touched."""
    log = FeatureLog(root, "customer")
    for start in range(0, len(rows), flush):
        log.append(rows[start:start + flush])


def labels(seed: int, n: int = 400) -> pd.DataFrame:
    """Label rows at random times over the log's days and a little after."""
    rng = random.Random(seed)
    return pd.DataFrame({
        "customer_id": [int(rng.choice(CUSTOMERS)) for _ in range(n)],
        "timestamp": pd.to_datetime([DEC_1 + rng.randrange(0, 5 * 86_400) for _ in range(n)],
                                    unit="s")})


def training(root: Path, seed: int) -> pd.DataFrame:
    return get_historical_features(root, labels(seed), FEATURES)


def day_folders(root: Path) -> list[Path]:
    return sorted(feature_log_dir(root, "customer").glob("date=*"))


def day_files(root: Path) -> list[Path]:
    """The counted files of the log's day partitions (not its month files)."""
    return files_of(files_by_day(feature_log_dir(root, "customer")))  # type: ignore[return-value]


def compact_days(root: Path) -> Compacted:
    """Each day folder of the log compacted (no month file made)."""
    done = Compacted()
    for folder in day_folders(root):
        done.add(compact_day(folder))
    return done


@pytest.fixture(params=[1, 2])
def written(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, int, pd.DataFrame]:
    """A log of a seeded stream in small flushes, and its training set before compaction."""
    seed = request.param
    write_in_flushes(tmp_path, stream(seed, 1500), flush=37)
    return tmp_path, seed, training(tmp_path, seed)


def test_compaction_keeps_the_training_set_and_leaves_one_file_a_day(
        written: tuple[Path, int, pd.DataFrame]) -> None:
    root, seed, before = written
    files_before = len(feature_log_files(root, "customer"))
    done = compact_days(root)
    assert done.days == len(day_folders(root)) and done.files_replaced == files_before
    assert done.rows == 1500 and done.files_deleted == files_before
    assert all([p.name for p in folder.glob("*.parquet")] == [
        next(iter(folder.glob("compact-*.parquet"))).name] for folder in day_folders(root))
    pd.testing.assert_frame_equal(training(root, seed), before)
    # idempotent: nothing more to do, the files stay as they are
    names = sorted(p.name for p in feature_log_files(root, "customer"))
    again = compact_days(root)
    assert (again.days, again.files_deleted) == (0, 0)
    assert sorted(p.name for p in feature_log_files(root, "customer")) == names


@pytest.mark.parametrize("deleted_share", [0.0, 0.5])
def test_every_state_a_kill_leaves_counts_each_row_once(
        written: tuple[Path, int, pd.DataFrame], deleted_share: float) -> None:
    root, seed, before = written
    folders = day_folders(root)
    old = {folder: sorted(p.name for p in folder.glob("*.parquet")) for folder in folders}
    for folder in folders:  # killed after the rename: none or some old files deleted
        compact_day(folder, keep_seconds=3600)
        names = old[folder]
        for name in names[:int(len(names) * deleted_share)]:
            (folder / name).unlink()
        (folder / ".compact-left-over.parquet.tmp").write_bytes(b"PAR1 cut short")
    counted = feature_log_files(root, "customer")
    assert all(is_compacted(p) for p in counted) and len(counted) == len(folders)
    pd.testing.assert_frame_equal(training(root, seed), before)
    done = compact_days(root)  # run again: the deletes are finished
    assert done.days == 0 and all(
        [p.name for p in folder.glob("*.parquet")] == [p.name for p in
                                                       folder.glob("compact-*.parquet")]
        for folder in folders)
    pd.testing.assert_frame_equal(training(root, seed), before)
    done = compact_store(root)  # and the month moved into one file
    assert done.days == 0 and done.months == 1 and day_files(root) == []
    pd.testing.assert_frame_equal(training(root, seed), before)


def test_rows_written_after_a_compaction_count_and_are_compacted_next_time(
        tmp_path: Path) -> None:
    rows = stream(3, 1200)
    write_in_flushes(tmp_path, rows[:800], flush=50)
    compact_days(tmp_path)
    first = {f.parent.name: f.name for f in day_files(tmp_path)}
    write_in_flushes(tmp_path, rows[800:], flush=50)  # more rows for the same days
    reference = tmp_path / "reference"
    write_in_flushes(reference, rows, flush=1200)
    pd.testing.assert_frame_equal(training(tmp_path, 3), training(reference, 3))
    done = compact_days(tmp_path)
    assert done.days == len(day_folders(tmp_path)) == len(first)
    for path in day_files(tmp_path):
        assert first[path.parent.name] in replaced_by(path)  # the first compacted file too
        assert [p.name for p in path.parent.glob("*.parquet")] == [path.name]
    pd.testing.assert_frame_equal(training(tmp_path, 3), training(reference, 3))
    # the writer still knows every stored row: writing them again adds nothing
    assert FeatureLog(tmp_path, "customer").append(rows) == 0


def test_compact_command_says_what_it_did(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from basketflow.cli import cli
    data = tmp_path / "data"
    write_in_flushes(data / "offline", stream(4, 300), flush=30)
    files = len(feature_log_files(data / "offline", "customer"))
    result = CliRunner().invoke(cli, ["--data-dir", str(data), "compact", "--json"])
    assert result.exit_code == 0, result.output
    assert '"files_replaced": %d' % files in result.output
    assert day_files(data / "offline") == []  # moved into a month file
    assert '"months": 1' in result.output


@pytest.mark.slow
@pytest.mark.parametrize("compacted_first", [1, 3])
def test_a_real_kill_mid_compaction_counts_each_row_once(tmp_path: Path,
                                                         compacted_first: int) -> None:
    """``basketflow compact`` killed with SIGKILL as soon as it has renamed
    ``compacted_first`` compacted files in (so mid-way: some days done, one perhaps with
    its old files still there, the rest not begun); ``historical`` is what it was, and a
    second run finishes the job."""
    import os
    import signal
    import subprocess
    import sys
    import time

    data = tmp_path / "data"
    write_in_flushes(data / "offline", stream(5, 3000), flush=15)
    before = training(data / "offline", 5)
    log_dir = feature_log_dir(data / "offline", "customer")
    proc = subprocess.Popen([sys.executable, "-m", "basketflow.cli", "--data-dir", str(data),
                             "compact"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list(log_dir.glob("*/compact-*.parquet"))) < compacted_first:
        assert proc.poll() is None and time.monotonic() < deadline, "compact ended first"
        time.sleep(0.001)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert any(len(list(folder.glob("*.parquet"))) > 1 for folder in day_folders(data / "offline"))
    pd.testing.assert_frame_equal(training(data / "offline", 5), before)
    compact_store(data / "offline")
    assert day_files(data / "offline") == []  # every day merged, then the month moved
    assert not any(list(folder.glob("*.parquet")) for folder in day_folders(data / "offline"))
    pd.testing.assert_frame_equal(training(data / "offline", 5), before)


def test_beside_a_flow_only_closed_days_are_compacted_and_deletes_wait_a_pass(
        written: tuple[Path, int, pd.DataFrame]) -> None:
    import time

    from basketflow.sinks.compaction import OPEN_DAYS, compacting
    root, seed, before = written
    folders = day_folders(root)
    closed, open_ = folders[:-OPEN_DAYS], folders[-OPEN_DAYS:]
    open_names = {f: sorted(p.name for p in f.glob("*.parquet")) for f in open_}
    with compacting(root, every=0.1):
        deadline = time.monotonic() + 60
        while not all(len(list(f.glob("*.parquet"))) == 1 for f in closed):
            assert time.monotonic() < deadline, "closed days not compacted within 60 s"
            time.sleep(0.05)
    assert all(sorted(p.name for p in f.glob("*.parquet")) == names
               for f, names in open_names.items())
    pd.testing.assert_frame_equal(training(root, seed), before)
