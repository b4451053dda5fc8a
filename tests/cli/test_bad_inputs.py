"""A table of bad inputs to every command that takes a file or a folder: a missing, empty,
binary or wrongly headed file, a folder where a file is due, an output in a missing
folder. Each ends with exactly one ``Error:`` line (or click's usage error, which is one
too) and exit status 1 or 2, never a traceback or a Rust panic, through the real command
on the real servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from basketflow.config import Settings
from tests.cli.commands import basketflow, error_lines, user_env

KAGGLE = ("InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,"
          "Country\n536365,85123A,WHITE HANGING HEART,6,12/1/2010 8:26,2.55,17850,"
          "United Kingdom\n")
LABELS = "customer_id,timestamp\n17850,2011-09-30\n"

#: name -> what the file holds (None: no file).
FILES: dict[str, bytes | None] = {
    "missing.csv": None,
    "empty.csv": b"",
    "binary.csv": b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 8,
    "header.csv": b"a,b,c\n1,2,3\n",
    "good.csv": KAGGLE.encode("latin-1"),
    "labels.csv": LABELS.encode(),
}

#: case -> the command's arguments ({tmp}: the test's folder) and what its error names.
CASES: dict[str, tuple[list[str], str]] = {
    **{f"replay {kind}": (["replay", "{tmp}/" + name], name) for kind, name in (
        ("missing", "missing.csv"), ("empty", "empty.csv"), ("binary", "binary.csv"),
        ("wrong header", "header.csv"))},
    "replay a folder": (["replay", "{tmp}"], "directory"),
    **{f"backfill {kind}": (["backfill", "--processes", "1", "--from", "{tmp}/" + name], name)
       for kind, name in (("missing", "missing.csv"), ("empty", "empty.csv"),
                          ("binary", "binary.csv"), ("wrong header", "header.csv"))},
    "backfill a folder": (["backfill", "--from", "{tmp}"], "directory"),
    **{f"historical {kind}": (["historical", "--entities", "{tmp}/" + name, "--features",
                               "customer:spend_30d", "--out", "{tmp}/train.csv"], name)
       for kind, name in (("missing", "missing.csv"), ("empty", "empty.csv"),
                          ("binary", "binary.csv"), ("wrong header", "header.csv"))},
    "historical out in a missing folder": (
        ["historical", "--entities", "{tmp}/labels.csv", "--features", "customer:spend_30d",
         "--out", "{tmp}/no/such/train.csv"], "no"),
    "generate out in a missing folder": (["generate", "--rows", "10", "--out",
                                          "{tmp}/no/such/x.csv"], "/no"),
    "generate out under a file": (["generate", "--rows", "10", "--out", "{tmp}/good.csv/x.csv"],
                                  "good.csv"),
    "report out in a missing folder": (["report", "--date", "2010-12-01", "--out",
                                        "{tmp}/no/such/reports"], "/no"),
    "segment assign out in a missing folder": (["segment", "assign", "--out",
                                                "{tmp}/no/such/labels.csv"], "/no"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_input_is_one_error_line(case: str, tmp_path: Path, settings: Settings) -> None:
    for name, content in FILES.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
    args, named = CASES[case]
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    done = basketflow(*args, env=user_env(tmp_path / "data", settings), cwd=tmp_path)
    errors = error_lines(done)
    assert done.returncode in (1, 2), (done.returncode, done.stderr)
    assert len(errors) == 1 and named in errors[0], done.stderr
    assert "\\x" not in errors[0] and "ELF" not in errors[0]  # no bytes of a binary file
    assert "Traceback" not in done.stderr and "panicked" not in done.stderr, done.stderr
    assert len(done.stderr.splitlines()) <= 5, done.stderr  # the usage error takes 4
    assert not (tmp_path / "no").exists()  # nothing created in the missing folder's place
