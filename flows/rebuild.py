"""``basketflow run --rebuild-state``: a flow's recovery state made again from the offline
store, up to exactly where the offline store ends in each partition of the topic.

Why: a damaged recovery state (a torn write, partitions that disagree on their epoch,
see :mod:`basketflow.flows.recovery_store`) stops the run. This discards it, and the
live flow (its own graph, every step and step id, recovery on) starts with a source that
delivers the stored copies of each partition's first messages and then reads on from the
topic itself (:class:`StoredSource`): the states it snapshots are the live flow's, with
each partition's offset where it is, so nothing is lost or doubled, and a run stopped
meanwhile resumes as any run does.

The offline store keeps each event's and each of the flow's dead letters' position on the
topic (``kafka_partition``, ``kafka_offset``). A partition's stored messages are those
at offsets 0, 1, 2, ... up to the first offset the store does not hold (:func:`stored_ends`):
they are delivered in offset order, as the topic held them, without reading the topic
there, so they may be gone from it (retention); the topic is read from that offset on.
A gap in the store (a torn offline write, a message stored under another position: a
transaction sent twice, or backfilled from a file before the flow read it) ends the
stored run of messages there; what follows is read from the topic again, and its rows
are written idempotently. When the topic no longer holds the message at a partition's
end (its first offset is past it) the state cannot be rebuilt exactly:
:class:`CannotRebuild`, before anything is discarded. A store written before positions
were kept has none: the topic is then read from offset 0, when it still starts there.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import numpy as np
from bytewax.inputs import StatefulSourcePartition
from confluent_kafka import Consumer, KafkaException, TopicPartition

from basketflow.config import Settings
from basketflow.errors import BasketflowError
from basketflow.flows.dead_letters import CONSUMER_ERROR
from basketflow.flows.kafka_batches import KafkaBatchSource, RawMessage, topic_partitions
from basketflow.kafka import consumer_config
from basketflow.offline_uri import StorePath
from basketflow.schemas.events import FIELD_NAMES, Transaction, decode_event, encode_event
from basketflow.sinks.offline_layout import dead_letters_dir, event_files, files_by_day, files_of
from basketflow.sinks.offline_scan import ParquetSource, parquet_source
from basketflow.sinks.offline_store import ensure_readable
from basketflow.sinks.redis_retry import HEALTH_FILE

#: A reader of one partition, as Bytewax takes it: batches of messages, the next offset.
Reader = StatefulSourcePartition[list[RawMessage], int]
#: The SQL condition that keeps the dead letters the flow made of the topic's messages
#: (named ``<topic>:<partition>:<offset>``; ``$prefix`` is ``<topic>:``).
OF_TOPIC = "kafka_offset IS NOT NULL AND starts_with(dead_id, $prefix)"


class CannotRebuild(BasketflowError):
    """The offline store cannot tell exactly where the flow's state ends: the state is
    not rebuilt (nothing is discarded)."""


def _sources(con: duckdb.DuckDBPyConnection, offline_dir: Path,
             ) -> tuple[ParquetSource | None, ParquetSource | None]:
    """The store's event files and dead-letter files that have position columns, as
    sources of ``con``'s queries (None: no such file), columns matched by name (files
    written before positions were kept lack them: their rows' positions are null)."""
    found: list[ParquetSource | None] = []
    for files in (event_files(offline_dir), files_of(files_by_day(dead_letters_dir(offline_dir)))):
        ensure_readable(files)
        source = parquet_source(con, files, union_by_name=True) if files else None
        if source is not None:
            names = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source.sql}",
                                                   source.params).fetchall()}
            source = source if "kafka_offset" in names else None
        found.append(source)
    return found[0], found[1]


def stored_ends(offline_dir: Path, topic: str) -> dict[int, int]:
    """Per partition of ``topic``, the first offset the offline store holds no message at
    (events and the flow's dead letters, by their positions): the store holds every
    message before it. :class:`CannotRebuild` when two rows claim one position (rows of
    another topic written into the same store, or of this topic before it was
    recreated)."""
    con = duckdb.connect()
    events, dead = _sources(con, offline_dir)
    found = []
    if events is not None:
        found.append(con.execute(f"SELECT kafka_partition, kafka_offset FROM {events.sql} "
                                 "WHERE kafka_offset IS NOT NULL", events.params).fetchnumpy())
    if dead is not None:
        found.append(con.execute(f"SELECT kafka_partition, kafka_offset FROM {dead.sql} "
                                 f"WHERE {OF_TOPIC}", dead.params | {"prefix": f"{topic}:"}
                                 ).fetchnumpy())
    partitions = np.concatenate([f["kafka_partition"] for f in found] or [np.array([], int)])
    offsets = np.concatenate([f["kafka_offset"] for f in found] or [np.array([], int)])
    order = np.lexsort((offsets, partitions))
    partitions, offsets = partitions[order], offsets[order]
    ends: dict[int, int] = {}
    for partition in np.unique(partitions):
        held = offsets[partitions == partition]
        if held.size > 1 and bool(np.any(held[1:] == held[:-1])):
            twice = int(held[1:][held[1:] == held[:-1]][0])
            raise CannotRebuild(
                f"the offline store holds two rows at offset {twice} of partition "
                f"{partition} of topic {topic!r} (rows of another topic, or of this one "
                "before it was recreated): the state is not rebuilt; run with --from-start "
                "to read the topic from what it holds")
        missing = np.flatnonzero(held != np.arange(held.size))
        ends[int(partition)] = int(missing[0]) if missing.size else int(held.size)
    return ends


