"""The daily report (reports/daily.py, reports/render.py) on real offline stores.

Stores are written by the real ``ParquetEventStore`` from synthetic Kaggle lines (plus a few
hand-made ones for what the generator rarely makes: many countries, bad-debt adjustments),
and dead letters by the real ``DeadLetterStore``. Every figure of a day is recomputed here,
independently, in plain Python from that day's events, following the definitions the report
prints; the report must agree, and its parts must add up.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import date, datetime, timezone
from pathlib import Path
from statistics import fmean
from typing import Any

import pytest

from basketflow.producers.synthetic import generate_rows
from basketflow.reports.daily import (
    ReportError,
    ReportRun,
    daily_report,
    days_between,
    parse_formats,
)
from basketflow.reports.daily_files import run_reports
from basketflow.reports.render import render_markdown
from basketflow.schemas.events import Occurrences, Rejection, Transaction, parse_row
from basketflow.schemas.taxonomy import load_taxonomy
from basketflow.sinks.offline_store import DeadLetterStore, ParquetEventStore

START, END = date(2011, 3, 1), date(2011, 3, 22)
BUSY_DAY = date(2011, 3, 15)          # a Tuesday with the hand-made extras
SATURDAY = date(2011, 3, 12)          # inside the data, no trading
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EXTRA_COUNTRIES = ("France", "Germany", "EIRE", "Spain", "Netherlands", "Belgium",
                   "Switzerland", "Portugal", "Australia", "Norway", "Italy", "Japan")
DEAD_LETTERS = {BUSY_DAY: ["Quantity 'x' is not a whole number",
                           "expected 8 fields, got 5",
                           "Quantity 'x' is not a whole number"],
                date(2011, 3, 14): ["UnitPrice 'abc' is not a number"]}


# --------------------------------------------------------------------------- building stores


def line(invoice: str, code: str, description: str, quantity: int, when: str,
         price: float, customer: str, country: str = "United Kingdom") -> list[str]:
    """One Kaggle-format row (``when`` like ``3/15/2011 10:05``)."""
    return [invoice, code, description, str(quantity), when, str(price), customer, country]


def transactions(rows: Iterable[list[str]], source: str) -> list[Transaction]:
    """Rows -> Transactions, as a reader of the file gives them (duplicate lines placed:
    each has its own event id); fails on a rejected row."""
    out = []
    occurrences = Occurrences()
    for i, row in enumerate(rows):
        event = parse_row(row, f"{source}:{i}")
        assert isinstance(event, Transaction), event
        out.append(occurrences.placed(event))
    return out


def extras() -> list[list[str]]:
    """Lines the generator rarely makes: a dozen more countries, bad-debt adjustments."""
    rows = [line(f"59{i:04d}", "22423", "REGENCY CAKESTAND 3 TIER", 2 + i, "3/15/2011 11:00",
                 12.75, str(12400 + i), country)
            for i, country in enumerate(EXTRA_COUNTRIES)]
    rows.append(line("A563185", "B", "Adjust bad debt", 1, "3/15/2011 14:50", 1062.06, ""))
    rows.append(line("A563187", "22423", "REGENCY CAKESTAND 3 TIER", 1, "3/15/2011 14:52",
                     -12.75, ""))               # a product line: not revenue either
    rows.append(line("A563186", "B", "Adjust bad debt", 1, "3/15/2011 14:51", -1062.06,
                     "12399"))                  # a customer seen only here: not active
    return rows


def write_dead_letters(root: Path, letters: dict[date, list[str]]) -> None:
    """Dead letters stored by the real dead-letter store, dated at noon of their day."""
    rows = []
    for day, reasons in letters.items():
        ts = int(datetime(day.year, day.month, day.day, 12, tzinfo=timezone.utc).timestamp())
        for i, reason in enumerate(reasons):
            rows.append((f"{day}-{i}", ts, Rejection(reason, "536365,85123A,...",
                                                     f"data.csv:{i}", "producer")))
    assert DeadLetterStore(root).append(rows) == len(rows)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Transaction]]:
    """An offline store of three weeks of synthetic trading, with dead letters."""
    root = tmp_path_factory.mktemp("offline")
    events = transactions(generate_rows(5000, seed=5, start=START, end=END), "synthetic.csv")
    events += transactions(extras(), "extras.csv")
    store = ParquetEventStore(root)
    store.append(events[:2500])
    store.append(events[2500:])          # two files in some partitions
    write_dead_letters(root, DEAD_LETTERS)
    return root, events


# --------------------------------------------------------------------------- the oracle


def day_of(e: Transaction) -> date:
    """The event's day (its event time, UTC)."""
    return e.event_time.date()


