"""The live flow's steps for the feature repository's own views (declared in
:mod:`basketflow.schemas.declare`, computed by the generic engine), beside the built-in
views' steps of :mod:`basketflow.flows.live`, and the same steps in ``backfill --views``:
one implementation for both.

Per declared view, stream by stream::

    declared-<view>-shards    each batch's events regrouped by the view's entity, per
                              timer shard, with the flow's clock
                              (:func:`~basketflow.flows.event_clock.to_shards`)
    declared-<view>-timers    the timer wheels: each entity's events, and the entities
                              the clock wakes because one of their tiles leaves a window
    declared-<view>-features  the view's feature step
                              (:func:`~basketflow.features.declared_folder.declared_step`)
    declared-online           the changed entities' latest values -> Redis, per view
    declared-feature-log      every new row -> ``features/<view>/``

Every declared view is folded in the serve part (the path whose freshness a reader of
Redis sees), so its reads are as of that part's clock. A view keyed by customer takes
the flow's allowed lateness (a customer's events are in order in its partition); one
keyed by product :data:`STOCK_LATENESS_S` (its lines come from every partition, in the
order they are read).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import bytewax.operators as op
from bytewax.dataflow import Stream

from basketflow.config import Settings
from basketflow.features.declared_folder import declared_step
from basketflow.features.declared_state import Engine
from basketflow.flows.event_clock import ClockedBatch, ShardBatch, timer_step, to_shards
from basketflow.flows.pickled_state import pickled_flat_map
from basketflow.flows.shards import CUSTOMER, EntityShard
from basketflow.schemas.declare import ENTITIES, View
from basketflow.schemas.events import Transaction
from basketflow.schemas.feature_view import FeatureView
from basketflow.sinks.flow_sinks import FeatureLogSink, FlowStats, OnlineFeatureSink, count_late

if TYPE_CHECKING:
    from bytewax.operators import KeyedStream

    from basketflow.flows.live import FeatureOutputs
    from basketflow.schemas.records import FeatureUpdate

#: How far behind a product's latest line a line of a declared product view may arrive
#: and still be folded in (its rows after it written again).
STOCK_LATENESS_S = 7 * 86_400


def declared_views(settings: Settings) -> tuple[View, ...]:
    """The feature repository's own views that the generic engine computes (none
    without a repository), as ``apply`` recorded them (``run`` refuses to start while
    they differ); ``plan`` names the others."""
    if settings.feature_repository is None:
        return ()
    from basketflow.schemas.repository import load_repository
    declared = load_repository(settings.feature_repository).declarations.values()
    return tuple(view for view in declared if Engine.computes(view))


def add_declared_steps(batches: Stream[ClockedBatch], outputs: FeatureOutputs,
                       stats: FlowStats, shard: EntityShard | None = None) -> None:
    """The steps of each of ``outputs.declared`` (see the module), writing where
    ``outputs`` says. ``shard`` (a backfill over several processes) keeps the entities of
    a customer shard; the other shards compute no declared view."""
    if not outputs.declared or (shard is not None and shard.kind != CUSTOMER):
        return
    views: dict[str, FeatureView] = {}
    folded: list[KeyedStream[FeatureUpdate]] = []
    for view in outputs.declared:
        engine = Engine(view)
        views[view.name] = view.compile()
        lateness = outputs.allowed_lateness if view.entity == "customer_id" \
            else STOCK_LATENESS_S
        folded.append(_fold_view(batches, engine, lateness, shard))
    updates = op.merge("declared-updates", *folded)
    op.inspect("declared-late", op.key_rm("declared-unkeyed", updates), count_late(stats))
    _add_sinks(updates, views, outputs, stats)


def _fold_view(batches: Stream[ClockedBatch], engine: Engine, lateness: int,
               shard: EntityShard | None) -> KeyedStream[FeatureUpdate]:
    """One view's shards, timers and feature step."""
    name = engine.view.name
    key = ENTITIES[engine.view.entity]
    owns = None if shard is None else shard.owns
    known: dict[str, int] = {}

    def by_entity(batch: ClockedBatch) -> list[tuple[str, ShardBatch]]:
        groups: dict[str, list[Transaction]] = {}
        for e in batch.events:
            entity = key(e)
            if owns is None or owns(entity):
                groups.setdefault(entity, []).append(e)
        return to_shards(list(groups.items()), batch.clock, known)

    shards = op.flat_map(f"declared-{name}-shards", batches, by_entity)
    timers = pickled_flat_map(f"declared-{name}-timers", shards, timer_step(engine.spans))
    return pickled_flat_map(f"declared-{name}-features",
                            op.map(f"declared-{name}-work", timers, lambda kv: kv[1]),
                            declared_step(engine, lateness))


def _add_sinks(updates: KeyedStream[FeatureUpdate], views: Mapping[str, FeatureView],
               outputs: FeatureOutputs, stats: FlowStats) -> None:
    """The declared views' online values and feature logs."""
    if outputs.redis_url is not None:
        op.output("declared-online", updates, OnlineFeatureSink(
            outputs.redis_url, outputs.prefix, views, stats, outputs.retry))
    if outputs.offline_root is not None:
        rows = op.map("declared-log-rows", op.key_rm("declared-rows", updates),
                      lambda u: ("log", u))
        op.output("declared-feature-log", rows, FeatureLogSink(
            outputs.offline_root, {n: v.version for n, v in views.items()}, stats, views))
