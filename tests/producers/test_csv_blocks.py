"""The block reader gives exactly the line-by-line reader's records, ids and rejections.

``read_events`` (blocks, :mod:`basketflow.producers.csv_blocks`) against ``read_events_by_line``
(``csv.reader`` + ``parse_row`` on every record): over the seeded generator's data with
bad and odd lines mixed in, at block sizes that cut records anywhere, plain and gzipped,
truncated, on random text, and on the real file when it is present.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from basketflow.producers.csv_blocks import line_ends
from basketflow.producers.csv_source import BadInputFile, read_events, read_events_by_line
from basketflow.producers.synthetic import write_csv
from basketflow.schemas.events import Rejection, Transaction

HEADER_LINE = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
GOOD = "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom"

#: Lines the bulk path must hand to csv.reader or to parse_row, each with its line end.
ODD_LINES = [
    "536999,85123A,BAD QUANTITY,six,12/1/2010 9:00,2.55,17850,United Kingdom\r\n",
    "537000,85123A,BAD DATE,1,2010-12-01 09:00,2.55,17850,United Kingdom\r\n",
    "537001,85123A,TOO FEW FIELDS,1,12/1/2010 9:00,2.55\r\n",
    "537002,85123A,NEGATIVE PRICE,1,12/1/2010 9:00,-2.55,17850,United Kingdom\r\n",
    "A563186,B,Adjust bad debt,1,8/12/2011 14:51,-11062.06,,United Kingdom\r\n",
    '537003,85123A,"QUOTED, WITH A COMMA",2,12/1/2010 9:01,2.55,17850,United Kingdom\r\n',
    '537004,85123A,"TWO\r\nLINES",2,12/1/2010 9:02,2.55,17850,United Kingdom\r\n',
    '537005,85123A,"THREE\r\n\r\nLINES ""QUOTED""",2,12/1/2010 9:03,2.55,,France\r\n',
    "\r\n",
    "\n",
    "537006,85123A,LONE CR,1,12/1/2010 9:04,2.55,17850,UK\r537007,22,X,1,12/1/2010 9:04,1,,UK\n",
    "537008,85123A,NUL \x00 INSIDE,1,12/1/2010 9:05,2.55,17850,United Kingdom\r\n",
    "537009,85123A,STRAY\"QUOTE,1,12/1/2010 9:05,2.55,17850,United Kingdom\r\n",
    "537010,85123A," + "LONG " * 300 + ",1,12/1/2010 9:05,2.55,17850,United Kingdom\r\n",
    "537011,85123A,\"" + "HUGE" * 40_000 + "\",1,12/1/2010 9:05,2.55,17850,UK\r\n",
    "537012,85123A,ZERO,0,12/1/2010 9:06,2.55,17850,United Kingdom\r\n",
    "537013,85123A,HUGE QTY,99999999999999999999999,12/1/2010 9:06,2.55,17850,UK\r\n",
    "537014,85123A,ODD NUMBERS, +1_0 ,12/1/2010 9:06, 1e1 ,17850.0,\xa0United Kingdom\x85\r\n",
    "537015,85123A,NAN PRICE,1,12/1/2010 9:07,nan,17850,United Kingdom\r\n",
    "537016,85123A,INF PRICE,1,12/1/2010 9:07,inf,17850,United Kingdom\r\n",
    "537017,85123A,OLD DATE,1,12/1/1999 9:07,2.55,17850,United Kingdom\r\n",
    "537018,85123A,BAD DAY,1,2/30/2011 9:07,2.55,17850,United Kingdom\r\n",
    "537019,85123A,BAD CUSTOMER,1,12/1/2010 9:08,2.55,17850.5,United Kingdom\r\n",
    "537020,85123A,NEGATIVE CUSTOMER,1,12/1/2010 9:08,2.55,-3,United Kingdom\r\n",
    ",85123A,NO INVOICE,1,12/1/2010 9:08,2.55,17850,United Kingdom\r\n",
    "537021, ,NO STOCK CODE,1,12/1/2010 9:08,2.55,17850,United Kingdom\r\n",
    "C537022,POST,POSTAGE,-1,12/1/2010 9:09,18,12583,\r\n",
    "537023,gift_0001_10,\xa3 VOUCHER ,1,12/1/2010 9:09,10,,Unspecified\r\n",
    "537024,85123A,TOO MANY,FIELDS,1,12/1/2010 9:09,2.55,17850,United Kingdom\r\n",
    "537025,85123A,LF ONLY,3,12/1/2010 9:10,2.55,17850,United Kingdom\n",
]