def is_sale(e: Transaction) -> bool:
    """A line of an invoice that is neither a cancellation nor an adjustment."""
    return not e.is_cancellation and not e.is_adjustment


def is_revenue(e: Transaction) -> bool:
    """A product line of a sale."""
    return is_sale(e) and e.is_product


def value(e: Transaction) -> float:
    """quantity x unit price."""
    return e.quantity * e.unit_price


class Oracle:
    """Every figure of any day, recomputed in plain Python from the events."""

    def __init__(self, events: list[Transaction]) -> None:
        self.events = events
        self.by_day: dict[date, list[Transaction]] = defaultdict(list)
        self.first_purchase: dict[str, date] = {}
        self.first_seen: dict[str, date] = {}
        for e in events:
            day = day_of(e)
            self.by_day[day].append(e)
            self.first_seen[e.stock_code] = min(day, self.first_seen.get(e.stock_code, day))
            if e.customer_id and is_sale(e):
                self.first_purchase[e.customer_id] = min(
                    day, self.first_purchase.get(e.customer_id, day))
        self.days = sorted(self.by_day)
        self.taxonomy = load_taxonomy()

    def category(self, e: Transaction) -> str:
        """The line's product category."""
        return self.taxonomy.category_of(e.stock_code, e.description)

    def trailing(self, day: date) -> list[date]:
        """The up to 7 trading days before ``day``, latest first."""
        return [d for d in reversed(self.days) if d < day][:7]

    def figures(self, day: date, keep: Callable[[Transaction], bool] = lambda e: True,
                ) -> dict[str, float]:
        """The day's figures over the lines ``keep`` accepts (one category, say)."""
        lines = [e for e in self.by_day.get(day, []) if keep(e)]
        revenue_lines = [e for e in lines if is_revenue(e)]
        sales = [e for e in lines if is_sale(e) and e.customer_id]
        customers = {e.customer_id for e in sales}
        revenue = sum(map(value, revenue_lines))
        guest_revenue = sum(value(e) for e in revenue_lines if not e.customer_id)
        guest_lines = sum(1 for e in lines if not e.customer_id)
        return {
            "revenue": revenue,
            "units": sum(e.quantity for e in revenue_lines),
            "orders": len({e.invoice for e in revenue_lines}),
            "cancelled_value": sum(abs(value(e)) for e in lines if e.is_cancellation),
            "active_customers": len(customers),
            "new_customers": sum(1 for c in customers if self.first_purchase[c] == day),
            "returning_customers": sum(1 for c in customers if self.first_purchase[c] < day),
            "guest_line_share": guest_lines / len(lines) if lines else 0.0,
            "guest_revenue_share": guest_revenue / revenue if revenue else 0.0,
            "lines": len(lines),
            "non_product_lines": sum(1 for e in lines if not e.is_product),
            "non_product_value": sum(value(e) for e in lines if not e.is_product),
            "cancellation_lines": sum(1 for e in lines if e.is_cancellation),
            "adjustment_lines": sum(1 for e in lines if e.is_adjustment),
            "zero_price_lines": sum(1 for e in lines if e.unit_price == 0),
            "new_products": len({e.stock_code for e in revenue_lines
                                 if self.first_seen[e.stock_code] == day}),
        }

    def products(self, day: date, keep: Callable[[Transaction], bool]) -> list[tuple]:
        """(stock code, description, revenue, units) of the day's revenue lines ``keep``
        accepts, best first (ties by stock code); description: the first alphabetically."""
        groups: dict[str, list[Transaction]] = defaultdict(list)
        for e in self.by_day[day]:
            if is_revenue(e) and keep(e):
                groups[e.stock_code].append(e)
        rows = [(code, min(e.description for e in es), sum(map(value, es)),
                 sum(e.quantity for e in es)) for code, es in groups.items()]
        return sorted(rows, key=lambda r: (-round(r[2], 2), r[0]))

    def country_revenue(self, day: date) -> dict[str, float]:
        """Revenue by country on the day."""
        out: dict[str, float] = defaultdict(float)
        for e in self.by_day.get(day, []):
            if is_revenue(e):
                out[e.country] += value(e)
        return out


