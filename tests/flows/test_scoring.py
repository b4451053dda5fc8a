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
from basketflow.flows.learner import Learner, initial_model
from basketflow.flows.open_baskets import ClosedBasket, fold_basket
from basketflow.flows.predictor import WATCH_SECONDS
from basketflow.flows.scoring import ScoringConfig, ScoringSteps
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
from basketflow.schemas.records import ScoreRow
from basketflow.sinks.online_store import RedisOnlineStore, connect


def test_the_flow_scores_basket_updates_once_customers_are_labelled(
        settings: Settings, tmp_path: Path) -> None:
    """A first run learns and registers versions (every prediction waits for one: the
    whole topic is one batch); a second run, over the topic's later lines, scores every
    basket update with the versions the learner published."""
    assert settings.kafka_bootstrap and settings.redis_url
    source = tmp_path / "events.csv"
    write_csv(source, rows=12_000, seed=4, start=date(2011, 1, 1), end=date(2011, 6, 30))
    run_backfill(file_events(source, [0]), FeatureOutputs(None, settings.prefix,
                                                          settings.offline_dir),
                 RunOptions(snapshot_seconds=3600))
    segmentation = fit_segments(settings.data_dir, date(2011, 4, 30), k=8)
    assign_customers(settings.data_dir)
    text = source.read_text(encoding="iso-8859-1").splitlines(keepends=True)
    (tmp_path / "first.csv").write_text("".join(text[:8_001]), encoding="iso-8859-1")
    (tmp_path / "second.csv").write_text("".join(text[:1] + text[8_001:]),
                                         encoding="iso-8859-1")
    replay(tmp_path / "first.csv", settings.kafka_bootstrap, settings.topic,
           settings.dead_topic)
    run_live(settings, stop_at_end=True, options=RunOptions(),
             scoring=scoring_config(settings.data_dir))
    first_versions = Registry(registry_dir(settings.data_dir)).versions()
    assert first_versions
    replay(tmp_path / "second.csv", settings.kafka_bootstrap, settings.topic,
           settings.dead_topic)

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
    assert len(versions) > len(first_versions)  # the second run went on learning, from
    assert versions[len(first_versions)].lineage.parent == first_versions[-1].id  # the
    assert newest.metrics["since_start"]["baskets"] == 100 * (  # champion, its figures new
        len(versions) - len(first_versions))
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


def test_baskets_close_on_the_next_invoice_or_the_gap_and_only_labelled_ones_go_on(
        ) -> None:
    folder = CustomerFolder()

    def line(invoice: str, when: str) -> FeatureUpdate:
        e = parse_row([invoice, "85123A", "HEART", "1", when, "2.5", "1",
                       "United Kingdom"], f"f:{invoice}:{when}")
        update = folder.fold("1", [e], 3600)
        assert update is not None
        return update

    first = line("5001", "3/1/2011 10:00")
    basket, scored, closed = fold_basket(None, first, "big", 3600)
    assert [(s.invoice, s.ts) for s in scored] == [("5001", first.ts)] and closed == []
    basket, scored, closed = fold_basket(basket, line("5001", "3/1/2011 10:40"), "big", 3600)
    assert basket is not None and basket.last_ts == first.ts + 2400 and closed == []
    nxt = line("5002", "3/1/2011 11:00")  # the next invoice closes 5001 at its time
    basket, _, closed = fold_basket(basket, nxt, "big", 3600)
    assert [(c.invoice, c.label, c.moment) for c in closed] == [("5001", "big", nxt.ts)]
    later = line("5003", "3/1/2011 13:00")  # 2 h later: 5002 closed by the gap, seen now
    basket, _, closed = fold_basket(basket, later, "big", 3600)
    assert [(c.invoice, c.moment) for c in closed] == [("5002", later.ts)]
    assert closed[0].x == classifier_features(nxt.values["basket"], nxt.values["customer"])
    woken = folder.fold("1", [], 3600, later.ts + 2 * 86_400)  # the clock wakes it: rows
    assert woken is not None and {r[0] for r in woken.rows} == {"customer"}
    basket, scored, closed = fold_basket(basket, woken, "big", 3600)
    assert basket is None and scored == [] and [c.invoice for c in closed] == ["5003"]
    # an unlabelled customer or a guest: scored, nothing kept, nothing to learn
    basket, scored, closed = fold_basket(None, line("5004", "3/9/2011 10:00"), None, 3600)
    assert basket is None and len(scored) == 1 and closed == []


def closed_basket(invoice: str, moment: int, label: str = "big") -> ClosedBasket:
    x = classifier_features({"value": 10.0 if label == "small" else 90.0, "lines": 2,
                             "country": "France"}, None)
    return ClosedBasket("1", invoice, x, label, moment)


