"""The README's "A session by hand", run as written, line by line, through the real
command on generated data: every step succeeds and says what it should. Optional parts
in brackets (``[--repair]``) are left out, as a first reader would type it."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

#: What each command's output must contain, by its first words.
EXPECTED = {
    "up": ("broker", "redis"),
    "generate": ("50,000",),
    "replay": ("sent",),
    "run": ("processed",),
    "entities": (),
    "features": ("13436", "14919", "spend_30d", "as of", "days_since_last_purchase"),
    "status": ("broker", "event-time clock"),
    "check": (),
    "segment": ("customers",),
    "models": ("version", "champion"),
    "score": ("13436", "basket", "model"),
    "down": ("stopped",),
}


def session_lines() -> list[list[str]]:
    """The commands of the README's session block, without comments or optional parts."""
    text = (REPO / "README.md").read_text()
    block = text.split("## A session by hand", 1)[1].split("```", 2)[1]
    lines = []
    for line in block.splitlines():
        line = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).strip()
        if line:
            lines.append(shlex.split(line))
    return lines


@pytest.mark.server
@pytest.mark.slow
def test_the_readme_session_runs_as_written(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")}
    env["BASKETFLOW_DATA_DIR"] = str(tmp_path / "data")
    lines = session_lines()
    assert [words[:1] for words in lines][0] == ["basketflow"] and len(lines) >= 8
    try:
        for words in lines:
            assert words[0] == "basketflow", words
            done = subprocess.run([sys.executable, "-m", "basketflow.cli", *words[1:]],
                                  cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=300)
            shown = " ".join(words)
            assert done.returncode == 0, f"{shown}:\n{done.stderr[-3000:]}"
            assert "Traceback" not in done.stderr and "panicked" not in done.stderr, shown
            for expected in EXPECTED[words[1]]:
                assert expected in done.stdout, f"{shown} printed no {expected!r}:\n{done.stdout}"
            if words[1] == "entities":
                assert len(done.stdout.strip().splitlines()) >= 3, done.stdout
    finally:
        subprocess.run([sys.executable, "-m", "basketflow.cli", "down"], cwd=tmp_path, env=env,
                       capture_output=True, timeout=60)
