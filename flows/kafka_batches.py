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

**Offsets that no longer fit the topic.** A restarted embedded broker starts with empty
topics, and a real Kafka topic can be deleted and recreated, or lose messages to retention
before the flow reads them: the stored offsets then point past the partition's end, or
into another topic's messages, and reading on would skip events without a word (or, with
``--stop-at-end``, never end). So before a run :func:`check_topic_ids` compares each
topic's id with the one recorded beside the recovery state, and while reading a partition
stops the flow when its next offset lies beyond the end the broker's fetch responses give
(the *cached* high watermark, right on Tansu, unlike its ListOffsets answer) or when the
broker says the offset is out of range (``auto.offset.reset`` is ``error``). Either way
the whole flow ends its epoch cleanly and the run raises :class:`TopicOffsetsLost`, one
line that says to run ``basketflow run --from-start`` or ``--reset-offsets
earliest|latest``. Raising inside the dataflow instead would print a Rust panic.

**A broker outage** is one warning when it starts (librdkafka's "all brokers are down",
through the consumers' ``error_cb``) and one line when it ends (a metadata request of the
idle reader answers again, asked once a second), recorded in the flow's health file for
``basketflow status`` (:mod:`basketflow.sinks.flow_health`). librdkafka's own log, about
140 lines a second while the broker is down, goes to the ``basketflow.librdkafka`` logger,
shown with ``-v`` only. A topic gone when the broker is back (a restarted embedded broker
starts empty) stops the flow as above.

**Positions for the metrics.** :func:`partition_positions` gives each open reader's next
offset and its partition's end as the fetch responses give it, so the flow's metrics
(:mod:`basketflow.flows.flow_metrics`) report a lag that is right on Tansu too.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import msgspec
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from basketflow.errors import BasketflowError
from basketflow.kafka import admin_config, client_config
from basketflow.flows import idle_work, stopping
from basketflow.flows.event_clock import CAUGHT_UP, DELIVERING, ENDED
from basketflow.sinks.flow_health import FlowHealth, Outage

DEFAULT_MAX_BATCH = 20_000
#: With ``stop_at_end``, the longest one poll waits while it fills a batch.
FULL_BATCH_WAIT_S = 0.01
#: ``--reset-offsets`` values: read each partition from its first or from its end.
EARLIEST, LATEST = "earliest", "latest"
RESETS = (EARLIEST, LATEST)
#: The file beside a flow's recovery state that records the id of each topic it reads.
TOPIC_IDS_FILE = "topic-ids.json"
WAY_OUT = ("run `basketflow run --from-start` to discard the flow's state for this topic "
           "and read it from its beginning, or `basketflow run --reset-offsets "
           "earliest|latest` to keep the state and read from the first or the newest "
           "message")
#: librdkafka's own log (connection failures many times a second during an outage):
#: shown when basketflow logs at DEBUG (``-v``), else dropped.
LIBRDKAFKA_LOG = logging.getLogger("basketflow.librdkafka")
LIBRDKAFKA_LOG.addFilter(lambda record: logging.getLogger().isEnabledFor(logging.DEBUG))
#: Seconds between two metadata requests of an idle reader while the broker is down.
PROBE_EVERY = 1.0
#: The broker outage as this process's readers see it (one for all of them).
_outages: dict[str, Outage] = {}


def broker_outage(bootstrap: str, health: FlowHealth) -> Outage:
    """This process's :class:`Outage` of the broker at ``bootstrap``, recorded in
    ``health`` (one for every reader of a flow)."""
    return _outages.setdefault(f"{bootstrap} {health.path}", Outage(
        "broker", f"the Kafka broker at {bootstrap}", health, fields="broker_"))


#: Seconds between two looks at a topic's id while a flow reads it.
TOPIC_CHECK_EVERY = 5.0


class TopicIdWatch:
    """Whether a topic was deleted and created again while the flow reads it: its id, as
    the broker gave it when the flow started, looked at again every
    :data:`TOPIC_CHECK_EVERY` seconds (one admin client and one request for every
    reader of the topic in this process). Offsets carry over into a recreated topic, so
    a new topic with more messages than the flow's offsets would be read on from there,
    its first messages skipped without a word."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._admin = AdminClient(client_config(bootstrap) | {"log_level": 0})
        self._topic = topic
        self._id = self._current()
        self._next = time.monotonic() + TOPIC_CHECK_EVERY
        self.changed = False

    def _current(self) -> str | None:
        """The topic's id now (None: the broker did not answer or has none)."""
        return described_id(self._admin, self._topic, 1.0)

    def look(self) -> bool:
        """Whether the topic's id has changed (asks the broker when it is time)."""
        if self.changed or self._id is None or time.monotonic() < self._next:
            return self.changed
        self._next = time.monotonic() + TOPIC_CHECK_EVERY
        now = self._current()
        self.changed = now is not None and now != self._id
        return self.changed


