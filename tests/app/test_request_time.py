"""Request-time features and the as-of time of reads, through the real flow, Redis and
the offline store: a read is as of the flow's event-time clock (the newest event time
the part folding its view has processed), ``days_since_*`` are computed at it, and
``historical`` computes them at the label's time by the same function."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from basketflow import FeatureStore
from basketflow.app.features import CLOCK, VALUES
from basketflow.config import Settings
from basketflow.flows.backfill import file_events, run_backfill
from basketflow.flows.live import SERVE, STORE, FeatureOutputs, RunOptions, run_live
from basketflow.producers.replay import replay
from basketflow.reports.historical import get_historical_features
from basketflow.schemas.features import days_since
from tests.cli.commands import basketflow, user_env

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
DAY = 86_400


def epoch(when: str) -> int:
    """``M/D/YYYY H:MM`` (the file's format, UTC) -> epoch seconds."""
    return int(datetime.strptime(when, "%m/%d/%Y %H:%M").replace(tzinfo=timezone.utc)
               .timestamp())


def write_lines(path: Path, lines: list[tuple[str, str, str, str]]) -> Path:
    """A Kaggle-format file of (invoice, stock code, time, customer) lines, in order."""
    rows = [f"{invoice},{code},THING,2,{when},1.50,{customer},United Kingdom"
            for invoice, code, when, customer in lines]
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="iso-8859-1")
    return path


#: Customer 10001 buys on March 1st and 3rd and is then silent; 10002 buys later.
FIRST = [("1", "85123A", "3/1/2011 10:00", "10001"), ("2", "22633", "3/3/2011 16:20", "10001"),
         ("3", "85123A", "3/20/2011 9:15", "10002"), ("4", "22633", "4/12/2011 12:30", "10002")]
#: Later lines of another customer, read by one part of the flow only.
LATER = [("5", "85123A", "5/2/2011 8:00", "10003")]


def test_a_read_is_as_of_the_flows_clock_with_request_time_features_at_it(
        settings: Settings, tmp_path: Path) -> None:
    assert settings.kafka_bootstrap and settings.redis_url
    source = write_lines(tmp_path / "first.csv", FIRST)
    replay(source, settings.kafka_bootstrap, settings.topic, settings.dead_topic)
    run_live(settings, stop_at_end=True, options=RunOptions())  # both parts, one process
    clock = epoch("4/12/2011 12:30")  # the newest event time processed
    last, first = epoch("3/3/2011 16:20"), epoch("3/1/2011 10:00")

    done = basketflow("features", "10001", "--json", env=user_env(settings.data_dir, settings))
    assert done.returncode == 0, done.stderr
    read = json.loads(done.stdout)
    assert (read["as_of"], read["as_of_from"]) == (clock, CLOCK)
    customer = read["views"]["customer"]
    # The stored values: as of their last change, when the 3/3 16:xx tile left 30 days.
    assert customer["_ts"] == epoch("4/2/2011 16:00")
    assert (customer["spend_30d"], customer["spend_90d"]) == (0, 6.0)
    assert customer["days_since_last_purchase"] == days_since(clock, last) == 39.8403
    assert customer["days_since_first_purchase"] == days_since(clock, first) == 42.1042
    assert customer["last_purchase"] == last

    text = basketflow("features", "10001", env=user_env(settings.data_dir, settings))
    assert text.returncode == 0, text.stderr
    assert "as of 2011-04-12 12:30 UTC (the flow's event-time clock)" in text.stdout
    assert "39.8403" in text.stdout

    status = basketflow("status", "--json", env=user_env(settings.data_dir, settings))
    assert json.loads(status.stdout)["flow"]["clock"] == clock
    shown = basketflow("status", env=user_env(settings.data_dir, settings)).stdout
    assert f"event-time clock 2011-04-12 12:30 UTC ({clock})" in shown

    # historical at the as-of time gives what the online read gave, by the same function
    store = FeatureStore(data_dir=settings.data_dir, redis_url=settings.redis_url,
                         prefix=settings.prefix)
    names = ["customer:days_since_last_purchase", "customer:days_since_first_purchase",
             "customer:spend_90d"]
    at = pd.Timestamp(clock, unit="s", tz="UTC")
    frame = store.get_historical_features(pd.DataFrame(
        {"customer_id": ["10001"], "timestamp": [at]}), names)
    online = store.get_online_features(["10001"], names)[0]
    assert online.as_of == clock
    assert {f"customer__{n}": v for n, v in online.views["customer"].values.items()} == \
        frame.drop(columns=["customer_id", "timestamp"]).iloc[0].to_dict()


