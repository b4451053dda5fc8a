"""The event contract: Kaggle lines and topic messages -> Transaction or Rejection."""

from __future__ import annotations

import hashlib
import json
import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from basketflow.schemas.events import (
    Occurrences,
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


def reference_id(fields: list[str], occurrence: int = 1) -> str:
    """The id rule in plain Python: BLAKE2b (8 bytes, hex) of the parsed fields and the
    occurrence as compact JSON (json.dumps writes the prices of Kaggle lines as msgspec
    does: plain decimals between 1e-4 and 1e16)."""
    invoice, stock, description, quantity, date, price, customer, country = (
        f.strip() for f in fields)
    content = [invoice, stock, description, int(quantity), float(price),
               parse_invoice_date(date), str(int(float(customer))) if customer else None,
               country or "Unspecified", occurrence]
    text = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def test_the_id_is_made_from_the_content_alone() -> None:
    a = parse_row(GOOD, "data.csv:2")
    assert isinstance(a, Transaction) and a.event_id == reference_id(GOOD)
    assert parse_row(GOOD, "other.csv.gz:900").event_id == a.event_id
    # the same values written otherwise are the same transaction
    same = row(Quantity=" 6", UnitPrice="2.550", CustomerID="17850.0")
    assert parse_row(same, "f:3").event_id == a.event_id
    for name, value in (("InvoiceNo", "536366"), ("StockCode", "85123B"),
                        ("Description", "HEART"), ("Quantity", "7"),
                        ("InvoiceDate", "12/1/2010 8:27"), ("UnitPrice", "2.56"),
                        ("CustomerID", ""), ("Country", "France")):
        changed = parse_row(row(**{name: value}), "f:4")
        assert changed.event_id == reference_id(row(**{name: value})) != a.event_id, name


def test_duplicate_lines_stay_distinct_events() -> None:
    count = Occurrences()
    first, second, third = (count.placed(parse_row(GOOD, f"f:{i}")) for i in (2, 3, 4))
    assert len({first.event_id, second.event_id, third.event_id}) == 3
    assert [first.event_id, second.event_id, third.event_id] == [
        reference_id(GOOD, n) for n in (1, 2, 3)]
    assert first.amount == second.amount == third.amount


def test_a_message_with_an_id_of_another_form_is_rejected() -> None:
    obj = json.loads(encode_event(parse_row(GOOD, "f:1")))
    obj["event_id"] = "data.csv:2"
    result = decode_event(json.dumps(obj).encode())
    assert isinstance(result, Rejection) and "replay its file again" in result.reason


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
