"""Bytewax outputs for the live flow and the backfill: thin adapters over the stores.

Each Bytewax worker gets its own partition of each sink. Every sink is idempotent, since
Bytewax output is at-least-once around a resume from a recovery snapshot:

- :class:`OfflineEventSink` appends events to Parquet, skipping ``event_id``\\ s stored;
- :class:`DeadLetterSink` does the same for dead letters;
- :class:`OnlineFeatureSink` writes each changed entity once per batch, pipelined, with
  absolute values (never increments): each changed view's hash and packed value
  (:mod:`basketflow.sinks.online_store`);
- :class:`OnlineScoreSink` writes each scored entity's latest score, absolute likewise,
  as a hash and a packed value;
- :class:`FeatureLogSink` and :class:`ScoreLogSink` append feature rows and predictions to
  Parquet, idempotent on ``<entity>:<seq>``;
- both Redis sinks wait out a Redis outage (:mod:`basketflow.sinks.redis_retry`);
- :class:`ProgressSink` records the next offset of each topic partition and the flow's
  counters in Redis, for ``basketflow status``, and logs a line of counts every few
  seconds.

A Parquet write that fails raises :class:`~basketflow.sinks.offline_store.StoreUnwritable`, which
stops the flow before the epoch's offsets are committed. The failure is noted in
:class:`FlowStats`, and the buffering sinks then skip their flush at close: Bytewax closes
every sink partition while it unwinds, and a second error there would abort the process
instead of showing the first.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from bytewax.outputs import (
    DynamicSink,
    FixedPartitionedSink,
    StatefulSinkPartition,
    StatelessSinkPartition,
)

from basketflow.schemas.events import Rejection, Transaction
from basketflow.schemas.features import registry
from basketflow.schemas.records import FeatureUpdate, LogRow, ScoreRow
from basketflow.sinks.background import BackgroundWriter
from basketflow.sinks.offline_store import (
    DeadLetterStore,
    FeatureLog,
    LateEventLog,
    ParquetEventStore,
    ScoreLog,
    StoreUnwritable,
)
from basketflow.sinks.online_store import RedisOnlineStore, connect
from basketflow.sinks.redis_retry import RedisRetry

log = logging.getLogger("basketflow.flow")
T = TypeVar("T")
#: Where live scores live online: ``<prefix>:score:<entity>``.
SCORE_KEY = "score"

@dataclass
class FlowStats:
    """Counters shared by the sinks of one process (Bytewax workers are its threads)."""

    events: int = 0
    dead_letters: int = 0
    offline_rows: int = 0
    online_writes: int = 0
    feature_rows: int = 0
    late_events: int = 0
    scores: int = 0
    first_seen: float | None = None
    last_written: float | None = None
    unwritable: StoreUnwritable | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def writing(self, write: Callable[[], T]) -> T:
        """Run an offline write; note the :class:`StoreUnwritable` it raises (the flow is
        stopping) before raising it on."""
        try:
            return write()
        except StoreUnwritable as exc:
            self.unwritable = exc
            raise

    def add(self, **counts: int) -> None:
        """Add to counters, and note the wall time of the first and latest write."""
        now = time.perf_counter()
        with self.lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)
            if self.first_seen is None:
                self.first_seen = now
            self.last_written = now

    @property
    def seconds(self) -> float:
        """Wall time from the first message seen to the last row written."""
        if self.first_seen is None or self.last_written is None:
            return 0.0
        return self.last_written - self.first_seen


class _Partition(StatelessSinkPartition[Any]):
    """A sink partition that hands each batch to a function."""

    def __init__(self, write: Callable[[list[Any]], None],
                 close: Callable[[], None] = lambda: None) -> None:
        self._write = write
        self._close = close

    def write_batch(self, items: list[Any]) -> None:
        self._write(items)

    def close(self) -> None:
        self._close()


class _BackgroundPartition(StatefulSinkPartition[Any, None]):
    """A sink partition that hands each batch to ``write`` on its own writer thread
    (:mod:`basketflow.sinks.background`), and waits for the writes when the epoch is snapshotted and
    at close, so that none is pending when the epoch's input offsets are committed."""

    def __init__(self, name: str, write: Callable[[list[Any]], None]) -> None:
        self._write = write
        self._writer = BackgroundWriter(name)

    def write_batch(self, items: list[Any]) -> None:
        self._writer.submit(lambda: self._write(items))

    def snapshot(self) -> None:
        self._writer.drain()

    def close(self) -> None:
        self._writer.close()


