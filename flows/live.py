"""The live dataflow: Kafka -> decode -> offline events + per-entity features -> Redis.

Items travel in micro-batches (one per poll of a partition), so the framework's per-item
cost is paid per batch and per entity, not per event. Stream by stream::

    kafka-in      list[RawMessage], one list per poll of a partition
    decode        -> Decoded: the batch's Transactions, its dead letters, its offsets
    dead          dead letters -> the dead topic, and offline (`offline-dead`)
    dead-in       the dead topic read back: the producer's dead letters, stored offline
    event-clock   each batch with the flow's event-time clock after it (a watermark over
                  the partitions, basketflow.flows.event_clock)
    by-day        events regrouped by event day -> `offline` (Parquet, idempotent)
    customer-shards  events regrouped by customer (guests: invoice), in order, per timer shard
    customer-timers  each customer's events and clock, and the customers the clock wakes
                  (their windows move on)
    product-lines product lines joined for up to 0.25 s (basketflow.flows.coalesce)
    product-shards, product-timers   the same, by stock code
    declared-*    the same for each of the feature repository's own views, in the serve
                  part (basketflow.flows.declared_views)
    *-features    pickled_flat_map: fold each entity's events into its feature state, and
                  write the rows of the moments its windows move on
    online        latest values of each changed entity -> Redis, once per batch
    feature-log   every new value row -> Parquet `features/<view>/`, idempotent
    predict       customer updates, by shard: the champion predicts on every basket update;
                  closed labelled baskets go on (basketflow.flows.scoring)
    learn         closed labelled baskets, all to one key: the River classifier learns and
                  registers its versions
    scores        latest score per customer -> Redis; every prediction -> `scores/`
    count-progress  next offsets and counts so far, kept in the recovery state
    progress      -> Redis, for `basketflow status`

The flow has two parts, which ``basketflow run`` runs as two processes
(:mod:`basketflow.app.flow_processes`), each consuming the topic with its own Bytewax
recovery state: **serve** (customer and basket features and live scores: the path whose
freshness a reader of Redis sees) and **store** (offline events, dead letters, product
features). In one process they share one interpreter lock, and the store part's product
bursts and its share of each epoch's snapshot hold every customer line back (the
figures are in docs/PERFORMANCE.md). Both parts can also run in one flow (the default of :func:`build_live_flow`, as
the tests, the demo and the backfill do).

The feature step keeps per-entity state in :func:`basketflow.flows.pickled_state.pickled_flat_map`
(``stateful_flat_map`` with cheaper snapshots; the state is :mod:`basketflow.features.entity_features`)
rather than in Bytewax windows, whose per-key cost collapses at thousands of keys.
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSink
from bytewax.dataflow import Dataflow, Stream
from bytewax.errors import BytewaxRuntimeError
from bytewax.inputs import FixedPartitionedSource
from bytewax.operators import KeyedStream
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.run import cli_main

from basketflow.config import DEFAULT_ALLOWED_LATENESS_S, Settings
from basketflow.errors import BasketflowError
from basketflow.features.entity_features import CustomerFolder, ProductFolder, folder_step
from basketflow.flows import idle_work
from basketflow.flows.coalesce import coalesce
from basketflow.flows.dead_letters import (
    DeadLetter,
    consumer_error,
    producer_letters,
    rejected,
    to_dead_message,
)
from basketflow.flows.declared_views import add_declared_steps, declared_views
from basketflow.flows.event_clock import (
    CUSTOMER_WAKE_HOURS,
    DELIVERING,
    PRODUCT_WAKE_HOURS,
    ClockedBatch,
    ShardBatch,
    event_clock,
    timer_step,
    to_shards,
)
from basketflow.flows.flow_metrics import FlowMetrics, install, serve_on
from basketflow.flows.gc_tuning import fewer_collections
from basketflow.flows.kafka_batches import (
    DEFAULT_MAX_BATCH,
    KafkaBatchSource,
    RawMessage,
    broker_outage,
    clear_fault,
    raise_fault,
    topic_partitions,
)
from basketflow.flows.pickled_state import pickled_flat_map, snapshots_dropped
from basketflow.flows.parts import PARTS, SERVE, STORE
from basketflow.flows.preflight import check_topics, prepare_run
from basketflow.flows.progress import SERVE_PROGRESS, FlowProgress
from basketflow.flows.recovery_store import (
    discard_unfinished,
    ensure_sound,
    mark_content_ids,
)
from basketflow.flows.open_baskets import ClosedBasket
from basketflow.flows.scoring import MODEL_KEY, Predicted, ScoringConfig, ScoringSteps
from basketflow.flows.shards import EntityShard
from basketflow.kafka import consumer_config, producer_config
from basketflow.schemas.declare import View
from basketflow.schemas.events import Rejection, Transaction, decode_event
from basketflow.schemas.features import registry, versions
from basketflow.schemas.records import FeatureUpdate, ScoreRow, ShadowScoreRow
from basketflow.sinks.flow_sinks import (
    DeadLetterSink,
    FeatureLogSink,
    FlowStats,
    OfflineEventSink,
    OnlineFeatureSink,
    OnlineScoreSink,
    ProgressSink,
    ScoreLogSink,
    ShadowScoreLogSink,
    count_late,
)
from basketflow.sinks.offline_store import SECONDS_PER_DAY, PlacedEvents, ensure_writable
from basketflow.sinks.store_writes import writing
from basketflow.sinks.flow_health import FlowHealth
from basketflow.sinks.redis_retry import HEALTH_FILE, RedisRetry

RECOVERY_PARTITIONS = 4

#: The live flow's parts (see the module docstring): each can run in a process of its own.
#: The entity kinds whose features each part folds.
PART_ENTITIES = {SERVE: "customer", STORE: "product"}

@dataclass
class Decoded:
    """One polled batch, decoded: its events and dead letters, the next offset of each
    partition read, and the offsets of the events and of the dead letters per partition
    (so that progress counts each message once, see :mod:`basketflow.flows.progress`)."""

    events: list[Transaction] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    offsets: dict[str, int] = field(default_factory=dict)
    event_offsets: dict[str, list[int]] = field(default_factory=dict)
    dead_offsets: dict[str, list[int]] = field(default_factory=dict)
    #: The partition polled, and what its reader said of it (see the clock's ``quiet``).
    partition: str = ""
    quiet: int = DELIVERING
    #: Each event's Kafka timestamp (ms), for the flow's metrics.
    arrivals: list[int] = field(default_factory=list)


def partition_name(topic: str, partition: int) -> str:
    """How a partition is named in the progress hash and by the clock."""
    return f"offset:{topic}:{partition}"


def decode_batch(batch: list[RawMessage]) -> Decoded:
    """Decode every message; bad ones become dead letters, never exceptions."""
    out = Decoded()
    for msg in batch:
        name = out.partition = partition_name(msg.topic, msg.partition)
        if msg.quiet:  # a mark that the partition has nothing more, not a message
            out.quiet = msg.quiet
            continue
        if msg.error is not None:
            out.dead.append(consumer_error(msg))
            out.dead_offsets.setdefault(name, []).append(msg.offset)
            continue
        decoded = decode_event(msg.value)
        if isinstance(decoded, Rejection):
            out.dead.append(rejected(msg, decoded))
            out.dead_offsets.setdefault(name, []).append(msg.offset)
        else:
            out.events.append(decoded)
            out.arrivals.append(msg.timestamp_ms)
            out.event_offsets.setdefault(name, []).append(msg.offset)
        out.offsets[name] = msg.offset + 1
    return out


def count_progress(state: FlowProgress | None, clocked: tuple[Decoded, int],
                   ) -> tuple[FlowProgress, dict[str, int | str]]:
    """Fold a batch, and the clock after it, into the flow's progress (kept in the
    recovery snapshots); emit its fields for the progress hash."""
    decoded, clock = clocked
    state = state or FlowProgress()
    state.add(decoded.offsets, decoded.event_offsets, decoded.dead_offsets,
              newest_ts=newest(decoded.events), clock=clock)
    return state, state.fields()


def advance(offsets: dict[str, int], batch: dict[str, int]) -> None:
    """Move each partition's next offset on to a batch's (never back).

    >>> read = {"offset:tx:0": 5}
    >>> advance(read, {"offset:tx:0": 3, "offset:tx:1": 7}); read
    {'offset:tx:0': 5, 'offset:tx:1': 7}
    """
    for name, offset in batch.items():
        if offset > offsets.get(name, -1):
            offsets[name] = offset


def partition_times(decoded: Decoded) -> tuple[str, int, int, Decoded]:
    """A polled batch (of one partition) as :func:`~basketflow.flows.event_clock.event_clock`
    takes it: its partition, its newest event time, what its reader said, the batch."""
    return decoded.partition, newest(decoded.events), decoded.quiet, decoded


def group_by(events: list[Transaction], key: Any) -> list[tuple[str, list[Transaction]]]:
    """Regroup a batch's events by a key, keeping their order within each group."""
    groups: dict[str, list[Transaction]] = defaultdict(list)
    for e in events:
        groups[key(e)].append(e)
    return list(groups.items())


