"""Customer categories (reports/profiles.py, reports/segments.py, `basketflow segment`).

The feature log comes from the backfill (the live flow's own feature code, no Kafka) over a
seeded synthetic file; profile numbers are checked against a plain computation over that
file's lines; the real-data test backfills the real extract and fits it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from basketflow.config import ENV_DATA_DIR
from basketflow.flows.backfill import file_events, run_backfill
from basketflow.flows.live import FeatureOutputs, RunOptions
from basketflow.producers.csv_source import read_events
from basketflow.producers.synthetic import write_csv
from basketflow.reports.profiles import SHARE_COLUMNS, ProfileError, customer_profiles
from basketflow.reports.segments import (
    INPUTS,
    K_RANGE,
    SCALE_BLOCKS,
    SegmentationError,
    assign_customers,
    fit_segments,
    input_matrix,
    load_labels,
    load_segmentation,
)
from basketflow.schemas.events import Transaction
from basketflow.schemas.taxonomy import load_taxonomy

UNTIL = date(2011, 5, 31)


def backfill(csv_path: Path, offline_dir: Path) -> None:
    """The feature log of a Kaggle-format file, written by the backfill."""
    run_backfill(file_events(csv_path, [0]), FeatureOutputs(None, "seg", offline_dir),
                 RunOptions(snapshot_seconds=3600))


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A synthetic file (Jan..Jun 2011) and its feature log, shared by the module."""
    root = tmp_path_factory.mktemp("segments")
    csv_path = root / "events.csv"
    write_csv(csv_path, rows=25_000, seed=11, start=date(2011, 1, 1), end=date(2011, 6, 30))
    backfill(csv_path, root / "offline")
    return csv_path, root / "offline"


@pytest.fixture
def data_dir(tmp_path: Path, generated: tuple[Path, Path]) -> Path:
    """A fresh data directory whose offline store is the module's feature log."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "offline").symlink_to(generated[1])
    return tmp_path / "data"


def basketflow(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real `basketflow` command on a data directory."""
    return subprocess.run([sys.executable, "-m", "basketflow.cli", *args],
                          env=os.environ | {ENV_DATA_DIR: str(data_dir)},
                          capture_output=True, text=True, timeout=300)


def expected_profiles(csv_path: Path, until: date) -> dict[str, dict[str, Any]]:
    """Per registered customer, basket and lifetime figures computed plainly from the lines.

    A basket is a purchase invoice (not a cancellation, not an adjustment): its value is
    the sum of quantity x price, items the units of product lines, lines its lines; shares
    are product value per taxonomy category over the basket's product value, weighted by
    the basket's value. Lifetime spend counts every line, cancellations negative.
    """
    tax = load_taxonomy()
    baskets: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    lifetime: dict[str, float] = defaultdict(float)
    for e in read_events(csv_path):
        if not isinstance(e, Transaction) or not e.customer_id or \
                e.event_time.date() > until:
            continue
        lifetime[e.customer_id] += e.quantity * e.unit_price
        if e.is_cancellation or e.is_adjustment:
            continue
        b = baskets[e.customer_id].setdefault(
            e.invoice, {"value": 0.0, "items": 0, "lines": 0, "by": defaultdict(float)})
        amount = e.quantity * e.unit_price
        b["value"] += amount
        b["lines"] += 1
        if e.is_product:
            b["items"] += e.quantity
            b["by"][tax.category_of(e.stock_code, e.description)] += amount
    out = {}
    for customer, invoices in baskets.items():
        frame = pd.DataFrame([{k: v for k, v in b.items() if k != "by"}
                              for b in invoices.values()])
        weights = [max(b["value"], 0.0) for b in invoices.values()]
        shares = {}
        for column in SHARE_COLUMNS:
            category = column.removeprefix("share_")
            per_basket = [b["by"].get(category, 0.0) / sum(b["by"].values())
                          if sum(b["by"].values()) > 0 else 0.0 for b in invoices.values()]
            shares[column] = sum(s * w for s, w in zip(per_basket, weights)) / sum(weights)
        out[customer] = {"baskets": len(frame), "basket_value_mean": frame["value"].mean(),
                         "basket_value_median": frame["value"].median(),
                         "items_mean": frame["items"].mean(),
                         "lines_mean": frame["lines"].mean(),
                         "lifetime_spend": lifetime[customer], **shares}
    return out


