"""The event contract: Kaggle lines and topic messages -> Transaction or Rejection."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from basketflow.schemas.events import (
    Rejection,
    Transaction,
    decode_event,
    encode_event,
    format_invoice_date,
    parse_invoice_date,
    parse_line,
    parse_row,
)

GOOD = ["536365", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", "6", "12/1/2010 8:26",
        "2.55", "17850", "United Kingdom"]


def row(**changes: str) -> list[str]:
    """The good row with some fields replaced (by Kaggle column name)."""
    names = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate",
             "UnitPrice", "CustomerID", "Country"]
    return [changes.get(n, v) for n, v in zip(names, GOOD)]


def test_good_line_parses_with_every_field() -> None:
    t = parse_row(GOOD, "data.csv:2")
    assert isinstance(t, Transaction)
    assert (t.invoice, t.stock_code, t.quantity, t.unit_price) == ("536365", "85123A", 6, 2.55)
    assert t.event_time.isoformat() == "2010-12-01T08:26:00+00:00"
    assert t.customer_id == "17850" and t.entity_id == "17850"
    assert t.is_product and not t.is_cancellation and not t.is_adjustment


def test_pound_sign_survives_iso_8859_1() -> None:
    line = "536365,22,\xa31 GIFT TAG,1,12/1/2010 8:26,0.5,17850,United Kingdom"
    t = parse_line(line.encode("latin-1").decode("latin-1"), "f:2")
    assert isinstance(t, Transaction) and t.description == "£1 GIFT TAG"
    assert decode_event(encode_event(t)) == t


@pytest.mark.parametrize("text,expected", [
    ("12/1/2010 8:26", "2010-12-01T08:26:00"),
    ("1/31/2011 17:05", "2011-01-31T17:05:00"),
    ("9/30/2011 0:00", "2011-09-30T00:00:00"),
])
def test_kaggle_dates(text: str, expected: str) -> None:
    ts = parse_invoice_date(text)
    assert format_invoice_date(ts) == text
    assert parse_row(row(InvoiceDate=text), "f:2").event_time.isoformat()[:19] == expected


def test_cancellation_adjustment_guest_non_product_zero_price() -> None:
    cancel = parse_row(row(InvoiceNo="C536379", Quantity="-1"), "f:2")
    assert isinstance(cancel, Transaction) and cancel.is_cancellation and cancel.amount == -2.55
    adjust = parse_row(row(InvoiceNo="A563186", StockCode="B", UnitPrice="-11062.06",
                           Quantity="1", CustomerID=""), "f:3")
    assert isinstance(adjust, Transaction) and adjust.is_adjustment and not adjust.is_product
    guest = parse_row(row(CustomerID=""), "f:4")
    assert isinstance(guest, Transaction) and guest.customer_id is None
    assert guest.entity_id == "guest-536365"
    for code in ("POST", "DOT", "M", "m", "BANK CHARGES", "AMAZONFEE", "C2", "CRUK",
                 "gift_0001_20"):
        t = parse_row(row(StockCode=code), "f:5")
        assert isinstance(t, Transaction) and not t.is_product, code
    free = parse_row(row(UnitPrice="0", Description=""), "f:6")
    assert isinstance(free, Transaction) and free.amount == 0 and free.description == ""
    assert parse_row(row(CustomerID="17850.0"), "f:7").customer_id == "17850"


def test_duplicate_lines_stay_distinct_events() -> None:
    a, b = parse_row(GOOD, "f:2"), parse_row(GOOD, "f:3")
    assert isinstance(a, Transaction) and isinstance(b, Transaction)
    assert a.event_id != b.event_id and a.amount == b.amount


@pytest.mark.parametrize("changes,reason", [
    ({"Quantity": "six"}, "Quantity 'six' is not a whole number"),
    ({"Quantity": "0"}, "Quantity is 0"),
    ({"Quantity": "1000000000000"}, "beyond"),
    ({"UnitPrice": "abc"}, "UnitPrice 'abc' is not a number"),
    ({"UnitPrice": "nan"}, "not a finite number"),
    ({"UnitPrice": "-1"}, "negative outside a bad-debt adjustment"),
    ({"InvoiceDate": "2010-12-01 08:26"}, "is not like 12/1/2010 8:26"),
    ({"InvoiceDate": "13/1/2010 8:26"}, "is not like"),
    ({"InvoiceDate": "1/1/1900 8:26"}, "outside 2000-2099"),
    ({"InvoiceNo": ""}, "InvoiceNo is empty"),
    ({"StockCode": " "}, "StockCode is empty"),
    ({"CustomerID": "abc"}, "CustomerID 'abc' is not a number"),
    ({"CustomerID": "-5"}, "not a positive whole number"),
])
def test_bad_fields_are_rejected_with_reason(changes: dict[str, str], reason: str) -> None:
    result = parse_row(row(**changes), "f:9")
    assert isinstance(result, Rejection)
    assert reason in result.reason
    assert result.event_id == "f:9" and result.raw


def test_wrong_field_count() -> None:
    result = parse_line("536365,85123A,6", "f:2")
    assert isinstance(result, Rejection) and result.reason == "expected 8 fields, got 3"


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_no_line_makes_the_parser_raise(line: str) -> None:
    assert isinstance(parse_line(line, "f:1"), Transaction | Rejection)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=20), min_size=0, max_size=10))
def test_no_record_makes_the_parser_raise(fields: list[str]) -> None:
    assert isinstance(parse_row(fields, "f:1"), Transaction | Rejection)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(st.binary())
@example(b'"\x80"')  # a JSON string that is not UTF-8: msgspec raises UnicodeDecodeError
@example(b'{"event_id": "\x80"}')
def test_no_message_bytes_make_decode_raise(value: bytes) -> None:
    assert isinstance(decode_event(value), Transaction | Rejection)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(list(json.loads(
    encode_event(parse_row(GOOD, "f:1")))) + ["x"]), json_values))
def test_no_json_object_makes_decode_raise(obj: dict) -> None:
    assert isinstance(decode_event(json.dumps(obj).encode()), Transaction | Rejection)


@pytest.mark.parametrize("mutate,reason", [
    (lambda d: d.pop("ts"), "missing required field `ts`"),
    (lambda d: d.update(quantity="6"), "Expected `int`, got `str` - at `$.quantity`"),
    (lambda d: d.update(quantity=True), "Expected `int`, got `bool` - at `$.quantity`"),
    (lambda d: d.update(invoice=""), "must not be empty"),
    (lambda d: d.update(quantity=10**12), "beyond"),
    (lambda d: d.update(ts=parse_invoice_date("1/1/2100 0:00")), "outside 2000-2099"),
    (lambda d: d.update(ts=parse_invoice_date("1/1/1900 0:00")), "outside 2000-2099"),
    (lambda d: d.update(unit_price=math.inf), "not JSON"),
    (lambda d: d.update(quantity=2**70), "beyond"),
])
def test_bad_messages_are_rejected_with_reason(mutate, reason: str) -> None:
    obj = json.loads(encode_event(parse_row(GOOD, "f:1")))
    mutate(obj)
    result = decode_event(json.dumps(obj).encode())
    assert isinstance(result, Rejection) and reason in result.reason, result
    assert result.source == "flow"


def test_not_json_and_nan() -> None:
    assert decode_event(b"not json").reason.startswith("not JSON")
    assert decode_event(b'{"unit_price": NaN}').reason.startswith("not JSON")
    assert decode_event(None).reason.startswith("not JSON")
    assert decode_event(b"[1,2]").reason == "wrong schema: Expected `object`, got `array`"