_watches: dict[str, TopicIdWatch] = {}


def topic_watch(bootstrap: str, topic: str) -> TopicIdWatch:
    """This process's :class:`TopicIdWatch` of ``topic`` (one for every reader)."""
    key = f"{bootstrap} {topic}"
    if key not in _watches:
        _watches[key] = TopicIdWatch(bootstrap, topic)
    return _watches[key]


#: Consumer errors that mean the stored offset is not in the partition any more.
_OUT_OF_RANGE = (KafkaError.OFFSET_OUT_OF_RANGE, KafkaError._AUTO_OFFSET_RESET)


class TopicOffsetsLost(BasketflowError):
    """The flow's stored offsets do not fit the topic any more (recreated topic, offset
    past the end or out of range); the message says which and what to do."""


#: The fault a partition reader met in this process (at most one is kept): every reader
#: then ends, and :func:`raise_fault` raises it once the dataflow has stopped.
_faults: list[TopicOffsetsLost] = []


def clear_fault() -> None:
    """Forget a fault, and the topic ids, of an earlier flow in this process (before a
    flow starts)."""
    _faults.clear()
    _watches.clear()


def raise_fault() -> None:
    """Raise the fault a reader met while the flow ran, if any (after it stopped)."""
    if _faults:
        raise _faults[0]


def topic_id(bootstrap: str, topic: str, timeout: float = 10.0) -> str | None:
    """The broker's id of ``topic`` (None when it has none, or does not say)."""
    return described_id(AdminClient(client_config(bootstrap) | {"log_level": 0}), topic,
                        timeout)


def described_id(admin: AdminClient, topic: str, timeout: float) -> str | None:
    """The id of ``topic`` as ``admin``'s broker describes it (None: no answer, or none)."""
    try:
        found = admin.describe_topics(TopicCollection([topic]))[topic].result(timeout)
    except (KafkaException, TimeoutError):  # no answer in time: a busy or absent broker
        return None
    return str(found.topic_id) if found.topic_id is not None else None


def check_topic_ids(bootstrap: str, topics: list[str], recovery_dir: Path,
                    accept: bool = False) -> None:
    """Compare each topic's id with the one recorded in ``recovery_dir`` when the flow's
    state was made there; raise :class:`TopicOffsetsLost` when one changed (the topic was
    recreated, so the stored offsets mean nothing in it), unless ``accept`` (offsets are
    being reset). Record the current ids, so the next run compares with them."""
    path = recovery_dir / TOPIC_IDS_FILE
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        recorded = {}
    current = {topic: topic_id(bootstrap, topic) for topic in topics}
    has_state = any(recovery_dir.glob("part-*.sqlite3"))
    changed = [t for t, tid in current.items()
               if tid is not None and recorded.get(t) not in (None, tid)]
    if changed and has_state and not accept:
        raise TopicOffsetsLost(
            f"topic {changed[0]!r} was recreated since the flow's state in {recovery_dir} "
            "was made (its id changed: a restarted embedded broker starts with empty "
            "topics), so its stored offsets point at other messages and reading on would "
            f"skip events; {WAY_OUT}")
    merged = recorded | {t: tid for t, tid in current.items() if tid is not None}
    if merged != recorded:
        recovery_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(merged))
        tmp.replace(path)


def topic_partitions(bootstrap: str, topic: str) -> list[int]:
    """The partition numbers of ``topic``, in order."""
    meta = AdminClient(admin_config(bootstrap)).list_topics(topic, timeout=10)
    info = meta.topics[topic]
    if info.error is not None:
        raise RuntimeError(f"cannot list partitions of topic {topic!r}: {info.error}")
    return sorted(info.partitions)


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
    #: Not a message: the reader's mark that the partition has nothing more for now
    #: (:data:`~basketflow.flows.event_clock.CAUGHT_UP`) or for good (``ENDED``).
    quiet: int = DELIVERING


class PartitionPosition(msgspec.Struct, frozen=True):
    """Where a reader is in its partition: the next offset to read (0 before its first
    message) and the partition's end (its high watermark) as the last fetch gave it."""

    topic: str
    partition: int
    next_offset: int
    end_offset: int


#: The partition readers open in this process (see :func:`partition_positions`).
_readers: set[_PartitionReader] = set()


