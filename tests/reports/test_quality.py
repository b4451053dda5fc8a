"""Data-quality expectations (schemas/expectations.py, reports/quality.py): on a day of
generated lines with lines that break them put in, every count equals a plain-Python
check of the same lines, the failures are listed with examples, and the daily report
shows them.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from basketflow.flows.backfill import file_events, run_backfill
from basketflow.flows.live import FeatureOutputs, RunOptions
from basketflow.producers.csv_source import read_events
from basketflow.producers.synthetic import write_csv
from basketflow.reports.daily import daily_report
from basketflow.reports.render import render_markdown
from basketflow.schemas.events import Transaction
from basketflow.schemas.expectations import (
    COUNTRIES,
    EXPECTATIONS,
    MAX_PRODUCT_PRICE,
    MAX_QUANTITY,
)

DAY = date(2011, 2, 8)
BAD = [  # each breaks one expectation; the last two are identical lines of one invoice
    "599001,85123A,WHITE HANGING HEART,20000,2/8/2011 10:00,2.55,17850,United Kingdom",
    "599002,22633,HAND WARMER,2,2/8/2011 10:05,6500,17850,United Kingdom",
    "599003,22633,HAND WARMER,2,2/8/2011 10:10,1.85,12345,Atlantis",
    "599004,ODDCODE,STRANGE THING,1,2/8/2011 10:15,1.00,12346,France",
    "599005,71053,WHITE METAL LANTERN,6,2/8/2011 10:20,3.39,12347,Germany",
    "599005,71053,WHITE METAL LANTERN,6,2/8/2011 10:20,3.39,12347,Germany",
]


@pytest.fixture(scope="module")
def day_events(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Transaction]]:
    root = tmp_path_factory.mktemp("quality")
    csv_path = root / "events.csv"
    write_csv(csv_path, rows=3_000, seed=29, start=date(2011, 2, 1), end=date(2011, 2, 14))
    with csv_path.open("a", encoding="latin-1", newline="") as f:
        f.write("".join(line + "\r\n" for line in BAD))
    run_backfill(file_events(csv_path, [0]), FeatureOutputs(None, "dq", root / "offline"),
                 RunOptions(snapshot_seconds=3600))
    events = [e for e in read_events(csv_path) if isinstance(e, Transaction)
              and datetime.fromtimestamp(e.ts, tz=timezone.utc).date() == DAY]
    return root / "offline", events


def plain(events: list[Transaction]) -> dict[str, tuple[int, int]]:
    """(lines it applies to, lines breaking it) per expectation, in plain Python."""
    seen: Counter[tuple[Any, ...]] = Counter()
    repeated = 0
    for e in events:
        key = (e.invoice, e.stock_code, e.description, e.quantity, e.unit_price, e.ts,
               e.customer_id, e.country)
        repeated += seen[key] > 0
        seen[key] += 1
    products = [e for e in events if e.is_product]
    return {
        "quantity_range": (len(events), sum(abs(e.quantity) > MAX_QUANTITY for e in events)),
        "price_range": (len(products), sum(not 0 <= e.unit_price <= MAX_PRODUCT_PRICE
                                           for e in products)),
        "known_country": (len(events), sum(e.country not in COUNTRIES for e in events)),
        "guest_share": (len(events), sum(e.customer_id is None for e in events)),
        "unknown_stock_codes": (len(products), sum(
            not re.fullmatch(r"[0-9]{5}[A-Za-z]{0,2}", e.stock_code) for e in products)),
        "duplicate_lines": (len(events), repeated),
    }


def test_every_expectation_counts_as_a_plain_check(
        day_events: tuple[Path, list[Transaction]]) -> None:
    offline, events = day_events
    report = daily_report(offline, DAY)
    results = {r["name"]: r for r in report["sections"]["data_quality"]["expectations"]}
    assert list(results) == [e.name for e in EXPECTATIONS]
    want = plain(events)
    for e in EXPECTATIONS:
        r = results[e.name]
        assert (r["lines"], r["breaking"]) == want[e.name], e.name
        assert r["passed"] == (r["breaking"] / r["lines"] <= e.max_share), e.name
    failed = {name for name, r in results.items() if not r["passed"]}
    assert {"quantity_range", "price_range", "known_country"} <= failed
    assert results["quantity_range"]["examples"] == [{
        "invoice": "599001", "stock_code": "85123A", "quantity": 20000, "unit_price": 2.55,
        "customer_id": "17850", "country": "United Kingdom"}]
    page = render_markdown(report)
    assert "Failed, quantity beyond ±10,000: 1 of" in page
    assert "Failed, country not among the shop's" in page and "(Atlantis)" in page
