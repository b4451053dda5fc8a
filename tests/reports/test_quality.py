"""Data-quality expectations (schemas/expectations.py, reports/quality.py): on a day of
generated lines with lines that break them put in, every count equals a plain-Python
check of the same lines, the failures are listed with examples, and the daily report
shows them. Set per deployment: a project file that tightens one makes the report list
that day's failure and record which expectations it checked; one at the defaults (as
``init`` writes them) gives the report of no project file; a bad value is one
``Error:`` line naming the file, line and key.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from basketflow.app.project import init_project
from basketflow.app.reports import daily_reports
from basketflow.config import ENV_OF_KEY, load_settings
from basketflow.flows.backfill import file_events, run_backfill
from basketflow.flows.live import FeatureOutputs, RunOptions
from basketflow.producers.csv_source import read_events
from basketflow.producers.synthetic import write_csv
from basketflow.reports.daily import daily_report
from basketflow.reports.render import render_markdown
from basketflow.schemas.events import Transaction
from basketflow.project_file import FILE_NAME, ExpectationSetting, read_project
from basketflow.schemas.expectations import (
    COUNTRIES,
    EXPECTATIONS,
    MAX_PRODUCT_PRICE,
    MAX_QUANTITY,
    configured,
)
from tests.cli.commands import basketflow, user_env
from tests.user_errors import one_error_line

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


@pytest.fixture
def no_settings_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The project file, not the environment, gives the settings."""
    for name in ENV_OF_KEY.values():
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_settings_in_env")
def test_a_project_file_that_tightens_one_expectation_fails_the_day(
        day_events: tuple[Path, list[Transaction]], tmp_path: Path) -> None:
    offline, events = day_events
    lines, breaking = plain(events)["unknown_stock_codes"]
    assert 0 < breaking / lines <= 0.02  # the default passes the day
    (tmp_path / FILE_NAME).write_text(
        f"offline_store: {offline}\ndata_dir: {tmp_path / 'data'}\n"
        "expectations:\n  unknown_stock_codes:\n    max_share: 0\n")
    [made] = daily_reports(load_settings(cwd=tmp_path), [DAY], tmp_path / "out", "json,md")
    files = {Path(f).suffix: Path(f) for f in made.files}
    report = json.loads(files[".json"].read_text())
    section = report["sections"]["data_quality"]
    results = {r["name"]: r for r in section["expectations"]}
    assert (results["unknown_stock_codes"]["passed"], results["unknown_stock_codes"]
            ["max_share"], results["unknown_stock_codes"]["breaking"]) == (False, 0.0, breaking)
    assert results["unknown_stock_codes"]["examples"][0]["stock_code"] == "ODDCODE"
    assert section["expectations_changed"] == ["unknown_stock_codes.max_share: 0.0 "
                                               "(default 0.02)"]
    assert section["expectations_digest"] != configured([]).digest
    page = files[".md"].read_text()
    assert f"Failed, product line whose stock code is not of the catalogue's form (five " \
           f"digits, up to two letters): {breaking} of {lines:,} lines (allowed 0%)" in page
    assert f"Checked against expectations {section['expectations_digest']}: the defaults " \
           "but, as the project file sets, unknown_stock_codes.max_share" in page


def test_a_changed_country_list_says_what_changed(
        day_events: tuple[Path, list[Transaction]]) -> None:
    offline, events = day_events
    shop = configured([ExpectationSetting("known_country", "countries",
                                          (*COUNTRIES, "Atlantis"), "FILE line 4")])
    assert shop.changed == ["known_country.countries: +Atlantis on the default"]
    results = {r["name"]: r for r in daily_report(offline, DAY, expectations=shop)
               ["sections"]["data_quality"]["expectations"]}
    assert results["known_country"]["breaking"] == 0
    assert results["known_country"]["lines"] == len(events)


def test_the_defaults_written_by_init_give_the_report_of_no_project(
        day_events: tuple[Path, list[Transaction]], tmp_path: Path) -> None:
    offline, _ = day_events
    made = init_project(tmp_path / "shop")
    written = configured(read_project(made.project_file).expectations)
    assert len(read_project(made.project_file).expectations) == 10
    assert (written.expectations, written.changed) == (EXPECTATIONS, [])
    assert daily_report(offline, DAY, expectations=written) == daily_report(offline, DAY)


@pytest.mark.parametrize(("text", "wanted"), [
    ("expectations:\n  guest_share:\n    max_share: 1.5\n",
     "line 3: 'expectations.guest_share.max_share' must be a share from 0 to 1"),
    ("expectations:\n  quantity_range: {max_quantity: -3}\n",
     "line 2: 'expectations.quantity_range.max_quantity' must be a whole number of 1"),
    ("expectations:\n  known_country: {countries: []}\n",
     "line 2: 'expectations.known_country.countries' must be a non-empty list"),
    ("expectations:\n  unknown_stock_codes: {pattern: '[0-9'}\n",
     "line 2: 'expectations.unknown_stock_codes.pattern' must be a regular expression"),
    ("expectations:\n  unknown_stock_codes: {pattern: '(?=1)[0-9]+'}\n",
     "line 2: 'expectations.unknown_stock_codes.pattern' must be a regular expression of "
     "RE2's syntax"),
    ("\nexpectations:\n  guest_shares: {max_share: 0.1}\n",
     "line 3: unknown expectation 'guest_shares'; the expectations are quantity_range"),
    ("expectations:\n  price_range: {max_quantity: 5}\n",
     "line 2: price_range has no parameter 'max_quantity'; it has max_price, max_share"),
    ("expectations:\n  guest_share: 0.3\n",
     "line 2: 'expectations.guest_share' must be a mapping"),
    ("expectations: [guest_share]\n", "line 1: 'expectations' must be a mapping"),
])
def test_a_bad_expectation_is_one_error_line(tmp_path: Path, text: str, wanted: str) -> None:
    (tmp_path / FILE_NAME).write_text(text)
    done = basketflow("report", "--date", DAY.isoformat(), env=user_env(tmp_path / "data"),
                      cwd=tmp_path)
    one_error_line(done, f"{tmp_path / FILE_NAME} {wanted}")


def test_a_bad_expectation_stops_every_command(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_text("expectations:\n  duplicate_lines:\n"
                                      "    max_share: true\n")
    done = basketflow("features", "list", env=user_env(tmp_path / "data"), cwd=tmp_path)
    one_error_line(done, f"{tmp_path / FILE_NAME} line 3: 'expectations.duplicate_lines."
                         "max_share' must be a share from 0 to 1 (0.05 is 5%), not True")
