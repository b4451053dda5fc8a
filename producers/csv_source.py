"""Reading a Kaggle-format transactions file: ``.csv`` or ``.csv.gz``, ISO-8859-1.

One reader for every consumer of the raw file (the replay into Kafka and the backfill
without Kafka). Each transaction's ``event_id`` is made from its content
(:func:`~basketflow.schemas.events.event_id`), its place among identical lines of its
invoice counted as the file is read (:class:`~basketflow.schemas.events.Occurrences`), so
the same transaction has the same id from any copy of the file, whatever its name,
compression or the lines around it, which is what makes every sink idempotent. A rejected
line is named by the file's name and the line number the record ends on (the header is
line 1).
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from basketflow.errors import BasketflowError
from basketflow.producers.csv_blocks import line_ends, read_block
from basketflow.schemas.events import HEADER, Occurrences, Rejection, Transaction, parse_row

ENCODING = "ISO-8859-1"
#: Decompressed bytes per block: about 50,000 lines of the real file.
BLOCK_BYTES = 1 << 22


class BadInputFile(BasketflowError, ValueError):
    """The file is not a Kaggle-format transactions file; the message says why."""


@contextmanager
def open_bytes(path: str | Path) -> Iterator[tuple[IO[bytes], IO[bytes]]]:
    """Open a .csv or .csv.gz; yield the decompressed bytes and the raw byte stream (for
    progress)."""
    path = Path(path)
    if not path.is_file():
        raise BadInputFile(f"{path}: no such file (give the path of a Kaggle data.csv "
                           "or .csv.gz, or make one with `basketflow generate`)")
    with open(path, "rb") as raw:
        yield (gzip.GzipFile(fileobj=raw) if path.name.endswith(".gz") else raw), raw


@contextmanager
def open_text(path: str | Path) -> Iterator[tuple[IO[str], IO[bytes]]]:
    """Open a .csv or .csv.gz as text; also yield the raw byte stream (for progress)."""
    with open_bytes(path) as (stream, raw):
        yield io.TextIOWrapper(stream, encoding=ENCODING, newline=""), raw


#: How much of a wrong first line an error message shows.
SHOWN_HEADER = 60


def _check_header(header: list[str] | None, path: Path) -> None:
    """Refuse a file whose first line is not the Kaggle header: one line that says why,
    never the bytes of a binary file.

    >>> elf = b"\\x7fELF\\x02\\x01\\x01\\x00".decode("latin-1")  # an executable's first bytes
    >>> _check_header([elf], Path("ls"))
    Traceback (most recent call last):
    ...
    basketflow.producers.csv_source.BadInputFile: ls: not a text file (binary data in its first line): give a Kaggle data.csv or .csv.gz, or make one with `basketflow generate`
    """
    if header is None:
        raise BadInputFile(f"{path}: the file is empty: give a Kaggle data.csv or .csv.gz, "
                           "or make one with `basketflow generate`")
    line = ",".join(header)
    if any(c < " " and c not in "\t\r\n" or "\x7f" <= c < "\xa0" for c in line):
        raise BadInputFile(f"{path}: not a text file (binary data in its first line): give "
                           "a Kaggle data.csv or .csv.gz, or make one with `basketflow generate`")
    if tuple(h.strip().lstrip("\ufeff") for h in header) != HEADER:
        shown = line if len(line) <= SHOWN_HEADER else line[:SHOWN_HEADER] + "..."
        raise BadInputFile(f"{path}: first line is {shown!r}, expected the Kaggle header "
                           f"{','.join(HEADER)!r}")


#: Bytes read by :func:`check_events_file`: the header and the start of the data.
CHECK_BYTES = 1 << 16


def check_events_file(path: str | Path) -> None:
    """Raise :class:`BadInputFile` unless ``path`` looks like a Kaggle transactions file:
    it exists, can be read (and decompressed, for ``.gz``), holds text (no NUL byte in
    its first :data:`CHECK_BYTES`) and starts with the Kaggle header.

    Why: :func:`read_events` checks lazily, at its first block, which inside a running
    Bytewax dataflow (``backfill``) surfaces as a Rust panic; every command that reads a
    file calls this first, so a bad file is one error line before any work starts.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile(suffix=".csv") as f:
    ...     check_events_file(f.name)
    Traceback (most recent call last):
    basketflow.producers.csv_source.BadInputFile: ....csv: the file is empty: give ...
    """
    path = Path(path)
    try:
        with open_bytes(path) as (stream, _raw):
            head = stream.read(CHECK_BYTES)
    except (EOFError, OSError) as exc:  # unreadable, or not gzip (BadGzipFile is OSError)
        raise BadInputFile(f"{path}: cannot read it ({exc})") from exc
    if b"\0" in head:
        raise BadInputFile(f"{path}: a binary file, not a CSV text file (give the path "
                           "of a Kaggle data.csv or .csv.gz)")
    first = head.split(b"\n", 1)[0].rstrip(b"\r").decode(ENCODING)
    _check_header(next(csv.reader([first]), None) if head.strip() else None, path)


def read_events(path: str | Path, raw_progress: list[int] | None = None,
                block_bytes: int = BLOCK_BYTES) -> Iterator[Transaction | Rejection]:
    """Every data line of the file as a Transaction or a Rejection, in file order.

    The same records, ids and rejections as :func:`read_events_by_line`, read a block of
    about ``block_bytes`` decompressed bytes at a time (see :mod:`basketflow.producers.csv_blocks`),
    several times faster. ``raw_progress``, when given, is a one-element list kept at the
    number of raw (compressed) bytes read so far, for a progress bar.
    """
    for items in read_event_blocks(path, raw_progress, block_bytes):
        yield from items


def read_event_blocks(path: str | Path, raw_progress: list[int] | None = None,
                      block_bytes: int = BLOCK_BYTES
                      ) -> Iterator[list[Transaction | Rejection]]:
    """:func:`read_events`'s records a block at a time (a list per block, in file order),
    for a consumer that handles many records per Python call (the replay)."""
    path = Path(path)
    occurrences = Occurrences()
    with open_bytes(path) as (stream, raw):
        pending = b""
        lines = 0
        header_due = True
        while True:
            chunk, error = _read_some(stream, block_bytes)
            text, rest = pending + chunk, b""
            final = not chunk and error is None
            if error is not None:  # what a text reader gets before the error
                ends = line_ends(text, ends_line=False)
                text = text[:int(ends[-1]) + 1] if ends.size else b""
            elif not final:
                cut = text.rfind(b"\n") + 1
                if not cut:
                    pending = text
                    continue
                text, rest = text[:cut], text[cut:]
            try:
                block = read_block(text, lines, path.name, final, header=header_due)
            except csv.Error as exc:  # only the header's record raises
                raise BadInputFile(f"{path}: not a readable CSV file ({exc})") from exc
            if header_due and not (block.needs_more and block.lines == 0):
                _check_header(block.header, path)
                header_due = False
            yield occurrences.place_all(block.items)
            lines += block.lines
            pending = text[block.consumed:] + rest
            if raw_progress is not None:
                raw_progress[0] = raw.tell()
            if error is not None:
                if header_due:
                    raise BadInputFile(f"{path}: not a readable CSV file ({error})") from error
                lines += len(line_ends(pending, ends_line=True))  # an open record's
                raise BadInputFile(f"{path}: truncated or corrupt after line {lines} "
                                   f"({error})") from error
            if final:
                return


def _read_some(stream: IO[bytes], size: int) -> tuple[bytes, Exception | None]:
    """At least ``size`` bytes and on to a line end, or what is left of the file (b"" at
    its end); and the read error met, if any: the bytes read before an error are kept,
    as a text reader would have them."""
    pieces: list[bytes] = []
    got = 0
    try:
        while True:
            piece = stream.read1(max(size - got, 1))  # type: ignore[attr-defined]
            if not piece:
                break
            pieces.append(piece)
            got += len(piece)
            if got >= size and b"\n" in piece:
                break
    except (EOFError, OSError) as exc:
        return b"".join(pieces), exc
    return b"".join(pieces), None


def read_events_by_line(path: str | Path) -> Iterator[Transaction | Rejection]:
    """Every data line of the file, read line by line with ``csv.reader`` and judged by
    :func:`parse_row`, duplicates placed by :class:`Occurrences`: the reference that
    :func:`read_events` is proven against (tests, ``benchmarks/backfill.py``)."""
    path = Path(path)
    source = path.name
    occurrences = Occurrences()
    with open_text(path) as (text, _raw):
        reader = csv.reader(text)
        try:
            _check_header(next(reader, None), path)
        except (UnicodeDecodeError, csv.Error, EOFError, OSError) as exc:
            raise BadInputFile(f"{path}: not a readable CSV file ({exc})") from exc
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield Rejection(f"not a CSV record: {exc}", "", f"{source}:{reader.line_num}")
                continue
            except (EOFError, OSError) as exc:
                raise BadInputFile(f"{path}: truncated or corrupt after line "
                                   f"{reader.line_num} ({exc})") from exc
            item = parse_row(row, f"{source}:{reader.line_num}")
            yield occurrences.placed(item) if isinstance(item, Transaction) else item
