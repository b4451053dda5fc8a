"""Invoice lines posted as JSON (``basketflow serve``'s ``/events`` and ``/predict``),
checked by the event contract and nothing else: each line becomes the Kaggle CSV record
it stands for and goes through :func:`~basketflow.schemas.events.parse_row`, so a posted
line gets the same :class:`~basketflow.schemas.events.Transaction` (content id included)
or the same :class:`~basketflow.schemas.events.Rejection` reason as the same line in a
file.

A line is an object with the Kaggle columns in snake case: ``invoice``, ``stock_code``,
``description``, ``quantity``, ``invoice_date``, ``unit_price``, ``customer_id``,
``country``. ``invoice_date`` is the Kaggle text (``12/1/2010 8:26``), an ISO 8601 time
(UTC unless it says otherwise) or epoch seconds; event time has whole minutes, as in the
file.

>>> line = {"invoice": "536365", "stock_code": "85123A", "quantity": 6,
...         "description": "WHITE HANGING HEART T-LIGHT HOLDER", "unit_price": 2.55,
...         "invoice_date": "2010-12-01T08:26:00", "customer_id": 17850,
...         "country": "United Kingdom"}
>>> t = parse_posted([line], "api")[0]
>>> t.entity_id, t.ts, t.amount
('17850', 1291191960, 15.3)
>>> parse_posted([line | {"quantity": "six"}, {"colour": "red"}], "api")[0].reason
"Quantity 'six' is not a whole number"
>>> parse_posted([{"colour": "red"}], "api")[0].reason
'unknown field(s): colour; a line has invoice, stock_code, description, quantity, \
invoice_date, unit_price, customer_id, country'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import msgspec

from basketflow.schemas.events import (
    Occurrences,
    Rejection,
    Transaction,
    format_invoice_date,
    parse_row,
)

#: A posted line's fields, in the Kaggle file's column order.
LINE_FIELDS = ("invoice", "stock_code", "description", "quantity", "invoice_date",
               "unit_price", "customer_id", "country")
_FIELDS = frozenset(LINE_FIELDS)


def invoice_date_text(value: Any) -> str:
    """A posted ``invoice_date`` as the Kaggle text (what :func:`parse_row` reads); a
    value that is none of the accepted forms is given back as text, for the contract to
    reject with its own reason.

    >>> invoice_date_text(1291191960), invoice_date_text("2010-12-01T08:26:00+00:00")
    ('12/1/2010 8:26', '12/1/2010 8:26')
    >>> invoice_date_text("12/1/2010 8:26"), invoice_date_text("soon")
    ('12/1/2010 8:26', 'soon')
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return format_invoice_date(int(value))
        except (ValueError, OverflowError, OSError):
            return str(value)
    text = "" if value is None else str(value)
    if "-" in text[:10]:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return text
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return format_invoice_date(int(moment.timestamp()))
    return text


def _cell(value: Any) -> str:
    """A JSON value as the CSV cell it stands for (null: empty)."""
    return "" if value is None else str(value)


def posted_row(line: Mapping[str, Any]) -> list[str]:
    """The CSV record of one posted line, in :data:`LINE_FIELDS` order."""
    return [invoice_date_text(line.get(name)) if name == "invoice_date"
            else _cell(line.get(name)) for name in LINE_FIELDS]


def parse_one(line: Any, where: str) -> Transaction | Rejection:
    """One posted line -> a Transaction, or a Rejection with the reason (named
    ``where``)."""
    if not isinstance(line, Mapping):
        return Rejection("a line must be a JSON object", _raw(line), where)
    unknown = sorted(set(line) - _FIELDS)
    if unknown:
        return Rejection(f"unknown field(s): {', '.join(map(str, unknown))}; a line has "
                         f"{', '.join(LINE_FIELDS)}", _raw(line), where)
    return parse_row(posted_row(line), where)


def parse_posted(lines: Sequence[Any], source: str) -> list[Transaction | Rejection]:
    """Every posted line in order, identical lines of an invoice told apart as a file's
    are (:class:`~basketflow.schemas.events.Occurrences`); a rejection is named
    ``<source>:<line number from 1>``."""
    parsed = [parse_one(line, f"{source}:{n}") for n, line in enumerate(lines, 1)]
    return Occurrences().place_all(parsed)


def _raw(line: Any) -> str:
    """A posted line as JSON text, for a dead letter."""
    try:
        return msgspec.json.encode(line).decode()
    except (TypeError, msgspec.EncodeError):
        return repr(line)
