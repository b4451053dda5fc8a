"""`basketflow evaluate`: the first-basket protocol on generated data (reports/evaluate.py)."""

from __future__ import annotations

import csv
import json
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from basketflow.cli import cli
from basketflow.config import ENV_DATA_DIR
from basketflow.flows.backfill import file_events, run_backfill
from basketflow.flows.live import FeatureOutputs, RunOptions
from basketflow.producers.synthetic import write_csv
from basketflow.reports.evaluate import evaluate, first_baskets
from basketflow.reports.profiles import ProfileError, customer_profiles

SPLIT = date(2011, 4, 1)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A generated file and a data directory holding its feature log."""
    root = tmp_path_factory.mktemp("evaluate")
    source = root / "events.csv"
    write_csv(source, rows=20_000, seed=21, start=date(2011, 1, 1), end=date(2011, 6, 30))
    run_backfill(file_events(source, [0]), FeatureOutputs(None, "e", root / "data" / "offline"),
                 RunOptions(snapshot_seconds=3600))
    return source, root / "data"


def first_invoices(source: Path) -> dict[str, str]:
    """Each registered customer's first purchase invoice, read plainly from the CSV."""
    first: dict[str, tuple[datetime, str]] = {}
    with source.open(encoding="iso-8859-1", newline="") as f:
        for row in csv.DictReader(f):
            invoice, customer = row["InvoiceNo"], row["CustomerID"].strip()
            if not customer or invoice.startswith(("C", "A")):
                continue
            when = datetime.strptime(row["InvoiceDate"], "%m/%d/%Y %H:%M")
            customer = customer.removesuffix(".0")
            if customer not in first or (when, invoice) < first[customer]:
                first[customer] = (when, invoice)
    return {c: invoice for c, (_, invoice) in first.items()}


def test_first_baskets_are_each_customers_first_invoice(store: tuple[Path, Path]) -> None:
    source, data = store
    firsts = first_baskets(data / "offline")
    assert firsts["invoice"].to_dict() == first_invoices(source)


@pytest.mark.slow
def test_evaluation_splits_customers_and_scores_three_models(store: tuple[Path, Path]) -> None:
    _, data = store
    result = evaluate(data, SPLIT, k=8)
    profiles = customer_profiles(data / "offline")
    labels = result.segmentation.assign(profiles)
    started = profiles["first_basket"]
    test = profiles.index[started >= pd.Timestamp(SPLIT, tz="UTC")]
    train = profiles.index[started < pd.Timestamp(SPLIT, tz="UTC")]
    assert (result.train_customers, result.test_customers) == (len(train), len(test))
    assert result.test_customers_2plus == int((profiles.loc[test, "baskets"] >= 2).sum())
    models = {m.model: m for m in result.models}
    assert set(models) == {"majority", "random_forest", "river"}
    majority = labels.loc[train].value_counts().sort_index().idxmax()
    assert models["majority"].accuracy == pytest.approx(
        float((labels.loc[test] == majority).mean()), abs=1e-4)
    for m in models.values():
        assert 0 <= m.accuracy <= 1 and 0 <= m.macro_f1 <= 1 and 0 <= m.coverage <= 1
    # The River model learnt from the training customers and scored nearly every test
    # customer's first basket, better than the majority class.
    assert models["river"].coverage > 0.9
    assert models["river"].accuracy > models["majority"].accuracy
    assert int(result.confusion.to_numpy().sum()) == len(test)
    assert list(result.confusion.index) == result.segmentation.names


def test_the_command_prints_every_figure_and_refuses_a_split_outside_the_data(
        store: tuple[Path, Path]) -> None:
    _, data = store
    env = {ENV_DATA_DIR: str(data)}
    done = CliRunner().invoke(cli, ["evaluate", "--split", SPLIT.isoformat(), "--k", "8",
                                    "--json"], env=env)
    assert done.exit_code == 0, done.output
    figures = json.loads(done.output[done.output.index("{"):])
    assert [m["model"] for m in figures["models"]] == ["majority", "random_forest", "river"]
    outside = CliRunner().invoke(cli, ["evaluate", "--split", "2012-01-01"], env=env)
    assert outside.exit_code == 1 and "choose a date" in outside.output
    with pytest.raises(ProfileError):
        evaluate(data, date(2010, 1, 1))
