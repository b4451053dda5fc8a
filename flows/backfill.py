"""Backfill: the live flow's feature steps over historical events, without Kafka.

The events come from a Kaggle file (``.csv``/``.csv.gz``, read by the same reader as the
replay, so every transaction gets the same ``event_id``) or from the offline event store
(in event time, then invoice, order). They pass through :func:`basketflow.flows.live.add_feature_steps`, the very
steps of the live flow, so the feature log a backfill writes is the one the live flow
writes for the same events. ``materialize`` also writes the latest values to Redis.

A backfill may be split over several processes (``processes``): each reads all the
events and keeps one shard of the work (:mod:`basketflow.flows.shards`): some of the customers, or
some of the products with the events of some days. Each folds, logs and stores only
its shard, so they write disjoint rows to files of their own (unique names, written
atomically) and share nothing while they run. The rows in effect are those of one
process: each reads the events in the same batches, so every customer sees the same
batch boundaries and gets the same rows; products, whose rows are written per joined
batch of lines (:func:`basketflow.flows.coalesce.coalesce`), end with the same final values, as
with one process. The other processes are forked, so they start at once with what this
one has imported (importing again takes over a second).

Why: the feature steps are Python, run on one core per process. Each process reads and
parses the whole file, so several use more CPU in all than one; on a machine whose cores
are busy with other work they get little more CPU than one (Linux shares the CPU between
sessions, and forked processes share their parent's), so the gain shrinks there
(``benchmarks/backfill.py`` measures it; docs/PERFORMANCE.md keeps the figures).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import traceback
from collections.abc import Callable, Iterator
from dataclasses import replace
from itertools import islice
from multiprocessing.connection import Connection
from pathlib import Path

import bytewax.operators as op
import duckdb
from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from basketflow.flows.event_clock import DELIVERING, ClockedBatch, event_clock
from basketflow.flows.live import FeatureOutputs, RunOptions, add_feature_steps, newest, run_flow
from basketflow.flows.shards import PRODUCT, EntityShard, plan
from basketflow.producers.csv_source import read_events
from basketflow.schemas.events import FIELD_NAMES, Transaction
from basketflow.sinks.flow_sinks import FlowStats
from basketflow.sinks.offline_layout import event_files
from basketflow.sinks.offline_scan import parquet_source
from basketflow.sinks.offline_store import ensure_readable, ensure_writable
from basketflow.sinks.store_writes import StoreUnwritable

#: Events per batch. Larger batches cost less CPU per event (each product's values are
#: computed once per batch): 4.9 s of CPU for 200k real events at 50,000 against 7.0 s at
#: 5,000; a backfill has no latency to keep low.
BATCH = 50_000
#: The one partition of a backfill's input (its events are in one ordered stream), for
#: the flow's clock.
HISTORY = "history"
#: ``on_progress(events_read, raw_bytes_read)``.
Progress = Callable[[int, int], None]


class _Reader(StatefulSourcePartition[list[Transaction], int]):
    """Batches of events from an iterator; the snapshot is how many were emitted."""

    def __init__(self, events: Iterator[Transaction], skip: int,
                 on_batch: Callable[[int], None], batch: int) -> None:
        self._events = events
        self._done = skip
        self._on_batch = on_batch
        self._batch = batch
        for _ in islice(self._events, skip):
            pass

    def next_batch(self) -> list[list[Transaction]]:
        batch = list(islice(self._events, self._batch))
        if not batch:
            raise StopIteration()
        self._done += len(batch)
        self._on_batch(self._done)
        return [batch]

    def snapshot(self) -> int:
        return self._done


class EventSource(FixedPartitionedSource[list[Transaction], int]):
    """Historical events, in batches, from a function that yields them in order."""

    def __init__(self, events: Callable[[], Iterator[Transaction]],
                 on_batch: Callable[[int], None] = lambda n: None, batch: int = BATCH) -> None:
        self.events = events
        self.on_batch = on_batch
        self.batch = batch

    def list_parts(self) -> list[str]:
        return ["history"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _Reader:
        return _Reader(self.events(), resume_state or 0, self.on_batch, self.batch)


def file_events(path: Path, raw_progress: list[int]) -> Callable[[], Iterator[Transaction]]:
    """The valid events of a Kaggle file (rejected lines are the replay's to report)."""
    def events() -> Iterator[Transaction]:
        return (e for e in read_events(path, raw_progress) if isinstance(e, Transaction))
    return events


def offline_events(offline_dir: Path) -> Callable[[], Iterator[Transaction]]:
    """The offline store's events (the files :func:`~basketflow.sinks.offline_layout.event_files`
    lists) in event time, then invoice order, an invoice's lines in the order they were
    stored (ids say nothing of a line's place in its file). Every file is checked here,
    before a dataflow reads them: one that cannot be opened as Parquet raises
    :class:`~basketflow.sinks.offline_layout.CorruptFile` naming it."""
    ensure_readable(event_files(offline_dir))

    def events() -> Iterator[Transaction]:
        files = event_files(offline_dir)
        if not files:
            return iter(())
        columns = ", ".join(("epoch(ts)::BIGINT AS ts" if n == "ts" else n) for n in FIELD_NAMES)
        con = duckdb.connect()
        source = parquet_source(con, files, filename=True, file_row_number=True)
        cursor = con.execute(
            f"SELECT {columns} FROM {source.sql} "
            "ORDER BY ts, invoice, filename, file_row_number", source.params)
        return _rows_to_events(cursor)
    return events


def _rows_to_events(cursor: duckdb.DuckDBPyConnection) -> Iterator[Transaction]:
    """Query rows (in FIELD_NAMES order) -> Transactions, fetched in chunks."""
    while rows := cursor.fetchmany(50_000):
        for row in rows:
            yield Transaction(*row)


def default_processes() -> int:
    """Processes a backfill uses unless told: one per CPU this process may run on, at
    most :data:`MAX_DEFAULT_PROCESSES`."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_DEFAULT_PROCESSES))


#: Each process reads the whole input (0.9 s of CPU for the real file), so more
#: processes gain less each; measured with 2 only (the cores of the machine at hand).
MAX_DEFAULT_PROCESSES = 4


def run_backfill(events: Callable[[], Iterator[Transaction]], outputs: FeatureOutputs,
                 options: RunOptions, on_batch: Callable[[int], None] = lambda n: None,
                 batch: int = BATCH, processes: int = 1) -> FlowStats:
    """Run the feature steps over the events, ``batch`` at a time; return the run's
    counters. With scoring, the scoring steps run as a replay (one step folds, learns
    and predicts in event order: :attr:`~basketflow.flows.scoring.ScoringConfig.replay`),
    and small batches replay the order a tailing flow sees (the one step takes each batch
    customer by customer). The offline store must be writable
    (:class:`~basketflow.sinks.store_writes.StoreUnwritable` at once if not).

    ``processes`` above 1 splits the entities over that many processes (see the module
    docstring): this one and ``processes - 1`` forked ones, each with its own events
    function call. ``on_batch`` then gets the events read by the slowest process. Not
    with scoring (one model sees every customer) nor with recovery snapshots (one
    directory per flow); an error in any process stops them all and is raised here.
    """
    if outputs.offline_root is not None:
        ensure_writable(outputs.offline_root)
    if outputs.scoring is not None:
        outputs = replace(outputs, scoring=replace(outputs.scoring, replay=True))
    if processes == 1:
        return _run_shard(events, outputs, options, on_batch, batch, None)
    if processes < 1:
        raise ValueError(f"processes must be at least 1, not {processes}")
    if outputs.scoring is not None or options.recovery_dir is not None:
        raise ValueError("a backfill over several processes cannot score or keep recovery "
                         "snapshots: run it with one process")
    if "fork" not in multiprocessing.get_all_start_methods():
        raise ValueError("a backfill over several processes needs fork() (Linux, macOS): "
                         "run it with one process")
    return _run_sharded(events, outputs, options, on_batch, batch, processes)


def _run_shard(events: Callable[[], Iterator[Transaction]], outputs: FeatureOutputs,
               options: RunOptions, on_batch: Callable[[int], None], batch: int,
               shard: EntityShard | None) -> FlowStats:
    """The backfill flow of one process over every entity (``shard`` None) or one shard:
    the steps of its entity kind alone, and the event store's only in a product shard."""
    if shard is not None:
        outputs = replace(outputs, entities=frozenset({shard.kind}),
                          store_events=outputs.store_events and shard.kind == PRODUCT)
    stats = FlowStats()
    flow = Dataflow("basketflow-backfill")
    batches = op.input("history", flow, EventSource(events, on_batch, batch))
    clocked = event_clock("event-clock", op.map(
        "partition-times", batches, lambda b: (HISTORY, newest(b), DELIVERING, b)), list)
    add_feature_steps(op.map("clocked", clocked, lambda c: ClockedBatch(*c)), outputs, stats,
                      shard)
    run_flow(flow, options)
    return stats


def _run_sharded(events: Callable[[], Iterator[Transaction]], outputs: FeatureOutputs,
                 options: RunOptions, on_batch: Callable[[int], None], batch: int,
                 processes: int) -> FlowStats:
    """The first shard (:func:`basketflow.flows.shards.plan`) here, the others in forked processes;
    their counters added to this one's."""
    context = multiprocessing.get_context("fork")
    shards = plan(processes)
    read = context.RawArray("q", processes)  # events read so far by each process
    children: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
    try:
        for index in range(1, processes):
            receive, send = context.Pipe(duplex=False)
            child = context.Process(
                target=_child, name=f"backfill-{shards[index]}", daemon=True,
                args=(events, outputs, options, batch, shards[index], index, read, send))
            child.start()
            send.close()
            children.append((child, receive))

        def progress(done: int) -> None:
            read[0] = done
            on_batch(min(read))

        stats = _run_shard(events, outputs, options, progress, batch, shards[0])
        for index, (child, receive) in enumerate(children, start=1):
            _add(stats, _result(shards[index], child, receive))
        on_batch(min(read))
        return stats
    except BaseException:
        for child, _receive in children:
            if child.is_alive():
                child.terminate()
        raise
    finally:
        for child, receive in children:
            child.join()
            receive.close()


#: The counters of :class:`FlowStats` that the processes' counts add up to.
_COUNTERS = ("events", "dead_letters", "offline_rows", "online_writes", "feature_rows",
             "late_events", "scores")


def _child(events: Callable[[], Iterator[Transaction]], outputs: FeatureOutputs,
           options: RunOptions, batch: int, shard: EntityShard, index: int,
           read: ctypes.Array[ctypes.c_longlong], send: Connection) -> None:
    """A forked process's shard: its counters, or its error, sent back through ``send``;
    the events it has read in ``read[index]``."""
    try:
        stats = _run_shard(events, outputs, options,
                           lambda done: read.__setitem__(index, done), batch, shard)
        send.send(("ok", {name: getattr(stats, name) for name in _COUNTERS}))
    except StoreUnwritable as exc:  # shown as the command's one Error: line
        send.send(("unwritable", (str(exc), exc.errno)))
    except BaseException as exc:
        send.send(("error", "".join(traceback.format_exception(exc))))
    finally:
        send.close()


def _result(shard: EntityShard, child: multiprocessing.process.BaseProcess,
            receive: Connection) -> dict[str, int]:
    """The counters a forked process sent back; its error raised here (an unwritable
    store as :class:`StoreUnwritable`, anything else with the process's traceback)."""
    try:
        status, value = receive.recv()
    except EOFError:
        child.join()
        raise RuntimeError(f"the backfill process of {shard} ended without a result "
                           f"(exit code {child.exitcode})") from None
    if status == "ok":
        return value
    if status == "unwritable":
        message, errno = value
        exc = StoreUnwritable(message)
        exc.errno = errno
        raise exc
    raise RuntimeError(f"the backfill process of {shard} failed:\n{value}")


def _add(stats: FlowStats, counts: dict[str, int]) -> None:
    """Add another process's counters to ``stats``."""
    stats.add(**{name: counts[name] for name in _COUNTERS})
