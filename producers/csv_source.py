"""Reading a Kaggle-format transactions file: ``.csv`` or ``.csv.gz``, ISO-8859-1.

One reader for every consumer of the raw file (the replay into Kafka and the backfill
without Kafka), so that both give each line the same ``event_id``: the file's name and the
line number the record ends on (the header is line 1). Lines of the same file therefore
keep their identity across replays, which is what makes every sink idempotent.
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
from basketflow.schemas.events import HEADER, Rejection, Transaction, parse_row

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


def read_events(path: str | Path, raw_progress: list[int] | None = None,
                block_bytes: int = BLOCK_BYTES) -> Iterator[Transaction | Rejection]:
    """Every data line of the file as a Transaction or a Rejection, in file order.

    The same records, ids and rejections as :func:`read_events_by_line`, read a block of
    about ``block_bytes`` decompressed bytes at a time (see :mod:`basketflow.producers.csv_blocks`),
    several times faster. ``raw_progress``, when given, is a one-element list kept at the
    number of raw (compressed) bytes read so far, for a progress bar.
    """
    path = Path(path)
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
            yield from block.items
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


def check_file(path: str | Path) -> None:
    """Raise :class:`BadInputFile` now, before a dataflow starts, if ``path`` is missing,
    empty, binary or not headed like a Kaggle file (it reads the first block only); an
    error raised inside a running dataflow reaches the user as a panic."""
    events = read_events(path, block_bytes=1 << 16)
    try:
        next(events, None)
    finally:
        events.close()


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
    :func:`parse_row`: the reference that :func:`read_events` is proven against (tests,
    ``benchmarks/backfill.py``), and the definition of its ids: the line each record
    ends on."""
    path = Path(path)
    source = path.name
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
            yield parse_row(row, f"{source}:{reader.line_num}")
