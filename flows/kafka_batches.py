"""A Bytewax source that reads Kafka partitions in micro-batches.

Bytewax's own ``KafkaSource`` emits one item per message, and every item then pays the
framework's per-item cost at every step. This source emits one item
per poll: the list of messages read, as light :class:`RawMessage` tuples. Steps downstream
work on whole batches, and regroup them by entity, so the framework's cost is paid per
batch and per entity rather than per message.

Like Bytewax's source it assigns partitions (no consumer group: a group join is slow on
the embedded broker) and keeps each partition's next offset in the recovery snapshot.
With ``stop_at_end`` a partition ends at its partition-EOF event, which is right on every
broker (watermarks are not: see docs/DESIGN.md on the embedded Tansu broker).
"""

from __future__ import annotations

import msgspec
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from basketflow.flows import idle_work, stopping

DEFAULT_MAX_BATCH = 20_000
#: With ``stop_at_end``, the longest one poll waits while it fills a batch.
FULL_BATCH_WAIT_S = 0.1


class RawMessage(msgspec.Struct, frozen=True):
    """One message (or consumer error) as read, before decoding (a msgspec Struct, built
    in C: one is made per message, and a ``NamedTuple``'s Python-level constructor is a
    visible share of a flow's time)."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    timestamp_ms: int
    error: str | None = None


class _PartitionReader(StatefulSourcePartition[list[RawMessage], int]):
    """Reads one partition; its snapshot is the next offset to read."""

    def __init__(self, config: dict[str, object], topic: str, partition: int,
                 offset: int, batch_size: int, stop_at_end: bool) -> None:
        self._consumer = Consumer(config | {"enable.partition.eof": stop_at_end})
        self._consumer.assign([TopicPartition(topic, partition, offset)])
        self._topic = topic
        self._partition = partition
        self._offset = offset
        self._batch_size = batch_size
        self._stop_at_end = stop_at_end
        self._ended = False

    def next_batch(self) -> list[list[RawMessage]]:
        if self._ended or stopping.requested():
            raise StopIteration()
        batch: list[RawMessage] = []
        for msg in self._poll():
            err = msg.error()
            if err is not None and err.code() == KafkaError._PARTITION_EOF:
                self._ended = True
                break
            offset = msg.offset()
            if err is not None:
                batch.append(RawMessage(self._topic, self._partition, offset if offset else -1,
                                        msg.value(), 0, str(err)))
                continue
            batch.append(RawMessage(self._topic, self._partition, offset, msg.value(),
                                    msg.timestamp()[1]))
            self._offset = offset + 1
        if not batch:
            idle_work.this_thread().run()  # nothing new to read: work deferred to now
        return [batch] if batch else []

    def _poll(self) -> list[Message]:
        """The next messages: what the client has fetched when tailing; a full batch (or
        up to the partition's end) with ``stop_at_end``.

        Tailing, the timeout is 0: take what the client has fetched, never wait.
        ``consume`` waits for a full batch or its timeout, and one worker polls every
        partition in turn, so any wait per poll holds each tailed line up to that wait
        times the partitions. Bytewax itself waits 1 ms before polling a partition that
        had nothing again.

        A run to the end of the topic has no latency to keep low, and full batches make
        it deterministic: what arrived by each poll depends on timing, so with timed
        batches the order in which the one scoring step sees the partitions' customers
        (and hence every live score: the model learns as it goes) changes from run to
        run over the same topic; with full batches it is the same every run.
        """
        if not self._stop_at_end:
            return self._consumer.consume(self._batch_size, 0)
        got: list[Message] = []
        while len(got) < self._batch_size and not stopping.requested():
            more = self._consumer.consume(self._batch_size - len(got), FULL_BATCH_WAIT_S)
            got.extend(more)
            if more and more[-1].error() is not None \
                    and more[-1].error().code() == KafkaError._PARTITION_EOF:
                break
        return got

    def snapshot(self) -> int:
        return self._offset

    def close(self) -> None:
        self._consumer.close()


class KafkaBatchSource(FixedPartitionedSource[list[RawMessage], int]):
    """Every partition of one topic, as lists of :class:`RawMessage` per poll.

    A poll takes up to ``batch_size`` messages: large batches cost less CPU per event
    while a backlog is read (each product's values are computed once per batch), and a
    flow that keeps up with the topic gets small batches anyway.
    """

    def __init__(self, bootstrap: str, topic: str, consumer_config: dict[str, object],
                 stop_at_end: bool, batch_size: int = DEFAULT_MAX_BATCH) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.config = consumer_config | {"group.id": "basketflow-unused",
                                         "enable.auto.commit": False}
        self.stop_at_end = stop_at_end
        self.batch_size = batch_size

    def list_parts(self) -> list[str]:
        """One Bytewax partition per Kafka partition."""
        meta = AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(
            self.topic, timeout=10)
        info = meta.topics[self.topic]
        if info.error is not None:
            raise RuntimeError(f"cannot list partitions of topic {self.topic!r}: {info.error}")
        return [f"{self.topic}-{p}" for p in sorted(info.partitions)]

    def build_part(self, step_id: str, for_part: str,
                   resume_state: int | None) -> _PartitionReader:
        partition = int(for_part.rsplit("-", 1)[1])
        offset = OFFSET_BEGINNING if resume_state is None else resume_state
        return _PartitionReader(self.config, self.topic, partition, offset,
                                self.batch_size, self.stop_at_end)
