"""The offline store on any filesystem: the same tests on a local folder and on real
object-storage test servers (moto's S3, the GCS emulator and Azurite, started on
loopback by tests/object_stores.py), each on a fresh bucket. What a remote store holds,
and what every reader gets from it, equals the local store's. The commands run as
processes on the S3 store only: they add nothing the in-process tests do not prove for
the other two, at a minute each."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from tests.cli.commands import basketflow, user_env
from tests.object_stores import (  # noqa: F401 (fixtures)
    S3Server, azure_server, gcs_server, offline_root, s3_server)
from tests.sinks.test_offline_store import line
from tests.store_contents import differences, effective_rows, parquet_rows, store_contents

from basketflow.app.check import check
from basketflow.config import Settings
from basketflow.flows.backfill import file_events, offline_events, run_backfill
from basketflow.flows.live import FeatureOutputs, RunOptions
from basketflow.offline_uri import StoreDir, StoreLocationError, StorePath, store_location
from basketflow.producers.synthetic import write_csv
from basketflow.reports.daily_files import run_reports
from basketflow.reports.historical import get_historical_features
from basketflow.sinks.offline_layout import event_days, events_dir, partition_files
from basketflow.sinks.offline_store import ParquetEventStore, ensure_writable
from basketflow.sinks.registry_store import read_registry, write_registry
from basketflow.schemas.features import registry

#: Features asked of every view, the tiled product view included.
FEATURES = ["customer:spend_30d", "customer:orders_90d", "basket:value",
            "basket:lines", "product:units_7d", "product:distinct_buyers_7d"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two months of generated lines: hundreds of customers, guests and products."""
    path = tmp_path_factory.mktemp("uri") / "events.csv"
    write_csv(path, rows=4_000, seed=17, start=date(2011, 3, 1), end=date(2011, 4, 30))
    return path


@pytest.fixture(scope="module")
def local_store(tmp_path_factory: pytest.TempPathFactory, generated: Path) -> Path:
    """The reference: the generated lines backfilled into a local folder, one process."""
    root = tmp_path_factory.mktemp("local") / "offline"
    run_backfill(file_events(generated, [0]), FeatureOutputs(None, "x", root), RunOptions())
    return root


def stored_logs(root: StoreDir) -> dict[str, Any]:
    """Every log of a backfilled store, row for row (the product log by final rows: its
    ``seq`` depends on the batches, see tests/store_contents.py)."""
    features = root / "features"
    return {"events": parquet_rows(root / "events", ["event_id"]),
            "late": parquet_rows(root / "late", ["event_id"]),
            **{view: parquet_rows(features / view, ["entity_id", "ts", "seq"])
               for view in ("customer", "basket")},
            "product": {k: {c: v for c, v in row.items() if c != "seq"} for k, row
                        in effective_rows(features / "product", "entity_id").items()}}


def test_events_are_written_and_read_back(offline_root: StoreDir) -> None:
    ensure_writable(offline_root)
    events = [line(day, n) for day in (3, 4, 5) for n in range(6)]
    assert ParquetEventStore(offline_root).append(events) == len(events)
    assert event_days(offline_root) == [date(2011, 1, d) for d in (3, 4, 5)]
    read = list(offline_events(offline_root)())
    assert sorted(read, key=lambda e: e.event_id) == sorted(events, key=lambda e: e.event_id)


def test_a_rerun_after_a_kill_stores_each_row_once(offline_root: StoreDir) -> None:
    """A killed writer left some days written; the rerun (a new process, nothing in
    memory) replays everything and finds what was written from the store alone."""
    before = [line(day, n) for day in (3, 4) for n in range(5)]
    after = [line(day, n) for day in (4, 5) for n in range(5, 9)]
    assert ParquetEventStore(offline_root).append(before) == len(before)
    assert ParquetEventStore(offline_root).append(before + after) == len(after)
    rows = parquet_rows(events_dir(offline_root), ["event_id"])  # asserts no id twice
    assert set(rows) == {e.event_id for e in before + after}


