"""Drift (reports/drift.py, `basketflow drift`): every feature's measure on a day of a
backfilled feature log equals a plain-Python computation from the log's rows (samples,
quantile bins, PSI, Jensen-Shannon, the Kolmogorov-Smirnov and chi-square statistics);
and the command's errors are one line.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.dataset as ds
import pytest

from basketflow.config import ENV_DATA_DIR
from basketflow.flows.backfill import file_events, run_backfill
from basketflow.flows.live import FeatureOutputs, RunOptions
from basketflow.models.classifier import BasketClassifier
from basketflow.models.registry import Lineage, Registry, registry_dir
from basketflow.producers.synthetic import write_csv
from basketflow.reports.daily import DRIFT_SHOWN, daily_report
from basketflow.reports.drift import (
    NOT_MEASURED,
    SHARE_FLOOR,
    SMALL_SAMPLE,
    categorical_drift,
    drift_report,
    numeric_drift,
)
from basketflow.reports.render import write_report
from basketflow.schemas.features import registry

DAY = date(2011, 3, 15)


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The feature log of a synthetic file (Jan..Mar 2011), written by the backfill."""
    root = tmp_path_factory.mktemp("drift")
    csv_path = root / "events.csv"
    write_csv(csv_path, rows=15_000, seed=17, start=date(2011, 1, 1), end=date(2011, 3, 31))
    run_backfill(file_events(csv_path, [0]), FeatureOutputs(None, "drift", root / "offline"),
                 RunOptions(snapshot_seconds=3600))
    return root / "offline"


# -- the plain-Python reference ------------------------------------------------------------

def samples(offline: Path, view: str, days: set[date]) -> list[dict[str, Any]]:
    """Each entity's last row of each day (product: of each hour tile), current version."""
    v = registry()[view]
    rows = ds.dataset(offline / "features" / view, format="parquet",
                      partitioning="hive").to_table().to_pylist()
    last: dict[tuple[Any, Any], dict[str, Any]] = {}
    for row in rows:
        day = date.fromisoformat(str(row["date"]))
        if row["version"] != v.version or day not in days:
            continue
        unit = (row["entity_id"], row["ts"] if view == "product" else day)
        if unit not in last or (row["ts"], row["seq"]) > (last[unit]["ts"], last[unit]["seq"]):
            last[unit] = row
    return list(last.values())


