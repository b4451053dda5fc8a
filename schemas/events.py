"""The event contract: one Kaggle invoice line -> a typed :class:`Transaction`, or a
:class:`Rejection` that says why not.

The same contract is checked twice: by the producer on the raw CSV line
(:func:`parse_row`), and by the flow on every message it reads from the topic
(:func:`decode_event`), since anything can be written to a topic. Neither ever raises on
bad input: a bad line or message becomes a ``Rejection`` with a human-readable reason,
which goes to the dead-letter topic. Non-product lines (postage, fees, manual lines),
cancellations, bad-debt adjustments, guests and zero prices are valid events, flagged.

Event time is ``InvoiceDate``, the data's local time taken as UTC, carried as whole
seconds since the epoch (``ts``).

>>> row = ["536365", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", "6",
...        "12/1/2010 8:26", "2.55", "17850", "United Kingdom"]
>>> t = parse_row(row, "data.csv:1")
>>> t.entity_id, t.quantity, t.amount, t.event_time.isoformat()
('17850', 6, 15.3, '2010-12-01T08:26:00+00:00')
>>> decode_event(encode_event(t)) == t
True
>>> parse_row(row[:5], "data.csv:2").reason
'expected 8 fields, got 5'
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import datetime, timezone

import msgspec

HEADER = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate",
          "UnitPrice", "CustomerID", "Country")

#: Stock codes that are not merchandise: postage, carriage, fees, manual lines,
#: discounts, samples, commissions and gift vouchers. Flagged, never rejected.
NON_PRODUCT_CODES = frozenset({
    "POST", "DOT", "M", "C2", "D", "S", "B", "BANK CHARGES", "AMAZONFEE", "CRUK",
    "ADJUST", "ADJUST2", "TEST001", "TEST002",
})
GIFT_VOUCHER_PREFIX = "GIFT_"

#: Bounds outside which a value is taken as corrupt rather than as business.
MAX_ABS_QUANTITY = 1_000_000
MAX_ABS_PRICE = 1_000_000.0
MIN_TS = int(datetime(2000, 1, 1, tzinfo=timezone.utc).timestamp())
MAX_TS = int(datetime(2100, 1, 1, tzinfo=timezone.utc).timestamp())
GUEST_PREFIX = "guest-"
#: Longest text field accepted (the real file's longest description has 35 characters).
MAX_TEXT_CHARS = 1000


class Transaction(msgspec.Struct, frozen=True):
    """One valid invoice line, as it travels on the topic and lands offline.

    A msgspec Struct: created, compared and (de)serialised in C, several times faster
    than a frozen dataclass, which matters at one per event.
    """

    event_id: str
    invoice: str
    stock_code: str
    description: str
    quantity: int
    unit_price: float
    ts: int
    customer_id: str | None
    country: str
    is_cancellation: bool
    is_adjustment: bool
    is_product: bool

    @property
    def entity_id(self) -> str:
        """The customer, or for a guest (no CustomerID) the invoice: the Kafka key."""
        return self.customer_id if self.customer_id else GUEST_PREFIX + self.invoice

    @property
    def amount(self) -> float:
        """Line value (quantity x price); negative for cancellations."""
        return round(self.quantity * self.unit_price, 2)

    @property
    def event_time(self) -> datetime:
        """The event time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.ts, tz=timezone.utc)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A line or message that is not a valid event, with the reason and the raw input."""

    reason: str
    raw: str
    event_id: str | None = None
    source: str = "producer"

    def to_json(self) -> bytes:
        """The dead letter as written to the dead-letter topic."""
        return _ENCODER.encode(self)


FIELD_NAMES: tuple[str, ...] = Transaction.__struct_fields__


def parse_invoice_date(text: str) -> int:
    """``12/1/2010 8:26`` (month/day/year hour:minute, UTC) -> epoch seconds.

    Raises ValueError on anything else.
    """
    date_part, _, time_part = text.strip().partition(" ")
    month, day, year = (int(x) for x in date_part.split("/"))
    hour, minute = (int(x) for x in time_part.split(":"))
    return int(datetime(year, month, day, hour, minute, tzinfo=timezone.utc).timestamp())


def format_invoice_date(ts: int) -> str:
    """Epoch seconds -> the Kaggle form ``12/1/2010 8:26``."""
    d = datetime.fromtimestamp(ts, tz=timezone.utc)
    return f"{d.month}/{d.day}/{d.year} {d.hour}:{d.minute:02d}"


def is_product_code(stock_code: str) -> bool:
    """False for postage, fees, manual lines and the like (see ``NON_PRODUCT_CODES``)."""
    code = stock_code.upper()
    return code not in NON_PRODUCT_CODES and not code.startswith(GIFT_VOUCHER_PREFIX)


def parse_customer_id(text: str) -> str | None:
    """``17850`` or ``17850.0`` -> ``'17850'``; empty -> None (a guest)."""
    text = text.strip()
    if not text:
        return None
    number = float(text)
    if not number.is_integer() or number <= 0:
        raise ValueError(f"CustomerID {text!r} is not a positive whole number")
    return str(int(number))


def check_ranges(quantity: int, price: float, ts: int, invoice: str) -> str | None:
    """The reason a parsed line is absurd, or None when it is plausible.

    Each rule looks at one field, except that a negative price needs an ``A`` invoice:
    the bulk CSV reader (:mod:`basketflow.producers.csv_blocks`) relies on that to check each
    distinct value of a column once.
    """
    if quantity == 0:
        return "Quantity is 0"
    if abs(quantity) > MAX_ABS_QUANTITY:
        return f"Quantity {quantity} is beyond +/-{MAX_ABS_QUANTITY}"
    if not math.isfinite(price):
        return f"UnitPrice {price} is not a finite number"
    if abs(price) > MAX_ABS_PRICE:
        return f"UnitPrice {price} is beyond +/-{MAX_ABS_PRICE:.0f}"
    if price < 0 and not invoice.startswith("A"):
        return f"UnitPrice {price} is negative outside a bad-debt adjustment"
    if not MIN_TS <= ts < MAX_TS:
        return "InvoiceDate is outside 2000-2099"
    return None


def _check_text(t: Transaction) -> str | None:
    """The reason a text field is absurdly long, or None."""
    for name in ("event_id", "invoice", "stock_code", "description", "customer_id", "country"):
        value = getattr(t, name)
        if value is not None and len(value) > MAX_TEXT_CHARS:
            return f"{name} has {len(value)} characters, more than {MAX_TEXT_CHARS}"
    return None


def parse_row(row: list[str], event_id: str) -> Transaction | Rejection:
    """One CSV record of the Kaggle file -> a Transaction, or a Rejection with the reason."""
    raw = ",".join(row)
    if len(row) != len(HEADER):
        return Rejection(f"expected {len(HEADER)} fields, got {len(row)}", raw, event_id)
    invoice, stock_code, description, quantity, date, price, customer, country = (
        x.strip() for x in row)
    if not invoice:
        return Rejection("InvoiceNo is empty", raw, event_id)
    if not stock_code:
        return Rejection("StockCode is empty", raw, event_id)
    try:
        qty = int(quantity)
    except ValueError:
        return Rejection(f"Quantity {quantity!r} is not a whole number", raw, event_id)
    try:
        unit_price = float(price)
    except ValueError:
        return Rejection(f"UnitPrice {price!r} is not a number", raw, event_id)
    try:
        ts = parse_invoice_date(date)
    except (ValueError, OverflowError, OSError):
        return Rejection(f"InvoiceDate {date!r} is not like 12/1/2010 8:26", raw, event_id)
    try:
        customer_id = parse_customer_id(customer)
    except (ValueError, OverflowError) as exc:
        return Rejection(str(exc) if "CustomerID" in str(exc)
                         else f"CustomerID {customer!r} is not a number", raw, event_id)
    reason = check_ranges(qty, unit_price, ts, invoice)
    if reason:
        return Rejection(reason, raw, event_id)
    return Transaction(
        event_id=event_id, invoice=invoice, stock_code=stock_code,
        description=description, quantity=qty, unit_price=unit_price, ts=ts,
        customer_id=customer_id, country=country or "Unspecified",
        is_cancellation=invoice.startswith("C"), is_adjustment=invoice.startswith("A"),
        is_product=is_product_code(stock_code),
    )


def parse_line(line: str, event_id: str) -> Transaction | Rejection:
    """One raw text line of the CSV (already decoded) -> Transaction or Rejection."""
    try:
        rows = list(csv.reader([line]))
    except csv.Error as exc:
        return Rejection(f"not a CSV line: {exc}", line, event_id)
    if len(rows) != 1:
        return Rejection("not exactly one CSV record", line, event_id)
    return parse_row(rows[0], event_id)


def encode_event(t: Transaction) -> bytes:
    """The message value on the topic: compact JSON of every field."""
    return _ENCODER.encode(t)


_ENCODER = msgspec.json.Encoder()


_DECODER = msgspec.json.Decoder(Transaction)


def _event_id_of(value: bytes) -> str | None:
    """The event_id of a message that failed to decode, when it can still be read."""
    try:
        obj = msgspec.json.decode(value)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    event_id = obj.get("event_id") if isinstance(obj, dict) else None
    return event_id if isinstance(event_id, str) else None


def decode_event(value: bytes | None) -> Transaction | Rejection:
    """A message value from the topic -> Transaction, or Rejection naming what is wrong.

    msgspec checks every field's presence and type while decoding (in C, far cheaper than
    checking the decoded dict in Python); the value ranges are checked as for CSV lines.
    """
    value = value or b""
    try:
        t = _DECODER.decode(value)
    except msgspec.ValidationError as exc:
        return Rejection(f"wrong schema: {exc}", value.decode("utf-8", "replace"),
                         _event_id_of(value), source="flow")
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # msgspec raises the latter
        # for a string that is not UTF-8
        return Rejection(f"not JSON: {exc}", value.decode("utf-8", "replace"), source="flow")
    reason = check_ranges(t.quantity, t.unit_price, t.ts, t.invoice)
    if reason is None and not (t.event_id and t.invoice and t.stock_code):
        reason = "event_id, invoice and stock_code must not be empty"
    if reason is None:
        reason = _check_text(t)
    if reason:
        return Rejection(reason, value.decode("utf-8", "replace"), t.event_id or None,
                         source="flow")
    return t
