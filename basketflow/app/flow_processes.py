"""``basketflow run``: the live flow's two parts as two supervised processes.

The serve part (customer and basket features, live scores) and the store part (offline
events, dead letters, product features) each run as ``basketflow run --part PART`` in a
child process of their own (see :mod:`basketflow.flows.live`): each consumes the topic itself and
keeps its own recovery snapshots under ``<data>/recovery/<topic>/<part>``, so neither
waits for the other's work, its snapshots or its interpreter lock.

Supervision keeps the pair behaving like one command:

- a child dies with this process (``PR_SET_PDEATHSIG``), so a ``kill -9`` of ``basketflow
  run`` stops both, exactly like a crash of one process, and the next run resumes both;
- SIGINT and SIGTERM are passed on to both children;
- the children's standard error is relayed line by line; when a child fails, the other
  is stopped and the run exits with the failing child's status, its error shown as the
  one ``Error:`` line (a second part failing at the same moment, say on a full disk, is
  shown as a note after it);
- the children start at once and import the flow's libraries while this process checks
  the registry, the stores and the topics (``ensure_applied``, ``prepare_run``,
  ``check_topics``), then wait at a gate on their
  standard input: this process opens it once its checks pass (a child then checks
  nothing again), or kills them when a check fails, before they did anything, so a run
  shows that one error and its start-up is the longer of the two, not their sum;
- with ``--stop-at-end`` each child stops at the end of the topic and prints its figures
  as JSON on its standard output, which :func:`basketflow.app.run.combined_figures` adds up.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from basketflow.app.run_lock import covered_by_parent
from basketflow.config import (
    ENV_ALLOWED_LATENESS,
    ENV_DATA_DIR,
    ENV_DEAD_TOPIC,
    ENV_FEATURE_REPOSITORY,
    ENV_KAFKA,
    ENV_OFFLINE_STORE,
    ENV_PREFIX,
    ENV_REDIS,
    ENV_TOPIC,
    Settings,
)
from basketflow.errors import BasketflowError
from basketflow.flows import stopping

_PR_SET_PDEATHSIG = 1
#: Set for a child that waits at the gate (see :func:`start_child`, :func:`gated`).
ENV_GATE = "BASKETFLOW_RUN_GATE"
#: The line that opens the gate.
GO = b"go\n"
#: How often the parent looks at its children: a child's end is noticed this late.
POLL_SECONDS = 0.05
#: How long a cluster process's failure waits for a sibling's death by a signal: a killed
#: process's sockets close before its exit is seen, so the others may report losing it
#: first, and the killed one is the cause to name.
CAUSE_SECONDS = 2.0
#: How long a child stopped on a sibling's failure has to end before it is killed (a
#: stopped flow finishes its epoch: sinks flushed, offsets in the snapshot).
STOP_SECONDS = 30.0


class PartFailed(BasketflowError):
    """A part or process of the flow exited with an error (its message is on standard
    error)."""

    def __init__(self, part: str, status: int) -> None:
        super().__init__(f"{describe(part)} of the flow exited with status {status}")
        self.part = part
        self.status = status


def is_process(name: str) -> bool:
    """Whether a child's name is a cluster's process (``process <id>``, ``<part> process
    <id>``), not a part in a process of its own."""
    return "process " in name


def describe(name: str) -> str:
    """A child as a message names it.

    >>> describe("serve"), describe("process 1"), describe("store process 1")
    ('the serve part', 'process 1', 'process 1 of the store part')
    """
    part, _, process = name.rpartition("process ")
    if not _:
        return f"the {name} part"
    return f"process {process} of the {part.strip()} part" if part else name


def loopback_addresses(count: int) -> tuple[str, ...]:
    """``count`` addresses on free loopback ports, for a cluster's processes on this host
    (each port was free a moment ago: the processes bind them at once)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return tuple(f"127.0.0.1:{sock.getsockname()[1]}" for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()


def child_env(settings: Settings) -> dict[str, str]:
    """This process's environment with the resolved settings, so every child uses the
    same servers, topic, prefix and data directory."""
    assert settings.kafka_bootstrap and settings.redis_url, "resolve addresses first"
    return os.environ | {
        ENV_DATA_DIR: str(settings.data_dir), ENV_KAFKA: settings.kafka_bootstrap,
        ENV_REDIS: settings.redis_url, ENV_TOPIC: settings.topic,
        ENV_DEAD_TOPIC: settings.dead_topic, ENV_PREFIX: settings.prefix,
        ENV_OFFLINE_STORE: str(settings.offline_dir),
        ENV_ALLOWED_LATENESS: str(settings.allowed_lateness),
        **({ENV_FEATURE_REPOSITORY: str(settings.feature_repository)}
           if settings.feature_repository else {})}


def _die_with_parent(parent: int) -> None:
    """In the child, before it runs: be killed when the parent dies, even by SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


def start_child(run_args: list[str], env: Mapping[str, str],
                verbose: bool) -> subprocess.Popen[bytes]:
    """Start ``basketflow run --json RUN_ARGS`` (one part, or one process of a cluster) as
    a child process; it waits at the gate until :func:`gates_opened` opens it."""
    parent = os.getpid()
    command = [sys.executable, "-m", "basketflow.cli", *(["-v"] if verbose else []),
               "run", "--json", *run_args]
    return subprocess.Popen(command, env=dict(env) | {ENV_GATE: "1"},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=lambda: _die_with_parent(parent))


@contextmanager
def gates_opened(children: Mapping[str, subprocess.Popen[bytes]]) -> Iterator[None]:
    """Run the block (the checks the children skip, see :func:`gated`), then open every
    child's gate; when the block raises, or a stop was asked for meanwhile, kill the
    children instead: they have only imported their libraries, and their output is
    dropped. After a stop the caller ends the run (see
    :func:`basketflow.flows.stopping.requested`)."""
    try:
        yield
    except BaseException:
        _stop(children, kill=True)
        raise
    if stopping.requested():
        _stop(children, kill=True)
        return
    for proc in children.values():
        assert proc.stdin is not None
        try:
            proc.stdin.write(GO)
            proc.stdin.close()
        except BrokenPipeError:  # it died already: supervise reports it
            pass


def gated() -> bool:
    """In a child: whether the run that started it checks the registry, the stores and
    the topics for it and opens a gate when done (see :func:`wait_at_gate`); a process
    started otherwise makes its checks itself."""
    return os.environ.get(ENV_GATE) == "1" and covered_by_parent()


def wait_at_gate() -> None:
    """In a gated child: wait until the run that started it opens the gate. A gate closed
    without opening (that run died) ends this process, quietly."""
    if sys.stdin.buffer.readline() != GO:
        raise SystemExit(1)


def supervise(children: dict[str, subprocess.Popen[bytes]]) -> dict[str, dict[str, Any]]:
    """Wait for every child; return each one's figures. The first failure stops the
    others and raises :class:`PartFailed`. A stop requested of this process
    (:mod:`basketflow.flows.stopping`) is passed on to the children, once (they run in
    sessions of their own, so a terminal's Ctrl-C reaches them from here only): they
    stop cleanly and print their figures, which say so."""
    passed_on = False
    failing_since: float | None = None
    relays = _relay_errors(children)
    try:
        while any([proc.poll() is None for proc in children.values()]):  # poll each
            signum = stopping.requested_signal()
            if signum is not None and not passed_on:
                for proc in children.values():
                    if proc.poll() is None:
                        proc.send_signal(signum)
                passed_on = True
            failed = killed_first([(part, proc.returncode) for part, proc
                                   in children.items() if proc.returncode])
            if failed and not passed_on:
                failing_since = failing_since or time.monotonic()
                if not _may_be_consequence(failed[0], failing_since):
                    _stop(children)
                    raise PartFailed(*failed[0])
            time.sleep(POLL_SECONDS)
    finally:
        for relay in relays:
            relay.join()
    failed = killed_first([(part, proc.returncode) for part, proc in children.items()
                           if proc.returncode])
    if failed:
        raise PartFailed(*failed[0])
    return {part: _figures(proc) for part, proc in children.items()}


def killed_first(failed: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Failed children, those killed by a signal first: in a cluster the others then fail
    because they lost it, so the killed one is the cause to name.

    >>> killed_first([("process 0", 1), ("process 1", -9)])
    [('process 1', -9), ('process 0', 1)]
    """
    return sorted(failed, key=lambda item: item[1] > 0)


def _may_be_consequence(failed: tuple[str, int], since: float) -> bool:
    """Whether a cluster process that failed (not killed) may have failed because a
    sibling was killed whose death is not seen yet: wait :data:`CAUSE_SECONDS` for it."""
    part, status = failed
    return (is_process(part) and status > 0
            and time.monotonic() - since < CAUSE_SECONDS)


def _relay_errors(children: dict[str, subprocess.Popen[bytes]]) -> list[threading.Thread]:
    """Threads copying each child's standard error to ours, line by line; an ``Error:``
    line that follows another child's, or another child's death by a signal (which this
    run then reports), is shown as a note, so a run shows one error; a cluster process's
    ``Error:`` line waits :data:`CAUSE_SECONDS` for such a death first. Once a child was
    killed, the others' other lines are dropped: in a cluster they are Bytewax's panic
    of the workers that lost it."""
    lock = threading.Lock()
    failed: list[str] = []

    def killed() -> bool:
        return any(other.poll() is not None and other.returncode < 0
                   for other in children.values())

    def killed_soon(part: str) -> bool:
        deadline = time.monotonic() + (CAUSE_SECONDS if is_process(part) else 0)
        while not killed() and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        return killed()

    def relay(part: str, stream: Any) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace")
            if line.startswith("Error: "):
                killed_soon(part)  # outside the lock: the others go on meanwhile
            with lock:
                if line.startswith("Error: "):
                    if failed or killed():
                        line = f"({describe(part)} stopped too: {line[7:].rstrip()})\n"
                    failed.append(part)
                elif killed():
                    continue
                sys.stderr.write(line)
                sys.stderr.flush()

    threads = [threading.Thread(target=relay, args=(part, proc.stderr), daemon=True)
               for part, proc in children.items()]
    for thread in threads:
        thread.start()
    return threads


def _stop(children: Mapping[str, subprocess.Popen[bytes]], kill: bool = False) -> None:
    """Stop every child still running (SIGTERM; SIGKILL with ``kill``: children still at
    the gate, whose output is dropped), and wait for it; one that has not stopped
    :data:`STOP_SECONDS` after SIGTERM is killed. A cluster's process whose peer died
    before they connected waits in Timely's connection loop, where a stop is only
    noted."""
    for proc in children.values():
        if proc.poll() is None:
            (proc.kill if kill else proc.terminate)()
    deadline = time.monotonic() + STOP_SECONDS
    for proc in children.values():
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _figures(proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    """The JSON figures a child printed last on its standard output."""
    assert proc.stdout is not None
    text = proc.stdout.read().decode()
    return json.loads(text) if text.strip() else {}
