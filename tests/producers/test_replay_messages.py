"""The replay sends exactly what the line-by-line reader makes of the file: every valid
line once, on the partition of its key, with the value and id ``encode_event`` gives it,
and every bad line as the same dead letter with the same reason.

Over the seeded generator's data with every odd line of ``test_csv_blocks`` mixed in, on
the session's real broker; the reference is ``read_events_by_line`` (``csv.reader`` and
``parse_row`` on each record), produced one message at a time.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from basketflow.config import Settings
from basketflow.kafka import ensure_topics, producer_config
from basketflow.producers.csv_source import read_events_by_line
from basketflow.producers.replay import replay
from basketflow.schemas.events import Transaction, encode_event
from tests.producers.test_csv_blocks import mixed_file

PARTITIONS = 3


def topic_contents(bootstrap: str, topic: str, partitions: int) -> list[list[tuple[bytes, bytes]]]:
    """Every message (key, value) of each partition of ``topic``, in offset order."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "test",
                         "enable.partition.eof": True, "enable.auto.commit": False})
    found: list[list[tuple[bytes, bytes]]] = []
    try:
        for partition in range(partitions):
            consumer.assign([TopicPartition(topic, partition, 0)])
            messages: list[tuple[bytes, bytes]] = []
            while True:
                msg = consumer.poll(10)
                assert msg is not None, f"{topic}[{partition}]: no end within 10 s"
                if msg.error():
                    assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                    break
                messages.append((msg.key(), msg.value()))
            found.append(messages)
    finally:
        consumer.close()
    return found


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """Generated lines with every odd line put in after every 61st line."""
    return mixed_file(tmp_path, 4000, seed=5, every=61)


def test_replay_sends_what_the_line_reader_makes_of_the_file(settings: Settings,
                                                             mixed: Path) -> None:
    bootstrap = settings.kafka_bootstrap
    assert bootstrap
    summary = replay(mixed, bootstrap, settings.topic, settings.dead_topic,
                     partitions=PARTITIONS)
    reference = list(read_events_by_line(mixed))
    valid = [t for t in reference if isinstance(t, Transaction)]
    rejected = [r for r in reference if not isinstance(r, Transaction)]
    assert (summary.sent, summary.rejected, summary.delivery_errors) == \
        (len(valid), len(rejected), 0)
    assert rejected, "the odd lines include bad ones"

    # The reference, produced one message at a time as before, to a topic of its own.
    producer = Producer(producer_config(bootstrap))
    expected_topic = f"{settings.topic}-expected"
    ensure_topics(bootstrap, {expected_topic: PARTITIONS})
    for t in valid:
        producer.produce(expected_topic, encode_event(t), t.entity_id)
    producer.flush()

    assert topic_contents(bootstrap, settings.topic, PARTITIONS) == \
        topic_contents(bootstrap, expected_topic, PARTITIONS)
    dead = topic_contents(bootstrap, settings.dead_topic, 1)[0]
    assert [value for _key, value in dead] == [r.to_json() for r in rejected]
    assert [key.decode() for key, _value in dead] == [r.event_id for r in rejected]


def test_replay_limit_counts_lines_of_both_kinds(settings: Settings, mixed: Path) -> None:
    bootstrap = settings.kafka_bootstrap
    assert bootstrap
    summary = replay(mixed, bootstrap, settings.topic, settings.dead_topic, limit=200)
    reference = list(read_events_by_line(mixed))[:200]
    assert summary.sent == sum(isinstance(t, Transaction) for t in reference)
    assert summary.sent + summary.rejected == 200
