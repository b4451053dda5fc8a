"""README's first command: `basketflow demo` runs end to end on its own embedded servers,
tells it in a few lines readable at 80 columns, ends on where to look next, writes the
busiest day's report, and tells the same story (the same figures) every run of a seed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from basketflow.config import ENV_DATA_DIR, ENV_KAFKA, ENV_REDIS

#: The figures that are timings, which differ from run to run.
TIMINGS = re.compile(r"\([\d,.]+ (lines|events)/s\)")


def _basketflow(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in (ENV_KAFKA, ENV_REDIS, ENV_DATA_DIR)}
    env["COLUMNS"] = "80"
    return subprocess.run([sys.executable, "-m", "basketflow.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _demo(cwd: Path, *args: str) -> str:
    done = _basketflow(cwd, "demo", "--rows", "8000", "--seed", "3", *args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "panicked" not in done.stderr
    return done.stderr + done.stdout


@pytest.mark.server  # the demo starts embedded servers of its own
@pytest.mark.slow
def test_the_demo_is_short_ends_on_next_steps_and_repeats_itself(tmp_path: Path) -> None:
    first = _demo(tmp_path)
    lines = first.splitlines()
    assert len(lines) <= 40, first
    assert max(len(line) for line in lines) <= 80, first
    assert "8,000 events sent" in first and "basket updates scored" in first
    assert re.search(r"score \d\.\d\d: ", first), first
    report = re.search(r"written to (data/demo/reports/(\d{4}-\d\d-\d\d)/report\.html)", first)
    assert report is not None, first
    html = (tmp_path / report.group(1)).read_text()
    assert "<html" in html and report.group(2) in html
    assert "Next steps" in first and f"report --date {report.group(2)}" in first
    assert "basketflow --data-dir data/demo status" in first
    assert not (tmp_path / "data" / "demo" / "services.json").exists()  # servers stopped

    second = _demo(tmp_path)
    assert TIMINGS.sub("(timing)", second) == TIMINGS.sub("(timing)", first)


@pytest.mark.server
@pytest.mark.slow
def test_keep_running_leaves_the_servers_up_for_the_next_steps(tmp_path: Path) -> None:
    told = _demo(tmp_path, "--keep-running")
    assert "left running" in told and "basketflow --data-dir data/demo down" in told
    customer = re.search(r"data/demo features (\S+)", told).group(1)  # type: ignore[union-attr]
    try:
        features = _basketflow(tmp_path, "--data-dir", "data/demo", "features", customer,
                               "--json")
        assert features.returncode == 0, features.stderr
        assert '"spend_30d"' in features.stdout
    finally:
        stopped = _basketflow(tmp_path, "--data-dir", "data/demo", "down")
    assert stopped.returncode == 0 and "broker" in stopped.stdout, stopped.stderr