@pytest.fixture(scope="module")
def oracle(synthetic: tuple[Path, list[Transaction]]) -> Oracle:
    """The plain-Python recomputation over the synthetic store's events."""
    return Oracle(synthetic[1])


def assert_figure(figure: dict[str, Any], series: Callable[[date], float], day: date,
                  trailing: list[date], what: str) -> None:
    """A report figure equals the oracle's value, previous-day value and trailing mean."""
    assert figure["value"] == pytest.approx(series(day), abs=0.006), what
    if trailing:
        assert figure["previous"] == pytest.approx(series(trailing[0]), abs=0.006), what
        assert figure["avg_7d"] == pytest.approx(fmean(map(series, trailing)), abs=0.006), what
    else:
        assert figure["previous"] is None and figure["avg_7d"] is None, what


# --------------------------------------------------------------------------- figures


FIGURE_PLACES = {
    "totals": ("revenue", "units", "orders", "cancelled_value"),
    "customers_countries": ("active_customers", "new_customers", "returning_customers",
                            "guest_line_share", "guest_revenue_share"),
    "data_quality": ("lines", "non_product_lines", "non_product_value", "cancellation_lines",
                     "adjustment_lines", "zero_price_lines"),
}


@pytest.mark.parametrize("day", [BUSY_DAY, START, date(2011, 3, 22)])
def test_every_figure_equals_an_independent_computation(
        synthetic: tuple[Path, list[Transaction]], oracle: Oracle, day: date) -> None:
    report = daily_report(synthetic[0], day)
    assert report["status"] == "trading"
    trailing = oracle.trailing(day)
    assert report["comparison"]["trailing_days"] == [d.isoformat() for d in trailing]
    sections = report["sections"]
    for place, names in FIGURE_PLACES.items():
        for name in names:
            assert_figure(sections[place][name], lambda d, n=name: oracle.figures(d)[n],
                          day, trailing, f"{place}.{name}")
    new = sections["product_categories"]["new_products"]
    assert_figure(new["count"], lambda d: oracle.figures(d)["new_products"], day, trailing,
                  "new products")
    assert new["store_starts_today"] == (day == START)

    for category in sections["product_categories"]["categories"]:
        name = category["name"]
        in_category: Callable[[Transaction], bool] = lambda e, n=name: oracle.category(e) == n
        for figure in ("revenue", "units", "orders", "cancelled_value"):
            assert_figure(category[figure],
                          lambda d, f=figure, k=in_category: oracle.figures(d, k)[f],
                          day, trailing, f"{name}.{figure}")
        expected = [p for p in oracle.products(day, in_category) if p[2] > 0][:5]
        got = [(p["stock_code"], p["description"], p["revenue"], p["units"])
               for p in category["top_products"]]
        assert [g[:2] + g[3:] for g in got] == [x[:2] + x[3:] for x in expected], name
        assert [g[2] for g in got] == pytest.approx([x[2] for x in expected], abs=0.006)


