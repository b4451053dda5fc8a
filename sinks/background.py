"""Writes run in order on a thread of their own, so the flow's thread does not wait on them.

A Bytewax worker runs every step of the flow on one thread. When a sink waited there for
Redis to answer, or encoded a second's feature rows into Parquet, every line consumed
meanwhile waited too: at 5,000 events/s those waits were a fifth of the worker's time and
most of the slowest scores (``benchmarks/freshness.py``). A :class:`BackgroundWriter`
takes each write as a function and runs it on its thread, in the order given; the I/O
there releases the GIL, and its Python work is interleaved with the flow's.

Nothing is lost: a sink drains its writer when Bytewax snapshots it at the end of an
epoch, before the epoch's input offsets are committed, and when it closes. When a write
raises, the writes queued after it are skipped and the error is raised once on the
flow's thread, at the next ``submit`` or ``drain``, so the flow stops before it commits
past the failed write (a resume writes them all again: every sink is idempotent). The
queue is bounded: while a write waits out a Redis outage, the flow blocks on ``submit``
once the queue is full, as it blocked on the write itself before.

>>> writer = BackgroundWriter("example")
>>> done = []
>>> for i in range(3):
...     writer.submit(lambda i=i: done.append(i))
>>> writer.drain()
>>> done
[0, 1, 2]
>>> writer.submit(lambda: 1 / 0)
>>> writer.drain()
Traceback (most recent call last):
ZeroDivisionError: division by zero
>>> writer.close()
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

Write = Callable[[], object]


class BackgroundWriter:
    """One thread that runs the writes it is given, in order (see the module docstring)."""

    def __init__(self, name: str, max_pending: int = 256) -> None:
        self._queue: queue.Queue[Write | None] = queue.Queue(max_pending)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"writer-{name}", daemon=True)
        self._thread.start()

    def submit(self, write: Write) -> None:
        """Queue a write (blocks while ``max_pending`` wait); raises an earlier write's
        error instead if one failed."""
        self._raise_error()
        self._queue.put(write)

    def drain(self) -> None:
        """Wait until every write given so far has run; raise the error of one that
        failed."""
        self._queue.join()
        self._raise_error()

    def close(self) -> None:
        """Drain, then stop the thread."""
        try:
            self.drain()
        finally:
            self._queue.put(None)
            self._thread.join()

    def _raise_error(self) -> None:
        """Raise the failed write's error once (the writes after it were skipped)."""
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _run(self) -> None:
        while True:
            write = self._queue.get()
            try:
                if write is None:
                    return
                if self._error is None:
                    write()
            except BaseException as exc:  # handed to the flow's thread
                self._error = exc
            finally:
                self._queue.task_done()
