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

from schemas.events import HEADER, Rejection, Transaction, parse_row

ENCODING = "ISO-8859-1"


class BadInputFile(ValueError):
    """The file is not a Kaggle-format transactions file; the message says why."""


@contextmanager
def open_text(path: str | Path) -> Iterator[tuple[IO[str], IO[bytes]]]:
    """Open a .csv or .csv.gz as text; also yield the raw byte stream (for progress)."""
    path = Path(path)
    if not path.is_file():
        raise BadInputFile(f"{path}: no such file (give the path of a Kaggle data.csv "
                           "or .csv.gz, or make one with `basketflow generate`)")
    raw = open(path, "rb")
    try:
        stream: IO[bytes] = gzip.GzipFile(fileobj=raw) if path.name.endswith(".gz") else raw
        yield io.TextIOWrapper(stream, encoding=ENCODING, newline=""), raw
    finally:
        raw.close()


def _check_header(header: list[str] | None, path: Path) -> None:
    """Refuse a file whose first line is not the Kaggle header."""
    if header is None:
        raise BadInputFile(f"{path}: the file is empty")
    if tuple(h.strip().lstrip("\ufeff") for h in header) != HEADER:
        raise BadInputFile(f"{path}: first line is {','.join(header)!r}, expected the "
                           f"Kaggle header {','.join(HEADER)!r}")


def read_events(path: str | Path, raw_progress: list[int] | None = None,
                ) -> Iterator[Transaction | Rejection]:
    """Every data line of the file as a Transaction or a Rejection, in file order.

    ``raw_progress``, when given, is a one-element list kept at the number of raw
    (compressed) bytes read so far, for a progress bar.
    """
    path = Path(path)
    source = path.name
    with open_text(path) as (text, raw):
        reader = csv.reader(text)
        try:
            _check_header(next(reader, None), path)
        except (UnicodeDecodeError, csv.Error, OSError) as exc:
            raise BadInputFile(f"{path}: not a readable CSV file ({exc})") from exc
        count = 0
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
            count += 1
            if raw_progress is not None and count % 4096 == 0:
                raw_progress[0] = raw.tell()
            yield parse_row(row, f"{source}:{reader.line_num}")
