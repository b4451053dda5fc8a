"""The daily report's customer categories and late events, on a store built by the backfill.

The store is made the way a deployment makes it: generated Kaggle lines backfilled into
events and feature logs, a segmentation fitted and assigned on them, then the backfill run
again with the scoring step on (the labels of that segmentation), which writes the score
log. Every figure of the section is recomputed here from the events of the file, the labels
and the score log, following the definitions the report prints.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import date, datetime, timezone
from pathlib import Path
from statistics import fmean
from typing import Any

import pandas as pd
import pytest

from basketflow.flows.backfill import file_events, run_backfill
from basketflow.flows.live import FeatureOutputs, RunOptions
from basketflow.flows.scoring import ScoringConfig
from basketflow.producers.csv_source import read_events
from basketflow.producers.synthetic import write_csv
from basketflow.reports.daily import ReportRun, daily_report
from basketflow.reports.daily_files import run_reports
from basketflow.reports.profiles import customer_profiles
from basketflow.reports.render import render_markdown
from basketflow.reports.segments import (
    assign_customers,
    fit_segments,
    load_labels,
    load_segmentation,
)
from basketflow.schemas.events import Transaction
from basketflow.sinks.offline_store import LateEventLog

START, END = date(2011, 1, 3), date(2011, 4, 29)
FIT_UNTIL, LABELS_UNTIL = date(2011, 3, 15), date(2011, 4, 10)
DAYS = (date(2011, 4, 15), date(2011, 4, 8), date(2011, 3, 9))
LATE_DAY = date(2011, 4, 27)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Transaction]]:
    """A data directory with events, feature logs, a labelled segmentation, a score log and
    a few late events; and the file's valid events."""
    root = tmp_path_factory.mktemp("customers")
    source = root / "events.csv"
    write_csv(source, rows=16_000, seed=11, start=START, end=END, customers=300)
    first = root / "first"
    run_backfill(file_events(source, [0]), FeatureOutputs(None, "bf", first / "offline"),
                 RunOptions(snapshot_seconds=3600))
    segmentation = fit_segments(first, FIT_UNTIL, k=8)
    assign_customers(first, until=LABELS_UNTIL)
    data = root / "data"
    shutil.copytree(first / "segments", data / "segments")
    scoring = ScoringConfig(load_labels(data), segmentation.version, None)
    run_backfill(file_events(source, [0]),
                 FeatureOutputs(None, "bf", data / "offline", scoring=scoring),
                 RunOptions(snapshot_seconds=3600))
    late = [(f"late-{i}", "12345", int(datetime(2011, 4, 27, 9, i, tzinfo=timezone.utc)
                                             .timestamp()), 1_303_900_000) for i in range(3)]
    assert LateEventLog(data / "offline").append(late) == 3
    events = [e for e in read_events(source) if isinstance(e, Transaction)]
    return data, events


def is_sale(e: Transaction) -> bool:
    """A line of an invoice that is neither a cancellation nor an adjustment."""
    return not e.is_cancellation and not e.is_adjustment


class CustomerOracle:
    """Customer-category figures of any day, from the events, labels and score log."""

    def __init__(self, data: Path, events: list[Transaction]) -> None:
        self.labels = load_labels(data)
        self.by_day: dict[date, list[Transaction]] = defaultdict(list)
        self.first_purchase: dict[str, date] = {}
        for e in events:
            self.by_day[e.event_time.date()].append(e)
            if e.customer_id and is_sale(e):
                day = e.event_time.date()
                self.first_purchase[e.customer_id] = min(
                    day, self.first_purchase.get(e.customer_id, day))
        self.days = sorted(self.by_day)
        scores = pd.read_parquet(data / "offline" / "scores")
        last = scores.sort_values(["ts", "seq"]).groupby(["entity_id", "invoice"]).last()
        self.last_score: dict[tuple[str, str], str] = last["category"].to_dict()

    def trailing(self, day: date) -> list[date]:
        """The up to 7 trading days before ``day``, latest first."""
        return [d for d in reversed(self.days) if d < day][:7]

    def category(self, customer: str) -> str:
        """A registered customer's category: their label, or unlabelled."""
        return self.labels.get(customer, "unlabelled")

    def per_category(self, day: date) -> dict[str, dict[str, float]]:
        """Active customers and revenue of each customer category on the day."""
        active: dict[str, set[str]] = defaultdict(set)
        revenue: dict[str, float] = defaultdict(float)
        for e in self.by_day.get(day, []):
            if e.customer_id and is_sale(e):
                active[self.category(e.customer_id)].add(e.customer_id)
                if e.is_product:
                    revenue[self.category(e.customer_id)] += e.quantity * e.unit_price
        return {c: {"active_customers": len(active[c]), "revenue": revenue[c]}
                for c in set(active) | set(revenue)}

    def new_customers(self, day: date) -> dict[str, tuple[str | None, str | None]]:
        """Each new customer of the day: (predicted category or None, label or None)."""
        first_invoice: dict[str, tuple[datetime, str]] = {}
        for e in self.by_day.get(day, []):
            if e.customer_id and is_sale(e) and self.first_purchase[e.customer_id] == day:
                key = (e.event_time, e.invoice)
                first_invoice[e.customer_id] = min(key, first_invoice.get(e.customer_id, key))
        return {c: (self.last_score.get((c, invoice)), self.labels.get(c))
                for c, (_, invoice) in first_invoice.items()}


