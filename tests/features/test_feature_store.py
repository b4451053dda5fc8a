"""Feature-store guarantees: one feature code online and offline, point in time, lateness,
versions. Live runs go through the real broker and Redis-protocol server."""

from __future__ import annotations

import doctest
import pickle
from dataclasses import replace
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pytest

import basketflow.schemas.features as features_module
from basketflow.config import Settings
from basketflow.features import feature_state, seen_ids
from basketflow.features.entity_features import CustomerFolder
from basketflow.flows.backfill import file_events, run_backfill
from basketflow.flows.live import FeatureOutputs, RunOptions, run_live
from basketflow.producers.replay import replay
from basketflow.producers.synthetic import write_csv
from basketflow.reports.historical import get_historical_features
from basketflow.schemas.events import parse_row
from basketflow.schemas.features import CUSTOMER, Feature, registry
from basketflow.sinks.online_store import RedisOnlineStore, connect

CUSTOMER_VIEWS = ("customer", "basket")


def latest_rows(offline_dir: Path, view: str) -> pd.DataFrame:
    """The feature log of a view, keeping the last row (highest seq) of each (entity, ts)."""
    table = ds.dataset(offline_dir / "features" / view, format="parquet",
                       partitioning="hive").to_table()
    frame = table.drop_columns(["date"]).to_pandas()
    frame = frame.sort_values(["entity_id", "ts", "seq"])
    return frame.groupby(["entity_id", "ts"], as_index=False).last().reset_index(drop=True)


@pytest.fixture
def generated(tmp_path: Path) -> Path:
    path = tmp_path / "events.csv"
    write_csv(path, rows=4000, seed=5, start=date(2011, 3, 1), end=date(2011, 5, 31))
    return path


def test_live_and_backfill_write_the_same_feature_log(settings: Settings, generated: Path,
                                                      tmp_path: Path) -> None:
    assert settings.kafka_bootstrap and settings.redis_url
    replay(generated, settings.kafka_bootstrap, settings.topic, settings.dead_topic)
    run_live(settings, stop_at_end=True, options=RunOptions())
    offline = tmp_path / "backfill"
    stats = run_backfill(file_events(generated, [0]), FeatureOutputs(None, "x", offline),
                         RunOptions())
    assert stats.feature_rows > 0 and stats.late_events == 0
    for view in CUSTOMER_VIEWS:
        live = latest_rows(settings.offline_dir, view)
        back = latest_rows(offline, view)
        assert len(live) > 100
        pd.testing.assert_frame_equal(live, back, check_like=True)
    # A product's lines arrive in another order live (from every partition), so its
    # rows' seq differ; the rows in effect at each hour end are the same.
    live, back = (latest_rows(root, "product").drop(columns=["seq"])
                  for root in (settings.offline_dir, offline))
    assert len(live) > 100
    pd.testing.assert_frame_equal(live, back, check_like=True)


def test_online_values_equal_historical_at_their_time(settings: Settings, generated: Path,
                                                       tmp_path: Path) -> None:
    assert settings.kafka_bootstrap and settings.redis_url
    replay(generated, settings.kafka_bootstrap, settings.topic, settings.dead_topic)
    run_live(settings, stop_at_end=True, options=RunOptions())
    store = RedisOnlineStore(connect(settings.redis_url), settings.prefix)
    log = latest_rows(settings.offline_dir, "customer")
    customers = sorted(set(log["entity_id"]) - {e for e in log["entity_id"] if "guest" in e})
    names = [f"customer:{n}" for n in CUSTOMER.feature_names]
    checked = 0
    for customer in customers[:25]:
        online = store.read("customer", customer)
        assert online is not None
        at = pd.Timestamp(online["_ts"], unit="s", tz="UTC")
        frame = get_historical_features(settings.offline_dir, pd.DataFrame(
            {"customer_id": [customer, customer], "timestamp": [at, at - pd.Timedelta(seconds=1)]}),
            names)
        now, before = frame.iloc[0], frame.iloc[1]
        served = CUSTOMER.served(online, online["_ts"])  # request-time features at _ts
        for name in CUSTOMER.feature_names:
            got, want = now[f"customer__{name}"], served[name]
            assert (pd.isna(got) and want is None) or got == pytest.approx(want), (customer, name)
        # One second earlier the latest row is not visible: no leakage from the future.
        assert pd.isna(before["customer__lifetime_orders"]) or \
            before["customer__lifetime_orders"] <= now["customer__lifetime_orders"]
        checked += 1
    assert checked == 25


def line(invoice: str, when: str, qty: int = 1, code: str = "85123A") -> list[str]:
    return [invoice, code, "WHITE HANGING HEART T-LIGHT HOLDER", str(qty), when, "2.00",
            "17850", "United Kingdom"]


