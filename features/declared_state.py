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
window (:meth:`DeclaredState.changes`); the feature step of
:mod:`basketflow.features.declared_folder` writes a row at each event time and at each
such moment where the values changed, in the live flow and the backfill alike.

The latest purchase invoice's features (``LATEST_INVOICE``) keep one partial each per
invoice with a purchase at the latest purchase time (:meth:`DeclaredState._add_to_basket`),
so a late line of an earlier invoice of that time brings that invoice back whole. Not
computed here yet: values read as of hour ends (``values_at="hour_end"``).

>>> from basketflow.schemas.declare import E, Feature, View, agg, days
>>> from basketflow.schemas.events import parse_row
>>> view = View("demo", entity="customer_id", features=[
...     Feature("spend", agg.sum(E.value), windows=days(1), decimals=2),
...     Feature("products", agg.count_distinct(E.stock_code), windows=days(1))])
>>> state = Engine(view).state()
>>> line = ["536365", "85123A", "HEART", "6", "12/1/2010 8:26", "2.55", "17850", "UK"]
>>> state.update(parse_row(line, "f:2"))
>>> state.values(1291191960), state.changes(1291191960, 1291191960 + 86_400)
({'spend_1d': 15.3, 'products_1d': 1}, [1291276800])
>>> state.values(1291276800)
{'spend_1d': 0, 'products_1d': 0}
"""

from __future__ import annotations

import operator
from bisect import bisect_right
from dataclasses import replace
from collections.abc import Callable, Iterable, Iterator
from functools import cached_property, partial
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

#: The latest purchase invoices (:meth:`DeclaredState._add_to_basket`): the latest
#: invoice (None before any purchase), the latest purchase time, and a partial per
#: ``LATEST_INVOICE`` feature of each invoice with a purchase at that time.
Basket = tuple[str | None, int, dict[str, list[Any]]]


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
    to first and last, which keep the event's order with it): one function per
    aggregation, chosen once, since it runs per event and feature."""
    if function in ("first", "last"):
        return lambda p, e: _merge_picked(function, p, (event_order(e), of(e)))
    return _STEPS[function](of)


def _sum_step(of: Callable[[Transaction], Any]) -> Adder:
    def add(p: Any, e: Transaction) -> Any:
        v = of(e)
        return p if v is None else p + v
    return add


def _distinct_step(of: Callable[[Transaction], Any]) -> Adder:
    def add(p: Any, e: Transaction) -> Any:
        v = of(e)
        if v is not None:
            p.add(v)
        return p
    return add


def _mean_step(of: Callable[[Transaction], Any]) -> Adder:
    def add(p: Any, e: Transaction) -> Any:
        v = of(e)
        return p if v is None else (p[0] + v, p[1] + 1)
    return add


def _min_step(of: Callable[[Transaction], Any]) -> Adder:
    def add(p: Any, e: Transaction) -> Any:
        v = of(e)
        return p if v is None or (p is not None and not v < p) else v
    return add


def _max_step(of: Callable[[Transaction], Any]) -> Adder:
    def add(p: Any, e: Transaction) -> Any:
        v = of(e)
        return p if v is None or (p is not None and not v > p) else v
    return add


_STEPS: dict[str, Callable[[Callable[[Transaction], Any]], Adder]] = {
    "sum": _sum_step, "count_distinct": _distinct_step, "mean": _mean_step,
    "min": _min_step, "max": _max_step}


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


def _merger(agg: Agg) -> Callable[[Any, Any], Any]:
    """:func:`_merge` for one aggregation, specialised: a distinct-values partial is
    merged into in place (the partial a window builds is its own, never a tile's)."""
    function = agg.function
    if function == "ratio":
        top, bottom = _merger(agg.parts[0]), _merger(agg.parts[1])
        return lambda a, b: (top(a[0], b[0]), bottom(a[1], b[1]))
    if function in ("sum", "count"):
        return operator.add
    if function == "count_distinct":
        return _union_into
    return partial(_merge, agg)


