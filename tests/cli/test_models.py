"""``basketflow models``: train from the offline store, list, show, promote, rollback and
diff through the real command, with --json and 80-column text; bad input and a tampered
version are one ``Error:`` line."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner, Result

from basketflow.cli import cli
from basketflow.config import ENV_DATA_DIR
from basketflow.flows.backfill import file_events, run_backfill
from basketflow.flows.live import FeatureOutputs, RunOptions
from basketflow.models.classifier import classifier_features
from basketflow.models.registry import ARTIFACTS, REGISTRY_FILE, Registry
from basketflow.producers.synthetic import write_csv
from basketflow.reports.segments import assign_customers, fit_segments, load_labels
from basketflow.schemas.features import registry

UNTIL = "2011-04-30"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with an offline store and labelled customers, no model yet."""
    root = tmp_path_factory.mktemp("models")
    source = root / "events.csv"
    write_csv(source, rows=8_000, seed=5, start=date(2011, 1, 1), end=date(2011, 6, 30))
    run_backfill(file_events(source, [0]), FeatureOutputs(None, "m", root / "offline"),
                 RunOptions(snapshot_seconds=3600))
    fit_segments(root, date(2011, 4, 30), k=8)
    assign_customers(root)
    return root


def run(data_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["models", *args], env={ENV_DATA_DIR: str(data_dir)})


def one_error(done: Result, message: str) -> None:
    lines = done.output.strip().splitlines()
    assert done.exit_code == 1 and len(lines) == 1, done.output
    assert lines[0].startswith("Error:") and message in lines[0], done.output


def narrow(done: Result) -> None:
    assert done.exit_code == 0, done.output
    assert max(len(line) for line in done.output.splitlines()) <= 80, done.output


@pytest.mark.slow
def test_train_list_show_promote_rollback_diff(data_dir: Path) -> None:
    narrow(empty := run(data_dir, "list"))
    assert "no model versions yet" in empty.output
    one_error(run(data_dir, "show", "1"), "no model registry")

    first = run(data_dir, "train", "--until", UNTIL, "--json")
    assert first.exit_code == 0, first.output
    trained = json.loads(first.output)
    end = datetime(2011, 5, 1, tzinfo=timezone.utc).timestamp()
    assert trained["id"] == 1 and trained["promoted"] and trained["aliases"] == ["champion"]
    lineage = trained["lineage"]
    assert lineage["source"] == "train" and lineage["parent"] is None
    assert 0 < lineage["clock"] < end and lineage["n_learned"] > 50
    # prequential: every basket learnt after the first was measured first
    assert trained["metrics"]["since_start"]["baskets"] == lineage["n_learned"] - 1
    per_category = trained["metrics"]["per_category"]
    assert sum(c["since_start"]["baskets"] for c in per_category.values()) == \
        lineage["n_learned"] - 1

    second = run(data_dir, "train")
    narrow(second)
    assert "registered version 2" in second.output and "models promote 2" in second.output

    listed = json.loads(run(data_dir, "list", "--json").output)
    assert [(v["id"], v["aliases"]) for v in listed] == [(1, ["champion"]), (2, [])]
    assert listed[1]["lineage"]["n_learned"] > listed[0]["lineage"]["n_learned"]
    narrow(run(data_dir, "list"))
    narrow(shown := run(data_dir, "show", "2"))
    assert "drift detections (ADWIN)" in shown.output and "segmentation" in shown.output

    assert json.loads(run(data_dir, "promote", "2", "--json").output) == \
        {"alias": "champion", "from": 1, "to": 2}
    assert json.loads(run(data_dir, "promote", "1", "--alias", "challenger", "--json")
                      .output) == {"alias": "challenger", "from": None, "to": 1}
    narrow(back := run(data_dir, "rollback"))
    assert back.output.strip() == "champion: version 2 -> 1"
    one_error(run(data_dir, "rollback"), "no earlier version")

    diff = json.loads(run(data_dir, "diff", "1", "2", "--json").output)
    assert (diff["first"]["id"], diff["second"]["id"]) == (1, 2)
    assert sorted(diff["first"]["aliases"]) == ["challenger", "champion"]
    assert diff["held_out"] is None and "earlier --since" in diff["note"]  # 2 saw them all
    narrow(text := run(data_dir, "diff", "1", "2"))
    assert "held-out: no basket" in text.output
    held = json.loads(run(data_dir, "diff", "1", "2", "--since", "2011-05-01", "--json")
                      .output)["held_out"]
    for version in (1, 2):
        baskets, accuracy = reference_accuracy(data_dir, version, "2011-05-01")
        mine = held["versions"][str(version)]["since_start"]
        assert (held["baskets"], mine["baskets"]) == (baskets, baskets) and baskets > 50
        assert mine["accuracy"] == accuracy
    narrow(run(data_dir, "diff", "1", "2", "--since", "2011-05-01"))

    one_error(run(data_dir, "show", "99"), "no model version 99")
    one_error(run(data_dir, "promote", "99"), "no model version 99")
    assert run(data_dir, "show", "two").exit_code == 2  # click's usage error
    one_error(run(data_dir, "train", "--until", "2010-01-01"), "taught the model nothing")