def quantile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    h = (len(sorted_values) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (h - lo) * (sorted_values[hi] - sorted_values[lo])


def plain_psi(day: list[float], ref: list[float]) -> float:
    ordered = sorted(ref)
    edges = sorted({quantile(ordered, i / 10) for i in range(1, 10)})

    def shares(values: list[float]) -> list[float]:
        counts = [0] * (len(edges) + 1)
        for v in values:
            counts[sum(1 for e in edges if v > e)] += 1
        return [max(c / len(values), SHARE_FLOOR) for c in counts]

    return sum((a - e) * math.log(a / e) for a, e in zip(shares(day), shares(ref)))


def plain_ks(day: list[float], ref: list[float]) -> float:
    def cdf(values: list[float], x: float) -> float:
        return sum(1 for v in values if v <= x) / len(values)
    return max(abs(cdf(day, x) - cdf(ref, x)) for x in set(day) | set(ref))


def plain_js(day: Counter[str], ref: Counter[str]) -> float:
    names = set(day) | set(ref)
    p = {n: day[n] / sum(day.values()) for n in names}
    q = {n: ref[n] / sum(ref.values()) for n in names}
    m = {n: (p[n] + q[n]) / 2 for n in names}

    def kl(a: dict[str, float]) -> float:
        return sum(a[n] * math.log2(a[n] / m[n]) for n in names if a[n] > 0)
    return math.sqrt((kl(p) + kl(q)) / 2)


def plain_chi2(day: Counter[str], ref: Counter[str]) -> float:
    names = sorted(set(day) | set(ref))
    table = [[day[n] for n in names], [ref[n] for n in names]]
    total = sum(map(sum, table))
    return sum((table[r][c] - sum(table[r]) * (table[0][c] + table[1][c]) / total) ** 2
               / (sum(table[r]) * (table[0][c] + table[1][c]) / total)
               for r in range(2) for c in range(len(names)))


def plain_measure(method: str, day: list[Any], ref: list[Any]) -> float:
    if method in ("psi", "ks"):
        return (plain_psi if method == "psi" else plain_ks)(day, ref)
    counts = Counter(map(str, day)), Counter(map(str, ref))
    return (plain_js if method == "js" else plain_chi2)(*counts)


# -- the tests -------------------------------------------------------------------------------

def test_every_feature_equals_the_plain_computation(offline: Path) -> None:
    ref_days = {DAY - timedelta(days=i) for i in range(1, 29)}
    report = drift_report(offline, DAY)
    assert report.reference == (DAY - timedelta(days=28), DAY - timedelta(days=1))
    methods = Counter(f.method for f in report.features)
    assert methods["psi"] and methods["ks"] and methods["chi2"], methods
    measured = set()
    for f in report.features:
        day_rows = samples(offline, f.view, {DAY})
        ref_rows = samples(offline, f.view, ref_days)
        day = [r[f.feature] for r in day_rows if r[f.feature] is not None]
        ref = [r[f.feature] for r in ref_rows if r[f.feature] is not None]
        assert (f.day_n, f.reference_n) == (len(day), len(ref)), f
        assert f.method in (("ks", "chi2") if len(day) < SMALL_SAMPLE else ("psi", "js"))
        assert f.score == pytest.approx(plain_measure(f.method, day, ref), rel=1e-9,
                                        abs=1e-12), f
        measured.add(f"{f.view}:{f.feature}")
    views = registry()
    want = {f"{v}:{feat.name}" for v in ("customer", "basket", "product")
            for feat in views[v].log_features
            if feat.dtype in ("int", "float", "str") and feat.name not in NOT_MEASURED}
    assert measured | set(report.empty) == want | {"scores:category"}
    assert "scores:category" in report.empty  # a backfill scores nothing


def test_large_samples_get_psi_and_js_exactly() -> None:
    rng = np.random.default_rng(3)
    ref = rng.gamma(2.0, 30.0, 5_000).round(2)
    for shift in (1.0, 1.2, 1.6):
        day = (rng.gamma(2.0, 30.0, 800) * shift).round(2)
        got = numeric_drift("v", "f", day, ref)
        assert got.method == "psi"
        assert got.score == pytest.approx(plain_psi(list(day), list(ref)), rel=1e-9)
    assert numeric_drift("v", "f", ref[:400], ref).status == "ok"
    assert numeric_drift("v", "f", ref[:400] * 3, ref).status == "alert"
    day, ref_counts = Counter(a=300, b=200, c=5), Counter(a=3000, b=3000, d=40)
    got = categorical_drift("v", "c", dict(day), dict(ref_counts))
    assert got.method == "js" and got.score == pytest.approx(plain_js(day, ref_counts))


def cli(offline: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {ENV_DATA_DIR: str(offline.parent)}
    return subprocess.run([sys.executable, "-m", "basketflow.cli", "drift", *args],
                          env=env, capture_output=True, text=True, timeout=120)


def test_the_command_prints_the_report(offline: Path) -> None:
    done = cli(offline, "--date", DAY.isoformat(), "--reference", "2011-02-01:2011-02-28",
               "--json")
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    want = drift_report(offline, DAY, (date(2011, 2, 1), date(2011, 2, 28))).to_json()
    assert got == json.loads(json.dumps(want))
    text = cli(offline, "--date", DAY.isoformat(), "--all")
    assert text.returncode == 0 and "features moved" in text.stdout
    assert all(len(line) <= 80 for line in text.stdout.splitlines())


@pytest.mark.parametrize("args, message", [
    (("--date", "2011-03-15", "--reference", "2011-03"),
     "Error: Invalid value for '--reference': '2011-03' is not FIRST:LAST"),
    (("--date", "2011-03-15", "--reference", "2011-03-10:2011-03-01"),
     "Error: Invalid value for '--reference': '2011-03-10:2011-03-01' ends before it starts"),
    (("--date", "2011-03-15", "--reference", "2011-03-01:2011-03-20"),
     "Error: the reference window 2011-03-01:2011-03-20 holds the day 2011-03-15 itself"),
    (("--date", "2012-01-01"), "Error: no feature log for 2012-01-01"),
    (("--date", "2011-03-15", "--reference", "2010-01-01:2010-01-31"),
     "Error: no feature log in the reference window 2010-01-01:2010-01-31"),
])
def test_bad_input_is_one_error_line(offline: Path, args: tuple[str, ...], message: str) -> None:
    done = cli(offline, *args)
    assert done.returncode in (1, 2) and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(message), done.stderr


def test_the_daily_report_has_a_drift_section(offline: Path, tmp_path: Path) -> None:
    report = daily_report(offline, DAY, data_dir=tmp_path)
    section = report["sections"]["drift"]
    want = json.loads(json.dumps(drift_report(offline, DAY).to_json()))
    assert section["available"] and section["most_moved"] == want["features"][:DRIFT_SHOWN]
    assert sum(section["counts"].values()) == len(want["features"])
    written = write_report(report, tmp_path / "out", {"html", "md"})
    assert tmp_path / "out" / DAY.isoformat() / "drift.png" in written
    first_day = min(d.name.removeprefix("date=") for d in (offline / "events").iterdir())
    early = daily_report(offline, date.fromisoformat(first_day), data_dir=tmp_path)
    assert early["sections"]["drift"] == {
        "title": "Feature drift", "available": False,
        "message": f"Feature drift could not be measured: no feature log in the reference "
                   f"window {date.fromisoformat(first_day) - timedelta(days=28)}:"
                   f"{date.fromisoformat(first_day) - timedelta(days=1)}; give one with data "
                   "(--reference FIRST:LAST)."}


def test_the_default_reference_is_the_champions_last_28_days_of_training(
        offline: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "offline").symlink_to(offline)
    model = BasketClassifier("seg-1")
    clock = int(datetime(2011, 2, 20, 17, 30, tzinfo=timezone.utc).timestamp())
    registry = Registry(registry_dir(data_dir))
    version = registry.register(model, Lineage.of(model, "train", None, clock), {}).id
    registry.promote(version)
    registry.close()
    champion_window = [date(2011, 1, 24).isoformat(), date(2011, 2, 20).isoformat()]
    env = os.environ | {ENV_DATA_DIR: str(data_dir)}
    done = subprocess.run([sys.executable, "-m", "basketflow.cli", "drift", "--date",
                           DAY.isoformat(), "--json"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["reference"] == champion_window
    assert got["reference_from"] == f"champion version {version}"
    want = drift_report(offline, DAY, (date(2011, 1, 24), date(2011, 2, 20))).to_json()
    assert got["features"] == json.loads(json.dumps(want["features"]))
    section = daily_report(offline, DAY, data_dir=data_dir)["sections"]["drift"]
    assert section["reference"] == champion_window
    # A day inside the champion's training: the 28 days before it instead.
    inside = daily_report(offline, date(2011, 2, 15), data_dir=data_dir)["sections"]["drift"]
    assert inside["reference_from"] == "the 28 days before"
