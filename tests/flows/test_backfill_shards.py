"""A backfill split over several processes (flows/backfill.py, flows/shards.py) ends with
the stores exactly as one process leaves them, on the project's generated data."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from tests.store_contents import differences, effective_rows, parquet_rows, store_contents

import basketflow.flows.backfill as backfill_module
from basketflow.config import Settings
from basketflow.flows.backfill import file_events, offline_events, run_backfill
from basketflow.flows.live import FeatureOutputs, RunOptions
from basketflow.flows.shards import EntityShard, plan
from basketflow.producers.synthetic import write_csv
from basketflow.schemas.events import parse_row
from basketflow.sinks.flow_sinks import FlowStats
from basketflow.sinks.store_writes import StoreUnwritable


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated lines over four months: thousands of customers, guests and products."""
    path = tmp_path_factory.mktemp("shards") / "events.csv"
    write_csv(path, rows=12_000, seed=11, start=date(2011, 2, 1), end=date(2011, 5, 31))
    return path


def backfilled(settings: Settings, source: Path, name: str, processes: int,
               ) -> tuple[FlowStats, dict[str, Any]]:
    """Backfill ``source`` into a store of its own (and Redis under its own prefix) with
    ``processes`` processes; its counters and the stores' contents, keys without prefix."""
    assert settings.redis_url
    prefix, offline = f"{settings.prefix}-{name}", settings.data_dir / name
    stats = run_backfill(file_events(source, [0]), FeatureOutputs(settings.redis_url, prefix,
                                                                  offline),
                         RunOptions(snapshot_seconds=3600), processes=processes)
    contents = store_contents(settings.redis_url, prefix, offline)
    contents["redis"] = {k.removeprefix(prefix): v for k, v in contents["redis"].items()}
    contents["late"] = parquet_rows(offline / "late", ["event_id"])
    return stats, contents


def test_two_and_three_processes_write_what_one_writes(settings: Settings,
                                                       generated: Path) -> None:
    one_stats, one = backfilled(settings, generated, "one", 1)
    assert len(one["events"]) == one_stats.offline_rows > 10_000
    assert len(one["customer_log"]) > 300 and len(one["product_final"]) > 100
    assert any(":guest-" in key for key in one["redis"])  # guests are entities too
    for processes in (2, 3):
        stats, many = backfilled(settings, generated, f"p{processes}", processes)
        assert differences(many, one) == [], processes
        assert (stats.offline_rows, stats.online_writes > 0, stats.late_events) == \
            (one_stats.offline_rows, True, one_stats.late_events)


def test_every_customer_row_is_the_same_not_only_those_in_effect(tmp_path: Path,
                                                                 generated: Path) -> None:
    """Each process reads the same batches: a batch boundary inside one customer's event
    time writes the same superseded row too. Small batches make many such boundaries."""
    logs = []
    for processes in (1, 2):
        offline = tmp_path / str(processes)
        run_backfill(file_events(generated, [0]), FeatureOutputs(None, "x", offline),
                     RunOptions(), batch=700, processes=processes)
        logs.append({view: parquet_rows(offline / "features" / view,
                                        ["entity_id", "ts", "seq"])
                     for view in ("customer", "basket")})
    assert logs[0] == logs[1]


def test_a_second_backfill_over_two_processes_writes_nothing(tmp_path: Path,
                                                             generated: Path) -> None:
    offline = tmp_path / "offline"

    def run(processes: int) -> FlowStats:
        return run_backfill(file_events(generated, [0]), FeatureOutputs(None, "x", offline),
                            RunOptions(), processes=processes)

    first = run(1)
    events = parquet_rows(offline / "events", ["event_id"])
    again = run(2)
    assert first.offline_rows > 0 and first.feature_rows > 0
    assert (again.offline_rows, again.feature_rows) == (0, 0)
    assert parquet_rows(offline / "events", ["event_id"]) == events


def test_a_split_backfill_from_the_offline_store_writes_what_one_writes(
        tmp_path: Path, generated: Path) -> None:
    """Every process runs the store's query itself (DuckDB in the forked processes)."""
    stored = tmp_path / "stored"
    run_backfill(file_events(generated, [0]), FeatureOutputs(None, "x", stored), RunOptions())
    logs = []
    for processes in (1, 2):
        offline = tmp_path / str(processes)
        shutil.copytree(stored / "events", offline / "events")
        stats = run_backfill(offline_events(offline),
                             FeatureOutputs(None, "x", offline, store_events=False),
                             RunOptions(), processes=processes)
        assert stats.feature_rows > 0 and stats.offline_rows == 0
        logs.append({view: effective_rows(offline / "features" / view, key) for view, key in
                     (("customer", "ts"), ("basket", "ts"), ("product", "entity_id"))})
    assert logs[0] == logs[1]


def test_the_shards_split_every_entity_and_day_once() -> None:
    shards = plan(5)
    events = [parse_row([str(i), f"2{i % 40:04d}", "HEART", "1", f"3/{1 + i % 30}/2011 10:00",
                         "2.0", f"1{i % 70:04d}", "UK"], f"f:{i}") for i in range(400)]
    for kind, keep in (("customer", EntityShard.customer_events),
                       ("product", EntityShard.product_lines),
                       ("product", EntityShard.day_events)):  # each run by its kind's shards
        owners = [s for s in shards if s.kind == kind]
        kept = [e.event_id for s in owners for e in keep(s, events)]
        assert sorted(kept) == sorted(e.event_id for e in events)
        assert sum(1 for s in owners if keep(s, events)) > 1
    with pytest.raises(ValueError):
        EntityShard("customer", 3, 3)
    with pytest.raises(ValueError):
        plan(1)


def test_an_error_in_a_forked_process_stops_the_backfill(
        tmp_path: Path, generated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The forked processes run this process's code, patched or not."""
    run_shard = backfill_module._run_shard

    def failing(events: Any, outputs: FeatureOutputs, options: RunOptions, on_batch: Any,
                batch: int, shard: EntityShard | None) -> FlowStats:
        if shard is not None and shard.kind == "product":
            if outputs.store_events:
                raise StoreUnwritable(f"cannot write {outputs.offline_root} (No space left)")
            raise KeyError("a bug")
        return run_shard(events, outputs, options, on_batch, batch, shard)

    monkeypatch.setattr(backfill_module, "_run_shard", failing)
    with pytest.raises(StoreUnwritable, match="No space left"):
        run_backfill(file_events(generated, [0]), FeatureOutputs(None, "x", tmp_path / "a"),
                     RunOptions(), processes=2)
    with pytest.raises(RuntimeError, match=r"process of product 0/1 failed:(.|\n)*KeyError"):
        run_backfill(file_events(generated, [0]),
                     FeatureOutputs(None, "x", tmp_path / "b", store_events=False),
                     RunOptions(), processes=2)


def test_progress_counts_the_events_every_process_has_read(tmp_path: Path,
                                                           generated: Path) -> None:
    seen: list[int] = []
    run_backfill(file_events(generated, [0]), FeatureOutputs(None, "x", tmp_path),
                 RunOptions(), seen.append, batch=2000, processes=2)
    assert seen == sorted(seen) and seen[-1] == 12_000 and len(seen) >= 6


def test_the_command_splits_over_processes(tmp_path: Path, generated: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "basketflow.cli", "--data-dir",
                           str(tmp_path), "backfill", "--from", str(generated),
                           "--processes", "2", "--json"],
                          capture_output=True, text=True, timeout=120, check=True)
    figures = json.loads(done.stdout)
    assert (figures["events"], figures["offline_rows_written"], figures["processes"]) == \
        (12_000, 12_000, 2)

