"""Faults met when ``basketflow run`` starts: a damaged file of the offline store, a damaged
recovery partition, no Redis. Each stops the real command before its dataflow starts,
with one ``Error:`` line naming what is wrong and what to do: no Rust panic, no Python
traceback.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from tests.flows.test_recovery import cli_env
from tests.test_end_to_end import basketflow
from tests.user_errors import one_error_line

from basketflow.config import Settings
from basketflow.producers.synthetic import write_csv
from basketflow.sinks.offline_layout import event_days, events_dir, partition_name

ROWS = 2_000


def run_command(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command with the test's servers; its output, whatever its status."""
    return subprocess.run([sys.executable, "-m", "basketflow.cli", *args],
                          env=cli_env(settings), capture_output=True, text=True, timeout=300)


@pytest.fixture
def small_topic(settings: Settings, tmp_path: Path) -> Settings:
    """A few thousand generated lines replayed into the test's topic."""
    source = tmp_path / "small.csv"
    write_csv(source, rows=ROWS, seed=5, start=date(2010, 12, 1), end=date(2010, 12, 20))
    basketflow(settings, "replay", str(source))
    return settings


@pytest.mark.slow
@pytest.mark.parametrize("content", [b"", b"PAR1 half of a file, cut short"])
def test_a_damaged_event_file_stops_run_naming_it(small_topic: Settings, content: bytes) -> None:
    """An empty or cut-short event file on a day the topic's events fall on: the flow
    would read the day's stored ids back from it. The run stops before its flow starts,
    naming the file, every time, until `check --repair` sets it aside; then the run
    stores every event."""
    bad = events_dir(small_topic.offline_dir) / partition_name("2010-12-01") / "part-bad.parquet"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(content)
    for _ in range(2):
        one_error_line(run_command(small_topic, "run", "--stop-at-end"),
                       str(bad), "basketflow check --repair")
    repaired = run_command(small_topic, "check", "--repair")
    assert repaired.returncode == 0, repaired.stderr
    assert not bad.exists()
    assert (small_topic.data_dir / "quarantine" / "offline" / bad.relative_to(
        small_topic.offline_dir)).read_bytes() == content
    done = run_command(small_topic, "run", "--stop-at-end", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    assert date(2010, 12, 1) in event_days(small_topic.offline_dir)
    assert run_command(small_topic, "check").returncode == 0


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_redis_unreachable_at_start_is_one_line(small_topic: Settings) -> None:
    nowhere = replace(small_topic, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    done = run_command(nowhere, "run", "--stop-at-end")
    one_error_line(done, nowhere.redis_url or "", "basketflow up")
    assert len(done.stderr.splitlines()) < 5, done.stderr


@pytest.mark.slow
def test_a_truncated_recovery_partition_is_one_line(small_topic: Settings) -> None:
    """A first run leaves recovery partitions; one cut to half its size stops the next
    run naming the file and the way out."""
    first = run_command(small_topic, "run", "--stop-at-end", "--one-process")
    assert first.returncode == 0, first.stderr[-3000:]
    parts = sorted((small_topic.recovery_dir / small_topic.topic).glob("part-*.sqlite3"))
    assert parts
    victim = max(parts, key=lambda p: p.stat().st_size)
    with open(victim, "r+b") as f:
        f.truncate(victim.stat().st_size // 2)
    one_error_line(run_command(small_topic, "run", "--stop-at-end", "--one-process"),
                   str(victim), "basketflow check --repair")
    repaired = run_command(small_topic, "check", "--repair")
    assert repaired.returncode == 0, repaired.stderr
    again = run_command(small_topic, "run", "--stop-at-end", "--one-process")
    assert again.returncode == 0, again.stderr[-3000:]
