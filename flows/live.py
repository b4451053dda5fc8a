"""The live dataflow: Kafka -> decode -> offline events + per-entity features -> Redis.

Stream by stream::

    kafka-in      KafkaSourceMessage, one per invoice line (or a consumer error)
    decode        -> Transaction | DeadLetter        (never raises on a bad message)
    valid         split: Transactions on; dead letters to the dead topic and offline
    dead-in       the dead topic read back: the producer's dead letters, stored offline
    offline       every Transaction -> Parquet, idempotent on event_id
    by-entity     key each Transaction by customer (guests: by invoice)
    features      stateful_map: fold into the entity's feature state, emit its values
    online        latest values of each changed entity -> Redis, once per batch
    progress      (topic, partition, offset) of every message -> Redis, for `status`

The feature step keeps per-entity state in ``stateful_map`` (see
:mod:`flows.feature_state`) rather than in Bytewax windows, whose per-key cost collapses
at thousands of keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaError, KafkaSink, KafkaSource
from bytewax.dataflow import Dataflow, Stream
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.run import cli_main
from confluent_kafka.admin import AdminClient

from basketflow.config import Settings
from basketflow.kafka import DEFAULT_PARTITIONS, consumer_config, ensure_topics, producer_config
from flows.dead_letters import decode_message, producer_letter, to_dead_message
from flows.feature_state import CurrentBasket, CustomerTotals
from schemas.events import Transaction
from schemas.features import versions
from sinks.flow_sinks import DeadLetterSink, FlowStats, OfflineEventSink, OnlineFeatureSink, ProgressSink

RECOVERY_PARTITIONS = 4


class EntityFeatures:
    """Every view's state for one entity, updated together by one event.

    An event already folded in (same ``event_id``: the same line replayed twice into the
    topic) changes nothing, so features count every line exactly once.
    """

    __slots__ = ("customer", "basket", "seen")

    def __init__(self) -> None:
        self.customer = CustomerTotals()
        self.basket = CurrentBasket()
        self.seen: set[str] = set()

    def update(self, e: Transaction) -> tuple[int, dict[str, dict[str, Any]]] | None:
        """Fold the event in; return the event time and the values of the views it moved.

        None when the event was folded in before.
        """
        if e.event_id in self.seen:
            return None
        self.seen.add(e.event_id)
        self.customer.update(e)
        changed = {"customer": self.customer.values()}
        if self.basket.update(e):
            changed["basket"] = self.basket.values()
        return e.ts, changed


def _update(state: EntityFeatures | None, e: Transaction,
            ) -> tuple[EntityFeatures, tuple[int, dict[str, dict[str, Any]]] | None]:
    """``stateful_map`` mapper: create the entity's state on its first event."""
    state = state or EntityFeatures()
    return state, state.update(e)


class _TopicSource(KafkaSource):
    """KafkaSource whose partition listing uses a plain admin config.

    Bytewax hands ``add_config`` to its admin client too, which then warns about every
    consumer-only property; the consumers still get the whole config.
    """

    def list_parts(self) -> list[str]:
        """One Bytewax partition per Kafka partition of the topics."""
        admin = AdminClient({"bootstrap.servers": ",".join(self._brokers)})
        return [f"{p}-{topic}" for topic in self._topics
                for p in sorted(admin.list_topics(topic, timeout=10).topics[topic].partitions)]


def add_feature_steps(events: Stream[Transaction], redis_url: str, prefix: str,
                      offline_root: Path | None, stats: FlowStats) -> None:
    """Attach the offline sink and the feature step with its online sink to a stream.

    Shared by the live flow and the backfill, so both compute features with one code.
    """
    if offline_root is not None:
        op.output("offline", events, OfflineEventSink(offline_root, stats))
    keyed = op.key_on("by-entity", events, lambda e: e.entity_id)
    features = op.filter_value("drop-repeats", op.stateful_map("features", keyed, _update),
                               lambda update: update is not None)
    op.output("online", features, OnlineFeatureSink(redis_url, prefix, versions(), stats))


def build_live_flow(settings: Settings, stop_at_end: bool, stats: FlowStats) -> Dataflow:
    """The Kafka-fed dataflow; ``stop_at_end`` ends it at the end of every partition."""
    assert settings.kafka_bootstrap and settings.redis_url, "resolve addresses first"
    bootstrap = settings.kafka_bootstrap
    flow = Dataflow("basketflow-live")
    msgs = op.input("kafka-in", flow, _TopicSource(
        [bootstrap], [settings.topic], tail=not stop_at_end, batch_size=5000,
        add_config={k: str(v) for k, v in consumer_config(bootstrap).items()},
        raise_on_errors=False))
    decoded = op.map("decode", msgs, decode_message)
    split = op.branch("valid", decoded, lambda x: isinstance(x, Transaction))
    op.output("dead-letters", op.map("dead-message", split.falses, to_dead_message), KafkaSink(
        [bootstrap], settings.dead_topic,
        add_config={k: str(v) for k, v in producer_config(bootstrap).items()}))
    dead_in = op.input("dead-in", flow, _TopicSource(
        [bootstrap], [settings.dead_topic], tail=not stop_at_end, batch_size=5000,
        raise_on_errors=False))
    producers_dead = op.filter_map("producer-letters", dead_in, producer_letter)
    op.output("offline-dead", op.merge("all-dead", split.falses, producers_dead),
              DeadLetterSink(settings.offline_dir, stats))
    add_feature_steps(split.trues, settings.redis_url, settings.prefix,
                      settings.offline_dir, stats)
    positions = op.filter_map("position", msgs, _position)
    op.output("progress", positions, ProgressSink(settings.redis_url, settings.prefix, stats))
    return flow


def _position(msg: Any) -> tuple[str, int, int] | None:
    """(topic, partition, offset) of a message; None for a consumer error without one."""
    if isinstance(msg, KafkaError):
        msg = msg.msg
    if msg.partition is None or msg.offset is None or msg.offset < 0:
        return None
    return msg.topic, msg.partition, msg.offset


@dataclass
class RunOptions:
    """How to run a dataflow: workers, and recovery snapshots (None: no recovery)."""

    workers: int = 1
    recovery_dir: Path | None = None
    snapshot_seconds: float = 10.0
    backup_seconds: float = 0.0


def run_flow(flow: Dataflow, options: RunOptions) -> None:
    """Run the dataflow in this process until it ends (or forever when it tails)."""
    recovery = None
    if options.recovery_dir is not None:
        if not any(options.recovery_dir.glob("part-*.sqlite3")):
            options.recovery_dir.mkdir(parents=True, exist_ok=True)
            init_db_dir(options.recovery_dir, RECOVERY_PARTITIONS)
        recovery = RecoveryConfig(str(options.recovery_dir),
                                  timedelta(seconds=options.backup_seconds))
    cli_main(flow, workers_per_process=options.workers,
             epoch_interval=timedelta(seconds=options.snapshot_seconds),
             recovery_config=recovery)


def run_live(settings: Settings, *, stop_at_end: bool, options: RunOptions,
             stats: FlowStats | None = None) -> FlowStats:
    """Consume the topic into the stores; return the counters of the run."""
    assert settings.kafka_bootstrap
    ensure_topics(settings.kafka_bootstrap,
                  {settings.topic: DEFAULT_PARTITIONS, settings.dead_topic: 1})
    stats = stats or FlowStats()
    run_flow(build_live_flow(settings, stop_at_end, stats), options)
    return stats
