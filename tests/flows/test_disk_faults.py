"""Disk faults: a data directory that cannot be written stops the flow with one clear
error, and once the obstacle is gone the next run ends exactly where an uninterrupted
run of the same topic ends.

The tests run as root, for whom permission bits do not stop a write, so the faults are
real ones: a regular file where a date partition directory of the events store must be
created, placed at a later date so the flow fails mid-run after committing earlier
epochs; a data directory that is a file (the start-up check); and, where a private mount
namespace can be made, a tiny tmpfs as the offline store, for a real ENOSPC mid-run.
What is compared is explained in :mod:`store_contents`. Each offline write path (events,
dead letters, feature log, late events, scores) and the model registry is also
shown to raise :class:`~basketflow.sinks.store_writes.StoreUnwritable` on its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.flows.test_recovery import (
    cli_env,
    contents,
    finish,
    isolated,
    replayed,  # noqa: F401  (the fixture these tests start from)
    start_run,
)
from tests.store_contents import differences, store_contents

from basketflow.config import Settings
from basketflow.models.classifier import BasketClassifier
from basketflow.models.registry import ARTIFACTS, Lineage, Registry
from basketflow.producers.csv_source import read_events
from basketflow.producers.synthetic import write_csv
from basketflow.schemas.events import Rejection, Transaction
from basketflow.schemas.records import LateEvent, LogRow, Score, ScoreRow
from basketflow.sinks.offline_store import (
    DeadLetterStore,
    FeatureLog,
    LateEventLog,
    ParquetEventStore,
    ScoreLog,
)
from basketflow.sinks.store_writes import StoreUnwritable

PAGE = 4096


def feature_row(log: FeatureLog, e: Transaction) -> int:
    """Append one customer feature-log row (empty values) for an event."""
    return log.append([LogRow("customer", e.entity_id, e.ts, 1, dict.fromkeys(log.names))])


#: Each offline write path, writing one row of a generated event under ``root``.
WRITES: dict[str, Callable[[Path, Transaction], object]] = {
    "events": lambda root, e: ParquetEventStore(root).append([e]),
    "dead": lambda root, e: DeadLetterStore(root).append(
        [("dead-1", e.ts, Rejection("reason", "raw", e.event_id, "test"))]),
    "features/customer": lambda root, e: feature_row(FeatureLog(root, "customer"), e),
    "late": lambda root, e: LateEventLog(root).append(
        [LateEvent(e.event_id, e.entity_id, e.ts, e.ts)]),
    "scores": lambda root, e: ScoreLog(root).append(
        [ScoreRow(e.entity_id, e.invoice, e.ts, 1, Score("c", {}, "v", e.ts))]),
}


@pytest.mark.parametrize("store", sorted(WRITES))
def test_every_offline_write_path_raises_store_unwritable(store: str, tmp_path: Path) -> None:
    """A file where the store's directory must be: one clear error naming it, no
    temporary file left, and the same write succeeds once the file is gone."""
    source = tmp_path / "one.csv"
    write_csv(source, rows=5, seed=1)
    event = next(e for e in read_events(source) if isinstance(e, Transaction))
    root = tmp_path / "offline"
    obstacle = root / store
    obstacle.parent.mkdir(parents=True)
    obstacle.write_text("in the way")
    with pytest.raises(StoreUnwritable, match=f"cannot write {obstacle}") as err:
        WRITES[store](root, event)
    assert err.value.errno is not None and "run the same command again" in str(err.value)
    assert [p for p in root.rglob("*") if p.is_file()] == [obstacle]
    obstacle.unlink()
    WRITES[store](root, event)
    assert len(list(root.rglob("*.parquet"))) == 1


def test_the_model_registry_raises_store_unwritable(tmp_path: Path) -> None:
    obstacle = tmp_path / "models"
    obstacle.write_text("in the way")
    with pytest.raises(StoreUnwritable, match=f"cannot write {obstacle}"):
        Registry(obstacle)
    obstacle.unlink()
    registry = Registry(obstacle)
    model = BasketClassifier("seg-1")
    (obstacle / ARTIFACTS).rmdir()
    (obstacle / ARTIFACTS).write_text("in the way")
    with pytest.raises(StoreUnwritable, match=f"cannot write {obstacle / ARTIFACTS}"):
        registry.register(model, Lineage.of(model, "flow"), {})
    assert registry.versions() == []


def failed_run(settings: Settings) -> str:
    """Run the flow to the end of the topic, expecting it to fail; return its stderr."""
    proc = start_run(settings)
    _out, err = proc.communicate(timeout=300)
    text = err.decode(errors="replace")
    assert proc.returncode == 1, text[-3000:]
    return text


def error_line(stderr: str) -> str:
    """The one ``Error:`` line the command printed, with no Python traceback."""
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def event_days(settings: Settings) -> list[str]:
    """The date partitions of a run's events store, in order."""
    return sorted(p.name for p in (settings.offline_dir / "events").glob("date=*"))


