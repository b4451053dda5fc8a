"""Replay a Kaggle transactions file into Kafka, paced by event time.

Every valid line becomes one message on the events topic, keyed by its entity (the
customer, or the invoice for a guest) so one customer's events stay in order on one
partition. Every invalid line becomes a dead letter on the dead-letter topic, with the
raw line and the reason. Nothing is dropped silently: the summary accounts for every line.

Pacing: ``speedup`` plays that many seconds of event time per wall-clock second (the
first event is sent at once); ``rate`` caps events per second. Both may be combined;
neither means as fast as the broker takes them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from confluent_kafka import KafkaError, Message, Producer

from basketflow.kafka import DEFAULT_PARTITIONS, ensure_topics, producer_config
from basketflow.producers.csv_source import read_event_blocks
from basketflow.schemas.events import Rejection, Transaction, encode_event, encode_events


@dataclass
class ReplaySummary:
    """What a replay did, line by line accounted for."""

    path: str
    topic: str
    dead_topic: str
    sent: int = 0
    rejected: int = 0
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)
    delivery_errors: int = 0
    #: The first rejected line of each kind of reason: its reason with the values, and
    #: where it is (``file:line``), so a summary can show one real case of each.
    examples: dict[str, str] = field(default_factory=dict)

    @property
    def events_per_second(self) -> float:
        """Lines (valid and rejected) handed to the broker per wall second."""
        return (self.sent + self.rejected) / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, object]:
        """Plain data for ``--json``."""
        return asdict(self) | {"events_per_second": round(self.events_per_second, 1)}


class Pacer:
    """Sleeps just enough to honour an event-time speed-up and a rate cap."""

    def __init__(self, speedup: float | None, rate: float | None) -> None:
        self.speedup = speedup
        self.rate = rate
        self._wall0: float | None = None
        self._event0 = 0
        self._count = 0

    def wait(self, ts: int) -> None:
        """Block until the event of time ``ts`` is due."""
        now = time.monotonic()
        if self._wall0 is None:
            self._wall0, self._event0 = now, ts
        self._count += 1
        due = self._wall0
        if self.speedup:
            due = max(due, self._wall0 + (ts - self._event0) / self.speedup)
        if self.rate:
            due = max(due, self._wall0 + self._count / self.rate)
        if due > now:
            time.sleep(due - now)


def _produce(producer: Producer, topic: str, value: bytes, key: str | None) -> None:
    """Hand one message to the client, waiting for room when its queue is full."""
    while True:
        try:
            producer.produce(topic, value, key)
            return
        except BufferError:
            producer.poll(0.05)


def replay(path: str | Path, bootstrap: str, topic: str, dead_topic: str, *,
           partitions: int = DEFAULT_PARTITIONS, speedup: float | None = None,
           rate: float | None = None, limit: int | None = None,
           on_progress: Callable[[int, int], None] | None = None) -> ReplaySummary:
    """Send the file's lines to ``topic`` (valid) and ``dead_topic`` (rejected).

    ``on_progress(lines_done, raw_bytes_read)`` is called every few thousand lines.
    Raises ``BadInputFile`` for a file that is not a Kaggle transactions file and
    ``BrokerUnavailable`` when no broker answers.
    """
    ensure_topics(bootstrap, {topic: partitions, dead_topic: 1})
    summary = ReplaySummary(str(path), topic, dead_topic)

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            summary.delivery_errors += 1

    producer = Producer(producer_config(bootstrap) | {"delivery.report.only.error": True,
                                                      "on_delivery": on_delivery})
    pacer = Pacer(speedup, rate) if (speedup or rate) else None
    raw_progress = [0]
    done = 0
    start = time.perf_counter()
    for items in read_event_blocks(path, raw_progress):
        if limit is not None:
            items = items[:max(limit - done, 0)]
        for first in range(0, len(items), PROGRESS_EVERY):
            chunk = items[first:first + PROGRESS_EVERY]
            events = [t for t in chunk if type(t) is Transaction]
            if pacer:
                _send_paced(producer, topic, events, pacer)
            else:
                _send_all(producer, topic, events)
            summary.sent += len(events)
            if len(events) < len(chunk):
                for item in chunk:
                    if type(item) is Rejection:
                        _send_dead(producer, dead_topic, item, summary)
            done += len(chunk)
            producer.poll(0)
            if on_progress:
                on_progress(done, raw_progress[0])
        if limit is not None and done >= limit:
            break
    producer.flush()
    summary.seconds = time.perf_counter() - start
    return summary


#: Lines handed to the client between two looks at its delivery reports and progress.
PROGRESS_EVERY = 5000


def _send_all(producer: Producer, topic: str, events: list[Transaction]) -> None:
    """Hand the events to the client as fast as it takes them: their values encoded in
    one call, then one ``produce`` each (keyed by entity, so the client's partitioner
    puts them where ``produce`` of each alone would)."""
    produce = producer.produce
    for value, event in zip(encode_events(events), events):
        try:
            produce(topic, value, event.entity_id)
        except BufferError:
            _produce(producer, topic, value, event.entity_id)


def _send_paced(producer: Producer, topic: str, events: list[Transaction],
                pacer: Pacer) -> None:
    """Hand the events to the client one at a time, each when the pacer says it is due."""
    for event in events:
        pacer.wait(event.ts)
        _produce(producer, topic, encode_event(event), event.entity_id)


def _send_dead(producer: Producer, dead_topic: str, item: Rejection,
               summary: ReplaySummary) -> None:
    """Dead-letter one rejected line and count its reason."""
    _produce(producer, dead_topic, item.to_json(), item.event_id)
    summary.rejected += 1
    kind = reason_kind(item.reason)
    summary.reasons[kind] = summary.reasons.get(kind, 0) + 1
    if kind not in summary.examples:
        summary.examples[kind] = f"{item.reason} ({where(item.event_id)})"


def where(event_id: str | None) -> str:
    """Where a rejected line is, from its event id (``<file>:<line>``).

    >>> where("sample.csv:12")
    'line 12 of sample.csv'
    """
    name, _, line = (event_id or "").rpartition(":")
    return f"line {line} of {name}" if line.isdigit() else f"event {event_id}"


def reason_kind(reason: str) -> str:
    """A reason with its line-specific values masked, so like reasons count together."""
    return _VALUES.sub("…", reason.split(":", 1)[0] if reason.startswith("not ") else reason)


_VALUES = re.compile(r"'[^']*'|\"[^\"]*\"|[-+]?\d[\d.e+]*")
