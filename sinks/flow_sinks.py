"""Bytewax outputs for the live flow and the backfill: thin adapters over the stores
(:mod:`basketflow.sinks.offline_store`, and the online store's contract
:class:`~basketflow.sinks.online_store.OnlineStore`), writing behind the flow
(:mod:`basketflow.sinks.write_behind`).

Each Bytewax worker gets its own partition of each sink. Every sink is idempotent, since
Bytewax output is at-least-once around a resume from a recovery snapshot:

- :class:`OfflineEventSink` appends events to Parquet, skipping ``event_id``\\ s stored;
- :class:`DeadLetterSink` does the same for dead letters;
- :class:`OnlineFeatureSink` writes each changed entity once per batch, pipelined, with
  absolute values (never increments): each changed view's hash and packed value
  (:mod:`basketflow.sinks.online_store`);
- :class:`OnlineScoreSink` writes each scored entity's latest score, absolute likewise;
- :class:`FeatureLogSink` and :class:`ScoreLogSink` append feature rows and predictions to
  Parquet, idempotent on ``<entity>:<seq>``; :class:`ShadowScoreLogSink` the challenger's
  predictions, made in shadow;
- both Redis sinks wait out a Redis outage (:mod:`basketflow.sinks.redis_retry`);
- :class:`ProgressSink` records the next offset of each topic partition and the flow's
  counters in the online store, for ``basketflow status``, and logs a line of counts
  every few seconds.

A Parquet write that fails raises :class:`~basketflow.sinks.store_writes.StoreUnwritable`, which
stops the flow before the epoch's offsets are committed. The failure is noted in
:class:`FlowStats`, and the buffering sinks then skip their flush at close: Bytewax closes
every sink partition while it unwinds, and a second error there would abort the process
instead of showing the first.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from bytewax.outputs import (
    DynamicSink,
    FixedPartitionedSink,
    StatefulSinkPartition,
    StatelessSinkPartition,
)

from basketflow.schemas.events import Rejection, Transaction
from basketflow.schemas.features import FeatureView
from basketflow.schemas.records import FeatureUpdate, LogRow, ScoreRow, ShadowScoreRow
from basketflow.sinks.offline_store import (
    DeadLetterStore,
    FeatureLog,
    LateEventLog,
    ParquetEventStore,
    PlacedEvents,
    ScoreLog,
    ShadowScoreLog,
)
from basketflow.sinks.store_writes import StoreUnwritable
from basketflow.sinks.online_store import (
    OnlineStore,
    RedisOnlineStore,
    lazy_client,
    progress_key,
)
from basketflow.sinks.redis_retry import RedisRetry
from basketflow.sinks.write_behind import BackgroundWrites, EpochBuffer

log = logging.getLogger("basketflow.flow")
T = TypeVar("T")
#: The values of one online write, by view and entity: (event time, values).
WrittenRows = dict[str, dict[str, tuple[int, dict[str, Any]]]]


class FlowObserver(Protocol):
    """What the flow's metrics (:mod:`basketflow.flows.flow_metrics`) are told by the
    sinks: each online write once it returned, and each score made."""

    def online_written(self, latest: WrittenRows) -> None: ...

    def scored(self, row: ScoreRow) -> None: ...


@dataclass
class FlowStats:
    """Counters shared by the sinks of one process (Bytewax workers are its threads);
    ``observer`` (None: none) is told of online writes and scores as they happen."""

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
    observer: FlowObserver | None = None
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

    def scored(self, row: ScoreRow) -> None:
        """Count one score (and tell the observer)."""
        self.add(scores=1)
        if self.observer is not None:
            self.observer.scored(row)

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


class _BehindPartition(StatefulSinkPartition[Any, None]):
    """A sink partition whose batches go to write-behind
    (:mod:`basketflow.sinks.write_behind`): Bytewax's snapshot at the end of an epoch
    drains it, so no write is pending when the epoch's input offsets are committed."""

    def __init__(self, writes: BackgroundWrites,
                 count: Callable[[list[Any]], None] | None = None) -> None:
        self._writes = writes
        self._count = count

    def write_batch(self, items: list[Any]) -> None:
        if self._count is not None:
            self._count(items)
        self._writes.write_batch(items)

    def snapshot(self) -> None:
        self._writes.drain()

    def close(self) -> None:
        self._writes.close()


