"""`basketflow run` as two processes: the serve and store parts of the flow.

Split or in one process, a run ends with the same stores; each part writes only its own
share; and the pair behaves as one command: a SIGKILL or SIGTERM of `basketflow run`
ends both parts, SIGINT (Ctrl-C) or SIGTERM stops them quietly, a second run on the same
data is refused, and the options are checked before anything starts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from basketflow.app.status import consumed as flow_consumed
from basketflow.config import Settings
from basketflow.sinks.online_store import connect
from tests.flows.test_recovery import (
    ROWS,
    cli_env,
    consumed,
    contents,
    finish,
    isolated,
    replayed,  # noqa: F401  (the fixture these tests start from)
    start_run,
)
from tests.store_contents import differences


def children(pid: int) -> list[int]:
    """The child processes of a process (Linux ``/proc``)."""
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def gone(pids: list[int], timeout: float = 20.0) -> bool:
    """Whether every process has ended (or become a zombie) within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if Path(f"/proc/{p}").exists()
                 and Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
        if not alive:
            return True
        time.sleep(0.05)
    return False


def running_parts(proc: subprocess.Popen[bytes], settings: Settings) -> list[int]:
    """Wait until both parts of a tailing run have consumed something; their pids."""
    deadline = time.monotonic() + 120
    while consumed(settings) == 0:
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the flow made no progress within 120 s"
        time.sleep(0.05)
    pids = children(proc.pid)
    assert len(pids) == 2, pids
    return pids