@pytest.fixture(scope="module")
def oracle(store: tuple[Path, list[Transaction]]) -> CustomerOracle:
    """The independent recomputation over the store's events, labels and scores."""
    return CustomerOracle(*store)


def assert_figure(figure: dict[str, Any], series: Callable[[date], float], day: date,
                  trailing: list[date], what: str) -> None:
    """A figure equals the oracle's value, previous-day value and trailing mean."""
    assert figure["value"] == pytest.approx(series(day), abs=0.006), what
    assert figure["previous"] == pytest.approx(series(trailing[0]), abs=0.006), what
    assert figure["avg_7d"] == pytest.approx(fmean(map(series, trailing)), abs=0.006), what


@pytest.mark.parametrize("day", DAYS)
def test_customer_category_figures_equal_an_independent_computation(
        store: tuple[Path, list[Transaction]], oracle: CustomerOracle, day: date) -> None:
    data, _ = store
    section = daily_report(data / "offline", day)["sections"]["customer_categories"]
    assert section["available"] is True
    segmentation = load_segmentation(data)
    assert section["segmentation"]["version"] == segmentation.version
    trailing = oracle.trailing(day)
    names = [c["name"] for c in section["categories"]]
    assert sorted(names) == sorted([*segmentation.names, "unlabelled"])
    for category in section["categories"]:
        for figure in ("active_customers", "revenue"):
            assert_figure(category[figure],
                          lambda d, c=category["name"], f=figure:
                          oracle.per_category(d).get(c, {}).get(f, 0), day, trailing,
                          f"{category['name']}.{figure}")

    new = section["new_customers"]
    expected = oracle.new_customers(day)
    assert new["scores_recorded"] is True
    assert {c["customer_id"]: (c["predicted"], c["label"]) for c in new["customers"]} == expected
    judged = [p == label for p, label in expected.values() if p and label]
    assert new["count"]["value"] == len(expected) > 0
    assert new["predicted"]["value"] == sum(1 for p, _ in expected.values() if p)
    assert new["labelled"]["value"] == len(judged)
    assert new["right"]["value"] == sum(judged)
    assert judged or day != DAYS[1]    # labelled new customers that day: accuracy
    if judged:
        assert new["accuracy"]["value"] == pytest.approx(sum(judged) / len(judged), abs=1e-4)
    else:
        assert new["accuracy"] is None
    predicted = Counter(p for p, _ in expected.values() if p)
    assert {p["category"]: p["count"]["value"] for p in new["by_predicted"]} == predicted
    assert_figure(new["count"], lambda d: len(oracle.new_customers(d)), day, trailing, "new")


def test_new_customers_after_the_labels_are_unlabelled_and_predicted(
        store: tuple[Path, list[Transaction]], oracle: CustomerOracle) -> None:
    day = DAYS[0]                      # after LABELS_UNTIL: new customers have no label
    new = daily_report(store[0] / "offline", day)["sections"]["customer_categories"][
        "new_customers"]
    assert all(c["label"] is None and c["right"] is None for c in new["customers"])
    assert new["predicted"]["value"] > 0           # the model had learnt by then
    unlabelled = oracle.per_category(day)["unlabelled"]["active_customers"]
    assert unlabelled >= new["count"]["value"]


