"""README's first command: `basketflow demo` runs end to end on its own embedded servers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.server  # the demo starts embedded servers of its own
def test_the_demo_runs_end_to_end_and_shows_live_scores(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "basketflow.cli", "--data-dir", str(tmp_path),
                           "demo", "--rows", "8000"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "customer categories" in done.stdout
    assert "basketflow score" in done.stdout and "basket updates scored" in done.stdout
    assert "8,000 events" in done.stdout