def test_country_revenue_top_ten_and_the_rest(
        synthetic: tuple[Path, list[Transaction]], oracle: Oracle) -> None:
    section = daily_report(synthetic[0], BUSY_DAY)["sections"]["customers_countries"]
    revenue = oracle.country_revenue(BUSY_DAY)
    ranked = sorted((c for c, v in revenue.items() if v != 0),
                    key=lambda c: (-round(revenue[c], 2), c))
    trailing = oracle.trailing(BUSY_DAY)
    assert [c["country"] for c in section["countries"]] == ranked[:10]
    for country in section["countries"]:
        assert_figure(country["revenue"],
                      lambda d, c=country["country"]: oracle.country_revenue(d).get(c, 0.0),
                      BUSY_DAY, trailing, country["country"])
    other = section["other_countries"]
    assert other["count"] == len(ranked) - 10 > 0
    assert_figure(other["revenue"],
                  lambda d: sum(v for c, v in oracle.country_revenue(d).items()
                                if c not in ranked[:10]),
                  BUSY_DAY, trailing, "other countries")


def test_the_parts_add_up(synthetic: tuple[Path, list[Transaction]]) -> None:
    with ReportRun(synthetic[0], days_between(START, END)) as run:
        reports = [run.report(day) for day in run.days]
    trading = [r for r in reports if r["status"] == "trading"]
    assert len(trading) >= 15
    for report in trading:
        s = report["sections"]
        categories = s["product_categories"]["categories"]
        for figure in ("revenue", "cancelled_value", "units"):
            for part in ("value", "previous", "avg_7d"):
                whole = s["totals"][figure][part]
                if whole is not None:
                    total = sum(c[figure][part] for c in categories)
                    assert total == pytest.approx(whole, abs=0.05), (report["date"], figure)
        customers = s["customers_countries"]
        parts = ("value", "previous") if report["comparison"]["previous_day"] else ("value",)
        for part in parts:
            assert (customers["new_customers"][part] + customers["returning_customers"][part]
                    == customers["active_customers"][part])
        countries = sum(c["revenue"]["value"] for c in customers["countries"])
        assert countries + customers["other_countries"]["revenue"]["value"] == pytest.approx(
            s["totals"]["revenue"]["value"], abs=0.05)
        new = s["product_categories"]["new_products"]
        assert new["count"]["value"] == len(new["products"])


def test_dead_letters_counted_by_reason(synthetic: tuple[Path, list[Transaction]]) -> None:
    quality = daily_report(synthetic[0], BUSY_DAY)["sections"]["data_quality"]
    rejected = quality["rejected"]
    assert rejected["recorded"] is True
    assert rejected["by_reason"] == [
        {"reason": "Quantity 'x' is not a whole number", "count": 2},
        {"reason": "expected 8 fields, got 5", "count": 1}]
    assert rejected["total"]["value"] == 3 and rejected["total"]["previous"] == 1


# --------------------------------------------------------------------------- hand-made days


def test_first_time_products_across_days(tmp_path: Path) -> None:
    store = ParquetEventStore(tmp_path)
    store.append(transactions([
        line("536001", "A1", "RED MUG", 2, "3/1/2011 9:00", 1.5, "100"),
        line("536001", "B1", "BLUE MUG", 1, "3/1/2011 9:00", 2.0, "100"),
        line("C536002", "D1", "GREEN MUG", -1, "3/1/2011 10:00", 3.0, "101"),
        line("536003", "B1", "BLUE MUG", 4, "3/2/2011 9:00", 2.0, "101"),
        line("536003", "C1", "WHITE MUG", 1, "3/2/2011 9:00", 5.0, "101"),
        line("536003", "D1", "GREEN MUG", 1, "3/2/2011 9:00", 3.0, "101"),
        line("536004", "POST", "POSTAGE", 1, "3/2/2011 9:30", 18.0, "102"),
    ], "mugs.csv"))
    first = daily_report(tmp_path, date(2011, 3, 1))["sections"]["product_categories"]
    assert first["new_products"]["store_starts_today"] is True
    assert [p["stock_code"] for p in first["new_products"]["products"]] == ["A1", "B1"]
    second = daily_report(tmp_path, date(2011, 3, 2))
    new = second["sections"]["product_categories"]["new_products"]
    assert [p["stock_code"] for p in new["products"]] == ["C1"]   # D1 was seen on day 1
    assert new["count"] == {"value": 1, "previous": 2, "avg_7d": 2.0}
    customers = second["sections"]["customers_countries"]
    # 101 only cancelled on day 1: its first purchase is day 2; 102 bought postage only.
    assert customers["new_customers"]["value"] == 2
    assert customers["returning_customers"]["value"] == 0
    assert second["sections"]["totals"]["revenue"]["value"] == 16.0
    assert second["sections"]["data_quality"]["rejected"] == {
        "recorded": False, "total": None, "by_reason": []}
    assert "No rejected lines that day." in render_markdown(second)
    assert "dead/" not in render_markdown(second)