def test_a_write_repeated_unseen_replaces_its_own_object(offline_root: StoreDir) -> None:
    """On S3 a file's name is its rows' ids: a write repeated by a writer that did not see
    the first (a listing that missed it) lands on the same object, not beside it."""
    if not isinstance(offline_root, StorePath):
        pytest.skip("a local file is renamed into place under a fresh name")
    events = [line(7, n) for n in range(4)]
    ParquetEventStore(offline_root).append(events)
    blind = ParquetEventStore(offline_root)
    blind._seen["2011-01-07"] = set()  # as if the listing had not shown the first write
    assert blind.append(events) == len(events)
    [only] = partition_files(blind.partition_dir("2011-01-07"))
    assert set(parquet_rows(events_dir(offline_root), ["event_id"])) == \
        {e.event_id for e in events}
    assert only.name.startswith("part-")


def test_the_registry_is_written_and_read_back(offline_root: StoreDir) -> None:
    assert read_registry(offline_root) is None
    write_registry(offline_root, [registry()["basket"]], {"basket": "builtin"}, applied_at=7)
    applied = read_registry(offline_root)
    assert applied is not None and applied.applied_at == 7
    assert applied.views["basket"].version == registry()["basket"].version


@pytest.mark.slow
def test_a_backfill_and_every_reader_equal_the_local_store(
        offline_root: StoreDir, local_store: Path, generated: Path, tmp_path: Path) -> None:
    """A two-process backfill into the store (forked writers), then a training set and
    the daily reports read from it: the same as from the one-process local store."""
    stats = run_backfill(file_events(generated, [0]), FeatureOutputs(None, "x", offline_root),
                         RunOptions(), processes=2)
    assert stats.offline_rows > 3_000
    local = stored_logs(local_store)
    assert stored_logs(offline_root) == local
    assert len(local["customer"]) > 200 and len(local["product"]) > 100

    sample = sorted(local["basket"].values(), key=lambda r: (r["ts"], r["entity_id"]))[::7]
    entities = pd.DataFrame({"customer_id": [r["entity_id"] for r in sample],
                             "invoice": [r["entity_id"] for r in sample],
                             "stock_code": [e["stock_code"] for e in
                                            list(local["events"].values())[:len(sample)]],
                             "timestamp": [r["ts"] + pd.Timedelta(hours=5) for r in sample]})
    columns = {"customer": "customer_id", "basket": "invoice", "product": "stock_code"}
    got = get_historical_features(offline_root, entities, FEATURES, entity_column=columns)
    want = get_historical_features(local_store, entities, FEATURES, entity_column=columns)
    pd.testing.assert_frame_equal(got, want)
    assert want["product__units_7d"].notna().sum() > 0
    clock = max(r["ts"] for r in local["customer"].values())
    later = entities.assign(timestamp=clock + pd.Timedelta(days=31))  # windows moved on
    got = get_historical_features(offline_root, later, FEATURES, entity_column=columns)
    want = get_historical_features(local_store, later, FEATURES, entity_column=columns)
    pd.testing.assert_frame_equal(got, want)
    assert (want["customer__spend_30d"].dropna() == 0).all()
    assert want["customer__orders_90d"].dropna().gt(0).any()

    days = [date(2011, 3, 14), date(2011, 4, 20)]
    reports = [run_reports(root, days, tmp_path / name, {"json"}, data_dir=tmp_path)
               for root, name in ((offline_root, "got"), (local_store, "want"))]
    assert [_without_paths(r) for r in reports[0]] == [_without_paths(r) for r in reports[1]]
    assert reports[1][0]["sections"]["totals"]["revenue"]["value"] > 0


def _without_paths(report: dict[str, Any]) -> str:
    """A report as JSON, without where it was read from and written to."""
    kept = {k: v for k, v in report.items() if k != "files"}
    kept["store"] = {k: v for k, v in kept["store"].items() if k != "path"}
    return json.dumps(kept, sort_keys=True, default=str)


