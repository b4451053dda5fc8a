"""One run per data directory, topic and part: a second run is refused with the pid of
the first; a lock left by a killed run is taken over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from basketflow.app.run_lock import ENV_HELD_BY, RunLocked, lock_path, run_lock


def test_a_second_holder_is_refused_with_the_first_ones_pid(tmp_path: Path) -> None:
    with run_lock(tmp_path, "t", ("serve", "store")):
        with pytest.raises(RunLocked, match=rf"pid {os.getpid()}\b.*topic 't' \(store part\)"):
            with run_lock(tmp_path, "t", ("store",)):
                pass
    with run_lock(tmp_path, "t", ("serve", "store")):  # released: free again
        pass


def test_parts_and_topics_lock_apart(tmp_path: Path) -> None:
    with run_lock(tmp_path, "t", ("serve",)), run_lock(tmp_path, "t", ("store",)), \
            run_lock(tmp_path, "other", ("serve",)):
        assert lock_path(tmp_path, "t", "serve").is_file()


def _holding_child(tmp_path: Path) -> subprocess.Popen[str]:
    """A process that takes the serve lock, says so, and waits."""
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from basketflow.app.run_lock import run_lock
        with run_lock(Path({str(tmp_path)!r}), "t", ("serve",)):
            print("held", flush=True)
            time.sleep(60)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


def test_a_killed_runs_lock_is_taken_over(tmp_path: Path) -> None:
    child = _holding_child(tmp_path)
    try:
        with pytest.raises(RunLocked, match=rf"pid {child.pid}\b"):
            with run_lock(tmp_path, "t", ("serve",)):
                pass
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    with run_lock(tmp_path, "t", ("serve",)):
        assert f'"pid": {os.getpid()}' in lock_path(tmp_path, "t", "serve").read_text()


def test_children_of_a_holding_run_take_no_lock(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with run_lock(tmp_path, "t", ("serve",)):
        monkeypatch.setenv(ENV_HELD_BY, str(os.getppid()))  # as if our parent held it
        with run_lock(tmp_path, "t", ("serve",)):
            pass
        monkeypatch.setenv(ENV_HELD_BY, "1")  # a stray value covers nothing
        with pytest.raises(RunLocked):
            with run_lock(tmp_path, "t", ("serve",)):
                pass
