"""`basketflow status --watch`: the status refreshed until Ctrl-C, with the flow's
events/s since the refresh before; `--json` gives one document a line.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

from basketflow.config import Settings
from basketflow.producers.synthetic import write_csv
from tests.flows.test_recovery import cli_env
from tests.test_end_to_end import basketflow

ROWS = 3_000


def watch(settings: Settings, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "basketflow.cli", "status", "--watch", "--interval", "0.5",
         *args], env=cli_env(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


def test_watch_json_counts_the_flow_and_its_rate(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    write_csv(path, rows=ROWS, seed=3, start=date(2011, 1, 1), end=date(2011, 2, 28))
    basketflow(settings, "replay", str(path))
    proc = watch(settings, "--json")
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first["rates"] == {"flow": None, "serve": None}
        assert first["flow"]["events"] is None  # no flow has run yet
        basketflow(settings, "run", "--stop-at-end")
        deadline, reports = time.monotonic() + 60, []
        while time.monotonic() < deadline:
            reports.append(json.loads(proc.stdout.readline()))
            flow = reports[-2]["flow"] if len(reports) >= 2 else {}
            if flow and flow["events"] == flow["serve"]["events"] == ROWS:
                break  # both parts done in the report before the last one
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err, err
    last = reports[-1]
    assert last["flow"]["events"] == last["flow"]["serve"]["events"] == ROWS
    assert last["rates"] == {"flow": 0.0, "serve": 0.0}  # nothing new since the one before
    assert last["at"] - reports[-2]["at"] >= 0.5


def refreshes(proc: subprocess.Popen[str], count: int, timeout: float = 60.0) -> str:
    """Read the watch's output until it has refreshed ``count`` times (however slow the
    machine is at starting it), then press Ctrl-C; everything it printed."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while sum("(Ctrl-C stops)" in line for line in list(lines)) < count \
            and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    reader.join(timeout=30)
    return "".join(lines)


def test_watch_text_refreshes_until_ctrl_c(settings: Settings) -> None:
    proc = watch(settings)
    out = refreshes(proc, 2)
    err = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 0 and "Traceback" not in err, err
    heads = [line for line in out.splitlines() if "(Ctrl-C stops)" in line]
    assert len(heads) >= 2, out
    assert heads[0].endswith("flow - events/s, serve part - events/s")
    assert out.count("services") == len(heads)


def test_ctrl_c_stops_it_even_when_started_with_sigint_ignored(settings: Settings) -> None:
    """A shell's background job, or a parent that ignores SIGINT, starts it with SIGINT
    ignored: Python then leaves it so, and Ctrl-C would never stop the watch."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "basketflow.cli", "status", "--watch", "--interval", "0.5"],
        env=cli_env(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    out = refreshes(proc, 1)  # Ctrl-C once it watches (before, Python's default stops it)
    err = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert "(Ctrl-C stops)" in out, out