@pytest.mark.slow
def test_file_in_the_way_of_a_partition_stops_the_flow_then_a_rerun_is_exact(
        replayed: Settings) -> None:
    ref = isolated(replayed, "reference")
    finish(start_run(ref))
    want = contents(ref)
    days = event_days(ref)

    faulty = isolated(replayed, "faulty")
    obstacle = faulty.offline_dir / "events" / days[len(days) * 2 // 3]
    obstacle.parent.mkdir(parents=True)
    obstacle.write_text("not a directory")
    line = error_line(failed_run(faulty))
    assert f"cannot write {obstacle}" in line and "run the same command again" in line, line
    written = event_days(faulty)
    assert days[0] in written and len(written) < len(days), "the failure must come mid-run"

    obstacle.unlink()
    finish(start_run(faulty))
    diffs = differences(contents(faulty), want)
    assert not diffs, "\n".join(diffs)


def test_unwritable_data_directory_fails_at_start(replayed: Settings, tmp_path: Path) -> None:
    """A data directory that is a file: `run` and `backfill` stop at once, clearly."""
    blocked = isolated(replayed, "blocked")
    blocked.data_dir.write_text("a file where the data directory must be")
    line = error_line(failed_run(blocked))
    assert f"cannot write {blocked.data_dir}" in line, line

    source = tmp_path / "generated.csv"
    done = subprocess.run([sys.executable, "-m", "basketflow.cli", "backfill", "--from",
                           str(source)], env=cli_env(blocked), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1, done.stderr[-3000:]
    assert f"cannot write {blocked.data_dir}" in error_line(done.stderr)  # the file in the way


def tmpfs_size(directory: Path) -> int:
    """Bytes the files under a directory take on tmpfs (whole pages)."""
    return sum(-(-p.stat().st_size // PAGE) * PAGE for p in directory.rglob("*") if p.is_file())


#: In a private mount namespace (no effect outside it): a small tmpfs over the offline
#: store, a run that fills it, the tmpfs grown (space freed), a second run, and the
#: store copied out for the comparison. Exit 90: no mount here.
ENOSPC_SCRIPT = """
set -u
mount -t tmpfs -o size="$SMALL" tmpfs "$OFFLINE" || exit 90
"$PYTHON" -m basketflow.cli run --stop-at-end --snapshot-interval 0.2 --max-batch 1000 \
    --json >/dev/null 2>"$LOGS/first.err"
echo $? >"$LOGS/first.rc"
find "$OFFLINE" -name "*.parquet" | wc -l >"$LOGS/first.files"
mount -o remount,size=256m "$OFFLINE" || exit 91
"$PYTHON" -m basketflow.cli run --stop-at-end --snapshot-interval 0.2 --max-batch 1000 \
    --json >/dev/null 2>"$LOGS/second.err"
echo $? >"$LOGS/second.rc"
cp -a "$OFFLINE/." "$COPY"
"""


@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0,
                    reason="a private tmpfs mount needs unshare and root")
@pytest.mark.slow
def test_full_disk_stops_the_flow_then_a_rerun_with_space_is_exact(
        replayed: Settings, tmp_path: Path) -> None:
    ref = isolated(replayed, "reference")
    finish(start_run(ref))
    want = contents(ref)

    full = isolated(replayed, "full")
    full.offline_dir.mkdir(parents=True)
    logs, copy = tmp_path / "logs", tmp_path / "copy"
    logs.mkdir()
    copy.mkdir()
    env = cli_env(full) | {"SMALL": str(tmpfs_size(ref.offline_dir) // 2),
                           "OFFLINE": str(full.offline_dir), "LOGS": str(logs),
                           "COPY": str(copy), "PYTHON": sys.executable}
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                           ENOSPC_SCRIPT], env=env, capture_output=True, text=True,
                          timeout=600)
    if done.returncode == 90:
        pytest.skip(f"cannot mount a tmpfs in a private namespace here: {done.stderr}")
    assert done.returncode == 0, done.stderr[-3000:]

    first = (logs / "first.err").read_text()
    assert (logs / "first.rc").read_text().strip() == "1", first[-3000:]
    line = error_line(first)
    assert "No space left on device" in line and "run the same command again" in line, line
    assert int((logs / "first.files").read_text()) > 0, "the failure must come mid-run"
    assert (logs / "second.rc").read_text().strip() == "0", (logs / "second.err").read_text()

    got = store_contents(full.redis_url or "", full.prefix, copy)
    got["redis"] = {k.removeprefix(full.prefix): v for k, v in got["redis"].items()}
    diffs = differences(got, want)
    assert not diffs, "\n".join(diffs)