Records = list[Transaction | Rejection]


def both(path: Path, block_bytes: int) -> tuple[Records, Records]:
    """What each reader gives for the file."""
    return list(read_events(path, block_bytes=block_bytes)), list(read_events_by_line(path))


def both_until_error(path: Path, block_bytes: int) -> list[tuple[Records, str]]:
    """What each reader gives for a file it must fail on: the records before the
    :class:`BadInputFile`, and its message."""
    outcomes = []
    for read in (lambda: read_events(path, block_bytes=block_bytes),
                 lambda: read_events_by_line(path)):
        items: Records = []
        with pytest.raises(BadInputFile) as error:
            items.extend(read())
        outcomes.append((items, str(error.value)))
    return outcomes


def mixed_file(folder: Path, rows: int, seed: int, every: int) -> Path:
    """``folder/mixed.csv``: generated data with every odd line put in after every
    ``every``-th generated line."""
    write_csv(folder / "clean.csv", rows, seed=seed)
    lines = (folder / "clean.csv").read_bytes().decode("latin-1").splitlines(keepends=True)
    for i, odd in enumerate(ODD_LINES):
        lines.insert(1 + every * (i + 1), odd)
    path = folder / "mixed.csv"
    path.write_bytes("".join(lines).encode("latin-1"))
    return path


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated data with every odd line put in after every 97th generated line."""
    return mixed_file(tmp_path_factory.mktemp("mixed"), 3000, seed=11, every=97)


@pytest.mark.parametrize("block_bytes", [400, 4096, 1 << 22])
def test_same_records_as_line_by_line_at_any_block_size(mixed: Path, block_bytes: int) -> None:
    fast, slow = both(mixed, block_bytes)
    assert fast == slow
    rejected = [r for r in slow if isinstance(r, Rejection)]
    assert len(fast) > 3000 and len(rejected) >= 15  # the odd lines are in, and judged


def test_gzipped_file_gives_the_same_records(mixed: Path, tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv.gz"
    path.write_bytes(gzip.compress(mixed.read_bytes()))
    progress = [0]
    assert list(read_events(path, progress, block_bytes=50_000)) == list(read_events_by_line(path))
    assert progress[0] == path.stat().st_size


@pytest.mark.parametrize("cut", [40, 3000, 20_000, -9])
def test_truncated_gzip_gives_the_same_records_then_the_same_error(
        mixed: Path, tmp_path: Path, cut: int) -> None:
    whole = gzip.compress(mixed.read_bytes())
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(whole[:cut])
    fast, slow = both_until_error(path, 8192)
    assert fast == slow


@pytest.mark.parametrize("text", ["", "\r\n", HEADER_LINE, HEADER_LINE + "\r",
                                  "Invoice,Stock\r\n" + GOOD, '"' + HEADER_LINE + "\r\n",
                                  HEADER_LINE + "\r\n" + GOOD, HEADER_LINE + "\r\n" + GOOD + "\r",
                                  HEADER_LINE + '\r\n"unterminated,' + GOOD])
def test_headers_and_file_ends_like_line_by_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(text.encode("latin-1"))
    outcomes = []
    for read in (read_events, read_events_by_line):
        try:
            outcomes.append(list(read(path)))
        except BadInputFile as exc:
            outcomes.append(str(exc))
    assert outcomes[0] == outcomes[1]


FIELD_TEXT = st.text(alphabet='0123456789AC.-/:, "\r\n\xa0\x85\x00e_+x', max_size=12)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.one_of(
    st.just(GOOD + "\r\n"),
    st.builds(lambda fields, end: ",".join(fields) + end,
              st.lists(FIELD_TEXT, min_size=6, max_size=9),
              st.sampled_from(["\r\n", "\n", "\r", ""])),
    st.builds(lambda q, d, p, c: f"536365,85123A,X,{q},{d},{p},{c},UK\r\n",
              st.sampled_from(["1", "-2", "0", "1000001", " 3", "x"]),
              st.sampled_from(["12/1/2010 8:26", "1/1/2101 0:00", "13/1/2010 8:26", "12/1/2010"]),
              st.sampled_from(["2.55", "-1", "1e7", "0", "nan", ".5"]),
              st.sampled_from(["", "17850", "17850.0", "0", "x"]))), max_size=40),
    block_bytes=st.integers(min_value=1, max_value=600))
def test_random_lines_give_the_same_records(tmp_path: Path, lines: list[str],
                                            block_bytes: int) -> None:
    path = tmp_path / "random.csv"
    path.write_bytes((HEADER_LINE + "\r\n" + "".join(lines)).encode("latin-1"))
    assert list(read_events(path, block_bytes=block_bytes)) == list(read_events_by_line(path))


def test_line_ends_are_where_a_text_reader_ends_lines() -> None:
    data = b"a\r\nb\rc\n\r\rd"
    assert line_ends(data, ends_line=True).tolist() == [2, 4, 6, 7, 8, 9]
    assert line_ends(data, ends_line=False).tolist() == [2, 4, 6, 7, 8]


@pytest.mark.parametrize("share", [0.3, 0.6, 0.9])
def test_truncated_gzip_of_lone_cr_lines_like_line_by_line(tmp_path: Path, share: float) -> None:
    text = HEADER_LINE + "\r" + "".join(
        f'5{i:05d},{i * 7919 % 10007},"D {i * 104729 % 1009}\r\nX",{i % 9 + 1},'
        f"12/1/2010 8:{i % 60:02d},{i % 13}.5,{12000 + i},Eire\r" for i in range(2000))
    whole = gzip.compress(text.encode("latin-1"))
    path = tmp_path / "cr.csv.gz"
    path.write_bytes(whole[:int(len(whole) * share)])
    fast, slow = both_until_error(path, 700)
    assert fast == slow
    assert fast[0]


def test_real_file_event_for_event(real_data: Path) -> None:
    fast = read_events(real_data)
    slow = read_events_by_line(real_data)
    count = 0
    for a, b in zip(fast, slow, strict=True):
        assert a == b
        count += 1
    assert count == 370_931


def test_records_over_line_ends_cut_at_every_block_boundary(tmp_path: Path) -> None:
    records = [f'537{i:03d},85123A,"LINE ONE\r\nLINE ""TWO""\r\nLINE THREE",{i + 1},'
               f'12/1/2010 9:{i:02d},2.55,17850,United Kingdom\r\n' for i in range(6)]
    path = tmp_path / "multi.csv"
    path.write_bytes((HEADER_LINE + "\r\n" + GOOD + "\r\n" + "".join(records) + GOOD + "\r\n")
                     .encode("latin-1"))
    slow = list(read_events_by_line(path))
    assert all(isinstance(e, Transaction) for e in slow)
    # GOOD's invoice comes back after others: its count restarts, the same id again
    assert len(slow) == 8 and len({e.event_id for e in slow}) == 7
    assert slow[0].event_id == slow[-1].event_id
    for block_bytes in range(1, path.stat().st_size + 1, 3):
        assert list(read_events(path, block_bytes=block_bytes)) == slow, block_bytes
