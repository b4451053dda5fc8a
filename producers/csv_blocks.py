"""Many lines of a Kaggle file turned into events at once, as the line reader gives them.

Parsing the file line by line in Python (``csv.reader``, then :func:`parse_row` on each
record) costs Python calls per field of every line, a large share of a whole backfill's
time.
Here a *block* (a run of whole lines of the decompressed file) is handled in bulk:

- its lines are found with numpy exactly where :class:`io.TextIOWrapper` with
  ``newline=""`` ends them for :func:`csv.reader` (at ``\\n``, ``\\r\\n`` or a lone
  ``\\r``), so every record keeps the line number it ends on, by which a rejected
  line is named;
- a *plain* line, ended by ``\\n`` with exactly seven commas, no quote, no NUL and at
  most :data:`MAX_PLAIN_CHARS` characters, is one record whose fields are the text
  between its commas. The block's plain lines are split together by ``pyarrow.csv``
  (quoting off), and each column is converted one *distinct* value at a time by the
  very functions :func:`parse_row` uses (``str.strip``, ``int``, ``float``,
  :func:`parse_invoice_date`, :func:`parse_customer_id`, the range rules of
  :func:`check_ranges`), so a block of 50,000 lines costs a few thousand Python calls,
  besides one :func:`~basketflow.schemas.events.event_id` and one ``Transaction`` per
  line;
- a plain line that any of those rules does not accept with certainty (an empty field,
  a quantity that is not an int, a negative price, a date out of range, ...) goes to
  :func:`parse_row`, which gives the same event or the same rejection as line by line;
- every other line (quotes, a lone ``\\r``, a blank line, a field count other than 8,
  NUL, a very long line) starts a record read by ``csv.reader`` itself from that line
  on, as many lines as the record spans, then judged by :func:`parse_row`.

So :func:`parse_row` stays the one judge of what is valid: the bulk path only takes the
lines it would certainly accept, with the values it would give them.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from basketflow.schemas.events import (
    HEADER,
    MIN_TS,
    Rejection,
    Transaction,
    check_ranges,
    event_id,
    is_product_code,
    parse_customer_id,
    parse_invoice_date,
    parse_row,
)

#: Longest line taken in bulk; longer ones (the real file's longest has 99 characters)
#: go through ``csv.reader``, which also enforces its field size limit.
MAX_PLAIN_CHARS = 1000
_NEWLINE, _RETURN, _QUOTE, _COMMA, _NUL = (ord(c) for c in "\n\r\",\0")
_ARROW_PARSE = pacsv.ParseOptions(delimiter=",", quote_char=False, escape_char=False,
                                  newlines_in_values=False, ignore_empty_lines=False)
_ARROW_CONVERT = pacsv.ConvertOptions(column_types={name: pa.string() for name in HEADER},
                                      strings_can_be_null=False)
_ARROW_READ = pacsv.ReadOptions(column_names=list(HEADER), block_size=1 << 26)


@dataclass
class Block:
    """What one block gave: its records in file order, and how far it got.

    ``lines`` and ``consumed`` (bytes) count the whole lines the records used; when a
    record started in the block runs past its end (a quoted field over a line end), the
    block stops before that record, to be read again with the text that follows.
    ``header`` is the block's first record as read by ``csv.reader`` when asked for
    (None for an empty file), and ``needs_more`` says whether the block stopped early.
    """

    items: list[Transaction | Rejection] = field(default_factory=list)
    lines: int = 0
    consumed: int = 0
    header: list[str] | None = None
    needs_more: bool = False


def line_ends(data: bytes, ends_line: bool) -> np.ndarray:
    """The index of the last character of every line of ``data``, as TextIOWrapper
    (``newline=""``) ends lines: at ``\\n``, at ``\\r\\n``, at a ``\\r`` not followed by
    ``\\n``. ``ends_line``: the end of ``data`` ends a line (the end of the file, or a
    cut made just after a line end); otherwise more text follows, so a ``\\r`` at its
    very end and any text after the last line end are not (yet) lines.

    >>> line_ends(b"a\\r\\nb\\rc\\nd\\r", ends_line=False).tolist()
    [2, 4, 6]
    >>> line_ends(b"a\\r\\nb\\rc\\nd\\r", ends_line=True).tolist()
    [2, 4, 6, 8]
    """
    chars = np.frombuffer(data, dtype=np.uint8)
    ends = chars == _NEWLINE
    lone = chars == _RETURN
    lone[:-1] &= ~ends[1:]
    if chars.size:
        lone[-1] &= ends_line
    ends |= lone
    positions = np.flatnonzero(ends)
    if ends_line and chars.size and (positions.size == 0 or positions[-1] != chars.size - 1):
        positions = np.append(positions, chars.size - 1)
    return positions


def plain_lines(data: bytes, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Which lines can be split at their commas: ended by ``\\n``, exactly seven commas,
    no quote or NUL, not longer than :data:`MAX_PLAIN_CHARS`."""
    chars = np.frombuffer(data, dtype=np.uint8)
    commas = np.diff(np.searchsorted(np.flatnonzero(chars == _COMMA), ends), prepend=0)
    odd = np.flatnonzero((chars == _QUOTE) | (chars == _NUL))
    plain = ((chars[ends] == _NEWLINE) & (commas == len(HEADER) - 1)
             & (ends - starts < MAX_PLAIN_CHARS))
    plain[np.searchsorted(ends, odd)] = False
    return plain