def partition_positions() -> list[PartitionPosition]:
    """Each open reader's position, for a reader that has had a fetch response (safe to
    call from another thread: the client's cached watermarks are read under its lock)."""
    found = []
    for reader in list(_readers):
        try:
            end = reader._high_watermark()
        except (RuntimeError, KafkaException):  # closed meanwhile
            continue
        if end >= 0:
            found.append(PartitionPosition(reader._topic, reader._partition,
                                           max(reader._offset, 0), end))
    return found


#: The longest a reader waits for the topic's metadata before it starts.
METADATA_WAIT_S = 1.0


def _learn_leader(consumer: Consumer, topic: str) -> None:
    """Ask for the topic's metadata before a partition is assigned at a logical offset
    (its beginning or end): librdkafka looks that offset up only once it knows the
    partition's leader, and when the assignment comes first it retries on a fixed
    half-second timer, which every empty or new topic would wait. A broker that does not
    answer is left to the reader's own outage handling."""
    try:
        consumer.list_topics(topic, timeout=METADATA_WAIT_S)
    except KafkaException:
        pass


class _PartitionReader(StatefulSourcePartition[list[RawMessage], int]):
    """Reads one partition; its snapshot is the next offset to read. ``to_end`` starts at
    the partition's end (``--reset-offsets latest``), found from the first fetch."""

    def __init__(self, config: dict[str, object], topic: str, partition: int,
                 offset: int, batch_size: int, stop_at_end: bool,
                 to_end: bool = False, outage: Outage | None = None,
                 watch: TopicIdWatch | None = None) -> None:
        self._outage = outage or broker_outage(str(config["bootstrap.servers"]),
                                               FlowHealth.at(None))
        self._watch = watch
        self._next_probe = 0.0
        self._consumer = Consumer(config | {"enable.partition.eof": stop_at_end,
                                            "auto.offset.reset": "error",
                                            "error_cb": self._on_error,
                                            "logger": LIBRDKAFKA_LOG})
        start = OFFSET_BEGINNING if to_end else offset
        if start < 0:
            _learn_leader(self._consumer, topic)
        self._consumer.assign([TopicPartition(topic, partition, start)])
        self._topic = topic
        self._partition = partition
        self._offset = offset
        self._batch_size = batch_size
        self._stop_at_end = stop_at_end
        self._ended = False
        self._to_end = to_end
        self._said_caught_up = False
        _readers.add(self)

    def _on_error(self, err: KafkaError) -> None:
        """librdkafka's error callback: "all brokers are down" starts an outage."""
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self._outage.down(err.str(), "the flow waits for it and reads nothing meanwhile")

    def _probe(self) -> None:
        """While the broker is down, on an idle poll: ask for the topic's metadata (once
        a second); an answer ends the outage, and a topic gone meanwhile stops the flow."""
        if self._outage.since is None or time.monotonic() < self._next_probe:
            return
        self._next_probe = time.monotonic() + PROBE_EVERY
        try:
            meta = self._consumer.list_topics(self._topic, timeout=0.5)
        except KafkaException:
            return
        self._outage.back("the flow reads on")
        found = meta.topics.get(self._topic)
        if found is None or found.error is not None:
            self._fault("cannot be read: the topic no longer exists on the broker")

    def _high_watermark(self) -> int:
        """The partition's end as the last fetch response gave it (-1: none yet). Not
        ``get_watermark_offsets(cached=False)``: Tansu's ListOffsets answer is wrong."""
        return int(self._consumer.get_watermark_offsets(
            TopicPartition(self._topic, self._partition), cached=True)[1])

    def _fault(self, what: str, read: str = "nothing past it was read") -> None:
        """Stop the flow: every reader ends, and the run raises the fault afterwards."""
        if not _faults:
            _faults.append(TopicOffsetsLost(
                f"the flow's next offset {self._offset} of topic {self._topic!r} partition "
                f"{self._partition} {what} (the topic was recreated, or its messages were "
                f"deleted before the flow read them); {read}; {WAY_OUT}"))
        self._ended = True

    def _seek_end(self) -> bool:
        """For ``to_end``: once a fetch gave the partition's end, move there; whether the
        reader is there (the messages fetched before are below the end: dropped)."""
        high = self._high_watermark()
        if high < 0:
            self._consumer.consume(self._batch_size, 0)
            return False
        self._offset, self._to_end = high, False
        self._consumer.seek(TopicPartition(self._topic, self._partition, high))
        return True

    def next_batch(self) -> list[list[RawMessage]]:
        if self._ended or stopping.requested() or _faults:
            raise StopIteration()
        if self._watch is not None and self._watch.look():
            self._fault("belongs to another topic now: the topic was deleted and created "
                        "again while the flow read it (its id changed)",
                        f"what the flow read of the new topic in the last "
                        f"{TOPIC_CHECK_EVERY:.0f} s is stored, and a re-read counts it once "
                        "(events are known by their content)")
            return []
        if self._to_end and not self._seek_end():
            return []
        batch: list[RawMessage] = []
        for msg in self._poll():
            err = msg.error()
            if err is not None and err.code() == KafkaError._PARTITION_EOF:
                self._ended = True
                break
            offset = msg.offset()
            if err is not None and err.code() in _OUT_OF_RANGE:
                self._fault(f"is out of range for the broker ({err.str()})")
                return []
            if err is not None:
                batch.append(RawMessage(self._topic, self._partition, offset if offset else -1,
                                        msg.value(), 0, str(err)))
                continue
            batch.append(RawMessage(self._topic, self._partition, offset, msg.value(),
                                    msg.timestamp()[1]))
            self._offset = offset + 1
        if batch and self._outage.since is not None:
            self._outage.back("the flow reads on")
        if self._ended:  # read to the end for good: the clock stops waiting for it now
            batch.append(self._mark(ENDED))
        elif batch:
            self._said_caught_up = False
        else:
            self._probe()
            high = self._high_watermark()
            if 0 <= high < self._offset:
                self._fault(f"lies beyond the partition's end ({high})")
                return []
            idle_work.this_thread().run()  # nothing new to read: work deferred to now
            if not self._said_caught_up and self._caught_up():
                self._said_caught_up = True
                return [[self._mark(CAUGHT_UP)]]
        return [batch] if batch else []

    def _mark(self, quiet: int) -> RawMessage:
        """The mark that this partition has nothing more to deliver, for now or for good."""
        return RawMessage(self._topic, self._partition, self._offset, None, 0, quiet=quiet)

    def _caught_up(self) -> bool:
        """Whether the reader has read everything the partition held at the last fetch
        response (an empty partition included)."""
        low, high = self._consumer.get_watermark_offsets(
            TopicPartition(self._topic, self._partition), cached=True)
        position = self._offset if self._offset >= 0 else max(int(low), 0)
        return 0 <= high <= position

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
            if any(msg.error() is not None for msg in more):
                break  # the partition's end, or an error :meth:`next_batch` deals with
            if not more and 0 <= self._high_watermark() < self._offset:
                break  # past the partition's end: :meth:`next_batch` stops the flow
        return got

    def snapshot(self) -> int:
        return self._offset

    def close(self) -> None:
        _readers.discard(self)
        self._consumer.close()


