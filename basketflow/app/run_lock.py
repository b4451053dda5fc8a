"""One run at a time per data directory, topic and part of the flow.

Two ``basketflow run`` on the same data directory and topic would both consume the
topic into the same stores, and write every row twice. A run therefore holds an
exclusive lock per part it runs (``serve``, ``store``), in
``<data>/locks/<topic>.<part>.lock``, for as long as it runs: ``--part serve`` in one
container and ``--part store`` in another share a data directory legitimately, but two
runs of one part, or a whole run beside either, do not.

The lock is the operating system's (``flock``): it is released when its process ends, in
whatever way, so a lock left by a killed run is no lock at all, and the next run takes it
over (saying so: a run that ends normally empties the file first). The file holds the holder's pid and start time, for the message a
second run gets. The two processes of a default run are covered by their parent's
locks: it passes its pid in :data:`ENV_HELD_BY`, and a child of that parent takes none.
A process of a Bytewax cluster (``run --process-id I``) holds the part locks shared with
the cluster's other processes on the same data directory, and ``process-<I>`` alone
(``<part>.process-<I>`` in a cluster of one part).

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> with run_lock(root, "transactions", ("serve",)):
...     with run_lock(root, "transactions", ("serve",)):
...         pass
Traceback (most recent call last):
...
basketflow.app.run_lock.RunLocked: another `basketflow run` (pid ...) is consuming topic 'transactions' (serve part) into ...
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO

from basketflow.errors import BasketflowError

log = logging.getLogger("basketflow.run")

#: Set by a run for the processes it starts: its pid, whose locks cover them.
ENV_HELD_BY = "BASKETFLOW_RUN_LOCK_HELD_BY"
LOCKS_DIR = "locks"


class RunLocked(BasketflowError):
    """Another run holds the lock of a part this run would run."""


def lock_path(data_dir: Path, topic: str, part: str) -> Path:
    """``<data>/locks/<topic>.<part>.lock``."""
    return data_dir / LOCKS_DIR / f"{topic}.{part}.lock"


def _holder(handle: IO[str]) -> dict[str, object]:
    """What the lock file says of its holder ({} when it says nothing readable)."""
    handle.seek(0)
    try:
        holder = json.loads(handle.read() or "{}")
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def pid_alive(pid: object) -> bool:
    """Whether a process with this pid exists."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _acquire(path: Path, topic: str, part: str, shared: bool = False) -> IO[str]:
    """The open, locked file of one part's lock (``shared``: a lock other processes of one
    cluster hold too); :class:`RunLocked` when another run holds it, ``StoreUnwritable``
    when the data directory cannot hold it."""
    from basketflow.sinks.store_writes import writing
    with writing(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+", encoding="utf-8")
    try:
        fcntl.flock(handle, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(handle)
        handle.close()
        since = holder.get("started", "?")
        raise RunLocked(
            f"another `basketflow run` (pid {holder.get('pid', '?')}, since {since}) is "
            f"consuming topic {topic!r} ({part} part) into {path.parent.parent}: stop it "
            "first, or give this run another --data-dir") from None
    previous = _holder(handle)
    if previous.get("pid") not in (None, os.getpid()) and not pid_alive(previous.get("pid")):
        log.info("taking over the %s lock of run pid %s, which ended without releasing it",
                 part, previous.get("pid"))
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({"pid": os.getpid(),
                             "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}))
    handle.flush()
    return handle


def covered_by_parent() -> bool:
    """Whether this process was started by a run that holds the locks for it."""
    return os.environ.get(ENV_HELD_BY) == str(os.getppid())


@contextmanager
def run_lock(data_dir: Path, topic: str, parts: Sequence[str],
             process_id: int | None = None) -> Iterator[None]:
    """Hold the lock of every part in ``parts`` while the block runs (none when the
    parent run holds them, see :func:`covered_by_parent`). A process of a Bytewax
    cluster (``process_id``) holds them shared with the cluster's other processes on
    this data directory, and its own ``[<part>.]process-<id>`` lock alone: two processes
    of one id of one cluster are refused, and so is any other run beside the cluster."""
    if covered_by_parent():
        yield
        return
    with ExitStack() as held:
        if process_id is not None:  # a process of a cluster of one part, or of the flow
            own = (f"{parts[0]}." if len(parts) == 1 else "") + f"process-{process_id}"
            held.callback(_release, _acquire(lock_path(data_dir, topic, own), topic, own))
        for part in parts:
            held.callback(_release, _acquire(lock_path(data_dir, topic, part), topic, part,
                                             shared=process_id is not None))
        yield


def _release(handle: IO[str]) -> None:
    """Say the lock is free (a run that dies cannot: the next one then takes it over) and
    let it go."""
    handle.truncate(0)
    handle.close()
