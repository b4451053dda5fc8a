"""``basketflow predict`` (reports/predictions.py): rows at the time of a basket get the
score the live flow logged for it, through the real command, broker and Valkey; the
model live at a time is the newest registered version at or before it; bad input is one
line."""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from basketflow.cli import cli
from basketflow.config import ENV_DATA_DIR, ENV_KAFKA, ENV_PREFIX, ENV_REDIS, ENV_TOPIC, Settings
from basketflow.flows.backfill import file_events, run_backfill
from basketflow.flows.live import FeatureOutputs, RunOptions
from basketflow.models.classifier import BasketClassifier, classifier_features
from basketflow.models.registry import Lineage, Registry, registry_dir
from basketflow.reports.predictions import live_at, saved_models
from basketflow.reports.segments import scoring_config
from tests.labelled_store import labelled


def env_of(settings: Settings) -> dict[str, str]:
    """The environment a command of this data directory runs with."""
    assert settings.kafka_bootstrap and settings.redis_url
    return {ENV_KAFKA: settings.kafka_bootstrap, ENV_REDIS: settings.redis_url,
            ENV_DATA_DIR: str(settings.data_dir), ENV_TOPIC: settings.topic,
            ENV_PREFIX: settings.prefix}


@pytest.mark.slow
def test_predicting_at_a_baskets_time_gives_the_score_the_flow_logged(
        settings: Settings, tmp_path: Path) -> None:
    assert settings.kafka_bootstrap
    source = labelled(settings, tmp_path)
    # the replay of history (the backfill's scoring step) folds, learns and predicts in
    # event order, one event a batch, predicting with the version published last: as a
    # flow tailing the shop does, without the wall-clock delay of loading each version
    config = scoring_config(settings.data_dir)
    assert config is not None  # a version after every basket learnt, all kept: the weights
    replayed = tmp_path / "replayed"
    run_backfill(file_events(source, [0]),
                 FeatureOutputs(None, settings.prefix, replayed, store_events=False,
                                scoring=dataclasses.replace(config, register_every=1,
                                                            keep=10**9)),
                 RunOptions(snapshot_seconds=3600), batch=1)

    history = saved_models(Registry(registry_dir(settings.data_dir)))
    scores = pd.read_parquet(replayed / "scores").drop(columns=["date"])
    last = scores.sort_values(["entity_id", "ts", "seq"]).groupby(
        ["entity_id", "ts"], as_index=False).last()
    # a version registered at a basket's own time may have come before or after its
    # score (other customers' baskets closing in the same minute): leave those out
    tied = {pd.Timestamp(v.lineage.clock, unit="s", tz="UTC") for v in history}
    known = last[~last["ts"].isin(tied) & ~last["entity_id"].str.startswith("guest-")]
    assert len(known) >= 100, len(known)
    rows = known.sample(min(300, len(known)), random_state=2).reset_index(drop=True)
    entities = tmp_path / "rows.csv"
    pd.DataFrame({"customer_id": rows["entity_id"],
                  "timestamp": rows["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")}).to_csv(
        entities, index=False)
    out = tmp_path / "predictions.parquet"

    done = CliRunner().invoke(cli, ["predict", "--entities", str(entities), "--out", str(out),
                                    "--json"], env=env_of(settings))

    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert summary["rows"] == summary["predicted"] == len(rows), summary
    predicted = pd.read_parquet(out)
    assert predicted["customer_id"].tolist() == rows["entity_id"].tolist()
    assert (predicted["invoice"] == rows["invoice"]).all()
    assert (predicted["category"] == rows["category"]).all()
    assert (predicted["model_version"] == rows["model_version"]).all()
    for i, logged in enumerate(rows["probabilities"]):
        for category, p in json.loads(logged).items():
            assert predicted.at[i, f"prob_{category}"] == p
    # the weights change along the run: rows were scored by many versions
    assert predicted["model_learned"].nunique() > 10

    day = rows["ts"].iloc[0].date().isoformat()
    daily = CliRunner().invoke(cli, ["predict", "--date", day, "--out", str(out)],
                               env=env_of(settings))
    assert daily.exit_code == 0 and "rows/s" in daily.output, daily.output
    on_day = pd.read_parquet(out)
    assert rows["entity_id"].iloc[0] in set(on_day["customer_id"])
    assert (on_day["timestamp"] == pd.Timestamp(f"{day}T23:59:59Z")).all()

    named = CliRunner().invoke(cli, ["predict", "--entities", str(entities), "--model",
                                     history[-1].model, "--out", str(out)],
                               env=env_of(settings))
    assert named.exit_code == 0, named.output
    assert (pd.read_parquet(out)["model_learned"] == history[-1].lineage.n_learned).all()


def test_bad_input_is_one_error_line(settings: Settings, tmp_path: Path) -> None:
    env = env_of(settings)
    ids = tmp_path / "ids.csv"
    ids.write_text("customer_id\n13436\n")
    no_id = tmp_path / "no_id.csv"
    no_id.write_text("who,timestamp\n1,2011-01-01\n")
    dated = tmp_path / "dated.csv"
    dated.write_text("customer_id,timestamp\n13436,2011-01-01T10:00:00\n")
    out = str(tmp_path / "p.parquet")
    cases = [
        (["--entities", str(tmp_path / "missing.csv")], "no such file"),
        (["--entities", str(ids), "--at", "soon"], "is not a date"),
        (["--entities", str(ids)], "has no 'timestamp' column"),
        (["--entities", str(no_id)], "has no 'customer_id' column"),
        (["--entities", str(dated), "--out", str(tmp_path / "p.csv")], "written as Parquet"),
        (["--date", "2011-01-01"], "no model version with an event time"),
    ]
    model = BasketClassifier("seg-1")
    model.learn(classifier_features({"value": 10.0, "lines": 2, "country": "France"}, None),
                "small")
    for args, message in cases:
        done = CliRunner().invoke(cli, ["predict", "--out", out, *args], env=env)
        lines = done.output.strip().splitlines()
        assert done.exit_code == 1 and len(lines) == 1, (args, done.output)
        assert lines[0].startswith("Error:") and message in lines[0], (args, done.output)
        if message.startswith("no model version"):  # from now on, one of 1300000000
            Registry(registry_dir(settings.data_dir)).register(
                model, Lineage.of(model, "flow", clock=1_300_000_000), {})
            cases += [(["--entities", str(dated)], "no model was live"),
                      (["--entities", str(dated), "--model", "nope"],
                       f"known models: {model.version}")]


def test_the_model_live_at_a_time_is_the_newest_version_at_or_before_it(
        tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    model = BasketClassifier("seg-1")
    x = classifier_features({"value": 10.0, "lines": 2, "country": "France"}, None)
    for when in (300, 100, 200):  # registered out of order: listed by event time
        model.learn(x, "small")
        registry.register(model, Lineage.of(model, "flow", clock=when), {})
    registry.register(model, Lineage.of(model, "train"), {})  # no event time: not listed
    history = saved_models(registry)
    assert [(v.lineage.clock, v.lineage.n_learned) for v in history] == \
        [(100, 2), (200, 3), (300, 1)]
    assert live_at(history, np.array([99, 100, 250, 10**10])).tolist() == [-1, 0, 1, 2]
    assert registry.load(history[0].id).n_learned == 2