def test_profiles_match_a_plain_computation_from_the_lines(generated: tuple[Path, Path]) -> None:
    """Every registered customer up to the day is profiled (no guest), and the figures of
    a few (the busiest, a one-basket one, a middle one) match the lines' own arithmetic."""
    csv_path, offline = generated
    profiles = customer_profiles(offline, UNTIL)
    expected = expected_profiles(csv_path, UNTIL)
    assert set(profiles.index) == set(expected)
    assert not profiles.index.str.startswith("guest-").any()
    assert (profiles["last_basket"].dt.date <= UNTIL).all()
    by_baskets = sorted(expected, key=lambda c: (-expected[c]["baskets"], c))
    single = next(c for c in by_baskets if expected[c]["baskets"] == 1)
    for customer in (by_baskets[0], by_baskets[len(by_baskets) // 2], single):
        got, want = profiles.loc[customer], expected[customer]
        assert got["baskets"] == want["baskets"]
        for column in ("basket_value_mean", "basket_value_median", "items_mean",
                       "lines_mean", "lifetime_spend"):
            assert got[column] == pytest.approx(want[column], rel=1e-6, abs=0.01), column
        for column in SHARE_COLUMNS:  # basket shares are logged to 4 decimals
            assert got[column] == pytest.approx(want[column], abs=2e-4), column
    assert (profiles["days_between_baskets"].isna() == (profiles["baskets"] == 1)).all()


def test_same_data_and_seed_give_the_same_categories_names_version_and_labels(
        data_dir: Path, tmp_path: Path, generated: tuple[Path, Path]) -> None:
    """Two fits in two data directories: identical content; assign labels identically."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "offline").symlink_to(generated[1])
    first = fit_segments(data_dir, UNTIL, seed=3, k=10)
    second = fit_segments(other, UNTIL, seed=3, k=10)
    assert first.version == second.version
    assert first.names == second.names and first.content() == second.content()
    labels = assign_customers(data_dir)
    pd.testing.assert_frame_equal(labels, assign_customers(other))
    assert load_labels(data_dir) == load_labels(other) == dict(zip(labels["customer_id"],
                                                                   labels["category"]))


def test_fit_gives_8_to_12_uniquely_named_categories_with_profiles(data_dir: Path) -> None:
    """k chosen by silhouette within 8..12; sizes add up; names unique; artifact reloads."""
    seg = fit_segments(data_dir, UNTIL)
    assert seg.k in K_RANGE and len(seg.names) == seg.k == len(set(seg.names))
    assert sorted(map(int, seg.silhouette)) == list(K_RANGE)
    assert seg.silhouette[str(seg.k)] == max(seg.silhouette.values())
    assert sum(seg.sizes) == seg.customers == len(customer_profiles(data_dir / "offline", UNTIL))
    assert seg.sizes == sorted(seg.sizes, reverse=True)
    assert seg.until == UNTIL.isoformat() and seg.data_range[1] <= UNTIL.isoformat()
    assert seg.feature_versions["basket"] and seg.fitted_at
    for profile in seg.profiles:
        assert profile["top_categories"] and profile["baskets_median"] >= 1
        assert sum(profile["shares"].values()) == pytest.approx(1, abs=0.01)
    assert load_segmentation(data_dir) == seg
    assert (data_dir / "segments" / "CURRENT").read_text().strip() == seg.version


def test_frequency_inputs_and_shares_are_each_scaled_as_one_block(data_dir: Path) -> None:
    """Each block of inputs has one common scale, the root mean of its variances, so
    within a block an input with little variance is not blown up; every other input is
    standardised alone."""
    seg = fit_segments(data_dir, UNTIL, k=8)
    matrix = input_matrix(customer_profiles(data_dir / "offline", UNTIL))
    scale = np.asarray(seg.scale)
    blocked = set()
    for block in SCALE_BLOCKS:
        columns = [INPUTS.index(name) for name in block]
        blocked.update(columns)
        common = np.sqrt(matrix[:, columns].var(axis=0).mean())
        assert scale[columns] == pytest.approx([common] * len(columns), rel=1e-6)
    assert ("baskets", "baskets_per_active_month") in SCALE_BLOCKS
    alone = [i for i in range(len(INPUTS)) if i not in blocked]
    assert scale[alone] == pytest.approx(matrix[:, alone].std(axis=0), rel=1e-6)


def test_assign_labels_every_profiled_customer(data_dir: Path) -> None:
    """Every customer with a basket gets a category of the segmentation, fitted or not."""
    seg = fit_segments(data_dir, UNTIL, k=8)
    labels = assign_customers(data_dir, until=None)
    everyone = customer_profiles(data_dir / "offline")
    assert list(labels["customer_id"]) == list(everyone.index)
    assert set(labels["category"]) <= set(seg.names)
    assert labels["category"].notna().all()
    fitted = seg.assign(customer_profiles(data_dir / "offline", UNTIL))
    assert fitted.value_counts().reindex(seg.names).tolist() == seg.sizes


def test_a_changed_artifact_is_refused(data_dir: Path) -> None:
    """Any byte changed after fitting: the checksum does not match, nothing is loaded."""
    seg = fit_segments(data_dir, UNTIL, k=9)
    artifact = data_dir / "segments" / seg.version / "segmentation.json"
    text = artifact.read_text()
    artifact.write_text(text.replace(json.dumps(seg.names[0]), json.dumps("Big spenders"), 1))
    with pytest.raises(SegmentationError, match="checksum"):
        load_segmentation(data_dir)
    artifact.write_text(text)
    assert load_segmentation(data_dir, seg.version) == seg


def test_errors_say_what_to_do(data_dir: Path, tmp_path: Path) -> None:
    """Nothing fitted, unknown version, no labels, no log, a day outside the data."""
    with pytest.raises(SegmentationError, match="segment fit"):
        load_segmentation(data_dir)
    with pytest.raises(SegmentationError, match="outside the feature log"):
        fit_segments(data_dir, date(2012, 1, 1))
    with pytest.raises(SegmentationError, match="outside the feature log"):
        fit_segments(data_dir, date(2010, 1, 1))
    with pytest.raises(SegmentationError, match="backfill"):
        fit_segments(tmp_path / "empty", UNTIL)
    with pytest.raises(ProfileError, match="backfill"):
        customer_profiles(tmp_path / "empty")
    with pytest.raises(SegmentationError, match="12"):
        fit_segments(data_dir, UNTIL, k=20)
    with pytest.raises(SegmentationError, match="needs at least"):
        fit_segments(data_dir, date(2011, 1, 4))
    seg = fit_segments(data_dir, UNTIL, k=8)
    with pytest.raises(SegmentationError, match="segment assign"):
        load_labels(data_dir)
    with pytest.raises(SegmentationError, match="known: " + seg.version):
        load_segmentation(data_dir, "0000")


@pytest.mark.slow
def test_cli_fit_assign_show(data_dir: Path, tmp_path: Path) -> None:
    """The three commands with --json, the table, --out, and a clear error."""
    fitted = basketflow(data_dir, "segment", "fit", "--until", UNTIL.isoformat(), "--seed", "1",
                        "--k", "10", "--json")
    assert fitted.returncode == 0, fitted.stderr[-2000:]
    seg = json.loads(fitted.stdout)
    assert seg["k"] == 10 and len(set(seg["names"])) == 10
    assert seg == json.loads(
        (data_dir / "segments" / seg["version"] / "segmentation.json").read_text())

    out_file = tmp_path / "labels.csv"
    assigned = basketflow(data_dir, "segment", "assign", "--version", seg["version"],
                          "--until", "2011-06-30", "--out", str(out_file), "--json")
    assert assigned.returncode == 0, assigned.stderr[-2000:]
    summary = json.loads(assigned.stdout)
    written = pd.read_csv(out_file, dtype={"customer_id": str})
    assert summary["customers"] == len(written) == sum(summary["categories"].values())
    assert list(summary["categories"]) == seg["names"]
    assert dict(zip(written["customer_id"], written["category"])) == load_labels(data_dir)

    shown = basketflow(data_dir, "segment", "show", "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout) == seg
    table = basketflow(data_dir, "segment", "show")
    assert table.returncode == 0 and seg["version"] in table.stdout
    assert f"{seg['sizes'][0]:,}" in table.stdout

    wrong = basketflow(data_dir, "segment", "show", "--version", "nope")
    assert wrong.returncode == 1 and "segment fit" in wrong.stderr
    outside = basketflow(data_dir, "segment", "fit", "--until", "2013-01-01")
    assert outside.returncode == 1 and "outside the feature log" in outside.stderr


@pytest.mark.slow
def test_real_data_categories_are_all_at_least_1_percent(real_data: Path, tmp_path: Path) -> None:
    """The real extract, fitted up to 2011-06-30: 8..12 named categories, none tiny."""
    backfill(real_data, tmp_path / "offline")
    seg = fit_segments(tmp_path, date(2011, 6, 30))
    shares = [size / seg.customers for size in seg.sizes]
    assert seg.k in K_RANGE and len(set(seg.names)) == seg.k
    assert min(shares) >= 0.01, dict(zip(seg.names, shares))
    labels = assign_customers(tmp_path)
    assert labels["category"].value_counts(normalize=True).min() >= 0.01