def test_out_of_order_within_lateness_corrects_values_and_late_ones_are_counted() -> None:
    folder = CustomerFolder()
    first = folder.fold("17850", [parse_row(line("1", "3/1/2011 12:00"), "f:1")], 3600)
    assert first is not None and first.values["customer"]["spend_1d"] == 2.0
    # 30 minutes earlier, within the 1-hour lateness: applied, values corrected.
    fixed = folder.fold("17850", [parse_row(line("2", "3/1/2011 11:30", 2), "f:2")], 3600)
    assert fixed is not None and not fixed.late
    assert fixed.values["customer"]["spend_1d"] == 6.0
    assert fixed.ts == folder.max_ts  # values stay labelled with the latest event time
    # Two hours earlier: beyond the lateness, counted, and not in the values.
    late = folder.fold("17850", [parse_row(line("3", "3/1/2011 10:00", 5), "f:3")], 3600)
    assert late is not None and len(late.late) == 1 and not late.values
    again = folder.fold("17850", [parse_row(line("4", "3/1/2011 12:05"), "f:4")], 3600)
    assert again is not None and again.values["customer"]["spend_1d"] == 8.0
    # A replayed event (same event_id) changes nothing.
    assert folder.fold("17850", [parse_row(line("4", "3/1/2011 12:05"), "f:4")], 3600) is None


def test_late_events_are_counted_listed_offline_and_kept_in_the_event_store(
        tmp_path: Path) -> None:
    header = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
    rows = [line("1", "3/1/2011 12:00"), line("2", "3/1/2011 9:00", 5),
            line("3", "3/1/2011 11:30", 2)]
    source = tmp_path / "late.csv"
    source.write_text("\n".join([header] + [",".join(r) for r in rows]) + "\n",
                      encoding="iso-8859-1")
    offline = tmp_path / "offline"
    stats = run_backfill(file_events(source, [0]), FeatureOutputs(None, "x", offline),
                         RunOptions())
    assert stats.late_events == 1
    late = pd.read_parquet(offline / "late").drop(columns=["date"])
    ids = [parse_row(r, "").event_id for r in rows]
    assert late.to_dict("records") == [{
        "event_id": ids[1], "entity_id": "17850",
        "ts": pd.Timestamp("2011-03-01 09:00", tz="UTC"),
        "entity_latest_ts": pd.Timestamp("2011-03-01 12:00", tz="UTC")}]
    events = pd.read_parquet(offline / "events")
    assert sorted(events["event_id"]) == sorted(ids)
    customer = latest_rows(offline, "customer")
    assert customer["spend_1d"].iloc[-1] == 6.0  # 2.00 + 2 x 2.00, without the late 5 x 2.00


def test_windows_follow_the_hourly_tile_rule() -> None:
    folder = CustomerFolder()
    folder.fold("c", [parse_row(line("1", "3/1/2011 12:59"), "f:1")], 3600)
    # 1-day window at 3/2 12:00 holds the 24 tiles from 3/1 13:00 to 3/2 12:xx: not 12:59.
    update = folder.fold("c", [parse_row(line("2", "3/2/2011 12:00"), "f:2")], 3600)
    assert update is not None
    values = update.values["customer"]
    assert values["orders_1d"] == 1 and values["orders_7d"] == 2 and values["spend_1d"] == 2.0


@pytest.mark.parametrize("module", [feature_state, seen_ids, features_module])
def test_module_examples(module: object) -> None:
    """The docstring examples of the feature code run as written."""
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.attempted > 0 and result.failed == 0


def test_a_replayed_id_counts_once_even_within_one_batch() -> None:
    folder = CustomerFolder()
    row = parse_row(line("1", "3/1/2011 12:00"), "f:1")
    update = folder.fold("17850", [row, row], 3600)
    assert update is not None and update.values["customer"]["spend_1d"] == 2.0
    assert folder.fold("17850", [row], 3600) is None


def test_state_from_an_earlier_snapshot_keeps_its_seen_ids() -> None:
    """Recovery snapshots written before SeenIds hold ``seen`` as a set of strings."""
    folder = CustomerFolder()
    folder.fold("17850", [parse_row(line("1", "3/1/2011 12:00"), "f:1")], 3600)
    first = parse_row(line("1", "3/1/2011 12:00"), "f:1")
    folder.seen = {first.event_id}  # type: ignore[assignment]
    restored = pickle.loads(pickle.dumps(folder))
    assert restored.fold("17850", [parse_row(line("1", "3/1/2011 12:00"), "f:1")], 3600) is None
    assert restored.fold("17850", [parse_row(line("2", "3/1/2011 12:30"), "f:2")], 3600)


def test_changing_a_definition_changes_the_version() -> None:
    view = registry()["customer"]
    assert replace(view, declared=view.declared + (Feature("x", "int", "new"),)).version \
        != view.version
    spend = view.windowed("spend")
    longer = replace(spend, windows_days=spend.windows_days + (365,))
    assert replace(view, declared=tuple(longer if d == spend else d for d in view.declared)
                   ).version != view.version
    assert replace(view, logic_revision=view.logic_revision + 1).version != view.version
    assert replace(view, ttl_seconds=3600).version != view.version