def tailing_run(settings: Settings) -> subprocess.Popen[bytes]:
    """`basketflow run` without --stop-at-end, in the background."""
    return subprocess.Popen([sys.executable, "-m", "basketflow.cli", "run"],
                            env=cli_env(settings), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def parts_contents(settings: Settings, apart: bool = True) -> dict[str, Any]:
    """The stores of a run, as one process would leave them: when its parts ran apart
    (``apart``), the serve part's own progress hash is there (checked: it read every
    message the whole flow read) and left out."""
    got = contents(settings)
    if apart:
        assert ":flow:progress:serve" in got["redis"], sorted(got["redis"])[:20]
        serve = got["redis"].pop(":flow:progress:serve")
        assert {k: v for k, v in serve.items() if k.startswith("offset:")} == {
            k: v for k, v in got["redis"][":flow:progress"].items() if k.startswith("offset:")}
    return got


@pytest.mark.slow
def test_two_processes_and_one_process_end_identical(replayed: Settings) -> None:
    split, single = isolated(replayed, "split"), isolated(replayed, "single")
    figures = finish(start_run(split))
    assert figures["events"] == ROWS and set(figures["parts"]) == {"serve", "store"}
    finish(start_run(single, "--one-process"))
    got, want = parts_contents(split), contents(single)
    diffs = differences(got, want)
    assert not diffs, "\n".join(diffs)


@pytest.mark.slow
def test_each_part_writes_its_own_share(replayed: Settings) -> None:
    serve = isolated(replayed, "serve")
    finish(start_run(serve, "--part", "serve"))
    views = {key.decode().split(":")[1] for key in connect(serve.redis_url or "").scan_iter(
        match=f"{serve.prefix}:*")}
    assert {"customer", "basket", "flow"} <= views and "product" not in views, views
    assert (serve.offline_dir / "features" / "customer").is_dir()
    assert not (serve.offline_dir / "events").exists()
    assert not (serve.offline_dir / "features" / "product").exists()
    assert (serve.recovery_dir / serve.topic / "serve").is_dir()

    store = isolated(replayed, "store")
    figures = finish(start_run(store, "--part", "store"))
    assert figures["events"] == ROWS and figures["dead_letters"] > 0
    views = {key.decode().split(":")[1] for key in connect(store.redis_url or "").scan_iter(
        match=f"{store.prefix}:*")}
    assert {"product", "flow"} <= views and not {"customer", "basket"} & views, views
    assert (store.offline_dir / "events").is_dir()
    assert not (store.offline_dir / "features" / "customer").exists()


def test_sigkill_of_the_command_ends_both_parts(replayed: Settings) -> None:
    settings = isolated(replayed, "killed")
    proc = tailing_run(settings)
    parts = running_parts(proc, settings)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert gone(parts), "a part outlived `basketflow run`"


def quiet_stop(proc: subprocess.Popen[bytes], signum: int) -> str:
    """Send ``signum`` to a run (a terminal's Ctrl-C reaches only `basketflow run`: its
    parts run in sessions of their own); check it stops as one clean command: exit 0, at
    most 3 lines on standard error, no panic or traceback; its standard output."""
    os.kill(proc.pid, signum)
    out, err = proc.communicate(timeout=60)
    text = err.decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    assert len(text.splitlines()) <= 3 and "panicked" not in text and "Traceback" not in text, \
        text[-3000:]
    return out.decode()


@pytest.mark.slow
def test_sigterm_of_the_command_stops_both_parts(replayed: Settings) -> None:
    settings = isolated(replayed, "stopped")
    proc = tailing_run(settings)
    parts = running_parts(proc, settings)
    out = quiet_stop(proc, signal.SIGTERM)
    assert out.startswith("stopped: processed") and gone(parts), out


@pytest.mark.slow
def test_ctrl_c_stops_a_busy_run_quietly_and_the_next_run_ends_identical(
        replayed: Settings) -> None:
    reference = isolated(replayed, "reference")
    finish(start_run(reference))
    settings = isolated(replayed, "interrupted")
    proc = start_run(settings)  # --stop-at-end with small batches: busy for a while
    running_parts(proc, settings)
    figures = json.loads(quiet_stop(proc, signal.SIGINT))  # start_run asks for --json
    assert figures["stopped"] and figures["events"] < ROWS, figures
    finish(start_run(settings))
    assert not differences(contents(settings), contents(reference))


@pytest.mark.slow
def test_ctrl_c_stops_an_idle_run_in_one_process_quietly(replayed: Settings) -> None:
    settings = isolated(replayed, "idle")
    proc = subprocess.Popen([sys.executable, "-m", "basketflow.cli", "run", "--one-process"],
                            env=cli_env(settings), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    seen, quiet_since, deadline = -1, time.monotonic(), time.monotonic() + 120
    while time.monotonic() - quiet_since < 2:  # idle: nothing new consumed for 2 s
        now = flow_consumed(settings.redis_url or "", settings.prefix, settings.topic,
                            parts=("",))  # one process: the whole flow's progress only
        if now != seen or now == 0:
            seen, quiet_since = now, time.monotonic()
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
        assert time.monotonic() < deadline, f"the flow did not go idle within 120 s ({now})"
        time.sleep(0.1)
    out = quiet_stop(proc, signal.SIGINT)
    assert out.startswith("stopped: processed") and seen > 0, out


def test_a_second_run_is_refused_with_the_pid_of_the_first(replayed: Settings) -> None:
    settings = isolated(replayed, "locked")
    first = tailing_run(settings)
    running_parts(first, settings)
    second = subprocess.run([sys.executable, "-m", "basketflow.cli", "run", "--stop-at-end"],
                            env=cli_env(settings), capture_output=True, text=True, timeout=60)
    assert second.returncode == 1, second.stderr
    assert second.stderr.startswith("Error: another `basketflow run` (pid "
                                    f"{first.pid},"), second.stderr
    assert len(second.stderr.strip().splitlines()) == 1, second.stderr
    quiet_stop(first, signal.SIGINT)


def test_part_and_one_process_together_is_a_usage_error(settings: Settings) -> None:
    done = subprocess.run([sys.executable, "-m", "basketflow.cli", "run", "--part", "serve",
                           "--one-process"], env=cli_env(settings), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "give one of them" in done.stderr, done.stderr


def test_a_part_killed_by_a_signal_stops_the_run_with_one_error(replayed: Settings) -> None:
    settings = isolated(replayed, "part-killed")
    proc = tailing_run(settings)
    killed, other = running_parts(proc, settings)
    os.kill(killed, signal.SIGKILL)
    _out, err = proc.communicate(timeout=60)
    lines = [line for line in err.decode().splitlines() if line.startswith("Error: ")]
    assert proc.returncode == 1 and len(lines) == 1, err.decode()[-3000:]
    assert "killed by SIGKILL" in lines[0] and "run the same command again" in lines[0]
    assert gone([other])


def test_a_cluster_names_the_killed_process_when_another_reports_losing_it_first(
        capfd: pytest.CaptureFixture[str]) -> None:
    """A killed process's sockets close before its death is seen, so a sibling may print
    that it lost the cluster first (seen in CI): the run still names the killed one, and
    the sibling's line becomes a note."""
    from basketflow.app.run import PartKilled, supervised
    lost = ("import sys; sys.stderr.write('Error: process 0 of the flow lost the rest of "
            "its Bytewax cluster\\n'); sys.stderr.flush(); sys.exit(1)")
    child = {"process 0": subprocess.Popen([sys.executable, "-c", lost],
                                           stderr=subprocess.PIPE, stdout=subprocess.PIPE),
             "process 1": subprocess.Popen([sys.executable, "-c", "import time; "
                                            "time.sleep(60)"],
                                           stderr=subprocess.PIPE, stdout=subprocess.PIPE)}
    child["process 0"].wait()  # its line is written before the other's death is seen
    timer = threading.Timer(0.5, child["process 1"].kill)
    timer.start()
    with pytest.raises(PartKilled) as raised:
        supervised(child)
    timer.join()
    assert raised.value.part == "process 1"
    assert capfd.readouterr().err.splitlines() == [
        "(process 0 stopped too: process 0 of the flow lost the rest of its Bytewax "
        "cluster)"]


def test_a_process_deaf_to_sigterm_is_killed_once_a_sibling_died(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A cluster's process whose peer died before they connected waits in Timely's
    connection loop, where SIGTERM is only noted: the run kills it after STOP_SECONDS
    instead of waiting for it forever. The dead one comes second: the watch looked at
    the children only up to the first that still ran, so it never saw it die."""
    from basketflow.app import flow_processes
    from basketflow.app.run import PartKilled, supervised
    monkeypatch.setattr(flow_processes, "STOP_SECONDS", 0.5)
    deaf = ("import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('deaf', flush=True); time.sleep(120)")
    children = {"serve process 0": subprocess.Popen([sys.executable, "-c", deaf],
                                                    stderr=subprocess.PIPE,
                                                    stdout=subprocess.PIPE),
                "serve process 1": subprocess.Popen([sys.executable, "-c",
                                                     "import time; time.sleep(120)"],
                                                    stderr=subprocess.PIPE,
                                                    stdout=subprocess.PIPE)}
    assert children["serve process 0"].stdout is not None
    assert children["serve process 0"].stdout.readline() == b"deaf\n"  # SIGTERM ignored
    children["serve process 1"].kill()
    started = time.monotonic()
    with pytest.raises(PartKilled) as raised:
        supervised(children)
    assert raised.value.part == "serve process 1"
    assert children["serve process 0"].returncode == -signal.SIGKILL
    assert time.monotonic() - started < 60
    assert str(raised.value).startswith("process 1 of the serve part of the flow was killed")


#: A child that waits at the gate as a part does, then says it ran.
GATED_CHILD = ("from basketflow.app.flow_processes import wait_at_gate; wait_at_gate(); "
               "print('ran')")


def gated_children() -> dict[str, subprocess.Popen[bytes]]:
    """Two children waiting at the gate, as ``start_child`` starts the parts."""
    return {name: subprocess.Popen([sys.executable, "-c", GATED_CHILD],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            for name in ("serve", "store")}


def output(proc: subprocess.Popen[bytes]) -> bytes:
    """All a child printed (its standard input is the gate's, closed by then)."""
    assert proc.stdout is not None
    return proc.stdout.read()


def test_gated_children_run_once_the_checks_pass() -> None:
    from basketflow.app.flow_processes import gates_opened
    children = gated_children()
    with gates_opened(children):
        time.sleep(0.2)  # the checks: the children wait meanwhile
        assert all(proc.poll() is None for proc in children.values())
    assert [output(proc) for proc in children.values()] == [b"ran\n", b"ran\n"]
    assert [proc.wait() for proc in children.values()] == [0, 0]


def test_a_failed_check_kills_the_gated_children_before_they_run() -> None:
    from basketflow.app.flow_processes import gates_opened
    children = gated_children()
    with pytest.raises(RuntimeError, match="a check failed"), gates_opened(children):
        raise RuntimeError("a check failed")
    assert [proc.returncode for proc in children.values()] == [-signal.SIGKILL] * 2
    assert [output(proc) for proc in children.values()] == [b"", b""]


def test_a_gate_closed_without_opening_ends_the_child_quietly() -> None:
    done = subprocess.run([sys.executable, "-c", GATED_CHILD], input=b"",
                          capture_output=True, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (1, b"", b"")


def test_the_parent_starts_the_parts_before_importing_the_flows_libraries() -> None:
    modules = ("pyarrow", "bytewax", "redis", "confluent_kafka", "pandas", "duckdb")
    code = ("import sys, basketflow.cli, basketflow.app.run, basketflow.app.flow_processes, "
            "basketflow.app.services, basketflow.flows.parts, basketflow.reports.segment_files; "
            f"print(sorted(m for m in {modules!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    # segment_files (the serve part's scoring set-up) may read Parquet, never pandas
    assert done.stdout.decode().strip() == "['pyarrow']"