class KafkaBatchSource(FixedPartitionedSource[list[RawMessage], int]):
    """Every partition of one topic, as lists of :class:`RawMessage` per poll.

    A poll takes up to ``batch_size`` messages: large batches cost less CPU per event
    while a backlog is read (each product's values are computed once per batch), and a
    flow that keeps up with the topic gets small batches anyway.

    ``reset`` (``earliest`` or ``latest``, :data:`RESETS`) reads every partition from its
    first message or from its end instead of from the offset in the recovery state;
    ``health_path`` is the flow's health file, where a broker outage is recorded.
    """

    def __init__(self, bootstrap: str, topic: str, consumer_config: dict[str, object],
                 stop_at_end: bool, batch_size: int = DEFAULT_MAX_BATCH,
                 reset: str | None = None, health_path: Path | None = None) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.config = consumer_config | {"group.id": "basketflow-unused",
                                         "enable.auto.commit": False}
        self.stop_at_end = stop_at_end
        self.batch_size = batch_size
        self.reset = reset
        self.health_path = health_path

    def list_parts(self) -> list[str]:
        """One Bytewax partition per Kafka partition."""
        return [f"{self.topic}-{p}" for p in topic_partitions(self.bootstrap, self.topic)]

    def build_part(self, step_id: str, for_part: str,
                   resume_state: int | None) -> _PartitionReader:
        partition = int(for_part.rsplit("-", 1)[1])
        offset = OFFSET_BEGINNING if resume_state is None or self.reset else resume_state
        return self.reader_at(partition, offset)

    def reader_at(self, partition: int, offset: int,
                  stop_at_end: bool | None = None) -> _PartitionReader:
        """The reader of one partition from ``offset`` (or :data:`RESETS`' place), to the
        partition's end when ``stop_at_end`` (None: as this source reads)."""
        return _PartitionReader(self.config, self.topic, partition, offset, self.batch_size,
                                self.stop_at_end if stop_at_end is None else stop_at_end,
                                self.reset == LATEST,
                                broker_outage(self.bootstrap, FlowHealth.at(self.health_path)),
                                topic_watch(self.bootstrap, self.topic))
