"""The live dataflow: Kafka -> decode -> offline events + per-entity features -> Redis.

Items travel in micro-batches (one per poll of a partition), so the framework's per-item
cost is paid per batch and per entity, not per event. Stream by stream::

    kafka-in      list[RawMessage], one list per poll of a partition
    decode        -> Decoded: the batch's Transactions, its dead letters, its offsets
    dead          dead letters -> the dead topic, and offline (`offline-dead`)
    dead-in       the dead topic read back: the producer's dead letters, stored offline
    by-day        events regrouped by event day -> `offline` (Parquet, idempotent)
    by-entity     events regrouped by customer (guests: invoice), in order
    features      stateful_map: fold each entity's events into its feature state
    online        latest values of each changed entity -> Redis, once per batch
    progress      each batch's next offsets -> Redis, for `basketflow status`

The feature step keeps per-entity state in ``stateful_map`` (see
:mod:`flows.feature_state`) rather than in Bytewax windows, whose per-key cost collapses
at thousands of keys.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSink
from bytewax.dataflow import Dataflow, Stream
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.run import cli_main

from basketflow.config import Settings
from basketflow.kafka import DEFAULT_PARTITIONS, consumer_config, ensure_topics, producer_config
from flows.dead_letters import (DeadLetter, consumer_error, producer_letters, rejected,
                                to_dead_message)
from flows.feature_state import CurrentBasket, CustomerTotals, Snapshotable
from flows.kafka_batches import KafkaBatchSource, RawMessage
from schemas.events import Rejection, Transaction, decode_event
from schemas.features import versions
from sinks.flow_sinks import (DeadLetterSink, FlowStats, OfflineEventSink, OnlineFeatureSink,
                              ProgressSink)
from sinks.offline_store import SECONDS_PER_DAY

RECOVERY_PARTITIONS = 4

#: What the feature step emits per entity and batch: event time and values per view.
ViewValues = tuple[int, dict[str, dict[str, Any]]]


class EntityFeatures(Snapshotable):
    """Every view's state for one entity, updated together by its events.

    An event already folded in (same ``event_id``: the same line replayed twice into the
    topic) changes nothing, so features count every line exactly once.
    """

    __slots__ = ("customer", "basket", "seen")

    def __init__(self) -> None:
        self.customer = CustomerTotals()
        self.basket = CurrentBasket()
        self.seen: set[str] = set()

    def update(self, events: list[Transaction]) -> ViewValues | None:
        """Fold the events in, in order; return the event time and the values of the views
        they moved, or None when every event was folded in before."""
        views: set[str] = set()
        ts = 0
        for e in events:
            if e.event_id in self.seen:
                continue
            self.seen.add(e.event_id)
            self.customer.update(e)
            views.add("customer")
            if self.basket.update(e):
                views.add("basket")
            ts = max(ts, e.ts)
        if not views:
            return None
        values = {"customer": self.customer.values()}
        if "basket" in views:
            values["basket"] = self.basket.values()
        return ts, values


def _fold(state: EntityFeatures | None, events: list[Transaction],
          ) -> tuple[EntityFeatures, list[ViewValues]]:
    """``stateful_flat_map`` mapper: create the state on first sight, fold the events in."""
    state = state or EntityFeatures()
    update = state.update(events)
    return state, [update] if update is not None else []


@dataclass
class Decoded:
    """One polled batch, decoded."""

    events: list[Transaction] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    offsets: dict[str, int] = field(default_factory=dict)


def decode_batch(batch: list[RawMessage]) -> Decoded:
    """Decode every message; bad ones become dead letters, never exceptions."""
    out = Decoded()
    for msg in batch:
        if msg.error is not None:
            out.dead.append(consumer_error(msg))
            continue
        decoded = decode_event(msg.value)
        if isinstance(decoded, Rejection):
            out.dead.append(rejected(msg, decoded))
        else:
            out.events.append(decoded)
        out.offsets[f"offset:{msg.topic}:{msg.partition}"] = msg.offset + 1
    return out


def group_by(events: list[Transaction], key: Any) -> list[tuple[str, list[Transaction]]]:
    """Regroup a batch's events by a key, keeping their order within each group."""
    groups: dict[str, list[Transaction]] = defaultdict(list)
    for e in events:
        groups[key(e)].append(e)
    return list(groups.items())


def _day_key(e: Transaction) -> str:
    """The event's day number, the offline sink's routing key."""
    return str(e.ts // SECONDS_PER_DAY)


def add_feature_steps(batches: Stream[list[Transaction]], redis_url: str, prefix: str,
                      offline_root: Path | None, stats: FlowStats) -> None:
    """Attach the offline sink and the feature step with its online sink to a stream of
    event batches. Shared by the live flow and the backfill: one feature code for both."""
    if offline_root is not None:
        by_day = op.flat_map("by-day", batches, lambda b: group_by(b, _day_key))
        op.output("offline", by_day, OfflineEventSink(offline_root, stats))
    by_entity = op.flat_map("by-entity", batches, lambda b: group_by(b, _entity_id))
    features = op.stateful_flat_map("features", by_entity, _fold)
    op.output("online", features, OnlineFeatureSink(redis_url, prefix, versions(), stats))


def _entity_id(e: Transaction) -> str:
    """The entity an event belongs to (a customer, or a guest's invoice)."""
    return e.entity_id


def build_live_flow(settings: Settings, stop_at_end: bool, stats: FlowStats) -> Dataflow:
    """The Kafka-fed dataflow; ``stop_at_end`` ends it at the end of every partition."""
    assert settings.kafka_bootstrap and settings.redis_url, "resolve addresses first"
    bootstrap = settings.kafka_bootstrap
    config = consumer_config(bootstrap)
    flow = Dataflow("basketflow-live")
    raw = op.input("kafka-in", flow, KafkaBatchSource(bootstrap, settings.topic, config,
                                                      stop_at_end))
    decoded = op.map("decode", raw, decode_batch)
    dead = op.flat_map("dead", decoded, lambda d: d.dead)
    op.output("dead-letters", op.map("dead-message", dead, to_dead_message), KafkaSink(
        [bootstrap], settings.dead_topic,
        add_config={k: str(v) for k, v in producer_config(bootstrap).items()}))
    dead_in = op.input("dead-in", flow, KafkaBatchSource(bootstrap, settings.dead_topic,
                                                         config, stop_at_end))
    producers_dead = op.flat_map("producer-letters", dead_in, producer_letters)
    op.output("offline-dead", op.merge("all-dead", dead, producers_dead),
              DeadLetterSink(settings.offline_dir, stats))
    events = op.map("events", decoded, lambda d: d.events)
    add_feature_steps(events, settings.redis_url, settings.prefix, settings.offline_dir, stats)
    offsets = op.map("offsets", decoded, lambda d: d.offsets)
    op.output("progress", offsets, ProgressSink(settings.redis_url, settings.prefix, stats))
    return flow


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