def test_the_categories_add_up_to_the_registered_customers(
        store: tuple[Path, list[Transaction]]) -> None:
    data, events = store
    guest_revenue: dict[date, float] = defaultdict(float)
    for e in events:
        if not e.customer_id and is_sale(e) and e.is_product:
            guest_revenue[e.event_time.date()] += e.quantity * e.unit_price
    with ReportRun(data / "offline", [date(2011, 4, d) for d in range(1, 30)]) as run:
        reports = [run.report(day) for day in run.days]
    trading = [r for r in reports if r["status"] == "trading"]
    assert len(trading) >= 20
    for report in trading:
        s = report["sections"]
        section = s["customer_categories"]
        categories = section["categories"]
        for part in ("value", "previous"):
            active = sum(c["active_customers"][part] for c in categories)
            assert active == s["customers_countries"]["active_customers"][part]
            assert active == section["registered"]["active_customers"][part]
        revenue = sum(c["revenue"]["value"] for c in categories)
        day = date.fromisoformat(report["date"])
        assert revenue == pytest.approx(
            s["totals"]["revenue"]["value"] - guest_revenue[day], abs=0.05)
        assert revenue == pytest.approx(section["registered"]["revenue"]["value"], abs=0.05)
        new = section["new_customers"]
        assert new["count"] == s["customers_countries"]["new_customers"]
        assert sum(p["count"]["value"] for p in new["by_predicted"]) == new["predicted"]["value"]


def test_moves_between_categories(store: tuple[Path, list[Transaction]],
                                  oracle: CustomerOracle) -> None:
    data, _ = store
    day = DAYS[0]
    previous = oracle.trailing(day)[0]
    report = daily_report(data / "offline", day)
    moves = report["sections"]["customer_categories"]["moves"]
    segmentation = load_segmentation(data)
    before = segmentation.assign(customer_profiles(data / "offline", previous))
    after = segmentation.assign(customer_profiles(data / "offline", day))
    active = {e.customer_id for e in oracle.by_day[day] if e.customer_id and is_sale(e)}
    returning = {c for c in active if oracle.first_purchase[c] < day}
    assert moves["compared"] == len(returning) == \
        report["sections"]["customers_countries"]["returning_customers"]["value"] > 0
    changed = Counter((before[c], after[c]) for c in returning if before[c] != after[c])
    assert moves["moved"]["value"] == sum(changed.values()) > 0
    ranked = sorted(changed.items(), key=lambda item: (-item[1], item[0]))
    assert [((t["from"], t["to"]), t["count"]) for t in moves["transitions"]] == ranked[:10]
    assert moves["transition_kinds"] == len(changed)
    assert moves["moved"]["avg_7d"] is None
    assert "changed category" in render_markdown(report)


def test_late_events_counted_in_data_quality(store: tuple[Path, list[Transaction]]) -> None:
    quality = daily_report(store[0] / "offline", LATE_DAY)["sections"]["data_quality"]
    assert quality["late_events"]["value"] == 3
    assert quality["late_events"]["previous"] == 0
    assert "| Late events" in render_markdown(daily_report(store[0] / "offline", LATE_DAY))


def test_without_segmentation_the_section_says_what_to_run(
        store: tuple[Path, list[Transaction]], tmp_path: Path) -> None:
    report = daily_report(store[0] / "offline", DAYS[1], data_dir=tmp_path)
    section = report["sections"]["customer_categories"]
    assert section["available"] is False
    assert "segment fit" in section["message"] and "segment assign" in section["message"]
    text = render_markdown(report)
    assert "## Customer categories" in text and "segment fit" in text
    assert report["sections"]["totals"]["revenue"]["value"] > 0


def test_without_score_log_predictions_say_no_live_scores(
        store: tuple[Path, list[Transaction]], tmp_path: Path) -> None:
    data, _ = store
    offline = tmp_path / "offline"
    shutil.copytree(data / "offline", offline, ignore=shutil.ignore_patterns("scores"))
    report = daily_report(offline, DAYS[1], data_dir=data)
    new = report["sections"]["customer_categories"]["new_customers"]
    assert new["scores_recorded"] is False and new["predicted"]["value"] == 0
    assert all(c["predicted"] is None for c in new["customers"])
    assert "no live predictions were recorded" in render_markdown(report)


def test_customer_category_chart_is_a_png(store: tuple[Path, list[Transaction]],
                                          tmp_path: Path) -> None:
    [report] = run_reports(store[0] / "offline", [DAYS[0]], tmp_path, {"html"})
    folder = tmp_path / DAYS[0].isoformat()
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert "revenue_by_customer_category.png" in re.findall(r'<img src="([^"]+)"', page)
    assert (folder / "revenue_by_customer_category.png").read_bytes()[:8] == PNG_MAGIC
    assert str(folder / "revenue_by_customer_category.png") in report["files"]
