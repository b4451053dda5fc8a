"""The live classifier in the flow (flows/scoring.py): scores in Redis and offline, learning
from labelled customers, basket closing, versions registered as it learns, the champion
it starts from and adopts while it runs, and `basketflow score`."""

from __future__ import annotations

import json
import pickle
import random
import time
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from basketflow.cli import cli
from basketflow.config import ENV_DATA_DIR, ENV_KAFKA, ENV_PREFIX, ENV_REDIS, ENV_TOPIC, Settings
from basketflow.features.entity_features import CustomerFolder, FeatureUpdate
from basketflow.flows.backfill import file_events, run_backfill
from basketflow.flows.live import FeatureOutputs, RunOptions, run_live
from basketflow.flows.scoring import (
    WATCH_SECONDS,
    ScoringConfig,
    ScoringState,
    initial_model,
    scoring_step,
)
from basketflow.models.classifier import BasketClassifier, classifier_features
from basketflow.models.aliases import CHAMPION
from basketflow.models.registry import (
    ARTIFACTS,
    Lineage,
    Registry,
    RegistryError,
    registry_dir,
)
from basketflow.producers.replay import replay
from basketflow.producers.synthetic import write_csv
from basketflow.reports.segments import assign_customers, fit_segments, scoring_config
from basketflow.schemas.events import parse_row
from basketflow.sinks.online_store import RedisOnlineStore, connect


