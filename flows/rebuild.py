"""``basketflow run --rebuild-state``: a flow's recovery state made again from the offline
store, up to exactly where the offline store ends in each partition of the topic.

Why: a damaged recovery state (a torn write, partitions that disagree on their epoch,
see :mod:`basketflow.flows.recovery_store`) stops the run. This discards it, and the
live flow (its own graph, every step and step id, recovery on) starts with a source that
delivers the stored copies of the topic's messages up to the store's end in each
partition and then reads on from the topic itself (:class:`StoredSource`): the states it
snapshots are the live flow's, with each partition's offset where it is, so nothing is
lost or doubled, and a run stopped meanwhile resumes as any run does.

The offline store keeps no partition or offset per event, so the boundary is found by
reading each partition from offset 0 and matching every message to the store: an event
by its content id (:func:`~basketflow.schemas.events.event_id`), a message the flow
could not decode by its dead letter's id (``<topic>:<partition>:<offset>``). The first
message of a partition that is not stored is the boundary; the messages before it are
delivered as the stored copies (the stored event, encoded as on the topic). A message
stored beyond a gap (a torn offline write) is read from the topic again, and its rows
are written idempotently. A partition whose first messages are gone from the topic
(retention, a recreated topic) gives no exact boundary: :class:`CannotRebuild`.
"""
from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import msgspec
from bytewax.inputs import StatefulSourcePartition
from confluent_kafka import Consumer, KafkaException, TopicPartition

from basketflow.config import Settings
from basketflow.errors import BasketflowError
from basketflow.flows.backfill import offline_events
from basketflow.flows.dead_letters import message_id
from basketflow.flows.event_clock import CAUGHT_UP
from basketflow.flows.kafka_batches import KafkaBatchSource, RawMessage, topic_partitions
from basketflow.kafka import consumer_config
from basketflow.offline_uri import StorePath
from basketflow.schemas.events import Rejection, decode_event, encode_event
from basketflow.sinks.offline_layout import dead_letters_dir, event_files, files_by_day, files_of
from basketflow.sinks.offline_scan import parquet_source
from basketflow.sinks.offline_store import ensure_readable
from basketflow.sinks.redis_retry import HEALTH_FILE

#: A reader of one partition, as Bytewax takes it: batches of messages, the next offset.
Reader = StatefulSourcePartition[list[RawMessage], int]


class CannotRebuild(BasketflowError):
    """The offline store cannot tell exactly where the flow's state ends: the state is
    not rebuilt (nothing is discarded)."""


@dataclass(frozen=True)
class StoredMessages:
    """What the offline store holds of the topic: each stored event's message value (the
    stored copy, encoded as on the topic) by event id, and the ids of the stored dead
    letters."""

    events: dict[str, bytes]
    dead: frozenset[str]

    def copy_of(self, msg: RawMessage) -> bytes | None:
        """The stored copy of a message read from the topic (None: not stored)."""
        decoded = decode_event(msg.value)
        if isinstance(decoded, Rejection):
            return msg.value if message_id(msg) in self.dead else None
        return self.events.get(decoded.event_id)


def stored_messages(offline_dir: Path) -> StoredMessages:
    """Read the offline store's events and dead-letter ids (every file checked first:
    :class:`~basketflow.sinks.offline_layout.CorruptFile` names one that is damaged)."""
    events = {e.event_id: encode_event(e) for e in offline_events(offline_dir)()}
    files = files_of(files_by_day(dead_letters_dir(offline_dir)))
    ensure_readable(files)
    dead: frozenset[str] = frozenset()
    if files:
        con = duckdb.connect()
        source = parquet_source(con, files, columns=["dead_id"])
        dead = frozenset(row[0] for row in con.execute(
            f"SELECT dead_id FROM {source.sql}", source.params).fetchall())
    return StoredMessages(events, dead)


def check_rebuildable(settings: Settings) -> None:
    """Raise :class:`CannotRebuild` when the state cannot be rebuilt exactly: a remote
    offline store, an offline store without events, or a partition of the topic that no
    longer starts at offset 0 (its first messages cannot be matched to the store)."""
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
    for partition, low in first_offsets(settings.kafka_bootstrap, settings.topic).items():
        if low > 0:
            raise CannotRebuild(
                f"partition {partition} of topic {settings.topic!r} starts at offset {low} "
                "(its first messages were deleted), so where the offline store ends in it "
                "cannot be told exactly: the state is not rebuilt; run with --from-start "
                "to read the topic from what it holds")


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


class _StoredReader(StatefulSourcePartition[list[RawMessage], int]):
    """One partition of the topic from offset 0 (read by ``first``, a reader to the
    partition's end), each message replaced by its stored copy, up to the first message
    the offline store does not hold (or the partition's end); from there on, the topic's
    own reader (``then(offset)``). The snapshot is the next offset either way, so a run
    stopped meanwhile resumes as any run does."""

    def __init__(self, first: Reader, then: Callable[[int], Reader], stored: StoredMessages,
                 count: Callable[[int], None]) -> None:
        self._reader, self._then = first, then
        self._stored, self._count = stored, count
        self._offset = 0
        self._live = False

    def next_batch(self) -> list[list[RawMessage]]:
        if self._live:
            return self._reader.next_batch()
        batch: list[RawMessage] = []
        for read in (msg for polled in self._reader.next_batch() for msg in polled):
            if read.quiet == CAUGHT_UP:
                continue  # nothing more for now: the partition's end comes next
            value = None if read.quiet or read.error else self._stored.copy_of(read)
            if value is None:  # the boundary (or the end): the topic from here on
                self._reader.close()
                self._reader, self._live = self._then(self._offset), True
                break
            batch.append(msgspec.structs.replace(read, value=value))
            self._offset = read.offset + 1
        self._count(len(batch))
        return [batch] if batch else []

    def snapshot(self) -> int:
        return self._reader.snapshot() if self._live else self._offset

    def close(self) -> None:
        self._reader.close()


class StoredSource(KafkaBatchSource):
    """The topic's reader (:class:`~basketflow.flows.kafka_batches.KafkaBatchSource`,
    the same partitions and snapshots) whose partitions without a snapshot deliver the
    stored copies of their messages up to the store's end in them first
    (:class:`_StoredReader`); a partition with one (a rebuild that was stopped) reads
    on from the topic."""

    def __init__(self, reader: KafkaBatchSource, stored: StoredMessages) -> None:
        super().__init__(reader.bootstrap, reader.topic, reader.config, reader.stop_at_end,
                         reader.batch_size, reader.reset, reader.health_path)
        self.stored = stored
        #: Messages delivered as their stored copies so far, by every partition.
        self.copies = 0
        self._lock = threading.Lock()

    def _delivered(self, count: int) -> None:
        """Count stored copies delivered (partitions may be read on several threads)."""
        with self._lock:
            self.copies += count

    def build_part(self, step_id: str, for_part: str,
                   resume_state: int | None) -> Reader:
        if resume_state is not None:
            return super().build_part(step_id, for_part, resume_state)
        partition = int(for_part.rsplit("-", 1)[1])
        return _StoredReader(self.reader_at(partition, 0, stop_at_end=True),
                             lambda offset: self.reader_at(partition, offset), self.stored,
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
    :func:`~basketflow.flows.live.run_live`): the offline store's messages read here."""
    assert settings.kafka_bootstrap
    reader = KafkaBatchSource(settings.kafka_bootstrap, settings.topic,
                              consumer_config(settings.kafka_bootstrap), stop_at_end,
                              max_batch, reset, settings.data_dir / HEALTH_FILE)
    return StoredSource(reader, stored_messages(settings.offline_dir))
