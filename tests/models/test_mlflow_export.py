"""`basketflow models export --mlflow URI` against a real MLflow store (a local sqlite:
tracking URI): every version becomes a registered model version with its metrics,
lineage tags and aliases, its pyfunc model predicts what the registry's version
predicts, a second export writes nothing, and a tampered artifact is never exported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from basketflow.config import ENV_DATA_DIR
from basketflow.models.aliases import CHALLENGER, CHAMPION
from basketflow.models.classifier import BasketClassifier, classifier_features
from basketflow.models.mlflow_export import DEFAULT_NAME, metric_items
from basketflow.models.registry import ARTIFACTS, Lineage, Registry, registry_dir

mlflow = pytest.importorskip("mlflow")

BASKETS = [classifier_features({"value": v, "lines": n, "country": c}, None)
           for v, n, c in ((10.0, 2, "France"), (250.0, 30, "United Kingdom"),
                           (42.5, 5, "Germany"), (3.0, 1, "EIRE"))]


def model_after(n: int) -> BasketClassifier:
    """A classifier that has learnt ``n`` baskets of two categories."""
    model = BasketClassifier("seg-1")
    for i in range(n):
        model.learn(BASKETS[i % len(BASKETS)], "big" if i % 3 else "small")
    return model


def export(data_dir: Path, uri: str, *more: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "basketflow.cli", "models", "export",
                           "--mlflow", uri, *more], env=os.environ | {ENV_DATA_DIR: str(data_dir)},
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    """A registry with three versions: 2 is the champion, 3 the challenger."""
    registry = Registry(registry_dir(tmp_path / "data"))
    parent = None
    for n in (5, 12, 20):
        model = model_after(n)
        metrics = {"since_start": {"baskets": n, "accuracy": n / 40, "log_loss": None},
                   "rolling": {"baskets": n, "accuracy": 0.5},
                   "per_category": {"big": {"since_start": {"accuracy": 0.75}}}}
        parent = registry.register(model, Lineage.of(model, "flow", parent,
                                                     1_300_000_000 + n,
                                                     {"offset:t:0": n}), metrics).id
    registry.promote(2, CHAMPION)
    registry.promote(3, CHALLENGER)
    return registry


@pytest.mark.slow
def test_every_version_becomes_a_registered_model_version(registry: Registry,
                                                          tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = export(tmp_path / "data", uri, "--json")
    assert done.returncode == 0, done.stderr
    assert [(v["version"], v["written"], v["aliases"]) for v in json.loads(done.stdout)] == [
        (1, True, []), (2, True, [CHAMPION]), (3, True, [CHALLENGER])]
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = mlflow.tracking.MlflowClient(tracking_uri=uri, registry_uri=uri)
    found = {int(v.tags["basketflow.version"]): v
             for v in client.search_model_versions(f"name='{DEFAULT_NAME}'")}
    assert sorted(found) == [1, 2, 3]
    for version in registry.versions():
        got = found[version.id]
        assert got.tags["basketflow.sha256"] == version.sha256
        assert got.tags["basketflow.n_learned"] == str(version.lineage.n_learned)
        assert got.tags["basketflow.parent"] == str(version.lineage.parent)
        assert json.loads(got.tags["basketflow.offsets"]) == version.lineage.offsets
        run = client.get_run(got.run_id)
        assert run.data.metrics == dict(metric_items(version.metrics))
        assert run.data.metrics["per_category.big.since_start.accuracy"] == 0.75
        pyfunc = mlflow.pyfunc.load_model(f"models:/{DEFAULT_NAME}/{got.version}")
        predicted = pyfunc.predict(pd.DataFrame(BASKETS))
        model = registry.load(version.id)
        for row, x in zip(predicted.to_dict(orient="records"), BASKETS):
            score = model.predict(x, 0)
            assert score is not None and row["category"] == score.category
            assert {c: row[f"p_{c}"] for c in score.probabilities} == pytest.approx(
                score.probabilities)
    model_aliases = client.get_registered_model(DEFAULT_NAME).aliases
    assert model_aliases == {CHAMPION: found[2].version, CHALLENGER: found[3].version}

    again = export(tmp_path / "data", uri)
    assert again.returncode == 0, again.stderr
    assert "0 version(s) written to MLflow, 3 there already" in again.stdout
    assert len(client.search_model_versions(f"name='{DEFAULT_NAME}'")) == 3
    registry.promote(1, CHAMPION)
    moved = export(tmp_path / "data", uri)
    assert moved.returncode == 0, moved.stderr
    assert client.get_registered_model(DEFAULT_NAME).aliases[CHAMPION] == found[1].version


def test_a_tampered_artifact_is_refused_and_nothing_of_it_exported(
        registry: Registry, tmp_path: Path) -> None:
    artifact = registry.directory / ARTIFACTS / f"{registry.get(2).sha256}.pkl"
    artifact.write_bytes(artifact.read_bytes() + b"x")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = export(tmp_path / "data", uri)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(
        "Error: model version 2 was refused"), done.stderr
    client = mlflow.tracking.MlflowClient(tracking_uri=uri, registry_uri=uri)
    tags = [v.tags["basketflow.version"]
            for v in client.search_model_versions(f"name='{DEFAULT_NAME}'")]
    assert tags == ["1"]


@pytest.mark.parametrize("store", ["not-a-database", "bogus://nowhere"])
def test_a_bad_store_is_one_error_line(registry: Registry, tmp_path: Path, store: str) -> None:
    garbage = tmp_path / "not-a-database"
    garbage.write_text("this is not a database\n" * 100)
    uri = f"sqlite:///{garbage}" if store == "not-a-database" else store
    done = export(tmp_path / "data", uri)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(
        "Error: the MLflow store cannot be read"), done.stderr


def test_without_a_registry_it_says_what_makes_one(tmp_path: Path) -> None:
    done = export(tmp_path / "empty", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("Error: no model registry")
