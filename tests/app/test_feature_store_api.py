"""The Python entry point, ``from basketflow import FeatureStore``: registry, live values,
live scores and training sets, against the real servers of conftest.py after a small
backfill that materializes features and scores."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from basketflow import FeatureStore
from basketflow.app.features import UnknownView
from basketflow.config import ENV_DATA_DIR, ENV_PREFIX, ENV_REDIS, Settings
from basketflow.flows.backfill import file_events, offline_events, run_backfill
from basketflow.flows.live import FeatureOutputs, RunOptions
from basketflow.producers.synthetic import write_csv
from basketflow.reports.segments import assign_customers, fit_segments, scoring_config
from basketflow.schemas.features import registry
from basketflow.sinks.online_store import RedisOnlineStore, connect


@pytest.fixture
def backfilled(settings: Settings, tmp_path: Path) -> tuple[Settings, list[str]]:
    """The feature log of a synthetic file, customer categories fitted on it, then its
    features and live scores materialized to Redis by a backfill with scoring; returns
    the settings and the customers with a score."""
    assert settings.redis_url
    source = tmp_path / "events.csv"
    write_csv(source, rows=8000, seed=4, start=date(2011, 1, 1), end=date(2011, 6, 30))
    run_backfill(file_events(source, [0]),
                 FeatureOutputs(None, settings.prefix, settings.offline_dir),
                 RunOptions(snapshot_seconds=3600))
    fit_segments(settings.data_dir, date(2011, 4, 30), k=8)
    assign_customers(settings.data_dir)
    run_backfill(offline_events(settings.offline_dir),
                 FeatureOutputs(settings.redis_url, settings.prefix, None, store_events=False,
                                scoring=scoring_config(settings.data_dir)),
                 RunOptions(snapshot_seconds=3600))
    client = connect(settings.redis_url)
    scored = sorted(key.decode().rsplit(":", 1)[1]
                    for key in client.scan_iter(f"{settings.prefix}:score:*"))
    assert len(scored) > 20
    return settings, scored


def test_the_package_root_stays_light() -> None:
    code = ("import sys, basketflow.schemas.events; "
            "print(sorted(m for m in sys.modules if m.startswith('basketflow') "
            "or m in ('pandas', 'click', 'rich', 'bytewax', 'redis')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "['basketflow', 'basketflow.schemas', " \
                                  "'basketflow.schemas.events']"


def test_online_values_scores_and_training_sets(backfilled: tuple[Settings, list[str]]) -> None:
    settings, scored = backfilled
    store = FeatureStore(data_dir=settings.data_dir, redis_url=settings.redis_url,
                         prefix=settings.prefix)
    customer = scored[0]
    rows = store.get_online_features([customer, "no-such-customer"],
                                     ["customer", "basket:value", "basket:lines"])
    assert [r.entity for r in rows] == [customer, "no-such-customer"]
    assert rows[1].views == {"customer": None, "basket": None}
    whole, basket = rows[0].views["customer"], rows[0].views["basket"]
    assert whole is not None and basket is not None
    raw = RedisOnlineStore(connect(settings.redis_url), settings.prefix).read("customer",
                                                                              customer)
    assert raw is not None
    stored = {k: v for k, v in raw.items() if not k.startswith("_")}
    assert whole.values == registry()["customer"].served(stored, rows[0].as_of)
    assert (whole.event_time, whole.version) == (raw["_ts"], registry()["customer"].version)
    assert rows[0].as_of == raw["_ts"]  # only a backfill wrote: its newest values' time
    assert list(basket.values) == ["value", "lines"]
    assert basket.version == registry()["basket"].version

    at = pd.Timestamp(whole.event_time, unit="s", tz="UTC")
    frame = store.get_historical_features(
        pd.DataFrame({"customer_id": [customer], "timestamp": [at]}),
        ["customer:spend_90d", "customer:lifetime_orders"])
    assert frame.loc[0, "customer__spend_90d"] == pytest.approx(whole.values["spend_90d"])
    assert frame.loc[0, "customer__lifetime_orders"] == whole.values["lifetime_orders"]

    score = store.get_score(customer)
    assert score is not None and score.customer == customer
    assert score.category in score.probabilities
    assert sum(score.probabilities.values()) == pytest.approx(1.0)
    assert store.get_score("no-such-customer") is None


def test_the_store_reads_its_settings_from_the_environment(
        backfilled: tuple[Settings, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    settings, scored = backfilled
    assert settings.redis_url
    monkeypatch.setenv(ENV_DATA_DIR, str(settings.data_dir))
    monkeypatch.setenv(ENV_REDIS, settings.redis_url)
    monkeypatch.setenv(ENV_PREFIX, settings.prefix)
    store = FeatureStore()
    assert store.settings.offline_dir == settings.offline_dir
    explicit = FeatureStore(data_dir=settings.data_dir, redis_url=settings.redis_url,
                            prefix=settings.prefix)
    assert store.get_score(scored[-1]) == explicit.get_score(scored[-1])
    assert store.get_online_features(scored[:3], ["basket"]) == \
        explicit.get_online_features(scored[:3], ["basket"])


def test_unknown_views_and_features_are_named(tmp_path: Path) -> None:
    store = FeatureStore(data_dir=tmp_path, redis_url="redis://127.0.0.1:1")
    assert [v.name for v in store.list_feature_views()] == list(registry())
    with pytest.raises(UnknownView, match="unknown view 'nope'"):
        store.get_feature_view("nope")
    with pytest.raises(UnknownView, match="unknown view 'nope'"):
        store.get_online_features(["17850"], ["nope:x"])
    with pytest.raises(ValueError, match="unknown feature 'basket:nope'"):
        store.get_online_features(["17850"], ["basket:nope"])
