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

An event's identity (``event_id``) comes from its content alone, made in one place
(:func:`event_id`): the same transaction has the same id whatever file, topic or line it
came from, so every store keeps it once. Exact duplicate lines of one invoice are told
apart by their place among the identical lines (:class:`Occurrences`). A rejected line has
no content to be named by: its ``event_id`` is where it was (``<file>:<line>``).

>>> row = ["536365", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", "6",
...        "12/1/2010 8:26", "2.55", "17850", "United Kingdom"]
>>> t = parse_row(row, "data.csv:1")
>>> t.entity_id, t.quantity, t.amount, t.event_time.isoformat()
('17850', 6, 15.3, '2010-12-01T08:26:00+00:00')
>>> t.event_id == parse_row(row, "copy.csv.gz:9").event_id == event_id(*row_content(t))
True
>>> decode_event(encode_event(t)) == t
True
>>> parse_row(row[:5], "data.csv:2").reason
'expected 8 fields, got 5'
"""

from __future__ import annotations

import csv
import hashlib
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


#: The digest's size in bytes: an id is twice as many hex digits.
ID_BYTES = 8
_HEX_DIGITS = "0123456789abcdef"
#: What an id is made from, in this order: every field of the line as parsed (so
#: ``17850.0`` and ``17850``, ``2.50`` and ``2.5`` are the same customer and price).
CONTENT_FIELDS = ("invoice", "stock_code", "description", "quantity", "unit_price", "ts",
                  "customer_id", "country")


def event_id(invoice: str, stock_code: str, description: str, quantity: int,
             unit_price: float, ts: int, customer_id: str | None, country: str,
             occurrence: int = 1) -> str:
    """The id of a transaction: the first :data:`ID_BYTES` bytes of the BLAKE2b digest of
    its parsed content (:data:`CONTENT_FIELDS`) and its ``occurrence`` (1 for the first
    of identical lines of an invoice, 2 for the second, ...) as one compact JSON array
    in UTF-8, as msgspec writes it (``["536365","85123A","HEART",6,2.55,1291191960,
    "17850","UK",1]``; a guest's customer is ``null``), in hex. The only place ids are
    made: the same transaction gets the same id from any source.

    >>> event_id("536365", "85123A", "HEART", 6, 2.55, 1291191960, "17850", "UK")
    'fefae80eb87f92a8'
    >>> event_id("536365", "85123A", "HEART", 6, 2.55, 1291191960, "17850", "UK", 2)
    '1c5ab409f314fa9a'
    """
    content = _ENCODER.encode((invoice, stock_code, description, quantity, unit_price, ts,
                               customer_id, country, occurrence))
    return hashlib.blake2b(content, digest_size=ID_BYTES).hexdigest()


def row_content(t: Transaction) -> tuple[str, str, str, int, float, int, str | None, str]:
    """The fields of ``t`` that its id is made from (:data:`CONTENT_FIELDS`)."""
    return (t.invoice, t.stock_code, t.description, t.quantity, t.unit_price, t.ts,
            t.customer_id, t.country)


def is_event_id(text: str) -> bool:
    """Whether ``text`` has the form of an id that :func:`event_id` makes (older ids,
    ``<file>:<line>``, do not).

    >>> is_event_id("fefae80eb87f92a8"), is_event_id("data.csv:2")
    (True, False)
    """
    return len(text) == 2 * ID_BYTES and not text.strip(_HEX_DIGITS)


class Occurrences:
    """The place of each transaction among identical lines (same content, so same id) of
    its invoice: the first keeps its id, the n-th gets the id of occurrence n. Lines of
    an invoice are contiguous in a Kaggle file, so the count restarts whenever the
    invoice changes (an invoice that comes back later starts again at 1). One counter
    per reader of a source, fed every transaction in the source's order.

    >>> row = ["536365", "85123A", "HEART", "6", "12/1/2010 8:26", "2.55", "17850", "UK"]
    >>> other_invoice = ["536366", *row[1:]]
    >>> count = Occurrences()
    >>> a, b, c, d = (count.placed(parse_row(r, "f")) for r in (row, row, other_invoice, row))
    >>> a.event_id == event_id(*row_content(a)), b.event_id == event_id(*row_content(b), 2)
    (True, True)
    >>> d.event_id == a.event_id  # the invoice changed in between: counted from 1 again
    True
    """

    __slots__ = ("invoice", "seen")

    def __init__(self) -> None:
        self.invoice = ""
        self.seen: dict[str, int] = {}

    def placed(self, t: Transaction) -> Transaction:
        """``t`` with the id of its occurrence (``t`` itself for the first)."""
        if t.invoice != self.invoice:
            self.invoice = t.invoice
            self.seen = {t.event_id: 1}
            return t
        n = self.seen.get(t.event_id, 0) + 1
        self.seen[t.event_id] = n
        if n == 1:
            return t
        return msgspec.structs.replace(t, event_id=event_id(*row_content(t), occurrence=n))

    def place_all(self, items: list[Transaction | Rejection]) -> list[Transaction | Rejection]:
        """:meth:`placed` over a list of a source's records in order (rejections as
        they are)."""
        placed = self.placed
        return [placed(t) if type(t) is Transaction else t for t in items]


def parse_row(row: list[str], where: str) -> Transaction | Rejection:
    """One CSV record of the Kaggle file -> a Transaction, or a Rejection with the reason.

    The transaction's id is :func:`event_id` of its content (occurrence 1: a reader
    places duplicates with :class:`Occurrences`); a rejection's is ``where``, the place
    of the line (``<file>:<line>``)."""
    raw = ",".join(row)
    if len(row) != len(HEADER):
        return Rejection(f"expected {len(HEADER)} fields, got {len(row)}", raw, where)
    invoice, stock_code, description, quantity, date, price, customer, country = (
        x.strip() for x in row)
    if not invoice:
        return Rejection("InvoiceNo is empty", raw, where)
    if not stock_code:
        return Rejection("StockCode is empty", raw, where)
    try:
        qty = int(quantity)
    except ValueError:
        return Rejection(f"Quantity {quantity!r} is not a whole number", raw, where)
    try:
        unit_price = float(price)
    except ValueError:
        return Rejection(f"UnitPrice {price!r} is not a number", raw, where)
    try:
        ts = parse_invoice_date(date)
    except (ValueError, OverflowError, OSError):
        return Rejection(f"InvoiceDate {date!r} is not like 12/1/2010 8:26", raw, where)
    try:
        customer_id = parse_customer_id(customer)
    except (ValueError, OverflowError) as exc:
        return Rejection(str(exc) if "CustomerID" in str(exc)
                         else f"CustomerID {customer!r} is not a number", raw, where)
    reason = check_ranges(qty, unit_price, ts, invoice)
    if reason:
        return Rejection(reason, raw, where)
    country = country or "Unspecified"
    return Transaction(
        event_id=event_id(invoice, stock_code, description, qty, unit_price, ts,
                          customer_id, country),
        invoice=invoice, stock_code=stock_code,
        description=description, quantity=qty, unit_price=unit_price, ts=ts,
        customer_id=customer_id, country=country,
        is_cancellation=invoice.startswith("C"), is_adjustment=invoice.startswith("A"),
        is_product=is_product_code(stock_code),
    )


def parse_line(line: str, where: str) -> Transaction | Rejection:
    """One raw text line of the CSV (already decoded) -> Transaction or Rejection
    (``where``: as for :func:`parse_row`)."""
    try:
        rows = list(csv.reader([line]))
    except csv.Error as exc:
        return Rejection(f"not a CSV line: {exc}", line, where)
    if len(rows) != 1:
        return Rejection("not exactly one CSV record", line, where)
    return parse_row(rows[0], where)


def encode_event(t: Transaction) -> bytes:
    """The message value on the topic: compact JSON of every field."""
    return _ENCODER.encode(t)


def encode_events(events: list[Transaction]) -> list[bytes]:
    """:func:`encode_event` of each event, encoded in one call (as JSON lines, then split
    at the line ends: JSON text holds no raw line end), for a producer of many at once.

    >>> t = parse_line("536365,85123A,HEART,6,12/1/2010 8:26,2.55,17850,UK", "f")
    >>> encode_events([t, t]) == [encode_event(t)] * 2, encode_events([])
    (True, [])
    """
    if not events:
        return []
    return _ENCODER.encode_lines(events).split(b"\n")[:-1]


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
    checking the decoded dict in Python); the value ranges are checked as for CSV lines,
    and the id must have the form :func:`event_id` gives (:func:`is_event_id`): an id of
    another form (``<file>:<line>``, from a replay before ids were made from content)
    would let the same transaction in twice under two ids.
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
    if reason is None and not is_event_id(t.event_id):
        reason = (f"event_id {t.event_id[:40]!r} is not an id made from the content "
                  "(basketflow.schemas.events.event_id; a message of an older replay): "
                  "replay its file again")
    if reason:
        return Rejection(reason, value.decode("utf-8", "replace"), t.event_id or None,
                         source="flow")
    return t