def test_the_flow_scores_basket_updates_once_customers_are_labelled(
        settings: Settings, tmp_path: Path) -> None:
    assert settings.kafka_bootstrap and settings.redis_url
    source = tmp_path / "events.csv"
    write_csv(source, rows=12_000, seed=4, start=date(2011, 1, 1), end=date(2011, 6, 30))
    run_backfill(file_events(source, [0]), FeatureOutputs(None, settings.prefix,
                                                          settings.offline_dir),
                 RunOptions(snapshot_seconds=3600))
    segmentation = fit_segments(settings.data_dir, date(2011, 4, 30), k=8)
    assign_customers(settings.data_dir)
    replay(source, settings.kafka_bootstrap, settings.topic, settings.dead_topic)

    stats = run_live(settings, stop_at_end=True, options=RunOptions(),
                     scoring=scoring_config(settings.data_dir))

    scores = pd.read_parquet(settings.offline_dir / "scores").drop(columns=["date"])
    assert stats.scores > 300 and len(scores) == stats.scores
    assert not scores.duplicated(["entity_id", "seq"]).any()
    assert set(scores["category"]) <= set(segmentation.names)
    version = BasketClassifier(segmentation.version).version
    assert set(scores["model_version"]) == {version}
    for probabilities in scores["probabilities"].head(200):
        assert sum(json.loads(probabilities).values()) == pytest.approx(1.0)
    latest = scores.sort_values(["entity_id", "ts", "seq"]).groupby("entity_id").last()
    store = RedisOnlineStore(connect(settings.redis_url), settings.prefix)
    for entity in random.Random(1).sample(sorted(latest.index), 25):
        online = store.read("score", entity)
        row = latest.loc[entity]
        assert online is not None, entity
        assert (online["category"], online["invoice"], online["seq"], online["_ts"]) == (
            row["category"], row["invoice"], row["seq"], int(row["ts"].timestamp()))
        assert online["model_version"] == online["_version"] == version
    registry = Registry(registry_dir(settings.data_dir))
    versions = registry.versions()  # a version every 100 baskets learnt, each continuing
    assert versions and [v.lineage.parent for v in versions] == \
        [None] + [v.id for v in versions[:-1]]
    assert [v.lineage.n_learned for v in versions] == [100 * (i + 1) for i in range(len(versions))]
    assert {v.model for v in versions} == {version}
    assert registry.alias(CHAMPION) == versions[-1].id  # the champion followed them
    newest = versions[-1]
    assert newest.lineage.segmentation == segmentation.version and newest.lineage.clock
    read = newest.lineage.offsets  # the Kafka offsets read, at most the topic's end
    assert read and all(k.startswith(f"offset:{settings.topic}:") for k in read)
    assert 0 < sum(read.values()) <= 12_000
    assert newest.metrics["since_start"]["baskets"] == 100 * len(versions) - 1
    assert registry.load(newest.id).n_learned == newest.lineage.n_learned

    entity = latest.index[0]
    env = {ENV_KAFKA: settings.kafka_bootstrap, ENV_REDIS: settings.redis_url,
           ENV_DATA_DIR: str(settings.data_dir), ENV_TOPIC: settings.topic,
           ENV_PREFIX: settings.prefix}
    shown = CliRunner().invoke(cli, ["score", entity, "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["score"]["category"] == latest.loc[entity, "category"]
    missing = CliRunner().invoke(cli, ["score", "no-such-customer"], env=env)
    assert missing.exit_code == 1 and "segment fit" in missing.output


def lines(customer: str, *rows: tuple[str, str, float]) -> list[FeatureUpdate]:
    """Feature updates of one customer, one per (invoice, time, value) line."""
    folder = CustomerFolder()
    out = []
    for i, (invoice, when, price) in enumerate(rows):
        e = parse_row([invoice, "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", "1", when,
                       str(price), customer, "United Kingdom"], f"f:{customer}:{i}")
        update = folder.fold(customer if customer else e.entity_id, [e], 3600)
        assert update is not None
        out.append(update)
    return out


def test_baskets_close_on_the_next_invoice_or_the_gap_and_teach_labelled_customers() -> None:
    config = ScoringConfig({"1": "big", "2": "small"}, "seg-1", None, gap_seconds=3600)
    state = ScoringState(BasketClassifier("seg-1"))
    first = lines("1", ("5001", "3/1/2011 10:00", 90.0), ("5002", "3/2/2011 10:00", 80.0))
    assert state.score(first[0], config) == []  # nothing learnt yet: no score
    assert state.model.n_learned == 0
    state.score(first[1], config)  # the next invoice closes 5001: learnt as "big"
    assert state.model.n_learned == 1
    second = lines("2", ("6001", "3/2/2011 10:30", 1.0))[0]
    [scored] = state.score(second, config)
    assert (scored.entity, scored.invoice, scored.score.category) == ("2", "6001", "big")
    guest = lines("", ("7001", "3/2/2011 12:00", 5.0))[0]
    state.score(guest, config)  # 1 h 30 after 5002 and 6001: both close on the gap
    assert state.model.n_learned == 3 and set(state.open) == {guest.entity}
    later = lines("", ("7002", "3/2/2011 14:00", 5.0))[0]
    state.score(later, config)  # the guest's basket closes too, but has no label
    assert state.model.n_learned == 3


def _learnt(labels: str, n: int) -> BasketClassifier:
    model = BasketClassifier(labels)
    x = classifier_features({"value": 10.0, "lines": 2, "country": "France"}, None)
    for _ in range(n):
        model.learn(x, "small")
    return model


def test_a_basket_the_starting_version_had_learnt_is_not_learnt_again(
        tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    config = ScoringConfig({"1": "big"}, "seg-1")
    first = lines("1", ("5001", "3/1/2011 10:00", 90.0), ("5002", "3/2/2011 10:00", 80.0),
                  ("5003", "3/3/2011 10:00", 70.0))
    model = _learnt("seg-1", 3)  # it learnt up to 5002's line: 5001 closed, 5002 open
    version = registry.register(model, Lineage.of(model, "train", clock=first[1].ts), {})
    state = ScoringState(registry.load(version.id), version)
    for update in first:
        state.score(update, config)
    assert state.model.n_learned == 4  # 5001 closed by then: skipped; 5002 after: learnt
    # a snapshot of an earlier release (no version fields) restores with none
    old = ScoringState(_learnt("seg-1", 1))
    for name in ("head", "learnt_until", "adopted", "quality"):
        delattr(old, name)
    restored = pickle.loads(pickle.dumps(old))
    assert (restored.head, restored.learnt_until, restored.adopted) == (None, 0, 0)
    restored.score(first[0], config)
    assert restored.quality.metrics()["since_start"]["baskets"] == 0


def test_the_step_starts_from_the_champion_of_its_labels_and_refuses_a_tampered_one(
        tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    config = ScoringConfig({}, "seg-1", tmp_path)
    assert initial_model(config, registry)[1] is None  # an empty registry: a fresh model
    first = registry.register(_learnt("seg-1", 1), Lineage.of(_learnt("seg-1", 1), "flow"),
                              {}, follow=True)
    second = registry.register(_learnt("seg-1", 2), Lineage.of(_learnt("seg-1", 2), "flow",
                               first.id), {}, follow=True)
    registry.promote(first.id)
    model, start = initial_model(config, registry)
    assert start is not None and (model.n_learned, start.id) == (1, first.id)
    # New labels make another model: a fresh start, the versions of the old one are left.
    assert initial_model(ScoringConfig({}, "seg-2", tmp_path), registry)[1] is None
    registry.promote(second.id)
    (tmp_path / ARTIFACTS / f"{second.sha256}.pkl").write_bytes(b"tampered")
    with pytest.raises(RegistryError, match=f"model version {second.id} was refused"):
        scoring_step(config)


def test_a_promoted_version_is_adopted_by_the_running_step_and_learning_goes_on(
        tmp_path: Path) -> None:
    registry, cli_side = Registry(tmp_path), Registry(tmp_path)
    config = ScoringConfig({"1": "big"}, "seg-1", tmp_path, register_every=1)
    old = registry.register(_learnt("seg-1", 5), Lineage.of(_learnt("seg-1", 5), "flow"), {},
                            follow=True)
    step = scoring_step(config)
    first = lines("1", ("5001", "3/1/2011 10:00", 90.0), ("5002", "3/2/2011 10:00", 80.0))
    state, _ = step(None, first[0])
    state, _ = step(state, first[1])  # 5001 closes: learnt, registered, the champion follows
    assert state.model.n_learned == 6 and registry.alias(CHAMPION) == state.head != old.id
    cli_side.promote(old.id)
    time.sleep(WATCH_SECONDS)
    more = lines("1", ("5003", "3/3/2011 10:00", 70.0))[0]
    state, [scored] = step(state, more)  # adopts 5 baskets learnt, learns 5002 on top
    assert state.model.n_learned == 6 and registry.alias(CHAMPION) == state.head
    assert registry.get(state.head).lineage.parent == old.id
    assert scored.score.model_version == old.model
