"""One handler for the user's errors: a :class:`~basketflow.errors.BasketflowError` raised
by any command ends as one ``Error:`` line on standard error and exit status 1, never a
traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from basketflow.config import ENV_DATA_DIR, ENV_KAFKA, ENV_REDIS

CASES = {
    "servers not running": (["features", "17850"], "Run `basketflow up`"),
    "no servers for a score": (["score", "17850"], "Run `basketflow up`"),
    "no segmentation": (["segment", "show"], "segment"),
    "empty offline store": (["report", "--date", "2011-06-01"], ""),
    "no profiles to fit": (["segment", "fit", "--until", "2011-06-01"], ""),
    "nothing to evaluate": (["evaluate", "--split", "2011-06-01"], ""),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_user_error_is_one_line_and_status_1(case: str, tmp_path: Path) -> None:
    args, expected = CASES[case]
    env = {k: v for k, v in os.environ.items() if k not in (ENV_KAFKA, ENV_REDIS)}
    env[ENV_DATA_DIR] = str(tmp_path / "data")
    done = subprocess.run([sys.executable, "-m", "basketflow.cli",
                           *args],
                          capture_output=True, text=True, env=env, timeout=120)
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert len(errors) == 1 and expected in errors[0], done.stderr
    assert done.stdout == ""


def test_the_errors_are_caught_in_one_place() -> None:
    source = "\n".join(p.read_text() for p in
                       (Path(__file__).parents[1] / "basketflow" / "cli").glob("*.py"))
    assert source.count("except BasketflowError") == 1
    assert "_user_errors" not in source and "friendly" not in source