def test_empty_day_gives_a_short_report(synthetic: tuple[Path, list[Transaction]],
                                        tmp_path: Path) -> None:
    [report] = run_reports(synthetic[0], [SATURDAY], tmp_path, {"md", "json"})
    assert report["status"] == "no_trading"
    assert report["previous_trading_day"] == "2011-03-11"
    assert report["next_trading_day"] == "2011-03-13"
    assert report["rejected_lines"] == 0
    text = (tmp_path / "2011-03-12" / "report.md").read_text(encoding="utf-8")
    assert "No trading on Saturday 2011-03-12" in text and len(text.splitlines()) < 12


def test_dates_outside_the_data_are_refused(synthetic: tuple[Path, list[Transaction]],
                                            tmp_path: Path) -> None:
    for day in (date(2011, 2, 28), date(2011, 3, 23)):
        with pytest.raises(ReportError, match=r"2011-03-01 to 2011-03-22") as info:
            run_reports(synthetic[0], [BUSY_DAY, day], tmp_path / "out", {"md"})
        assert day.isoformat() in str(info.value)
    assert not (tmp_path / "out").exists()          # nothing written before refusing
    with pytest.raises(ReportError, match="holds no events yet"):
        daily_report(tmp_path / "empty", BUSY_DAY)


def test_formats_and_ranges_are_checked() -> None:
    assert parse_formats(" md, HTML ,json") == {"md", "html", "json"}
    with pytest.raises(ReportError, match="choose among md, html, json"):
        parse_formats("md,pdf")
    assert days_between(date(2011, 3, 30), date(2011, 4, 2))[-1] == date(2011, 4, 2)
    with pytest.raises(ReportError, match="after"):
        days_between(date(2011, 4, 2), date(2011, 3, 30))


# --------------------------------------------------------------------------- rendering


def test_html_charts_json_and_progress(synthetic: tuple[Path, list[Transaction]],
                                       tmp_path: Path) -> None:
    calls = []
    reports = run_reports(synthetic[0], [date(2011, 3, 14), BUSY_DAY], tmp_path,
                          {"md", "html", "json"}, on_progress=lambda *a: calls.append(a))
    assert calls == [(1, 2, date(2011, 3, 14)), (2, 2, BUSY_DAY)]
    folder = tmp_path / BUSY_DAY.isoformat()
    page = (folder / "report.html").read_text(encoding="utf-8")
    charts = re.findall(r'<img src="([^"]+)"', page)
    assert {"revenue_by_category.png", "revenue_by_country.png", "top_products.png"} <= set(
        charts)
    for name in charts:
        assert "/" not in name
        assert (folder / name).read_bytes()[:8] == PNG_MAGIC
    saved = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    assert saved == {k: v for k, v in reports[1].items() if k != "files"}
    assert set(reports[1]["files"]) == {str(folder / n) for n in
                                        ["report.md", "report.html", "report.json", *charts]}
    text = (folder / "report.md").read_text(encoding="utf-8")
    for title in ("## Day totals", "## Product categories", "## Customers and countries",
                  "## Data quality", "## How to read this report"):
        assert title in text
