"""The generic engine: a declared view's values (:mod:`basketflow.schemas.declare`),
computed per entity from hourly tiles of partial aggregates.

Each of a view's windowed features keeps, per hour with events, a *partial* of its
aggregation (a sum, a count, the set of distinct values, a sum and a count for a mean,
the smallest or largest value, the earliest or latest event's value with its order); a
window's value merges the partials of its hours (:func:`_merge`) and finishes them
(:func:`_finish`), so count distinct stays exact per window (the union of the hours'
sets), and min, max, first and last need no event kept. Lifetime features keep one
running partial. The values follow the window rule: the window of ``H`` hours at ``t``
merges the ``H`` hourly tiles ending with ``t``'s hour.

Between events, windowed values change only when an hour begins at which a tile leaves a
window; :func:`feature_rows` gives one row at each event time and at each such moment
where the values changed, so the latest row at or before any time ``t`` (what
``historical`` joins) holds the values at ``t``, long after the entity's last event too.

Not computed here yet: ``LATEST_INVOICE`` windows (the built-in basket view's own state
class computes it), and values read as of hour ends (``values_at="hour_end"``).

>>> from basketflow.schemas.declare import E, Feature, View, agg, days
>>> from basketflow.schemas.events import parse_row
>>> view = View("demo", entity="customer_id", features=[
...     Feature("spend", agg.sum(E.value), windows=days(1), decimals=2),
...     Feature("products", agg.count_distinct(E.stock_code), windows=days(1))])
>>> line = ["536365", "85123A", "HEART", "6", "12/1/2010 8:26", "2.55", "17850", "UK"]
>>> for ts, values in feature_rows(Engine(view), [parse_row(line, "f:2")]):
...     print(ts, values)
1291191960 {'spend_1d': 15.3, 'products_1d': 1}
1291276800 {'spend_1d': 0, 'products_1d': 0}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from basketflow.schemas.declare import (
    LATEST_INVOICE,
    Agg,
    DeclarationError,
    FeatureDecl,
    View,
    compiled,
    event_order,
)
from basketflow.schemas.events import Transaction

HOUR = 3600


# ------------------------------------------------------------------ partials

def _empty(agg: Agg) -> Any:
    """The partial of no events (a new one: a distinct-values partial is a set a tile
    adds to)."""
    function = agg.function
    if function == "ratio":
        return (_empty(agg.parts[0]), _empty(agg.parts[1]))
    if function in ("sum", "count"):
        return 0
    if function == "count_distinct":
        return set()
    if function == "mean":
        return (0, 0)
    return None


Adder = Callable[[Any, Transaction], Any]


def _adder(agg: Agg) -> Adder:
    """The function that adds an event to a partial of ``agg``, its expressions compiled
    (:func:`~basketflow.schemas.declare.compiled`)."""
    function = agg.function
    if function == "ratio":
        top, bottom = _adder(agg.parts[0]), _adder(agg.parts[1])
        return lambda p, e: (top(p[0], e), bottom(p[1], e))
    assert function == "count" or agg.of is not None
    step = _count if agg.of is None else _step(function, compiled(agg.of))
    if agg.where is None:
        return step
    where = compiled(agg.where)
    return lambda p, e: step(p, e) if where(e) else p


def _count(p: Any, e: Transaction) -> Any:
    """``count``: one more."""
    return p + 1


def _step(function: str, of: Callable[[Transaction], Any]) -> Adder:
    """How ``function`` adds the value ``of`` an event (a null value adds nothing, except
    to first and last, which keep the event's order with it)."""
    def add(p: Any, e: Transaction) -> Any:
        v = of(e)
        if function in ("first", "last"):
            return _merge_picked(function, p, (event_order(e), v))
        if v is None:
            return p
        if function == "sum":
            return p + v
        if function == "count_distinct":
            p.add(v)
            return p
        if function == "mean":
            return (p[0] + v, p[1] + 1)
        if p is None:
            return v
        return v if (v < p if function == "min" else v > p) else p
    return add


def _merge_picked(function: str, a: Any, b: Any) -> Any:
    """Of two (event order, value) partials, the earliest (first) or latest (last)."""
    if a is None:
        return b
    if b is None:
        return a
    return (min if function == "first" else max)(a, b, key=lambda picked: picked[0])


def _merge(agg: Agg, a: Any, b: Any) -> Any:
    """Two partials as one."""
    function = agg.function
    if function == "ratio":
        return (_merge(agg.parts[0], a[0], b[0]), _merge(agg.parts[1], a[1], b[1]))
    if function in ("sum", "count"):
        return a + b
    if function == "count_distinct":
        return a | b
    if function == "mean":
        return (a[0] + b[0], a[1] + b[1])
    if function in ("first", "last"):
        return _merge_picked(function, a, b)
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b) if function == "min" else max(a, b)