def _union_into(a: set[Any], b: set[Any]) -> set[Any]:
    """``a`` with ``b``'s values added."""
    a.update(b)
    return a


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
        #: Features over the latest purchase invoice's lines.
        self.latest: list[FeatureDecl] = []
        for f in view.features:
            if not isinstance(f, FeatureDecl):
                continue  # request-time: computed when read
            if LATEST_INVOICE in f.windows:  # alone: the declaration checks it
                self.latest.append(f)
            elif f.windows[0].hours <= 0:
                self.lifetime.append(f)
            else:
                self.windowed.append((f, tuple((f"{f.name}_{w.text}", w.hours)
                                               for w in f.windows)))
        self.spans = tuple(sorted({hours for _, ws in self.windowed for _, hours in ws}))
        #: Per windowed feature: its windows (name, hours, decimals) shortest first, and
        #: how its partials start, merge and finish.
        self.windowed_plan = tuple(
            (tuple(sorted(((name, hours, f.decimals) for name, hours in ws),
                          key=lambda w: w[1])),
             partial(_empty, f.aggregation), _merger(f.aggregation),
             partial(_finish, f.aggregation))
            for f, ws in self.windowed)
        #: The features' distinct conditions (``where=``), each evaluated once per event,
        #: and per feature the index of its condition (-1: none) and its adder.
        self.conditions: list[Callable[[Transaction], Any]] = []
        known: dict[str, int] = {}
        self.windowed_adders = tuple(self._gated(f.aggregation, known)
                                     for f, _ in self.windowed)
        self.lifetime_adders = tuple(self._gated(f.aggregation, known) for f in self.lifetime)
        self.latest_adders = tuple(self._gated(f.aggregation, known) for f in self.latest)
        self.where = compiled(view.where) if view.where is not None else None
        self.names = tuple(view.reference([], 0))  # every stored feature, in order

    @cached_property
    def version(self) -> str:
        """The compiled view's version: a state folded under another is not this one's."""
        return self.view.compile().version

    def _gated(self, agg: Agg, known: dict[str, int]) -> tuple[int, Adder]:
        """An aggregation's condition (its index in :attr:`conditions`, shared by the
        features with the same one; -1: none) and its adder without it (a ratio's parts
        keep theirs)."""
        if agg.function == "ratio" or agg.where is None:
            return -1, _adder(agg)
        text = agg.where.text
        if text not in known:
            known[text] = len(self.conditions)
            self.conditions.append(compiled(agg.where))
        return known[text], _adder(replace(agg, where=None))

    @staticmethod
    def computes(view: View) -> bool:
        """Whether the generic engine computes ``view`` (not yet: values as of hour
        ends)."""
        try:
            Engine(view)
        except DeclarationError:
            return False
        return True

    def state(self) -> DeclaredState:
        """A new entity's state."""
        return DeclaredState(self)