def _buffered(name: str, flush: Callable[[list[Any]], None], size: Callable[[Any], int],
              stats: FlowStats, max_items: int = 500_000,
              count: Callable[[list[Any]], None] | None = None) -> _BehindPartition:
    """A partition that buffers its items over the epoch (:class:`EpochBuffer`) and
    flushes them offline, noting a :class:`StoreUnwritable` in ``stats`` (after which it
    flushes nothing more)."""
    return _BehindPartition(EpochBuffer(
        name, lambda items: stats.writing(lambda: flush(items)), size,
        lambda: stats.unwritable is not None, max_items), count)


class OfflineEventSink(FixedPartitionedSink[PlacedEvents, None]):
    """Appends every valid event to the Parquet offline store, idempotently.

    Items are a batch's events of one day with their positions on the topic
    (:class:`~basketflow.sinks.offline_store.PlacedEvents`), keyed by event day number
    (``ts // 86400``), so each day's events of an epoch land in one file of one of
    :attr:`PARTS` sink partitions.
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

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _BehindPartition:
        store = ParquetEventStore(self.root)

        def flush(groups: list[PlacedEvents]) -> None:
            self.stats.add(offline_rows=store.append_placed(groups))

        def count(groups: list[PlacedEvents]) -> None:
            self.stats.add(events=sum(len(group.events) for group in groups))

        return _buffered(step_id, flush, lambda group: len(group.events), self.stats,
                         self.max_rows, count)


class DeadLetterSink(DynamicSink[tuple[str, int, Rejection]]):
    """Stores ``(dead_id, ts, rejection)`` dead letters offline, idempotent on dead_id."""

    def __init__(self, root: Path, stats: FlowStats) -> None:
        self.root = root
        self.stats = stats

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
        store = DeadLetterStore(self.root)

        def write(batch: list[tuple[str, int, Rejection]]) -> None:
            self.stats.writing(lambda: store.append(batch))
            self.stats.add(dead_letters=len(batch))

        return _Partition(write)


class _FollowingStore:
    """The online store at the current address of a :class:`RedisRetry` (which follows an
    embedded Redis restarted elsewhere), on a client that connects at its first command:
    a sink partition built while Redis is down waits for it like every write does."""

    def __init__(self, retry: RedisRetry, prefix: str) -> None:
        self._retry = retry
        self._prefix = prefix
        self._url = ""
        self._store: RedisOnlineStore | None = None

    def __getattr__(self, name: str) -> Any:
        url = self._retry.url
        if self._store is None or url != self._url:
            if self._store is not None:
                self._store.close()
            self._store, self._url = RedisOnlineStore(lazy_client(url), self._prefix), url
        return getattr(self._store, name)


class _RedisSink(FixedPartitionedSink[T, None]):
    """A sink of one partition whose batches are written to the online store on the
    partition's own writer thread (:class:`BackgroundWrites`), every write through the
    sink's :class:`RedisRetry`; the input is keyed, any key."""

    prefix: str
    retry: RedisRetry

    def list_parts(self) -> list[str]:
        return ["redis"]

    def part_fn(self, item_key: str) -> int:
        return 0

    def build_part(self, step_id: str, for_part: str,
                   resume_state: None) -> _BehindPartition:
        return _BehindPartition(BackgroundWrites(step_id, self.writer(
            cast(OnlineStore, _FollowingStore(self.retry, self.prefix)))))

    @abstractmethod
    def writer(self, store: OnlineStore) -> Callable[[list[T]], None]:
        """A function that writes one batch to ``store`` (the partition's own)."""