def check_ends(ends: dict[int, int], lows: dict[int, int], topic: str) -> None:
    """Raise :class:`CannotRebuild` when a partition's first offset still held by the
    topic (``lows``) is past the first offset the store lacks (``ends``, none: 0): the
    message there is in neither.

    >>> check_ends({0: 40, 1: 12}, {0: 30, 1: 0}, "tx")
    >>> check_ends({0: 40}, {0: 30, 1: 5}, "tx")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    basketflow.flows.rebuild.CannotRebuild: partition 1 of topic 'tx' starts at offset 5 ...
    """
    for partition, low in sorted(lows.items()):
        end = ends.get(partition, 0)
        if low <= end:
            continue
        why = (f"the offline store holds its messages only up to offset {end}, and the "
               f"message at {end} is in neither (a message stored under another position: "
               "sent twice, or backfilled from a file before the flow read it; or a lost "
               "write)") if end else (
               "the offline store holds no position on it from offset 0 (rows written "
               "before positions were kept, or from a backfill)")
        raise CannotRebuild(
            f"partition {partition} of topic {topic!r} starts at offset {low} (its first "
            f"messages were deleted), and {why}: the state is not rebuilt; run with "
            "--from-start to read the topic from what it holds")


def check_rebuildable(settings: Settings) -> dict[int, int]:
    """Each partition's first offset the offline store lacks (:func:`stored_ends`), once
    checked that the state can be rebuilt exactly from the store up to there and the
    topic from there (:func:`check_ends`); :class:`CannotRebuild` for a remote offline
    store or one without events."""
    offline = settings.offline_dir
    if isinstance(offline, StorePath):
        raise CannotRebuild(
            f"--rebuild-state reads a local offline store, not {offline}: run `basketflow "
            "check --repair`, then run again to rebuild the state from the topic")
    if not event_files(offline):
        raise CannotRebuild(
            f"the offline store {offline} holds no events to rebuild the state from: run "
            "`basketflow check --repair`, then run again to rebuild it from the topic")
    assert settings.kafka_bootstrap
    ends = stored_ends(offline, settings.topic)
    lows = first_offsets(settings.kafka_bootstrap, settings.topic)
    check_ends(ends, lows, settings.topic)
    return {partition: ends.get(partition, 0) for partition in lows}