class _LineFeed:
    """The block's lines, handed to ``csv.reader`` one at a time from a given line on;
    notes when the reader asked for a line past the block's end."""

    def __init__(self, data: bytes, starts: np.ndarray, ends: np.ndarray) -> None:
        self.data = data
        self.starts = starts.tolist()
        self.ends = ends.tolist()
        self.next = 0
        self.ran_out = False

    def __iter__(self) -> _LineFeed:
        return self

    def __next__(self) -> str:
        i = self.next
        if i >= len(self.starts):
            self.ran_out = True
            raise StopIteration
        self.next = i + 1
        return self.data[self.starts[i]:self.ends[i] + 1].decode("latin-1")


def read_block(data: bytes, first_line: int, source: str, final: bool,
               header: bool = False) -> Block:
    """The records of ``data``, whole lines of the file after its first ``first_line``
    lines, in file order (see the module). ``final``: nothing follows ``data``, so a
    record still open at its end ends there, as at the end of a file; otherwise the
    block stops before it (``needs_more``). ``header``: the first record is the header,
    returned apart, not judged (its ``csv.Error``, if any, is raised)."""
    ends = line_ends(data, ends_line=True)
    starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64) if ends.size else ends
    plain = plain_lines(data, starts, ends)
    feed = _LineFeed(data, starts, ends)
    reader = csv.reader(feed)
    block = Block()
    bulk = plain.copy()
    slow: list[tuple[int, Transaction | Rejection]] = []
    todo = [0] if header else []
    todo.extend(np.flatnonzero(~plain).tolist())
    stop = len(starts)
    for i, line in enumerate(todo):
        if line < feed.next:
            continue  # inside a record already read
        feed.next = line
        try:
            row = next(reader, None)
        except csv.Error as exc:
            row, error = None, exc
        else:
            error = None
        if feed.ran_out and not final:
            block.needs_more, stop = True, line
            break
        bulk[line:feed.next] = False
        number = first_line + feed.next
        if header and i == 0:
            if error is not None:
                raise error
            block.header = row
        elif error is not None:
            slow.append((number, Rejection(f"not a CSV record: {error}", "",
                                           f"{source}:{number}")))
        elif row is not None:
            slow.append((number, parse_row(row, f"{source}:{number}")))
    bulk[stop:] = False
    block.lines = stop
    block.consumed = int(starts[stop]) if stop < len(starts) else len(data)
    lines = np.flatnonzero(bulk)
    fast = _bulk_events(data, starts[lines], ends[lines], first_line + lines + 1, source)
    block.items = _merge(fast, (first_line + lines + 1), slow)
    return block


def _merge(fast: list[Transaction | Rejection], fast_numbers: np.ndarray,
           slow: list[tuple[int, Transaction | Rejection]]) -> list[Transaction | Rejection]:
    """Both kinds of record in line order (each kind is in order already)."""
    if not slow:
        return fast
    cuts = np.searchsorted(fast_numbers, [n for n, _ in slow]).tolist()
    out: list[Transaction | Rejection] = []
    done = 0
    for cut, (_, item) in zip(cuts, slow):
        out.extend(fast[done:cut])
        out.append(item)
        done = cut
    out.extend(fast[done:])
    return out