def newest(events: list[Transaction]) -> int:
    """The newest event time of a batch (0 when empty): the flow's clock moves on to it."""
    return max((e.ts for e in events), default=0)


def topic_place(decoded: Decoded) -> tuple[int | None, list[int] | None]:
    """The partition a decoded batch was read from (a poll of one partition) and each of
    its events' offsets there; None, None for a batch without events.

    >>> topic_place(Decoded(event_offsets={"offset:tx:2": [7, 9]}))
    (2, [7, 9])
    """
    if not decoded.event_offsets:
        return None, None
    (name, offsets), = decoded.event_offsets.items()  # one partition's poll
    return int(name.rsplit(":", 1)[1]), offsets


def placed_by_day(batch: ClockedBatch, shard: EntityShard | None = None,
                  ) -> list[tuple[str, PlacedEvents]]:
    """A batch's events to store offline, with their offsets on the topic (None: a
    backfill's), grouped by event day number (the offline sink's routing key), in order
    within each day; a backfill's ``shard`` keeps only its days' events."""
    days: dict[str, PlacedEvents] = {}
    if shard is not None or batch.offsets is None:  # from elsewhere than the topic
        events = batch.events if shard is None else shard.day_events(batch.events)
        for e in events:
            key = str(e.ts // SECONDS_PER_DAY)
            group = days.get(key) or days.setdefault(key, PlacedEvents([]))
            group.events.append(e)
        return list(days.items())
    groups: dict[str, tuple[list[Transaction], list[int]]] = {}
    for e, offset in zip(batch.events, batch.offsets):
        key = str(e.ts // SECONDS_PER_DAY)
        group = groups.get(key) or groups.setdefault(key, ([], []))
        group[0].append(e)
        group[1].append(offset)
    return [(key, PlacedEvents(events, batch.partition, offsets))
            for key, (events, offsets) in groups.items()]


@dataclass(frozen=True)
class FeatureOutputs:
    """Where the feature steps write: Redis (None: nowhere), the offline store (None:
    nowhere), whether events are stored offline too (the backfill from the offline
    store does not store them again), which entity kinds are folded (``customer``:
    the customer and basket views; ``product``), and the feature repository's own views
    folded too (:mod:`basketflow.flows.declared_views`)."""

    redis_url: str | None
    prefix: str
    offline_root: Path | None
    store_events: bool = True
    allowed_lateness: int = DEFAULT_ALLOWED_LATENESS_S
    scoring: ScoringConfig | None = None
    retry: RedisRetry | None = None
    entities: frozenset[str] = frozenset(PART_ENTITIES.values())
    declared: tuple[View, ...] = ()


def add_feature_steps(batches: Stream[ClockedBatch], outputs: FeatureOutputs,
                      stats: FlowStats, shard: EntityShard | None = None) -> None:
    """Attach the offline sinks and the feature steps with their online sink to a stream
    of event batches, each with the clock after it
    (:func:`~basketflow.flows.event_clock.event_clock`). Shared by the live flow and the
    backfill: one feature code for both. ``shard`` (a backfill over several processes,
    :mod:`basketflow.flows.shards`) keeps only its days' events, its customers' events and
    its products' lines; None keeps all.
    """
    if outputs.offline_root is not None and outputs.store_events:
        by_day = op.flat_map("by-day", batches, lambda c: placed_by_day(c, shard))
        op.output("offline", by_day, OfflineEventSink(outputs.offline_root, stats))
    folded: list[KeyedStream[FeatureUpdate]] = []
    if "customer" in outputs.entities:
        keep = None if shard is None else shard.customer_events
        known: dict[str, int] = {}
        to_timers = op.flat_map("customer-shards", batches, lambda c: to_shards(
            group_by(keep(c.events) if keep else c.events, _customer_key), c.clock, known))
        customers = fold_entities("customer", to_timers, CUSTOMER_WAKE_HOURS, CustomerFolder,
                                  outputs.allowed_lateness)
        folded.append(customers)
        if outputs.scoring is not None:
            add_scoring_steps(customers, outputs, stats)
    if "product" in outputs.entities:
        product_lines = coalesce("product-lines", op.map(
            "keep-products", batches,
            lambda c: [ClockedBatch([e for e in c.events if e.is_product], c.clock)]),
            PRODUCT_BATCH_WAIT, PRODUCT_BATCH_MAX)
        own = None if shard is None else shard.product_lines
        known_products: dict[str, int] = {}

        def product_shards(joined: list[ClockedBatch]) -> list[tuple[str, ShardBatch]]:
            lines = [e for batch in joined for e in batch.events]
            return to_shards(group_by(own(lines) if own else lines, _product_key),
                             max(batch.clock for batch in joined), known_products)

        to_product_timers = op.flat_map("product-shards", product_lines, product_shards)
        folded.append(fold_entities("product", to_product_timers, PRODUCT_WAKE_HOURS,
                                    ProductFolder, PRODUCT_LATENESS_S))
    add_declared_steps(batches, outputs, stats, shard)
    if not folded:
        return
    keyed_updates = op.merge("merge-updates", *folded)
    updates = op.key_rm("updates", keyed_updates)
    op.inspect("count-late", updates, count_late(stats))
    if outputs.redis_url is not None:
        op.output("online", keyed_updates, OnlineFeatureSink(
            outputs.redis_url, outputs.prefix, registry(), stats, outputs.retry))
    if outputs.offline_root is not None:
        rows = op.map("log-rows", updates, lambda u: ("log", u))
        op.output("feature-log", rows, FeatureLogSink(outputs.offline_root, versions(), stats))


def fold_entities(kind: str, shards: Stream[tuple[str, ShardBatch]],
                  wake_hours: tuple[int, ...], folder: type[CustomerFolder | ProductFolder],
                  lateness: int) -> KeyedStream[FeatureUpdate]:
    """The timer wheels of one entity ``kind`` (``<kind>-timers``: each entity's events
    and the entities the clock wakes) and its feature step (``<kind>-features``)."""
    timers = pickled_flat_map(f"{kind}-timers", shards, timer_step(wake_hours))
    return pickled_flat_map(f"{kind}-features",
                            op.map(f"{kind}-work", timers, lambda kv: kv[1]),
                            folder_step(folder, lateness))


def add_scoring_steps(customer_updates: KeyedStream[FeatureUpdate], outputs: FeatureOutputs,
                      stats: FlowStats) -> None:
    """Score every basket update where it is, with the process's champion; learn from
    the closed labelled baskets in one place (:mod:`basketflow.flows.scoring`); write the
    scores online and to the offline score log, and the challenger's (made in shadow) to
    the offline shadow score log only."""
    assert outputs.scoring is not None
    steps = ScoringSteps(outputs.scoring)
    if outputs.scoring.replay:
        to_model = op.key_on("to-model", op.key_rm("customer-updates", customer_updates),
                             lambda _u: MODEL_KEY)
        scores = pickled_flat_map("score", to_model, lambda state, update: stats.writing(
            lambda: steps.replay(state, update)))  # it registers the model's versions
    else:
        predicted = pickled_flat_map("predict", customer_updates, steps.predict)
        to_learn = op.branch("closed-or-scored", predicted,
                             lambda kv: isinstance(kv[1], ClosedBasket))
        closed = op.key_on("to-learner", op.key_rm("closed", to_learn.trues),
                           lambda _basket: MODEL_KEY)
        pickled_flat_map("learn", closed, lambda state, basket: stats.writing(
            lambda: steps.learn(state, basket)))  # it registers the model's versions
        scores = to_learn.falses
    split = op.branch("shadow-or-served", scores,
                      lambda kv: isinstance(kv[1], ShadowScoreRow))
    scored = cast(KeyedStream[ScoreRow], split.falses)
    op.inspect("count-scores", scored, lambda _step, keyed: stats.scored(keyed[1]))
    if outputs.redis_url is not None:
        op.output("online-scores", scored,
                  OnlineScoreSink(outputs.redis_url, outputs.prefix, outputs.retry))
    if outputs.offline_root is not None:
        op.output("score-log", scored, ScoreLogSink(outputs.offline_root, stats))
        op.output("shadow-score-log", cast(KeyedStream[ShadowScoreRow], split.trues),
                  ShadowScoreLogSink(outputs.offline_root, stats))


#: Product lines are folded in joined batches (:mod:`basketflow.flows.coalesce`): a product's
#: lines of up to this long are folded together. A longer wait folds less in all but in
#: longer bursts, which every customer line consumed meanwhile waits out; a shorter one
#: folds more (benchmarks/freshness.py measures both).
PRODUCT_BATCH_WAIT = timedelta(seconds=0.25)
#: ... and at most this many batches at a time (a backfill's batches are joined too).
PRODUCT_BATCH_MAX = 8

#: A product's events come from every partition (events are keyed by customer), so
#: their arrival order is the partitions' interleaving, not event time, and may lag by
#: days while partitions are consumed at different speeds. Hourly tiles take events in
#: any order, so no product event is treated as late.
PRODUCT_LATENESS_S = 10 * 365 * 86_400


def _customer_key(e: Transaction) -> str:
    """The customer an event belongs to (guests: their invoice)."""
    return e.entity_id


def _product_key(e: Transaction) -> str:
    """The product an event is about."""
    return e.stock_code


def build_live_flow(settings: Settings, stop_at_end: bool, stats: FlowStats,
                    allowed_lateness: int = DEFAULT_ALLOWED_LATENESS_S,
                    scoring: ScoringConfig | None = None,
                    max_batch: int = DEFAULT_MAX_BATCH,
                    parts: tuple[str, ...] = PARTS, reset: str | None = None,
                    metered: bool = False,
                    source: FixedPartitionedSource[list[RawMessage], int] | None = None,
                    ) -> Dataflow:
    """The Kafka-fed dataflow of the given ``parts`` (see the module docstring);
    ``stop_at_end`` ends it at the end of every partition; ``scoring`` (None: no scores)
    sets up the classifier of the serve part; ``max_batch`` caps the messages taken per
    poll of a partition; ``reset`` (``earliest``, ``latest``) reads from there instead of
    from the stored offsets; ``metered`` counts for the process's Prometheus metrics
    (:mod:`basketflow.flows.flow_metrics`); ``source`` (None: the topic's reader) stands
    in for the topic's reader, with partitions of the same names and snapshots (the
    rebuild of :mod:`basketflow.flows.rebuild`).

    Both parts decode every message; only the store part handles dead letters, so a
    flow of the serve part alone passes them over (the store part's flow stores them).
    """
    assert settings.kafka_bootstrap and settings.redis_url, "resolve addresses first"
    bootstrap = settings.kafka_bootstrap
    config = consumer_config(bootstrap)
    flow = Dataflow("basketflow-live")
    health = settings.data_dir / HEALTH_FILE
    raw = op.input("kafka-in", flow, source or KafkaBatchSource(
        bootstrap, settings.topic, config, stop_at_end, max_batch, reset, health))
    decoded = op.map("decode", raw, decode_batch)
    retry = RedisRetry(settings.redis_url, health,
                       state_file=settings.state_file)
    metrics = None
    if metered:
        metrics = FlowMetrics("+".join(parts), stats,
                              frozenset(PART_ENTITIES[part] for part in parts), retry.outage,
                              broker_outage(bootstrap, FlowHealth.at(health)),
                              scoring.labels if scoring and SERVE in parts else None)
        install(metrics)
        op.inspect("metrics-batches", decoded, lambda _s, d: metrics.batch(
            d.event_offsets, d.dead_offsets, d.events, d.arrivals))
    if STORE in parts:
        add_dead_letter_steps(flow, decoded, settings, config, stop_at_end, stats, reset,
                              metrics)
    clocked = event_clock("event-clock", op.map("partition-times", decoded, partition_times),
                          Decoded, tuple(partition_name(settings.topic, p) for p in
                                         topic_partitions(bootstrap, settings.topic)))
    if metrics is not None:
        op.inspect("metrics-clock", clocked, lambda _s, c: metrics.clocked(c[1]))
    events = op.map("events", clocked,
                    lambda c: ClockedBatch(c[0].events, c[1], *topic_place(c[0])))
    if scoring is not None and SERVE in parts:
        read: dict[str, int] = {}
        scoring = replace(scoring, offsets=read)
        op.inspect("offsets-read", decoded, lambda _step, d: advance(read, d.offsets))
    add_feature_steps(events, FeatureOutputs(
        settings.redis_url, settings.prefix, settings.offline_dir, STORE in parts,
        allowed_lateness, scoring if SERVE in parts else None, retry,
        frozenset(PART_ENTITIES[part] for part in parts),
        declared_views(settings) if SERVE in parts else ()), stats)
    progress = op.stateful_map("count-progress",
                               op.key_on("progress-key", clocked, lambda _: "all"),
                               count_progress)
    op.output("progress", progress, ProgressSink(
        settings.redis_url, settings.prefix, progress_part(parts), retry))
    return flow


def add_dead_letter_steps(flow: Dataflow, decoded: Stream[Decoded], settings: Settings,
                          config: dict[str, object], stop_at_end: bool,
                          stats: FlowStats, reset: str | None = None,
                          metrics: FlowMetrics | None = None) -> None:
    """Send the messages that could not be decoded to the dead topic, and store every
    dead letter of that topic (the flow's and the producer's) offline; count the
    producer's in ``metrics``."""
    assert settings.kafka_bootstrap
    bootstrap = settings.kafka_bootstrap
    dead = op.flat_map("dead", decoded, lambda d: d.dead)
    op.output("dead-letters", op.map("dead-message", dead, to_dead_message), KafkaSink(
        [bootstrap], settings.dead_topic,  # its log quiet: the readers report outages
        add_config={k: str(v) for k, v in producer_config(bootstrap).items()}
        | {"log_level": "0"}))
    dead_in = op.input("dead-in", flow, KafkaBatchSource(
        bootstrap, settings.dead_topic, config, stop_at_end, reset=reset,
        health_path=settings.data_dir / HEALTH_FILE))
    producers_dead = op.flat_map("producer-letters", dead_in, producer_letters)
    if metrics is not None:  # a producer's dead letter is named <topic>:<partition>:<offset>
        op.inspect("metrics-dead-in", producers_dead, lambda _s, letter: metrics.dead_read(
            partition_name(*letter[0].rsplit(":", 2)[:2]), 1))
    op.output("offline-dead", op.merge("all-dead", dead, producers_dead),
              DeadLetterSink(settings.offline_dir, stats))


def progress_part(parts: tuple[str, ...]) -> str:
    """The part of the flow's progress hash a flow writes: the whole flow's (``""``,
    ``<prefix>:flow:progress``) for a flow with the store part (it counts the events
    stored), :data:`~basketflow.flows.progress.SERVE_PROGRESS`
    (``<prefix>:flow:progress:serve``) for the serve part alone.

    >>> progress_part(PARTS), progress_part((SERVE,))
    ('', 'serve')
    """
    return "" if STORE in parts else SERVE_PROGRESS


@dataclass
class RunOptions:
    """How to run a dataflow: workers, recovery snapshots (None: no recovery), where
    to read from instead of the stored offsets (``reset_offsets``: earliest, latest), and
    the Bytewax cluster this process is one of (``process_id`` in ``addresses``, every
    process's ``host:port``; None: a flow of this process alone)."""

    workers: int = 1
    recovery_dir: Path | None = None
    snapshot_seconds: float = 10.0
    backup_seconds: float = 0.0
    reset_offsets: str | None = None
    process_id: int | None = None
    addresses: tuple[str, ...] = ()
    #: Make or check the recovery partitions first (:func:`prepare_recovery`); off in a
    #: cluster's processes but one, and where the command that started them did it.
    prepare_recovery: bool = True
    #: The command that started this process made the checks of :func:`prepare_run` and
    #: :func:`check_topics` (see :func:`basketflow.app.flow_processes.checked_by_parent`).
    checked: bool = False


def run_flow(flow: Dataflow, options: RunOptions) -> None:
    """Run the dataflow in this process until it ends (or forever when it tails), or
    until a stop is requested (:mod:`basketflow.flows.stopping`).

    A step that raises stops the flow; Bytewax wraps the error in a
    ``BytewaxRuntimeError``. A user's error (:class:`StoreUnwritable` on a full disk or an
    unwritable data directory, :class:`CorruptFile`; see :func:`user_error_cause`) is
    raised as itself, so the command shows its message, and so is a
    :class:`~basketflow.flows.kafka_batches.TopicOffsetsLost` a reader met (it stopped the
    flow cleanly). A damaged recovery partition stops the run before the flow starts
    (:class:`RecoveryDamaged`).
    """
    recovery = None
    if options.recovery_dir is not None:
        if options.prepare_recovery:
            prepare_recovery(options.recovery_dir)
        else:  # a cluster's process on another host may hold no partitions: none here
            options.recovery_dir.mkdir(parents=True, exist_ok=True)
        recovery = RecoveryConfig(str(options.recovery_dir),
                                  timedelta(seconds=options.backup_seconds))
    clear_fault()
    try:
        with (fewer_collections(), _notes_to_stderr(bool(options.addresses)),
              snapshots_dropped(recovery is None)):
            cli_main(flow, workers_per_process=options.workers,
                     process_id=options.process_id,
                     addresses=list(options.addresses) or None,
                     epoch_interval=timedelta(seconds=options.snapshot_seconds),
                     recovery_config=recovery)
        raise_fault()
    except BytewaxRuntimeError as exc:
        cause = user_error_cause(exc)
        if cause is None:
            raise
        raise cause from None
    except BaseException as exc:
        if options.process_id is None or type(exc).__name__ != "PanicException":
            raise
        raise ClusterLost(
            f"process {options.process_id} of the flow lost the rest of its Bytewax "
            f"cluster ({exc}): another process stopped or cannot be reached; start every "
            "process again: the cluster resumes from its last snapshot") from None
    finally:
        idle_work.this_thread().clear()  # the flow's states, where it ran on this thread


@contextmanager
def _notes_to_stderr(cluster: bool) -> Iterator[None]:
    """While a cluster's process runs its flow, its standard output goes to standard
    error: Timely prints its connection notes (``worker 1: error connecting to worker 0
    ...; retrying``) on standard output, which holds the command's result (``--json``)."""
    if not cluster:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


class ClusterLost(BasketflowError):
    """A process of a Bytewax cluster lost the others (one was killed, or the network
    between them failed): Bytewax panics every worker of the cluster then, which this
    error stands for (its processes share fate; the next start resumes)."""


def prepare_recovery(recovery_dir: Path) -> None:
    """Make a flow's recovery partitions (:data:`RECOVERY_PARTITIONS` of them) when there
    are none; else check them and drop what a killed run left of an unfinished epoch (see
    :mod:`basketflow.flows.recovery_store`). Done once per resume, by the one process
    whose directory holds the partitions."""
    if not any(recovery_dir.glob("part-*.sqlite3")):
        ensure_writable(recovery_dir)
        with writing(recovery_dir):
            init_db_dir(recovery_dir, RECOVERY_PARTITIONS)
            mark_content_ids(recovery_dir)
    else:
        ensure_sound(recovery_dir)
        discard_unfinished(recovery_dir)


def user_error_cause(exc: BaseException) -> BasketflowError | None:
    """The user's error (a :class:`BasketflowError`: a :class:`StoreUnwritable`, a
    :class:`CorruptFile`) that a Bytewax error wraps, if any (looked for down the chain of
    causes: Bytewax may wrap more than once)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, BasketflowError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def run_live(settings: Settings, *, stop_at_end: bool, options: RunOptions,
             stats: FlowStats | None = None,
             allowed_lateness: int = DEFAULT_ALLOWED_LATENESS_S,
             max_batch: int = DEFAULT_MAX_BATCH,
             parts: tuple[str, ...] = PARTS,
             scoring: ScoringConfig | None = None,
             metrics_port: int | None = None,
             source: FixedPartitionedSource[list[RawMessage], int] | None = None,
             ) -> FlowStats:
    """Consume the topic into the stores, in this process, with the given parts of the
    flow; return the counters of the run. The serve part scores with ``scoring`` (none
    without it); ``metrics_port`` (None: none) serves the process's Prometheus metrics
    (:mod:`basketflow.flows.flow_metrics`); ``source`` stands in for the topic's reader
    (see :func:`build_live_flow`)."""
    if not options.checked:
        prepare_run(settings)
        if options.prepare_recovery:  # else the command that started this process did
            check_topics(settings, options.recovery_dir, parts, options.reset_offsets)
    relay = None if metrics_port is None else serve_on(
        metrics_port, settings.data_dir / "dataflow" / "+".join(parts))
    stats = stats or FlowStats()
    scoring = scoring if SERVE in parts else None
    try:
        run_flow(build_live_flow(settings, stop_at_end, stats, allowed_lateness, scoring,
                                 max_batch, parts, options.reset_offsets,
                                 metered=metrics_port is not None, source=source), options)
    finally:
        if relay is not None:
            relay.terminate()
            relay.wait()
    return stats