def first_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The first offset (low watermark) still held by each partition of the topic."""
    consumer = Consumer(consumer_config(bootstrap) | {"group.id": "basketflow-unused"})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[0]
                for p in topic_partitions(bootstrap, topic)}
    except KafkaException as exc:
        raise CannotRebuild(f"cannot read the offsets of topic {topic!r}: {exc}") from None
    finally:
        consumer.close()


def stored_messages(offline_dir: Path, topic: str, partition: int, start: int, end: int,
                    ) -> Iterator[RawMessage]:
    """The messages of a partition at offsets ``start`` to ``end`` (excluded) as the
    offline store holds them, in offset order: each event encoded as on the topic, each
    of the flow's dead letters as the raw message it was made from (a consumer error as
    that error)."""
    con = duckdb.connect()
    events, dead = _sources(con, offline_dir)
    where = "kafka_partition = $p AND kafka_offset >= $start AND kafka_offset < $end"
    bounds = {"p": partition, "start": start, "end": end}
    letters: dict[int, RawMessage] = {}
    if dead is not None:
        for offset, reason, raw, ts in con.execute(
                f"SELECT kafka_offset, reason, raw, epoch(ts)::BIGINT FROM {dead.sql} "
                f"WHERE {OF_TOPIC} AND {where}",
                dead.params | bounds | {"prefix": f"{topic}:"}).fetchall():
            letters[offset] = _dead_message(topic, partition, offset, reason, raw, ts)
    rows: Iterator[tuple] = iter(())
    if events is not None:
        columns = ", ".join(("epoch(ts)::BIGINT AS ts" if n == "ts" else n)
                            for n in FIELD_NAMES)
        cursor = con.execute(f"SELECT kafka_offset, {columns} FROM {events.sql} WHERE {where} "
                             "ORDER BY kafka_offset", events.params | bounds)
        rows = (row for chunk in iter(lambda: cursor.fetchmany(10_000), []) for row in chunk)
    for offset in range(start, end):
        letter = letters.get(offset)
        if letter is not None:
            yield letter
            continue
        row = next(rows, None)
        if row is None or row[0] != offset:
            raise CannotRebuild(f"the offline store no longer holds offset {offset} of "
                                f"partition {partition} of topic {topic!r}, which it held "
                                "when the rebuild started: run --rebuild-state again")
        event = Transaction(*row[1:])
        yield RawMessage(topic, partition, offset, encode_event(event), event.ts * 1000)


def _dead_message(topic: str, partition: int, offset: int, reason: str, raw: str,
                  ts: int) -> RawMessage:
    """The message a stored dead letter of the flow was made from, as the flow rejects it
    again under the same ``dead_id`` and time: its raw text, or a consumer error (one
    that was, and one whose stored text would now decode: a message cut to its first
    characters, or whose bytes were not UTF-8, is stored as text that may)."""
    value = raw.encode()
    error = None
    if reason.startswith(CONSUMER_ERROR):
        error = reason.removeprefix(CONSUMER_ERROR)
    elif isinstance(decode_event(value), Transaction):
        error = reason
    return RawMessage(topic, partition, offset, value, ts * 1000, error)


def batches_of(messages: Iterator[RawMessage], size: int) -> Iterator[list[RawMessage]]:
    """``messages`` in lists of at most ``size``.

    >>> [len(b) for b in batches_of(iter(range(5)), 2)]
    [2, 2, 1]
    """
    batch = []
    for message in messages:
        batch.append(message)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class _StoredReader(StatefulSourcePartition[list[RawMessage], int]):
    """One partition: its stored messages up to the store's end in it, in batches
    (``stored``, ending at offset ``end``), then the topic's own reader from there
    (``then(end)``). The snapshot is the next offset either way."""

    def __init__(self, stored: Iterator[list[RawMessage]], start: int, end: int,
                 then: Callable[[int], Reader], count: Callable[[int], None]) -> None:
        self._stored, self._then, self._count = stored, then, count
        self._offset, self._end = start, end
        self._reader: Reader | None = None

    def next_batch(self) -> list[list[RawMessage]]:
        if self._reader is not None:
            return self._reader.next_batch()
        batch = next(self._stored, None)
        if batch is None:  # the store's end: the topic from here on
            self._reader = self._then(self._end)
            return self._reader.next_batch()
        self._offset = batch[-1].offset + 1
        self._count(len(batch))
        return [batch]

    def snapshot(self) -> int:
        return self._reader.snapshot() if self._reader is not None else self._offset

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()


class StoredSource(KafkaBatchSource):
    """The topic's reader (:class:`~basketflow.flows.kafka_batches.KafkaBatchSource`,
    the same partitions and snapshots) whose partitions deliver their stored messages
    first, up to the store's end in each (``ends``), from the partition's snapshot if it
    has one (a rebuild that was stopped), then read on from the topic
    (:class:`_StoredReader`)."""

    def __init__(self, reader: KafkaBatchSource, offline_dir: Path,
                 ends: dict[int, int]) -> None:
        super().__init__(reader.bootstrap, reader.topic, reader.config, reader.stop_at_end,
                         reader.batch_size, reader.reset, reader.health_path)
        self.offline_dir = offline_dir
        self.ends = ends
        #: Messages delivered as their stored copies so far, by every partition.
        self.copies = 0
        self._lock = threading.Lock()

    def _delivered(self, count: int) -> None:
        """Count stored copies delivered (partitions may be read on several threads)."""
        with self._lock:
            self.copies += count

    def build_part(self, step_id: str, for_part: str,
                   resume_state: int | None) -> Reader:
        partition = int(for_part.rsplit("-", 1)[1])
        start, end = resume_state or 0, self.ends.get(partition, 0)
        if start >= end:
            return super().build_part(step_id, for_part, resume_state)
        stored = stored_messages(self.offline_dir, self.topic, partition, start, end)
        return _StoredReader(batches_of(stored, self.batch_size), start, end,
                             lambda offset: self.reader_at(partition, offset),
                             self._delivered)


def discard_for_rebuild(settings: Settings, recovery_dirs: list[Path]) -> None:
    """Check that the state can be rebuilt exactly (:func:`check_rebuildable`), then
    discard these recovery directories: done once, before the flows that rebuild them
    start."""
    check_rebuildable(settings)
    for recovery_dir in recovery_dirs:
        shutil.rmtree(recovery_dir, ignore_errors=True)


def rebuilding(settings: Settings, stop_at_end: bool, max_batch: int,
               reset: str | None = None) -> StoredSource:
    """The live flow's source for a rebuild (give it to
    :func:`~basketflow.flows.live.run_live`): where the offline store ends in each
    partition, checked here."""
    assert settings.kafka_bootstrap
    reader = KafkaBatchSource(settings.kafka_bootstrap, settings.topic,
                              consumer_config(settings.kafka_bootstrap), stop_at_end,
                              max_batch, reset, settings.data_dir / HEALTH_FILE)
    return StoredSource(reader, Path(settings.offline_dir), check_rebuildable(settings))