class _EpochBuffer(_BackgroundPartition):
    """Buffers items and hands them to ``flush`` on its own writer thread
    (:mod:`basketflow.sinks.background`) once ``max_items`` wait or the oldest has waited ``max_age``
    seconds, and when the epoch is snapshotted, then waiting for the writes to finish;
    nothing once the flow has found the store unwritable.

    Bytewax snapshots a sink partition when an epoch closes, before the input offsets of
    that epoch are committed to recovery, so everything is written before the offset past
    it is saved: nothing is lost after a crash. Flushing every second as well spreads the
    writes over the epoch: one flush of a whole 10 s epoch held the worker for 1-2.5 s,
    and every line consumed meanwhile waited (benchmarks/freshness.py); on the writer's
    thread a flush no longer holds the worker at all, except at the epoch's end.
    """

    def __init__(self, flush: Callable[[list[Any]], None], size: Callable[[Any], int],
                 stats: FlowStats, max_items: int = 500_000, max_age: float = 1.0) -> None:
        super().__init__(type(self).__name__, lambda items: stats.writing(lambda: flush(items)))
        self.size = size
        self.stats = stats
        self.max_items = max_items
        self.max_age = max_age
        self.buffer: list[Any] = []
        self.items = 0
        self.since = 0.0

    def write_batch(self, values: list[Any]) -> None:
        if not self.buffer:
            self.since = time.monotonic()
        self.buffer.extend(values)
        self.items += sum(map(self.size, values))
        if self.items >= self.max_items or time.monotonic() - self.since >= self.max_age:
            self._submit()

    def _submit(self) -> None:
        """Hand the buffer to the writer."""
        if self.buffer and self.stats.unwritable is None:
            items, self.buffer, self.items = self.buffer, [], 0
            super().write_batch(items)

    def snapshot(self) -> None:
        self._submit()
        super().snapshot()

    def close(self) -> None:
        try:
            self._submit()
        finally:
            super().close()


class _EventBuffer(_EpochBuffer):
    """An :class:`_EpochBuffer` of event lists that counts the events it is given."""

    def write_batch(self, values: list[Any]) -> None:
        self.stats.add(events=sum(map(len, values)))
        super().write_batch(values)


class OfflineEventSink(FixedPartitionedSink[list[Transaction], None]):
    """Appends every valid event to the Parquet offline store, idempotently.

    Items are lists of events keyed by event day number (``ts // 86400``), so each day's
    events of an epoch land in one file of one of :attr:`PARTS` sink partitions.
    """

    PARTS = 4

    def __init__(self, root: Path, stats: FlowStats, max_rows: int = 200_000) -> None:
        self.root = root
        self.stats = stats
        self.max_rows = max_rows

    def list_parts(self) -> list[str]:
        return [f"events-{i}" for i in range(self.PARTS)]

    def part_fn(self, item_key: str) -> int:
        return int(item_key) % self.PARTS

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _EventBuffer:
        store = ParquetEventStore(self.root)

        def flush(batches: list[list[Transaction]]) -> None:
            self.stats.add(offline_rows=store.append(e for events in batches for e in events))

        return _EventBuffer(flush, len, self.stats, self.max_rows)


class DeadLetterSink(DynamicSink[tuple[str, int, Rejection]]):
    """Stores ``(dead_id, ts, rejection)`` dead letters offline, idempotent on dead_id."""

    def __init__(self, root: Path, stats: FlowStats) -> None:
        self.root = root
        self.stats = stats

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
        store = DeadLetterStore(self.root)

        def write(batch: list[tuple[str, int, Rejection]]) -> None:
            self.stats.writing(lambda: store.append_rows(
                (ts, dead_id, (dead_id, r.event_id, r.reason, r.raw, r.source, ts))
                for dead_id, ts, r in batch))
            self.stats.add(dead_letters=len(batch))

        return _Partition(write)


class _RedisSink(FixedPartitionedSink[T, None]):
    """A sink of one partition whose batches are written to Redis on the partition's own
    writer thread (:class:`_BackgroundPartition`); the input is keyed, any key."""

    def list_parts(self) -> list[str]:
        return ["redis"]

    def part_fn(self, item_key: str) -> int:
        return 0

    def build_part(self, step_id: str, for_part: str,
                   resume_state: None) -> _BackgroundPartition:
        return _BackgroundPartition(step_id, self.writer())

    @abstractmethod
    def writer(self) -> Callable[[list[T]], None]:
        """A function that writes one batch (with its own connection)."""


class OnlineFeatureSink(_RedisSink[FeatureUpdate]):
    """Writes the latest values of each changed entity, once per batch, pipelined."""

    def __init__(self, redis_url: str, prefix: str, versions: dict[str, str],
                 stats: FlowStats, retry: RedisRetry | None = None) -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self.versions = versions
        self.ttls = {name: view.ttl_seconds for name, view in registry().items()}
        self.stats = stats
        self.retry = retry or RedisRetry(redis_url)

    def writer(self) -> Callable[[list[FeatureUpdate]], None]:
        store = RedisOnlineStore(connect(self.redis_url), self.prefix)

        def write(batch: list[FeatureUpdate]) -> None:
            latest: dict[str, dict[str, tuple[int, dict[str, Any]]]] = {}
            for update in batch:
                for view, values in update.values.items():
                    latest.setdefault(view, {})[update.entity] = (update.times[view], values)
            for view, rows in latest.items():
                self.retry.call(lambda view=view, rows=rows: store.write(
                    view, self.versions[view], rows, self.ttls[view]))
            self.stats.add(online_writes=sum(len(r) for r in latest.values()))

        return write


