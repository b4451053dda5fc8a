"""Windowed values after the flow's clock, for training sets: windows moved on without events.

The customer feature log holds a row at every moment a customer's windowed values change,
events or windows moving on (:mod:`basketflow.features.entity_features`), but only up to
the flow's event-time clock: after it, no event is known and no row is written, so the
last row holds the windows as of the clock. A label at a later time ``t`` must read the
windows at ``t`` (issue #14): a customer silent for a week reads ``spend_7d = 0``.

How: the clock is the newest ``ts`` of the view's log (its current version). Every
change up to the flow's clock is logged, so the log is exact up to that time, and no
event of the flow is later. After it, the windowed values are computed at ``t`` by the
view's own state (the generic engine's of its declaration,
:data:`~basketflow.features.entity_features.CUSTOMER_ENGINE`, what the flow folds with) over the customer's events from the offline event store
that the flow folded in: those of its longest window before the clock, up to the clock,
less the ones it recorded as late (``late/``), in event-time order. The window rule then
holds as written: the W-day window at ``t`` holds the W*24 hourly tiles ending with
``t``'s hour. The view's other features do not move without events: they stay those of
the log row, and request-time features are computed from it at ``t`` as before.

The feature repository's own views (:mod:`basketflow.schemas.declare`) move on the same
way when the training set is given their declarations: their windowed features are
computed at ``t`` by the generic engine's state of the declaration (its filter
included) over the events of the view's entity (a customer, a guest's invoice, or a
product) of its longest asked window before the clock. Without the declaration (a view
compiled elsewhere), or when its version is not the log's, the values stay those of
the clock.

A store without an events log (a feature log copied alone) keeps the values as of the
clock. ``late/`` holds one row per ``event_id``, under one entity: a line late for its
customer and for a declared product view, recorded under one of the two, is folded in
here for the other, though the flow left it out of both (DESIGN.md, "After the clock").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from basketflow.features.declared_state import HOUR, DeclaredState, Engine
from basketflow.features.entity_features import CUSTOMER_ENGINE
from basketflow.offline_uri import StoreDir
from basketflow.reports.offline_query import arrow_table
from basketflow.schemas.declare import FeatureDecl, View
from basketflow.schemas.events import GUEST_PREFIX, Transaction
from basketflow.schemas.features import CUSTOMER, FeatureView
from basketflow.sinks.offline_layout import (
    event_days,
    event_files,
    files_by_day,
    files_of,
    late_events_dir,
)
from basketflow.sinks.offline_scan import parquet_source

#: The events' columns, in :class:`Transaction`'s order, as the fold takes them.
_EVENT_COLUMNS = ", ".join([
    "event_id", "invoice", "stock_code", "description", "CAST(quantity AS BIGINT) AS quantity",
    "CAST(unit_price AS DOUBLE) AS unit_price", "CAST(epoch(ts) AS BIGINT) AS ts",
    "customer_id", "country", "is_cancellation", "is_adjustment", "is_product"])
#: A line's entity as SQL over the events log, per entity column: a customer as
#: :attr:`Transaction.entity_id` makes it (a guest's invoice), or a product.
_ENTITY = {"customer_id": (f"CASE WHEN customer_id IS NULL OR customer_id = '' "
                           f"THEN '{GUEST_PREFIX}' || invoice ELSE customer_id END"),
           "stock_code": "stock_code"}


@dataclass(frozen=True)
class Moving:
    """The asked features of a view whose values move on after the clock, the windows
    (in hours) they read, and the engine the flow folds the view's events with."""

    features: tuple[str, ...]
    spans: tuple[int, ...]
    engine: Engine


def moves_on(view: FeatureView, features: Sequence[str],
             declaration: View | None = None) -> Moving | None:
    """The asked ``features`` of ``view`` whose values move on after the clock and are
    computed here (None: none): its windowed features, of the built-in customer view or
    of a declared view whose ``declaration`` is given and compiles to ``view``'s version
    (see the module docstring)."""
    engine = _engine_of(view, declaration)
    if engine is None:
        return None
    hours = {f"{f.name}_{w.text}": w.hours for f in engine.view.features
             if isinstance(f, FeatureDecl) for w in f.windows if w.hours > 0}
    moving = tuple(f for f in features if f in hours)
    return Moving(moving, tuple(sorted({hours[f] for f in moving})), engine) if moving \
        else None


def _engine_of(view: FeatureView, declaration: View | None) -> Engine | None:
    """The engine whose state folds ``view``'s log: the built-in customer view's, or
    that of ``declaration`` when the generic engine computes it as ``view``."""
    if view.version == CUSTOMER.version:
        return CUSTOMER_ENGINE
    if declaration is None or not Engine.computes(declaration):
        return None
    engine = Engine(declaration)
    return engine if engine.version == view.version else None


def _days(first: int, last: int) -> list:
    """The UTC days from epoch second ``first`` to ``last``, both included."""
    start = datetime.fromtimestamp(first, timezone.utc).date().toordinal()
    end = datetime.fromtimestamp(last, timezone.utc).date().toordinal()
    return [datetime.fromordinal(d).date() for d in range(start, end + 1)]


