"""The Kafka settings every basketflow process shares: topic creation and client configs.

Topic configs are always given explicitly at creation, because the embedded broker
(Tansu) reports only the configs it was created with. Consumers are assigned partitions,
never joined to a group: a group join takes ~20 s on the embedded broker, and Bytewax
keeps its own offsets in its recovery snapshots anyway.

Every client is configured from :func:`client_config`, which adds the SASL and TLS
settings of the environment (:func:`basketflow.security.kafka_security`), so a producer,
a consumer and an admin client authenticate alike wherever they are made.
"""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from basketflow.errors import BasketflowError
from basketflow.security import kafka_security, redact

#: Events are kept: the topic is the replayable log behind backfill and recovery.
TOPIC_CONFIG = {"retention.ms": "-1", "cleanup.policy": "delete"}
DEFAULT_PARTITIONS = 3


class BrokerUnavailable(BasketflowError, RuntimeError):
    """The broker did not answer; the message says where we looked and what to do."""


def client_config(bootstrap: str) -> dict[str, object]:
    """What every client of ``bootstrap`` is given: its address and the environment's
    SASL and TLS settings (none by default: plaintext, as the embedded broker speaks)."""
    return {"bootstrap.servers": bootstrap, **kafka_security()}


def admin_config(bootstrap: str) -> dict[str, object]:
    """An admin client's settings: librdkafka's own lines only from warnings up. An admin
    client is a producer handle inside, whose notices at close (a background queue purged)
    would otherwise reach the user's terminal."""
    return client_config(bootstrap) | {"log_level": 4}


def producer_config(bootstrap: str) -> dict[str, object]:
    """A producer tuned for throughput: batches of up to 20 ms, compressed, acks=all;
    librdkafka's own lines only from warnings up (its notices and info, such as a
    background queue purged at close, are no business of the user's terminal)."""
    return client_config(bootstrap) | {
        "log_level": 4,
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
    while it catches up: 16 MB (librdkafka's default is 64) still holds more than one
    fetch (what it saves: docs/PERFORMANCE.md, "Bounded memory")."""
    return client_config(bootstrap) | {
        "fetch.max.bytes": 50 * 1024 * 1024,
        "max.partition.fetch.bytes": 10 * 1024 * 1024,
        "fetch.wait.max.ms": 50,
        "queued.max.messages.kbytes": 16 * 1024,
    }


def _authentication_errors(into: list[str]) -> Callable[[KafkaError], None]:
    """A client's ``error_cb`` that keeps the text of every authentication failure (a
    SASL user or password, or a certificate, refused), redacted, in ``into``."""
    def record(error: KafkaError) -> None:
        if error.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL):
            into.append(redact(error.str()))
    return record


def ensure_topics(bootstrap: str, topics: dict[str, int], timeout: float = 10.0) -> list[str]:
    """Create the topics (name -> partitions) that do not exist yet; return those created."""
    refused: list[str] = []
    admin = AdminClient(admin_config(bootstrap) | {"error_cb": _authentication_errors(refused)})
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        admin.poll(0)  # serves the error callbacks queued meanwhile
        if refused:
            raise BrokerUnavailable(
                f"the Kafka broker at {bootstrap} refused to authenticate us ({refused[0]}); "
                "check KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME "
                "and the password") from exc
        raise BrokerUnavailable(
            f"no Kafka broker answers at {bootstrap} ({redact(str(exc))}); start one with "
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
        except TimeoutError:
            raise BrokerUnavailable(
                f"the Kafka broker at {bootstrap} did not create topic {name!r} within "
                f"{timeout:g} s; check that it is up (`basketflow status`) and try again"
                ) from None
    return [t.topic for t in wanted]