def _finish(agg: Agg, partial: Any) -> Any:
    """The value of a partial."""
    function = agg.function
    if function == "ratio":
        top = _finish(agg.parts[0], partial[0])
        bottom = _finish(agg.parts[1], partial[1])
        return agg.if_zero if not bottom else (top or 0) / bottom
    if function == "count_distinct":
        return len(partial)
    if function == "mean":
        return partial[0] / partial[1] if partial[1] else None
    if function in ("first", "last"):
        return None if partial is None else partial[1]
    return partial


# ------------------------------------------------------------------ the engine

class Engine:
    """A declared view compiled for the generic engine: its windowed features with their
    windows in hours, and its lifetime features."""

    def __init__(self, view: View) -> None:
        if view.values_at != "event":
            raise DeclarationError(f"{view.declared_at}: view {view.name!r}: values read as "
                                   "of hour ends are not computed by the generic engine yet")
        self.view = view
        self.windowed: list[tuple[FeatureDecl, tuple[tuple[str, int], ...]]] = []
        self.lifetime: list[FeatureDecl] = []
        for f in view.features:
            if not isinstance(f, FeatureDecl):
                continue  # request-time: computed when read
            if LATEST_INVOICE in f.windows:
                raise DeclarationError(f"{f.where}: feature {f.name!r}: LATEST_INVOICE "
                                       "windows are not computed by the generic engine yet")
            if f.windows[0].hours <= 0:
                self.lifetime.append(f)
            else:
                self.windowed.append((f, tuple((f"{f.name}_{w.text}", w.hours)
                                               for w in f.windows)))
        self.spans = tuple(sorted({hours for _, ws in self.windowed for _, hours in ws}))
        self.windowed_adders = tuple(_adder(f.aggregation) for f, _ in self.windowed)
        self.lifetime_adders = tuple(_adder(f.aggregation) for f in self.lifetime)
        self.where = compiled(view.where) if view.where is not None else None
        self.names = tuple(view.reference([], 0))  # every stored feature, in order

    def state(self) -> DeclaredState:
        """A new entity's state."""
        return DeclaredState(self)


class DeclaredState:
    """One entity's tiles (hour -> a partial per windowed feature) and lifetime partials."""

    __slots__ = ("engine", "tiles", "lifetime")

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.tiles: dict[int, list[Any]] = {}
        self.lifetime = [_empty(f.aggregation) for f in engine.lifetime]

    def update(self, e: Transaction) -> None:
        """Fold one event of the entity in (the view's filter applied here)."""
        engine = self.engine
        if engine.where is not None and not engine.where(e):
            return
        hour = e.ts // HOUR
        tile = self.tiles.get(hour)
        if tile is None:
            tile = self.tiles[hour] = [_empty(f.aggregation) for f, _ in engine.windowed]
        for i, add in enumerate(engine.windowed_adders):
            tile[i] = add(tile[i], e)
        lifetime = self.lifetime
        for i, add in enumerate(engine.lifetime_adders):
            lifetime[i] = add(lifetime[i], e)

    def values(self, as_of: int) -> dict[str, Any]:
        """Every stored feature at ``as_of`` (every event at or before it folded in), in
        the view's order, rounded as declared."""
        last = as_of // HOUR
        inside = {hours: [t for h, t in self.tiles.items() if last - hours < h <= last]
                  for hours in self.engine.spans}
        out: dict[str, Any] = {}
        for i, (f, windows) in enumerate(self.engine.windowed):
            agg = f.aggregation
            for name, hours in windows:
                partial = _empty(agg)
                for tile in inside[hours]:
                    partial = _merge(agg, partial, tile[i])
                out[name] = _rounded(f, _finish(agg, partial))
        for i, f in enumerate(self.engine.lifetime):
            out[f.name] = _rounded(f, _finish(f.aggregation, self.lifetime[i]))
        return {name: out[name] for name in self.engine.names}

    def evict(self, as_of: int) -> None:
        """Drop the tiles no window at ``as_of`` or later can see."""
        if self.engine.spans:
            oldest = as_of // HOUR - self.engine.spans[-1]
            self.tiles = {h: t for h, t in self.tiles.items() if h > oldest}


def _rounded(f: FeatureDecl, value: Any) -> Any:
    """A value rounded to the feature's declared decimals."""
    return value if value is None or f.decimals is None else round(value, f.decimals)


def feature_rows(engine: Engine, events: Iterable[Transaction],
                 ) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(time, values)`` of one entity whose events, in event-time order, are
    ``events``: at each event time, and at each moment a tile leaves a window, whenever
    the values changed (see the module)."""
    state = engine.state()
    pending: list[Transaction] = list(events)
    moments = {e.ts for e in pending} | {(e.ts // HOUR + hours) * HOUR
                                          for e in pending for hours in engine.spans}
    previous: dict[str, Any] | None = None
    i = 0
    for moment in sorted(moments):
        while i < len(pending) and pending[i].ts <= moment:
            state.update(pending[i])
            i += 1
        values = state.values(moment)
        if values != previous:
            yield moment, values
            previous = values
        state.evict(moment)
