"""Tests of the synthetic Kaggle-format generator: format byte for byte, determinism, realism."""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from basketflow.producers.synthetic import HEADER, build_catalogue, generate_rows, write_csv

ROWS = 20_000
DATE_FORMAT = re.compile(r"^\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d{2}$")
NON_PRODUCT = {"POST", "DOT", "M", "m", "C2", "D", "S", "B", "BANK CHARGES", "AMAZONFEE", "CRUK",
               "gift_0001_20"}


@pytest.fixture(scope="module")
def rows() -> list[list[str]]:
    """One mid-sized run shared by the realism tests (generating it takes well under a second)."""
    return list(generate_rows(ROWS, seed=7))


@pytest.fixture(scope="module")
def csv_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The same run written as a file, as raw bytes."""
    path = tmp_path_factory.mktemp("synthetic") / "data.csv"
    assert write_csv(path, ROWS, seed=7) == ROWS
    return path.read_bytes()


def event_time(row: list[str]) -> datetime:
    return datetime.strptime(row[4], "%m/%d/%Y %H:%M")


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    first = list(generate_rows(2_000, seed=3))
    assert first == list(generate_rows(2_000, seed=3))
    assert first != list(generate_rows(2_000, seed=4))


@pytest.mark.parametrize("count", [0, 1, 7, 1_234])
def test_exact_row_count_of_eight_strings(count: int) -> None:
    rows = list(generate_rows(count, seed=11))
    assert len(rows) == count
    assert all(len(row) == 8 and all(isinstance(field, str) for field in row) for row in rows)


@settings(max_examples=25, deadline=None)
@given(count=st.integers(0, 400), seed=st.integers(0, 2**32))
def test_any_size_and_seed_gives_exact_count_in_time_order(count: int, seed: int) -> None:
    rows = list(generate_rows(count, seed=seed, customers=60))
    assert len(rows) == count
    times = [event_time(row) for row in rows]
    assert times == sorted(times)


def test_file_is_latin1_with_crlf_and_the_kaggle_header(csv_bytes: bytes) -> None:
    assert csv_bytes.startswith(",".join(HEADER).encode() + b"\r\n")
    assert csv_bytes.count(b"\r\n") == ROWS + 1
    assert csv_bytes.count(b"\n") == csv_bytes.count(b"\r\n")
    assert b"\xa3" in csv_bytes  # the pound sign, one byte in ISO-8859-1
    assert "£" in csv_bytes.decode("latin-1")
    with pytest.raises(UnicodeDecodeError):
        csv_bytes.decode("utf-8")


def test_file_round_trips_through_csv_reader_including_quoted_commas(
        csv_bytes: bytes, rows: list[list[str]]) -> None:
    text = csv_bytes.decode("latin-1")
    parsed = list(csv.reader(text.splitlines()))
    assert parsed[0] == list(HEADER)
    assert parsed[1:] == rows
    quoted = [line for line in text.splitlines() if '"' in line]
    assert quoted, "a description with a comma is written in double quotes"
    assert any("," in row[2] for row in csv.reader(quoted))


def test_every_date_is_in_kaggle_form_on_a_trading_minute(rows: list[list[str]]) -> None:
    for row in rows:
        assert DATE_FORMAT.match(row[4]), row
        when = event_time(row)
        assert when.weekday() != 5, "no trading on Saturdays"
        assert 7 <= when.hour <= 20
        assert date(2010, 12, 1) <= when.date() <= date(2011, 12, 9)


def test_rows_in_event_time_order_and_invoice_numbers_rise(rows: list[list[str]]) -> None:
    times = [event_time(row) for row in rows]
    assert times == sorted(times)
    numbers = [int(row[0].lstrip("CA")) for row in rows]
    assert numbers == sorted(numbers)
    assert numbers[0] == 536365
    assert all(re.fullmatch(r"[CA]?\d{6}", row[0]) for row in rows)


def test_invoice_is_one_customer_at_one_minute(rows: list[list[str]]) -> None:
    invoices: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
    for row in rows:
        invoices[row[0]].add((row[4], row[6], row[7]))
    assert all(len(keys) == 1 for keys in invoices.values())


def test_date_range_is_configurable() -> None:
    rows = list(generate_rows(500, start=date(2011, 3, 1), end=date(2011, 3, 31)))
    assert {event_time(row).month for row in rows} == {3}


def test_cancellations_return_what_the_customer_bought_earlier(rows: list[list[str]]) -> None:
    bought: set[tuple[str, str]] = set()
    customers: set[str] = set()
    cancelled = 0
    for invoice, code, _, quantity, _, _, customer, _ in rows:
        if invoice.startswith("C"):
            cancelled += 1
            assert int(quantity) < 0
            if code not in NON_PRODUCT:
                assert (customer, code) in bought
            elif customer:
                assert customer in customers
        elif customer:
            bought.add((customer, code))
            customers.add(customer)
    assert 0.005 < cancelled / len(rows) < 0.04


def test_guests_have_about_a_quarter_of_lines_on_whole_invoices(rows: list[list[str]]) -> None:
    share = sum(row[6] == "" for row in rows) / len(rows)
    assert 0.15 < share < 0.35
    ids = {row[6] for row in rows if row[6]}
    assert all(customer.isdigit() and 12346 <= int(customer) <= 18287 for customer in ids)


def test_a_customer_keeps_one_country(rows: list[list[str]]) -> None:
    countries: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        if row[6]:
            countries[row[6]].add(row[7])
    assert all(len(found) == 1 for found in countries.values())
    share_uk = sum(row[7] == "United Kingdom" for row in rows) / len(rows)
    assert 0.7 < share_uk < 0.98


def test_non_product_codes_zero_prices_and_empty_descriptions_appear(rows: list[list[str]]) -> None:
    codes = {row[1] for row in rows}
    assert {"POST", "DOT"} <= codes
    assert sum(row[5] == "0" for row in rows) > 0
    empty = [row for row in rows if row[2] == ""]
    assert empty and all(row[5] == "0" for row in empty)


def test_some_lines_are_exact_duplicates(rows: list[list[str]]) -> None:
    counts = Counter(tuple(row) for row in rows)
    assert max(counts.values()) >= 2


def test_customers_come_back(rows: list[list[str]]) -> None:
    invoices: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        if row[6] and not row[0].startswith("C"):
            invoices[row[6]].add(row[0])
    assert max(len(found) for found in invoices.values()) >= 3
    assert sum(len(found) == 1 for found in invoices.values()) > 0


def test_customer_pool_size_is_honoured() -> None:
    rows = list(generate_rows(5_000, customers=80))
    assert len({row[6] for row in rows if row[6]}) == 80


def test_stock_codes_do_not_depend_on_row_count() -> None:
    def descriptions(count: int) -> dict[str, str]:
        return {row[1]: row[2] for row in generate_rows(count, seed=5) if row[2]}

    small, large = descriptions(1_000), descriptions(5_000)
    assert all(large.get(code, text) == text for code, text in small.items())
    assert build_catalogue(5) is build_catalogue(5)
    assert len(build_catalogue(5).products) >= 1_400


def test_gzip_output_reads_back_with_pandas(tmp_path: Path) -> None:
    path = tmp_path / "data.csv.gz"
    assert write_csv(path, 3_000, seed=2) == 3_000
    frame = pd.read_csv(path, encoding="ISO-8859-1", dtype=str, keep_default_na=False)
    assert list(frame.columns) == list(HEADER)
    assert len(frame) == 3_000
    assert frame.values.tolist() == list(generate_rows(3_000, seed=2))


@pytest.mark.parametrize("kwargs", [
    {"rows": -1},
    {"rows": 10, "start": date(2011, 2, 1), "end": date(2011, 1, 1)},
    {"rows": 10, "start": date(2011, 12, 24), "end": date(2012, 1, 3)},
    {"rows": 10, "customers": 0},
    {"rows": 10, "customers": 10_000},
])
def test_bad_arguments_fail_at_once(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        generate_rows(**kwargs)