def test_historical_forty_days_after_the_last_purchase(settings: Settings,
                                                       tmp_path: Path) -> None:
    source = write_lines(tmp_path / "first.csv", FIRST)
    run_backfill(file_events(source, [0]), FeatureOutputs(None, "x", settings.offline_dir),
                 RunOptions())
    last = epoch("3/3/2011 16:20")
    times = [last + 40 * DAY + 3 * 3600 + 36, last + 40 * DAY, last, last - 1,
             epoch("3/1/2011 9:59")]
    frame = get_historical_features(settings.offline_dir, pd.DataFrame({
        "customer_id": ["10001"] * len(times),
        "timestamp": [pd.Timestamp(t, unit="s", tz="UTC") for t in times]}),
        ["customer:days_since_last_purchase", "customer:days_since_first_purchase"])
    since_last = frame["customer__days_since_last_purchase"].tolist()
    assert since_last[:3] == [40.1254, 40.0, 0.0]
    # a second before its last purchase, the row in effect is the first purchase's
    assert since_last[3] == days_since(last - 1, epoch("3/1/2011 10:00"))
    assert pd.isna(since_last[4])  # before any purchase: no row, no value
    assert frame["customer__days_since_first_purchase"].tolist()[:2] == [
        days_since(times[0], epoch("3/1/2011 10:00")), 42.2639]


def test_customer_reads_follow_the_serve_part_and_product_reads_the_store_part(
        settings: Settings, tmp_path: Path) -> None:
    """Run as two processes, the serve part folds customers and writes its own progress
    hash; the store part folds products. Here the store part has read later lines than
    the serve part: each view's reads are as of its own part's clock."""
    assert settings.kafka_bootstrap and settings.redis_url
    replay(write_lines(tmp_path / "first.csv", FIRST), settings.kafka_bootstrap,
           settings.topic, settings.dead_topic)
    run_live(settings, stop_at_end=True, options=RunOptions(), parts=(SERVE,))
    replay(write_lines(tmp_path / "later.csv", LATER), settings.kafka_bootstrap,
           settings.topic, settings.dead_topic)
    run_live(settings, stop_at_end=True, options=RunOptions(), parts=(STORE,))
    store = FeatureStore(data_dir=settings.data_dir, redis_url=settings.redis_url,
                         prefix=settings.prefix)
    customer = store.get_online_features(["10001"], ["customer"])[0]
    assert customer.as_of == epoch("4/12/2011 12:30")
    product = store.get_online_features(["85123A"], ["product"])[0]
    assert product.as_of == epoch("5/2/2011 8:00")


def test_without_a_flow_a_read_is_as_of_the_entitys_newest_values(
        settings: Settings, tmp_path: Path) -> None:
    """Only a backfill wrote Redis: no clock, so each entity is read as of the event time
    of its newest values, and says so."""
    assert settings.redis_url
    source = write_lines(tmp_path / "first.csv", FIRST)
    run_backfill(file_events(source, [0]),
                 FeatureOutputs(settings.redis_url, settings.prefix, settings.offline_dir),
                 RunOptions())
    store = FeatureStore(data_dir=settings.data_dir, redis_url=settings.redis_url,
                         prefix=settings.prefix)
    one, two = store.get_online_features(["10001", "10002"], ["customer", "basket"])
    # 10001's newest values: when its 3/3 16:xx tile left the 30-day window
    newest = epoch("4/2/2011 16:00")
    assert (one.as_of, one.as_of_from) == (newest, VALUES)
    assert one.views["customer"] is not None
    assert one.views["customer"].values["days_since_last_purchase"] == \
        days_since(newest, epoch("3/3/2011 16:20"))
    assert two.as_of == epoch("4/12/2011 12:30")
    assert store.get_online_features(["nobody"], ["customer"])[0].as_of is None


@pytest.mark.parametrize("view", ["customer", "basket", "product"])
def test_features_describe_shows_each_features_kind(view: str, tmp_path: Path) -> None:
    env = user_env(tmp_path)
    described = json.loads(basketflow("features", "describe", view, "--json", env=env).stdout)
    kinds = {f["name"]: f["kind"] for f in described["features"]}
    text = basketflow("features", "describe", view, env=env).stdout
    assert "│ kind " in text.replace("┃", "│")  # a column of the table
    if view == "customer":
        assert kinds["spend_30d"] == "windowed" and kinds["lifetime_spend"] == "stored"
        assert kinds["days_since_last_purchase"] == "request-time"
        since = next(f for f in described["features"]
                     if f["name"] == "days_since_last_purchase")
        assert since["source"] == "last_purchase"
        assert "request-time" in text and "as-of time" in text
    else:
        assert "request-time" not in kinds.values() and "request-time" not in text