class DeclaredState:
    """One entity's tiles (hour -> a partial per windowed feature, in hour order),
    lifetime partials, and the latest purchase invoices (``basket``, see
    :meth:`_add_to_basket`)."""

    __slots__ = ("engine", "tiles", "lifetime", "basket")

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.tiles: dict[int, list[Any]] = {}
        self.lifetime = [_empty(f.aggregation) for f in engine.lifetime]
        self.basket: Basket = (None, 0, {})

    def update(self, e: Transaction) -> None:
        """Fold one event of the entity in (the view's filter applied here)."""
        engine = self.engine
        if engine.where is not None and not engine.where(e):
            return
        hour = e.ts // HOUR
        tiles = self.tiles
        tile = tiles.get(hour)
        if tile is None:
            behind = bool(tiles) and hour < next(reversed(tiles))
            tile = tiles[hour] = [_empty(f.aggregation) for f, _ in engine.windowed]
            if behind:  # an event out of order: the tiles stay in hour order
                self.tiles = dict(sorted(tiles.items()))
        met = [condition(e) for condition in engine.conditions]
        for i, (condition, add) in enumerate(engine.windowed_adders):
            if condition < 0 or met[condition]:
                tile[i] = add(tile[i], e)
        lifetime = self.lifetime
        for i, (condition, add) in enumerate(engine.lifetime_adders):
            if condition < 0 or met[condition]:
                lifetime[i] = add(lifetime[i], e)
        if engine.latest and not (e.is_cancellation or e.is_adjustment):
            self._add_to_basket(e, met)

    def _add_to_basket(self, e: Transaction, met: list[Any]) -> None:
        """Fold a purchase line into the partials of the invoices with a purchase at the
        latest purchase time (``basket``: the latest invoice, that time, a partial per
        feature per such invoice). A later line starts them afresh with its invoice; a
        line at that time adds to its invoice's (new or not), which becomes the latest
        (the reference's latest: the last folded in of the latest time); an earlier line
        adds to its invoice's if it has one (else no latest invoice can include it).
        Every invoice that may become the latest again is kept whole, so the values stay
        the reference's in any order of the lines of one time, a late line's included,
        as long as each invoice's lines share their time, as in the data."""
        invoice, latest, open_invoices = self.basket
        ts = e.ts
        if invoice is None or ts > latest:
            latest, open_invoices = ts, {}
        partials = open_invoices.get(e.invoice)
        if ts == latest:
            invoice = e.invoice
            if partials is None:
                partials = open_invoices[invoice] = [_empty(f.aggregation)
                                                     for f in self.engine.latest]
        elif partials is None:
            return
        for i, (condition, add) in enumerate(self.engine.latest_adders):
            if condition < 0 or met[condition]:
                partials[i] = add(partials[i], e)
        self.basket = (invoice, latest, open_invoices)

    def values(self, as_of: int) -> dict[str, Any]:
        """Every stored feature at ``as_of`` (every event at or before it folded in), in
        the view's order, rounded as declared. Each feature merges each tile once, newest
        first, and finishes its windows from the shortest out (a longer window is a
        shorter one and its older tiles)."""
        engine = self.engine
        last = as_of // HOUR
        hours = list(self.tiles)  # in hour order
        tiles = list(self.tiles.values())
        end = bisect_right(hours, last)
        starts = {span: bisect_right(hours, last - span) for span in engine.spans}
        out: dict[str, Any] = {}
        for i, (windows, empty, merge, finish) in enumerate(engine.windowed_plan):
            merged = empty()
            j = end
            for name, span, decimals in windows:
                start = starts[span]
                while j > start:
                    j -= 1
                    merged = merge(merged, tiles[j][i])
                value = finish(merged)
                out[name] = value if value is None or decimals is None else round(value, decimals)
        for i, f in enumerate(engine.lifetime):
            out[f.name] = _rounded(f, _finish(f.aggregation, self.lifetime[i]))
        invoice, _, open_invoices = self.basket
        basket = open_invoices.get(invoice) or [_empty(f.aggregation) for f in engine.latest]
        for i, f in enumerate(engine.latest):
            out[f.name] = _rounded(f, _finish(f.aggregation, basket[i]))
        return {name: out[name] for name in engine.names}

    def changes(self, after: int, until: int) -> list[int]:
        """The moments in ``(after, until]`` at which one of the tiles leaves a window
        (hour starts), in order."""
        return sorted({moment for h in self.tiles for hours in self.engine.spans
                       if after < (moment := (h + hours) * HOUR) <= until})

    def evict(self, as_of: int) -> None:
        """Drop the tiles no window at ``as_of`` or later can see."""
        if self.engine.spans:
            oldest = as_of // HOUR - self.engine.spans[-1]
            if any(h <= oldest for h in self.tiles):
                self.tiles = {h: t for h, t in self.tiles.items() if h > oldest}


def _rounded(f: FeatureDecl, value: Any) -> Any:
    """A value rounded to the feature's declared decimals."""
    return value if value is None or f.decimals is None else round(value, f.decimals)