class OnlineFeatureSink(_RedisSink[FeatureUpdate]):
    """Writes the latest values of each changed entity, once per batch, pipelined: per
    view of ``views`` (by name), with its version and TTL."""

    def __init__(self, redis_url: str, prefix: str, views: Mapping[str, FeatureView],
                 stats: FlowStats, retry: RedisRetry | None = None) -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self.views = views
        self.stats = stats
        self.retry = retry or RedisRetry(redis_url)

    def writer(self, store: OnlineStore) -> Callable[[list[FeatureUpdate]], None]:
        def write(batch: list[FeatureUpdate]) -> None:
            latest: WrittenRows = {}
            for update in batch:
                for view, values in update.values.items():
                    latest.setdefault(view, {})[update.entity] = (update.times[view], values)
            for view, rows in latest.items():
                self.retry.call(lambda view=self.views[view], rows=rows: store.write(view, rows))
            self.stats.add(online_writes=sum(len(r) for r in latest.values()))
            if self.stats.observer is not None:
                self.stats.observer.online_written(latest)

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
    every late event to ``late/``. ``views`` defines the views that are not built in
    (the feature repository's own)."""

    def __init__(self, root: Path, versions: dict[str, str], stats: FlowStats,
                 views: Mapping[str, FeatureView] | None = None) -> None:
        self.root = root
        self.versions = versions
        self.stats = stats
        self.views = views or {}

    def list_parts(self) -> list[str]:
        return ["log"]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _BehindPartition:
        logs = {view: FeatureLog(self.root, self.views.get(view, view))
                for view in self.versions}
        late_log = LateEventLog(self.root)

        def flush(updates: list[FeatureUpdate]) -> None:
            by_view: dict[str, list[LogRow]] = {}
            for update in updates:
                for row in update.rows:
                    by_view.setdefault(row[0], []).append(row)
            self.stats.add(feature_rows=sum(logs[view].append(rows)
                                            for view, rows in by_view.items()))
            late_log.append(late for update in updates for late in update.late)

        return _buffered(step_id, flush, lambda u: len(u.rows), self.stats)


class OnlineScoreSink(_RedisSink[ScoreRow]):
    """Writes each entity's latest score, once per batch
    (:meth:`~basketflow.sinks.online_store.OnlineStore.write_scores`)."""

    def __init__(self, redis_url: str, prefix: str, retry: RedisRetry | None = None) -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self.retry = retry or RedisRetry(redis_url)

    def writer(self, store: OnlineStore) -> Callable[[list[ScoreRow]], None]:
        def write(batch: list[ScoreRow]) -> None:
            self.retry.call(lambda: store.write_scores(batch))

        return write


class ScoreLogSink(FixedPartitionedSink[ScoreRow, None]):
    """Appends every prediction to the offline score log (``scores/``)."""

    def __init__(self, root: Path, stats: FlowStats) -> None:
        self.root = root
        self.stats = stats

    def list_parts(self) -> list[str]:
        return ["scores"]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _BehindPartition:
        return _buffered(step_id, ScoreLog(self.root).append, lambda r: 1, self.stats)


class ShadowScoreLogSink(FixedPartitionedSink[ShadowScoreRow, None]):
    """Appends every prediction made in shadow to the offline shadow score log
    (``shadow-scores/``); nothing of it reaches the online store."""

    def __init__(self, root: Path, stats: FlowStats) -> None:
        self.root = root
        self.stats = stats

    def list_parts(self) -> list[str]:
        return ["shadow-scores"]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _BehindPartition:
        return _buffered(step_id, ShadowScoreLog(self.root).append, lambda r: 1, self.stats)


class ProgressSink(_RedisSink[dict[str, int | str]]):
    """Records the flow's progress and logs counts every few seconds.

    The online store's progress hash of ``part``
    (:meth:`~basketflow.sinks.online_store.OnlineStore.write_progress`:
    ``<prefix>:flow:progress``, or ``<prefix>:flow:progress:serve`` for the serve part of
    the flow alone): ``offset:<topic>:<partition>`` = the next offset to read, ``events``,
    ``dead_letters`` and ``event_time`` (totals kept in the recovery state, see
    :mod:`basketflow.flows.progress`), and the wall-clock ``updated_at``.
    """

    def __init__(self, redis_url: str, prefix: str, part: str,
                 retry: RedisRetry | None = None, log_every: float = 5.0) -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self.part = part
        self.retry = retry or RedisRetry(redis_url)
        self.log_every = log_every

    def writer(self, store: OnlineStore) -> Callable[[list[dict[str, int | str]]], None]:
        last_log = [time.monotonic()]
        name = progress_key(self.prefix, self.part)

        def write(batch: list[dict[str, int | str]]) -> None:
            if not batch:
                return
            fields = batch[-1] | {
                "updated_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            self.retry.call(lambda: store.write_progress(self.part, fields))
            if time.monotonic() - last_log[0] >= self.log_every:
                last_log[0] = time.monotonic()
                log.info("%s: %s events, %s dead letters so far, event time %s", name,
                         fields["events"], fields["dead_letters"],
                         fields["event_time"] or "none yet")

        return write