def folded_events(con: duckdb.DuckDBPyConnection, root: StoreDir, entities: Sequence[str],
                  since: int, clock: int,
                  entity: str = "customer_id") -> dict[str, list[Transaction]] | None:
    """Each of ``entities``' events with event time in ``[since, clock]`` that the flow
    folded in (not in ``late/`` for that entity), in event-time order (ties by id); None
    when the store has no events log. ``entity``: the column the entities are of
    (``customer_id``: customers and guests, or ``stock_code``)."""
    if not event_days(root):
        return None
    days = _days(since, clock)
    files = event_files(root, days)
    found: dict[str, list[Transaction]] = {e: [] for e in entities}
    if not files:
        return found
    con.register("wanted", pa.table({"e": pa.array(list(entities), pa.string())}))
    events = parquet_source(con, files)
    con.register("late", _late_ids(con, files_of(files_by_day(late_events_dir(root)), days)))
    table = arrow_table(con, f"""
        SELECT * FROM (SELECT {_ENTITY[entity]} AS e, {_EVENT_COLUMNS} FROM {events.sql}
                       WHERE epoch(ts) BETWEEN $since AND $clock) x
        WHERE x.e IN (SELECT e FROM wanted)
          AND NOT EXISTS (SELECT 1 FROM late l WHERE l.event_id = x.event_id AND l.e = x.e)
        ORDER BY x.e, x.ts, x.event_id""", {**events.params, "since": since, "clock": clock})
    for e, *fields in zip(*(column.to_pylist() for column in table.columns)):
        found[e].append(Transaction(*fields))
    return found


def _late_ids(con: duckdb.DuckDBPyConnection, files: Sequence[StoreDir]) -> pa.Table:
    """The ``(event_id, e)`` pairs of the late events in ``files``: events the flow left out
    of entity ``e``'s values."""
    if not files:
        return pa.table({"event_id": pa.array([], pa.string()), "e": pa.array([], pa.string())})
    late = parquet_source(con, files)
    return arrow_table(con, f"SELECT event_id, CAST(entity_id AS VARCHAR) AS e FROM {late.sql}",
                       late.params)


def windows_at(con: duckdb.DuckDBPyConnection, root: StoreDir, moving: Moving,
               entities: pa.Array | pa.ChunkedArray, as_of: np.ndarray,
               clock: int) -> dict[str, pa.Array] | None:
    """The ``moving`` features of each (entity, time) pair, ``entities`` as text and
    ``as_of`` in epoch seconds, every time after ``clock``: the windows at that time over
    the entity's events folded in up to the clock (see the module docstring). Feature ->
    values in pair order; None when the store has no events log.

    Only the events the asked windows can hold at the earliest time are read. The values
    are computed once per entity and set of tiles in the asked windows (which tiles a
    window holds changes only when one leaves it), found for all pairs at once in NumPy,
    not once per pair.
    """
    since = (int(as_of.min()) // HOUR + 1 - max(moving.spans)) * HOUR
    if isinstance(entities, pa.ChunkedArray):  # Arrow-backed pandas text
        entities = entities.combine_chunks()
    encoded = pc.dictionary_encode(entities)
    names = encoded.dictionary.to_pylist()
    events = folded_events(con, root, names, since, clock, moving.engine.view.entity)
    if events is None:
        return None
    states = [moving.engine.state() for _ in names]
    for state, name in zip(states, names):
        for line in events[name]:
            state.update(line)
    codes = encoded.indices.to_numpy().astype(np.int64)
    first, picks = _groups([codes, *_tiles_before(states, codes, as_of // HOUR,
                                                  moving.spans)])
    found = [states[codes[i]].values(int(as_of[i])) for i in first.tolist()]
    return {f: pa.array([v[f] for v in found]).take(picks) for f in moving.features}


def _groups(keys: Sequence[np.ndarray]) -> tuple[np.ndarray, pa.Array]:
    """Rows with equal values in every array of ``keys``, grouped: one row of each group,
    and each row's group number (into the first).

    >>> first, picks = _groups([np.array([3, 1, 3, 1]), np.array([0, 0, 0, 5])])
    >>> first.tolist(), picks.to_pylist()
    ([1, 3, 0], [2, 0, 2, 1])
    """
    order = np.lexsort(keys[::-1])
    ordered = np.stack([k[order] for k in keys])
    starts = np.concatenate([[True], (np.diff(ordered, axis=1) != 0).any(axis=0)])
    group = np.empty(len(order), np.int64)
    group[order] = np.cumsum(starts) - 1
    return order[starts], pa.array(group)


def _tiles_before(states: Sequence[DeclaredState], codes: np.ndarray, hours: np.ndarray,
                  spans: Sequence[int]) -> list[np.ndarray]:
    """Per span, per pair: how many tiles of the pair's entity (``states[code]``) are of an
    hour ``<= hour - span``, those the window of ``span`` hours ending at ``hour`` no
    longer holds."""
    tiles = [sorted(state.tiles) for state in states]
    starts = np.cumsum([0] + [len(t) for t in tiles])
    flat = np.fromiter((code << 32 | h for code, t in enumerate(tiles) for h in t),
                       np.int64, count=int(starts[-1]))
    return [np.searchsorted(flat, codes << 32 | (hours - span), "right") - starts[codes]
            for span in spans]