def _log(data_dir: Path, view: str) -> pd.DataFrame:
    frame = pd.read_parquet(data_dir / "offline" / "features" / view)
    frame = frame[frame["version"] == registry()[view].version]
    return frame.astype(object).where(frame.notna(), None)


def reference_accuracy(data_dir: Path, version: int, since: str) -> tuple[int, float]:
    """Plain pandas and Python: the held-out baskets (labelled customers' baskets whose
    last line is on or after ``since``), each scored at its last feature row by the
    version's model, against the label: how many, and the accuracy."""
    labels = load_labels(data_dir)
    baskets, customers = _log(data_dir, "basket"), _log(data_dir, "customer")
    baskets = baskets[~baskets["entity_id"].str.startswith("guest-")]
    last = baskets.sort_values(["ts", "seq"]).groupby(["entity_id", "invoice"]).tail(1)
    last = last[(last["ts"] >= pd.Timestamp(since, tz="UTC"))
                & last["entity_id"].isin(set(labels))]
    model = Registry(data_dir / "models").load(version)
    right = 0
    for row in last.to_dict("records"):
        mine = customers[(customers["entity_id"] == row["entity_id"])
                         & (customers["ts"] <= row["ts"])]
        customer = mine.sort_values(["ts", "seq"]).iloc[-1].to_dict() if len(mine) else None
        score = model.predict(classifier_features(row, customer), 0)
        right += score is not None and score.category == labels[row["entity_id"]]
    return len(last), round(right / len(last), 4)


@pytest.mark.slow
def test_a_tampered_version_is_one_error_line_naming_it(data_dir: Path) -> None:
    if not (data_dir / "models" / REGISTRY_FILE).exists():
        assert run(data_dir, "train").exit_code == 0
    with sqlite3.connect(data_dir / "models" / REGISTRY_FILE) as db:
        version, text = db.execute("SELECT id, entry FROM versions ORDER BY id DESC"
                                   ).fetchone()
        entry = json.loads(text)
        evil = b"not the model"
        (data_dir / "models" / ARTIFACTS / f"{hashlib.sha256(evil).hexdigest()}.pkl"
         ).write_bytes(evil)
        entry["sha256"] = hashlib.sha256(evil).hexdigest()
        db.execute("UPDATE versions SET entry = ? WHERE id = ?",
                   (json.dumps(entry, sort_keys=True, separators=(",", ":")), version))
    one_error(run(data_dir, "show", str(version)), f"model version {version} was refused")
    one_error(run(data_dir, "list"), f"model version {version} was refused")
    checked = CliRunner().invoke(cli, ["check", "--json"], env={ENV_DATA_DIR: str(data_dir)})
    assert checked.exit_code == 1, checked.output
    result = json.loads(checked.stdout)
    assert result["model_versions"] >= 1
    assert [(f["kind"], f["reason"]) for f in result["findings"]] == \
        [("models", f"version {version}: its entry does not match its HMAC")]
