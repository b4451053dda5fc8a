"""``basketflow run --rebuild-state``: a flow's recovery state made again from the offline
store, up to exactly where the offline store ends in each partition of the topic.

Why: a damaged recovery state (a torn write, partitions that disagree on their epoch,
see :mod:`basketflow.flows.recovery_store`) stops the run. This discards it and runs the
live flow's own graph (:func:`~basketflow.flows.live.build_live_flow`, every step and
step id, recovery on) over the stored events, so the snapshots it leaves are the live
flow's, with the ``kafka-in`` offsets just past the last stored message of each
partition; the run then resumes from Kafka there, so nothing is lost or doubled.

The offline store keeps no partition or offset per event, so the boundary is found by
reading each partition from offset 0 and matching every message to the store: an event
by its content id (:func:`~basketflow.schemas.events.event_id`), a message the flow
could not decode by its dead letter's id (``<topic>:<partition>:<offset>``). The first
message of a partition that is not stored is the boundary; the messages before it are
folded as the stored copies (the stored event, encoded as on the topic). A message
stored beyond a gap (a torn offline write) is read again by the resumed run, and its
rows are written idempotently. A partition whose first messages are gone from the topic
(retention, a recreated topic) gives no exact boundary: :class:`CannotRebuild`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import Consumer, KafkaException, TopicPartition

from basketflow.config import Settings
from basketflow.errors import BasketflowError
from basketflow.flows import stopping
from basketflow.flows.backfill import offline_events
from basketflow.flows.dead_letters import message_id
from basketflow.flows.event_clock import ENDED
from basketflow.flows.kafka_batches import RawMessage, topic_partitions
from basketflow.flows.live import RunOptions, build_live_flow, run_flow
from basketflow.flows.parts import SERVE
from basketflow.flows.scoring import ScoringConfig
from basketflow.kafka import consumer_config
from basketflow.offline_uri import StorePath
from basketflow.schemas.events import Rejection, decode_event, encode_event
from basketflow.sinks.flow_sinks import FlowStats
from basketflow.sinks.offline_layout import dead_letters_dir, event_files, files_by_day, files_of
from basketflow.sinks.offline_scan import parquet_source
from basketflow.sinks.offline_store import ensure_readable


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
    """One partition of the topic from offset 0, each message replaced by its stored
    copy, up to the first message the offline store does not hold (or the partition's
    end); the snapshot is the next offset, which the resumed run reads from."""

    def __init__(self, config: dict[str, object], topic: str, partition: int,
                 stored: StoredMessages, batch_size: int) -> None:
        self._consumer = Consumer(config | {"enable.partition.eof": True,
                                            "auto.offset.reset": "error"})
        self._consumer.assign([TopicPartition(topic, partition, 0)])
        self._topic, self._partition = topic, partition
        self._stored, self._batch_size = stored, batch_size
        self._offset, self._ended = 0, False

    def next_batch(self) -> list[list[RawMessage]]:
        if self._ended or stopping.requested():
            raise StopIteration()
        batch: list[RawMessage] = []
        for msg in self._consumer.consume(self._batch_size, 1.0):
            if msg.error() is not None:  # the partition's end, or a fault: stop here
                self._ended = True
                break
            read = RawMessage(self._topic, self._partition, msg.offset(), msg.value(),
                              msg.timestamp()[1])
            value = self._stored.copy_of(read)
            if value is None:  # the boundary: the resumed run reads on from here
                self._ended = True
                break
            batch.append(RawMessage(read.topic, read.partition, read.offset, value,
                                    read.timestamp_ms))
            self._offset = read.offset + 1
        if self._ended:  # the clock stops waiting for this partition
            batch.append(RawMessage(self._topic, self._partition, self._offset, None, 0,
                                    quiet=ENDED))
        return [batch] if batch else []

    def snapshot(self) -> int:
        return self._offset

    def close(self) -> None:
        self._consumer.close()


class StoredSource(FixedPartitionedSource[list[RawMessage], int]):
    """The ``kafka-in`` of a rebuild: the topic's partitions, named and snapshotted as
    :class:`~basketflow.flows.kafka_batches.KafkaBatchSource` names and snapshots them,
    delivering the stored copies of the messages up to each partition's boundary."""

    def __init__(self, bootstrap: str, topic: str, stored: StoredMessages,
                 batch_size: int) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.stored, self.batch_size = stored, batch_size

    def list_parts(self) -> list[str]:
        return [f"{self.topic}-{p}" for p in topic_partitions(self.bootstrap, self.topic)]

    def build_part(self, step_id: str, for_part: str,
                   resume_state: int | None) -> _StoredReader:
        config = consumer_config(self.bootstrap) | {"group.id": "basketflow-unused",
                                                     "enable.auto.commit": False}
        return _StoredReader(config, self.topic, int(for_part.rsplit("-", 1)[1]),
                             self.stored, self.batch_size)


def discard_for_rebuild(settings: Settings, recovery_dirs: list[Path]) -> None:
    """Check that the state can be rebuilt exactly (:func:`check_rebuildable`), then
    discard these recovery directories: done once, before the processes that rebuild
    them start their flows."""
    check_rebuildable(settings)
    for recovery_dir in recovery_dirs:
        shutil.rmtree(recovery_dir, ignore_errors=True)


def rebuild_state(settings: Settings, recovery_dir: Path, parts: tuple[str, ...], *,
                  max_batch: int, snapshot_seconds: float,
                  scoring: ScoringConfig | None) -> None:
    """Run the given parts of the live flow over the stored messages, with recovery
    snapshots in ``recovery_dir`` (discarded first: :func:`discard_for_rebuild`), to the
    boundary of every partition. ``settings`` must have both addresses."""
    assert settings.kafka_bootstrap
    source = StoredSource(settings.kafka_bootstrap, settings.topic,
                          stored_messages(settings.offline_dir), max_batch)
    flow = build_live_flow(settings, True, FlowStats(), settings.allowed_lateness,
                           scoring if SERVE in parts else None, max_batch, parts,
                           source=source)
    run_flow(flow, RunOptions(recovery_dir=recovery_dir, snapshot_seconds=snapshot_seconds))
