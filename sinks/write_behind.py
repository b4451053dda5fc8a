"""Write-behind for the flow's sinks: writes run in order on a thread of their own, so the
flow's thread does not wait on them, and rows are buffered over an epoch so they are
written in few, large writes.

A Bytewax worker runs every step of the flow on one thread. When a sink waited there for
Redis to answer, or encoded a second's feature rows into Parquet, every line consumed
meanwhile waited too (``benchmarks/freshness.py`` measures how much). A
:class:`BackgroundWriter` takes each write as a function and runs it on its thread, in
the order given; the I/O there releases the GIL, and its Python work is interleaved with
the flow's. :class:`BackgroundWrites` hands each batch to one; :class:`EpochBuffer`
gathers batches first and hands them on as one.

Nothing is lost: a sink drains its writer when Bytewax snapshots it at the end of an
epoch, before the epoch's input offsets are committed, and when it closes. When a write
raises, the writes queued after it are skipped and the error is raised once on the
flow's thread, at the next ``submit`` or ``drain``, so the flow stops before it commits
past the failed write (a resume writes them all again: every sink is idempotent). The
queue is bounded: while a write waits out a Redis outage, the flow blocks on ``submit``
once the queue is full, as it blocked on the write itself before.

Nothing here knows Bytewax: :mod:`basketflow.sinks.flow_sinks` adapts these to its sink
partitions.

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
import time
from collections.abc import Callable
from typing import Any

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


class BackgroundWrites:
    """Hands each batch to ``write`` on a :class:`BackgroundWriter` of its own; waits for
    the writes at :meth:`drain` (when the epoch is snapshotted) and at :meth:`close`, so
    that none is pending when the epoch's input offsets are committed."""

    def __init__(self, name: str, write: Callable[[list[Any]], None]) -> None:
        self._write = write
        self._writer = BackgroundWriter(name)

    def write_batch(self, items: list[Any]) -> None:
        """Queue the write of ``items``."""
        self._writer.submit(lambda: self._write(items))

    def drain(self) -> None:
        """Wait for every write queued so far."""
        self._writer.drain()

    def close(self) -> None:
        """Wait for the writes, then stop the writer's thread."""
        self._writer.close()


class EpochBuffer(BackgroundWrites):
    """Buffers items and hands them to ``flush`` on its own writer thread once
    ``max_items`` wait (counted by ``size``) or the oldest has waited ``max_age`` seconds,
    and at :meth:`drain`, then waiting for the writes to finish; nothing once ``stopped()``
    (the flow found the store unwritable and is stopping).

    Bytewax snapshots a sink partition when an epoch closes, before the input offsets of
    that epoch are committed to recovery, so everything is written before the offset past
    it is saved: nothing is lost after a crash. Flushing every ``max_age`` as well spreads
    the writes over the epoch, where one flush of a whole epoch held the worker for long
    and every line consumed meanwhile waited (``benchmarks/freshness.py``); on the
    writer's thread a flush no longer holds the worker at all, except at the epoch's end.

    >>> flushed = []
    >>> buffer = EpochBuffer("example", flushed.append, len, lambda: False, max_items=3)
    >>> buffer.write_batch([[1, 2]])
    >>> buffer.drain(); flushed
    [[[1, 2]]]
    >>> buffer.write_batch([[3], [4, 5]])  # 3 items wait: flushed at once
    >>> buffer.close(); flushed
    [[[1, 2]], [[3], [4, 5]]]
    """

    def __init__(self, name: str, flush: Callable[[list[Any]], None],
                 size: Callable[[Any], int], stopped: Callable[[], bool],
                 max_items: int = 500_000, max_age: float = 1.0) -> None:
        super().__init__(name, flush)
        self.size = size
        self.stopped = stopped
        self.max_items = max_items
        self.max_age = max_age
        self.buffer: list[Any] = []
        self.items = 0
        self.since = 0.0

    def write_batch(self, items: list[Any]) -> None:
        """Buffer ``items``; hand the buffer on when it is full or old enough."""
        if not self.buffer:
            self.since = time.monotonic()
        self.buffer.extend(items)
        self.items += sum(map(self.size, items))
        if self.items >= self.max_items or time.monotonic() - self.since >= self.max_age:
            self._submit()

    def _submit(self) -> None:
        """Hand the buffer to the writer."""
        if self.buffer and not self.stopped():
            items, self.buffer, self.items = self.buffer, [], 0
            super().write_batch(items)

    def drain(self) -> None:
        """Hand the buffer on, and wait for every write."""
        self._submit()
        super().drain()

    def close(self) -> None:
        """Hand the buffer on, wait for the writes, stop the writer's thread."""
        try:
            self._submit()
        finally:
            super().close()
