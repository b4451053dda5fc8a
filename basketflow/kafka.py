"""The Kafka settings every basketflow process shares: topic creation and client configs.

Topic configs are always given explicitly at creation, because the embedded broker
(Tansu) reports only the configs it was created with. Consumers are assigned partitions,
never joined to a group: a group join takes ~20 s on the embedded broker, and Bytewax
keeps its own offsets in its recovery snapshots anyway.
"""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from basketflow.errors import BasketflowError

#: Events are kept: the topic is the replayable log behind backfill and recovery.
TOPIC_CONFIG = {"retention.ms": "-1", "cleanup.policy": "delete"}
DEFAULT_PARTITIONS = 3


class BrokerUnavailable(BasketflowError, RuntimeError):
    """The broker did not answer; the message says where we looked and what to do."""


def producer_config(bootstrap: str) -> dict[str, object]:
    """A producer tuned for throughput: batches of up to 20 ms, compressed, acks=all."""
    return {
        "bootstrap.servers": bootstrap,
        "linger.ms": 20,
        "batch.num.messages": 10_000,
        "queue.buffering.max.messages": 500_000,
        "compression.type": "lz4",
        "acks": "all",
        "enable.idempotence": False,
    }


def consumer_config(bootstrap: str) -> dict[str, object]:
    """Large fetches for catch-up reads; offsets are ours, so no group commits. The flow
    has a consumer per partition, each prefetching up to ``queued.max.messages.kbytes``
    while it catches up: 16 MB still holds more than one fetch, and a flow process
    catching up holds 80-120 MB less than with librdkafka's default, 64 MB
    (``benchmarks/memory.py``)."""
    return {
        "bootstrap.servers": bootstrap,
        "fetch.max.bytes": 50 * 1024 * 1024,
        "max.partition.fetch.bytes": 10 * 1024 * 1024,
        "fetch.wait.max.ms": 50,
        "queued.max.messages.kbytes": 16 * 1024,
    }


def ensure_topics(bootstrap: str, topics: dict[str, int], timeout: float = 10.0) -> list[str]:
    """Create the topics (name -> partitions) that do not exist yet; return those created."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise BrokerUnavailable(
            f"no Kafka broker answers at {bootstrap} ({exc}); start one with "
            "`basketflow up` or set KAFKA_BOOTSTRAP_SERVERS") from exc
    wanted = [NewTopic(name, partitions, 1, config=dict(TOPIC_CONFIG))
              for name, partitions in topics.items() if name not in existing]
    if not wanted:
        return []
    for name, future in admin.create_topics(wanted, operation_timeout=timeout).items():
        try:
            future.result(timeout)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return [t.topic for t in wanted]

