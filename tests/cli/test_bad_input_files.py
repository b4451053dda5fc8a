"""A file that is not a Kaggle transactions file (missing, empty, binary, wrongly
headed, a broken gzip) is one ``Error:`` line and exit status 1, for ``backfill --from``
and ``replay`` alike: both call ``check_events_file`` before any work starts, so the
backfill's dataflow never meets the file (an error inside it is a Rust panic of some
370 lines)."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest

from basketflow.config import ENV_DATA_DIR, ENV_KAFKA, ENV_REDIS

#: name -> (the file's bytes, or None for no file; words the error line must have)
BAD_FILES: dict[str, tuple[bytes | None, str]] = {
    "missing.csv": (None, "no such file"),
    "empty.csv": (b"", "the file is empty"),
    "blank.csv": (b"\n\n", "the file is empty"),
    "binary.csv": (b"\x7fELF\x02\x01\x01\x00\x00\x00" * 50, "a binary file"),
    "header.csv": (b"a,b,c\n1,2,3\n", "expected the Kaggle header"),
    "header.csv.gz": (gzip.compress(b"a,b,c\n1,2,3\n"), "expected the Kaggle header"),
    "broken.csv.gz": (b"not gzip at all\n", "cannot read it"),
}


def _run(args: list[str], data: Path, env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in (ENV_KAFKA, ENV_REDIS)}
    env |= {ENV_DATA_DIR: str(data), "RUST_BACKTRACE": "1"} | env_extra
    return subprocess.run([sys.executable, "-m", "basketflow.cli", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def _bad_file(tmp_path: Path, name: str) -> Path:
    content = BAD_FILES[name][0]
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    return path


def _assert_one_error_line(done: subprocess.CompletedProcess[str], expected: str) -> None:
    lines = done.stderr.splitlines()
    assert done.returncode == 1, done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr[-2000:]
    assert expected in lines[0], lines[0]
    assert "ELF" not in lines[0]


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_backfill_from_a_bad_file_is_one_error_line(name: str, tmp_path: Path) -> None:
    path = _bad_file(tmp_path, name)
    done = _run(["backfill", "--from", str(path), "--processes", "1"], tmp_path / "data", {})
    _assert_one_error_line(done, BAD_FILES[name][1])
    assert not (tmp_path / "data" / "offline" / "features").exists()


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_replay_of_a_bad_file_is_the_same_error_line(name: str, tmp_path: Path,
                                                     broker: str, redis_url: str) -> None:
    path = _bad_file(tmp_path, name)
    backfilled = _run(["backfill", "--from", str(path)], tmp_path / "data", {})
    replayed = _run(["replay", str(path), "--topic", f"bad-{name.replace('.', '-')}"],
                    tmp_path / "data", {ENV_KAFKA: broker, ENV_REDIS: redis_url})
    _assert_one_error_line(replayed, BAD_FILES[name][1])
    assert replayed.stderr == backfilled.stderr