@pytest.mark.slow
@pytest.mark.server
def test_the_commands_on_an_s3_store_write_and_read_what_a_local_run_does(
        s3_server: S3Server, local_store: Path, generated: Path, tmp_path: Path) -> None:
    """``BASKETFLOW_OFFLINE_URI=s3://...``: ``backfill`` (two processes) writes the local
    one-process store's rows; ``historical`` and ``report`` read them."""
    uri = f"s3://{s3_server.bucket()}/basketflow"
    remote = user_env(tmp_path / "data", **s3_server.env(), BASKETFLOW_OFFLINE_URI=uri)
    local = user_env(tmp_path / "data", BASKETFLOW_OFFLINE_URI=str(local_store))
    done = basketflow("backfill", "--from", str(generated), "--processes", "2", "--json",
                      env=remote)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["offline_rows_written"] > 3_000
    assert stored_logs(store_location(uri)) == stored_logs(local_store)

    labels = tmp_path / "labels.csv"
    labels.write_text("customer_id,timestamp\n" + "".join(
        f"{c},2011-04-{d:02d}T12:00:00\n" for c, d in
        zip(sorted({e["customer_id"] for e in stored_logs(local_store)["events"].values()
                    if e["customer_id"]})[:30], range(1, 31))))
    features = "customer:spend_30d,customer:orders_90d,basket:value"
    for env, name in ((remote, "got"), (local, "want")):
        done = basketflow("historical", "--entities", str(labels), "--features", features,
                          "--out", str(tmp_path / f"{name}.parquet"), env=env)
        assert done.returncode == 0, done.stderr
        done = basketflow("report", "--date", "2011-04-20", "--format", "json", "--mkdir",
                          "--out", str(tmp_path / name), env=env)
        assert done.returncode == 0, done.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "got.parquet"),
                                  pd.read_parquet(tmp_path / "want.parquet"))
    got, want = (json.loads((tmp_path / n / "2011-04-20" / "report.json").read_text())
                 for n in ("got", "want"))
    assert _without_paths(got) == _without_paths(want)
    assert got["store"]["path"] == uri
    refused = basketflow("compact", env=remote)  # renames and locks: a local store only
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith(
        f"Error: the offline store {uri} is not a local folder"), refused.stderr


def test_a_damaged_file_is_named_and_set_aside(offline_root: StoreDir, tmp_path: Path) -> None:
    """``check --repair`` on either store: the damaged file leaves the store for
    ``<data>/quarantine/``; the whole ones stay."""
    ParquetEventStore(offline_root).append([line(9, n) for n in range(3)])
    day = events_dir(offline_root) / "date=2011-01-09"
    cut = day / "part-cut.parquet"
    cut.write_bytes(b"PAR1" + b"\0" * 40)
    settings = Settings(tmp_path / "data", None, None, offline_store=offline_root)
    found = check(settings)
    assert [(f.path, f.reason) for f in found.findings] == \
        [(cut, "cut short: no Parquet footer")]
    repaired = check(settings, repair=True)
    [finding] = repaired.findings
    assert finding.moved_to is not None and finding.moved_to.read_bytes().startswith(b"PAR1")
    assert not cut.exists() and len(partition_files(day)) == 1
    assert check(settings).ok


@pytest.mark.slow
def test_a_live_run_on_an_s3_store_stores_what_a_local_run_does(
        settings: Settings, s3_server: S3Server, tmp_path: Path) -> None:
    """``run --stop-at-end`` (its serve and store processes, each handed the URI) over
    one topic, into a local store and into S3, each with its own Redis prefix: the
    same events, dead letters, feature logs and Redis keys."""
    source = tmp_path / "events.csv"
    write_csv(source, rows=3_000, seed=23, start=date(2011, 5, 1), end=date(2011, 5, 20))
    uri = f"s3://{s3_server.bucket()}/offline"
    contents = []
    for name, store in (("local", str(tmp_path / "local" / "offline")), ("s3", uri)):
        env = user_env(tmp_path / name, settings, **s3_server.env(),
                       BASKETFLOW_PREFIX=f"{settings.prefix}-{name}",
                       BASKETFLOW_OFFLINE_URI=store)
        if name == "local":
            done = basketflow("replay", str(source), env=env)
            assert done.returncode == 0, done.stderr
        done = basketflow("run", "--stop-at-end", env=env, timeout=300)
        assert done.returncode == 0, done.stderr
        assert settings.redis_url is not None
        found = store_contents(settings.redis_url, f"{settings.prefix}-{name}",
                               store_location(store))
        found["redis"] = {k.split(":", 1)[1]: v for k, v in found["redis"].items()}
        contents.append(found)
    assert len(contents[0]["events"]) == 3_000
    assert differences(contents[1], contents[0]) == []


def test_an_azure_uri_without_its_account_is_one_error_without_the_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With the account's key in the environment, a URI of another endpoint must name
    the account: one error that says so, never showing the key."""
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", "a2V5LW5vdC1zaG93bg==")
    root = store_location("abfs://127.0.0.1:1/lake/offline?enable_tls=false")
    with pytest.raises(StoreLocationError) as raised:
        root.exists()
    assert "account name" in str(raised.value)
    assert "a2V5LW5vdC1zaG93bg==" not in str(raised.value)