class _Unsure(Exception):
    """A value the bulk path does not accept with certainty: parse_row decides."""


def _bulk_events(data: bytes, starts: np.ndarray, ends: np.ndarray, numbers: np.ndarray,
                 source: str) -> list[Transaction | Rejection]:
    """Plain lines -> events, column by column, each distinct value converted once."""
    if not len(starts):
        return []
    text = _joined(data, starts, ends).decode("latin-1").encode("utf-8")
    table = pacsv.read_csv(pa.BufferReader(text), read_options=_ARROW_READ,
                           parse_options=_ARROW_PARSE, convert_options=_ARROW_CONVERT)
    assert table.num_rows == len(starts), "plain lines must be one record each"
    invoice, stock, description, quantity, date, price, customer, country = (
        _Column(table.column(i).combine_chunks()) for i in range(len(HEADER)))
    ok = np.ones(len(starts), dtype=bool)
    invoices = invoice.convert(_non_empty, ok)
    stocks = stock.convert(_non_empty, ok)
    quantities = quantity.convert(_quantity, ok)
    prices = price.convert(_price, ok)
    times = date.convert(_timestamp, ok)
    customers = customer.convert(parse_customer_id, ok)
    descriptions = description.convert(lambda d: d, ok)
    countries = country.convert(lambda c: c or "Unspecified", ok)
    ids = map(event_id, invoices, stocks, descriptions, quantities, prices, times, customers,
              countries)
    events: list[Transaction | Rejection] = list(map(
        Transaction, ids, invoices, stocks, descriptions, quantities, prices, times,
        customers, countries,
        invoice.convert(lambda i: i.startswith("C"), ok),
        invoice.convert(lambda i: i.startswith("A"), ok),
        stock.convert(is_product_code, ok)))
    for i in np.flatnonzero(~ok).tolist():
        line = data[int(starts[i]):int(ends[i]) + 1].decode("latin-1")
        events[i] = parse_row(next(csv.reader([line])), f"{source}:{numbers[i]}")
    return events


def _joined(data: bytes, starts: np.ndarray, ends: np.ndarray) -> bytes:
    """The given lines of ``data`` (in order), one slice per run of adjacent lines."""
    breaks = np.flatnonzero(starts[1:] != ends[:-1] + 1) + 1
    firsts = np.concatenate(([0], breaks)).tolist()
    lasts = np.concatenate((breaks - 1, [len(starts) - 1])).tolist()
    begin, end = starts.tolist(), ends.tolist()
    return b"".join(data[begin[a]:end[b] + 1] for a, b in zip(firsts, lasts))


class _Column:
    """One column of a block's plain lines: its distinct values (stripped, as
    parse_row strips every field) and, per line, which one it holds."""

    def __init__(self, array: pa.Array) -> None:
        encoded = array.dictionary_encode()
        self.distinct = [text.strip() for text in encoded.dictionary.to_pylist()]
        self.index = encoded.indices.to_numpy()

    def convert(self, function: Callable[[str], Any], ok: np.ndarray) -> list[Any]:
        """``function`` of each line's value, computed once per distinct value; lines
        whose value it refuses (any exception) are marked not ok in ``ok``."""
        values = np.empty(len(self.distinct), dtype=object)
        good = np.ones(len(self.distinct), dtype=bool)
        for i, text in enumerate(self.distinct):
            try:
                values[i] = function(text)
            except (_Unsure, ValueError, OverflowError, OSError):
                good[i] = False
        if not good.all():
            ok &= good[self.index]
        return values[self.index].tolist()


def _non_empty(text: str) -> str:
    """InvoiceNo and StockCode must not be empty."""
    if not text:
        raise _Unsure
    return text


def _quantity(text: str) -> int:
    """A Quantity that passes parse_row's rules whatever the other fields are."""
    value = int(text)
    if check_ranges(value, 0.0, MIN_TS, "") is not None:
        raise _Unsure
    return value


def _price(text: str) -> float:
    """A UnitPrice that passes parse_row's rules on any invoice (so not negative)."""
    value = float(text)
    if check_ranges(1, value, MIN_TS, "") is not None:
        raise _Unsure
    return value


def _timestamp(text: str) -> int:
    """An InvoiceDate that passes parse_row's rules, as epoch seconds."""
    value = parse_invoice_date(text)
    if check_ranges(1, 0.0, value, "") is not None:
        raise _Unsure
    return value
