"""Damaged files of the offline store met by the batch commands (``report``, ``backfill
--from-offline``, ``historical``) and by ``check``: each names the file in one ``Error:``
line, ``report`` still reports the good days, and ``check --repair`` sets the file aside
in ``quarantine/``. The data directory's name holds both quotes, as a path may: paths
reach DuckDB as parameters, never as SQL text.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from tests.user_errors import one_error_line

from basketflow.config import ENV_DATA_DIR, ENV_KAFKA, ENV_REDIS
from basketflow.producers.synthetic import write_csv
from basketflow.sinks.offline_layout import (
    event_files,
    events_dir,
    feature_log_files,
    partition_name,
)

ODD = "it's \"odd\""
BAD_DAY = date(2010, 12, 3)


def command(data_dir: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real command on ``data_dir``, without servers."""
    env = {k: v for k, v in os.environ.items() if k not in (ENV_KAFKA, ENV_REDIS)}
    env[ENV_DATA_DIR] = str(data_dir)
    return subprocess.run([sys.executable, "-m", "basketflow.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory named with both quotes, with the events and feature log of a
    backfill of generated lines (10 days of December 2010)."""
    root = tmp_path_factory.mktemp("damaged")
    source = root / "lines.csv"
    write_csv(source, rows=4_000, seed=3, start=date(2010, 12, 1), end=date(2010, 12, 10))
    data = root / ODD
    done = command(data, "backfill", "--from", str(source), "--processes", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    return data


@pytest.fixture
def damaged(store: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the store (under a name with quotes) whose first event file of
    :data:`BAD_DAY` is empty; the data directory and that file."""
    data = tmp_path / ODD
    subprocess.run(["cp", "-a", str(store), str(data)], check=True)
    bad = sorted((events_dir(data / "offline") / partition_name(BAD_DAY)).glob("*.parquet"))[0]
    bad.write_bytes(b"")
    return data, bad


def test_report_writes_the_good_days_and_names_the_bad_one(damaged: tuple[Path, Path],
                                                           tmp_path: Path) -> None:
    data, bad = damaged
    out = tmp_path / "reports"
    done = command(data, "report", "--from", "2010-12-01", "--to", "2010-12-06",
                   "--out", str(out), "--format", "json")
    one_error_line(done, str(bad), BAD_DAY.isoformat(), "basketflow check --repair")
    written = sorted(p.name for p in out.iterdir() if p.is_dir())  # the days, not index.html
    assert written == ["2010-12-01", "2010-12-02", "2010-12-04", "2010-12-05", "2010-12-06"]
    later = json.loads((out / "2010-12-06" / "report.json").read_text())
    assert later["status"] == "trading"
    assert BAD_DAY.isoformat() not in later["comparison"]["trailing_days"]


def test_backfill_from_offline_names_the_file(damaged: tuple[Path, Path]) -> None:
    data, bad = damaged
    one_error_line(command(data, "backfill", "--from-offline", "--processes", "1"),
                   str(bad), "basketflow check --repair")


def test_historical_names_a_damaged_feature_log_file(damaged: tuple[Path, Path],
                                                     tmp_path: Path) -> None:
    data, _ = damaged
    log_file = feature_log_files(data / "offline", "customer")[0]
    log_file.write_bytes(log_file.read_bytes()[:100])
    labels = tmp_path / "labels.csv"
    labels.write_text("customer_id,timestamp\n17850,2010-12-20T00:00:00\n")
    one_error_line(command(data, "historical", "--entities", str(labels), "--features",
                           "customer:spend_30d", "--out", str(tmp_path / "train.parquet")),
                   str(log_file), "basketflow check --repair")


def test_check_finds_repairs_and_says_how_to_restore(damaged: tuple[Path, Path]) -> None:
    data, bad = damaged
    found = command(data, "check", "--json")
    one_error_line(found, "basketflow check --repair")
    report = json.loads(found.stdout)
    assert [(f["path"], f["reason"]) for f in report["findings"]] == [(str(bad), "empty file")]
    assert report["offline_files"] == len(list((data / "offline").rglob("*.parquet")))

    repaired = command(data, "check", "--repair")
    assert repaired.returncode == 0, repaired.stderr
    assert "backfill --from" in repaired.stdout and "quarantine" in repaired.stdout
    assert max(len(line) for line in repaired.stdout.splitlines()) <= 80
    moved = data / "quarantine" / bad.relative_to(data)
    assert moved.is_file() and moved.stat().st_size == 0 and not bad.exists()
    assert bad not in event_files(data / "offline")
    assert command(data, "check").returncode == 0
    assert command(data, "backfill", "--from-offline", "--processes", "1").returncode == 0