def count_late(stats: FlowStats) -> Callable[[str, FeatureUpdate], None]:
    """An ``inspect`` callback that counts and logs the late events of each update."""
    def inspect(step_id: str, update: FeatureUpdate) -> None:
        if update.late:
            stats.add(late_events=len(update.late))
            log.warning("%d late event(s) of %s beyond the allowed lateness left out of the "
                        "online values (%d so far); they are in the offline store, and "
                        "listed under late/", len(update.late), update.entity,
                        stats.late_events)
    return inspect


class FeatureLogSink(FixedPartitionedSink[FeatureUpdate, None]):
    """Appends every new value row of every view to ``features/<view>/`` in Parquet, and
    every late event to ``late/``."""

    def __init__(self, root: Path, versions: dict[str, str], stats: FlowStats) -> None:
        self.root = root
        self.versions = versions
        self.stats = stats

    def list_parts(self) -> list[str]:
        return ["log"]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _EpochBuffer:
        logs = {view: FeatureLog(self.root, view) for view in self.versions}
        late_log = LateEventLog(self.root)

        def flush(updates: list[FeatureUpdate]) -> None:
            by_view: dict[str, list[LogRow]] = {}
            for update in updates:
                for row in update.rows:
                    by_view.setdefault(row[0], []).append(row)
            self.stats.add(feature_rows=sum(logs[view].append(rows)
                                            for view, rows in by_view.items()))
            late_log.append(late for update in updates for late in update.late)

        return _EpochBuffer(flush, lambda u: len(u.rows), self.stats)


class OnlineScoreSink(_RedisSink[ScoreRow]):
    """Writes each entity's latest score to ``<prefix>:score:<entity>`` (and its packed
    value ``<prefix>:packed:score:<entity>``), once per batch: ``category``,
    ``probabilities``, ``model_version``, ``invoice``, ``seq`` and ``_ts``."""

    def __init__(self, redis_url: str, prefix: str, retry: RedisRetry | None = None) -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self.retry = retry or RedisRetry(redis_url)

    def writer(self) -> Callable[[list[ScoreRow]], None]:
        store = RedisOnlineStore(connect(self.redis_url), self.prefix)

        def write(batch: list[ScoreRow]) -> None:
            by_version: dict[str, dict[str, tuple[int, dict[str, Any]]]] = {}
            for row in batch:
                s = row.score
                by_version.setdefault(s.model_version, {})[row.entity] = (row.ts, {
                    "category": s.category, "probabilities": s.probabilities,
                    "model_version": s.model_version, "invoice": row.invoice,
                    "seq": row.seq})
            for version, rows in by_version.items():
                self.retry.call(lambda: store.write(SCORE_KEY, version, rows))

        return write


class ScoreLogSink(FixedPartitionedSink[ScoreRow, None]):
    """Appends every prediction to the offline score log (``scores/``)."""

    def __init__(self, root: Path, stats: FlowStats) -> None:
        self.root = root
        self.stats = stats

    def list_parts(self) -> list[str]:
        return ["scores"]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _EpochBuffer:
        log_ = ScoreLog(self.root)

        def flush(rows: list[ScoreRow]) -> None:
            log_.append((r.entity, r.ts, r.seq, r.invoice, r.score.category,
                         json.dumps(r.score.probabilities), r.score.model_version)
                        for r in rows)

        return _EpochBuffer(flush, lambda r: 1, self.stats)


class ProgressSink(_RedisSink[dict[str, int | str]]):
    """Records the flow's progress and logs counts every few seconds.

    Redis hash ``key`` (``<prefix>:flow:progress``, or ``<prefix>:flow:progress:serve`` for
    the serve part of the flow alone): ``offset:<topic>:<partition>`` = the next offset
    to read, ``events``, ``dead_letters`` and ``event_time`` (totals kept in the recovery
    state, see :mod:`basketflow.flows.progress`), and the wall-clock ``updated_at``.
    """

    def __init__(self, redis_url: str, key: str, retry: RedisRetry | None = None,
                 log_every: float = 5.0) -> None:
        self.redis_url = redis_url
        self.key = key
        self.retry = retry or RedisRetry(redis_url)
        self.log_every = log_every

    def writer(self) -> Callable[[list[dict[str, int | str]]], None]:
        client = connect(self.redis_url)
        last_log = [time.monotonic()]

        def write(batch: list[dict[str, int | str]]) -> None:
            if not batch:
                return
            fields = batch[-1] | {
                "updated_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            self.retry.call(lambda: client.hset(self.key, mapping=fields))
            if time.monotonic() - last_log[0] >= self.log_every:
                last_log[0] = time.monotonic()
                log.info("%s: %s events, %s dead letters so far, event time %s", self.key,
                         fields["events"], fields["dead_letters"],
                         fields["event_time"] or "none yet")

        return write