def test_the_learner_measures_learns_and_registers_every_n_baskets(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    learner = Learner(BasketClassifier("seg-1"))
    for n in range(5):
        learner.learn(closed_basket(str(n), 100 + n, ["big", "small"][n % 2]), registry, 2)
    assert learner.model.n_learned == 5 and learner.unsaved == 1
    versions = registry.versions()
    assert [v.lineage.n_learned for v in versions] == [2, 4]
    assert [v.lineage.parent for v in versions] == [None, versions[0].id]
    assert versions[-1].lineage.clock == 103 and registry.alias(CHAMPION) == versions[-1].id
    assert learner.quality.metrics()["since_start"]["baskets"] == 4  # measured, then learnt


def _learnt(labels: str, n: int) -> BasketClassifier:
    model = BasketClassifier(labels)
    x = classifier_features({"value": 10.0, "lines": 2, "country": "France"}, None)
    for _ in range(n):
        model.learn(x, "small")
    return model


def test_a_basket_the_starting_version_had_learnt_is_not_learnt_again(
        tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    model = _learnt("seg-1", 3)  # it learnt up to event time 200
    version = registry.register(model, Lineage.of(model, "train", clock=200), {})
    learner = Learner(registry.load(version.id), version)
    for moment in (150, 200, 201):
        learner.learn(closed_basket(str(moment), moment), None, 100)
    assert learner.model.n_learned == 4  # closed by its clock: skipped; after it: learnt
    # a snapshot of an earlier release (no version fields) restores with none
    old = Learner(_learnt("seg-1", 1))
    for name in ("head", "learnt_until", "adopted", "quality"):
        delattr(old, name)
    restored = pickle.loads(pickle.dumps(old))
    assert (restored.head, restored.learnt_until, restored.adopted) == (None, 0, 0)
    restored.learn(closed_basket("5001", 1), None, 100)
    assert restored.quality.metrics()["since_start"]["baskets"] == 1


def test_the_steps_start_from_the_champion_of_their_labels_and_refuse_a_tampered_one(
        tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    config = ScoringConfig({}, "seg-1", tmp_path)
    assert initial_model("seg-1", registry)[1] is None  # an empty registry: a fresh model
    assert ScoringSteps(config).predictor.models() == (None, None)  # nothing to score with
    first = registry.register(_learnt("seg-1", 1), Lineage.of(_learnt("seg-1", 1), "flow"),
                              {}, follow=True)
    second = registry.register(_learnt("seg-1", 2), Lineage.of(_learnt("seg-1", 2), "flow",
                               first.id), {}, follow=True)
    registry.promote(first.id)
    model, start = initial_model("seg-1", registry)
    assert start is not None and (model.n_learned, start.id) == (1, first.id)
    assert ScoringSteps(config).predictor.version == first.id
    # New labels make another model: a fresh start, the versions of the old one are left.
    assert initial_model("seg-2", registry)[1] is None
    registry.promote(second.id)
    (tmp_path / ARTIFACTS / f"{second.sha256}.pkl").write_bytes(b"tampered")
    with pytest.raises(RegistryError, match=f"model version {second.id} was refused"):
        ScoringSteps(config)


def test_predictions_use_the_published_version_and_follow_promotes_while_learning_goes_on(
        tmp_path: Path) -> None:
    registry, cli_side = Registry(tmp_path), Registry(tmp_path)
    config = ScoringConfig({"1": "big"}, "seg-1", tmp_path, register_every=2)
    old = registry.register(_learnt("seg-1", 5), Lineage.of(_learnt("seg-1", 5), "flow"), {},
                            follow=True)
    steps = ScoringSteps(config)
    updates = lines("1", ("5001", "3/1/2011 10:00", 90.0), ("5002", "3/2/2011 10:00", 80.0),
                    ("5003", "3/3/2011 10:00", 70.0))
    basket, out = steps.predict(None, updates[0])
    [scored] = out
    assert isinstance(scored, ScoreRow) and scored.score.category == "small"  # old's
    basket, out = steps.predict(basket, updates[1])
    closed = [o for o in out if isinstance(o, ClosedBasket)]
    assert [c.invoice for c in closed] == ["5001"]
    learner, _ = steps.learn(None, closed[0])  # learnt, not yet published: scores stay
    assert learner.model.n_learned == 6 and registry.alias(CHAMPION) == old.id
    time.sleep(WATCH_SECONDS)
    assert steps.predictor.models()[0].n_learned == 5
    basket, out = steps.predict(basket, updates[2])
    learner, _ = steps.learn(learner, [o for o in out if isinstance(o, ClosedBasket)][0])
    assert registry.alias(CHAMPION) == learner.head != old.id  # registered: followed
    time.sleep(WATCH_SECONDS)
    assert steps.predictor.models()[0].n_learned == 7  # every process loads it
    cli_side.promote(old.id)  # by hand: the predictions and the learner go back to it
    time.sleep(WATCH_SECONDS)
    assert steps.predictor.models()[0].n_learned == 5
    learner, _ = steps.learn(learner, closed_basket("5009", updates[2].ts + 7200))
    assert (learner.model.n_learned, learner.head) == (6, old.id)  # adopted, learnt on
    learner, _ = steps.learn(learner, closed_basket("5010", updates[2].ts + 9000))
    assert registry.get(learner.head).lineage.parent == old.id
