"""The generic engine: a declared view's values (:mod:`basketflow.schemas.declare`),
computed per entity from hourly tiles of partial aggregates.

Each of a view's windowed features keeps, per hour with events, a *partial* of its
aggregation (a sum, a count, the set of distinct values, a sum and a count for a mean,
the smallest or largest value, the earliest or latest event's value with its order); a
window's value merges the partials of its hours and reads its value from them, so count
distinct stays exact per window (the union of the hours' sets), and min, max, first and
last need no event kept; the engine runs these as functions generated for the view
(:mod:`basketflow.features.declared_codegen`). Lifetime features keep one
running partial. The values follow the window rule: the window of ``H`` hours at ``t``
merges the ``H`` hourly tiles ending with ``t``'s hour.

Between events, windowed values change only when an hour begins at which a tile leaves a
window (:meth:`DeclaredState.changes`); the feature step of
:mod:`basketflow.features.declared_folder` writes a row at each event time and at each
such moment where the values changed, in the live flow and the backfill alike.

The latest purchase invoice's features (``LATEST_INVOICE``) keep one partial each per
invoice with a purchase at the latest purchase time (:meth:`DeclaredState._add_to_basket`),
so a late line of an earlier invoice of that time brings that invoice back whole. The
current invoice's (``CURRENT_INVOICE``) keep one partial each, started afresh by a
purchase line of another invoice (:meth:`DeclaredState._add_to_current`).

A view read as of hour ends (``values_at="hour_end"``, the built-in ``product`` view)
reads its windows at the last hour end (:meth:`DeclaredState.values`), and changes only
at hour ends (:meth:`DeclaredState.last_change`). An exact sum
(``agg.sum(..., exact=3)``) keeps whole units of ``10**-3`` in its tiles, so its windows
are the same in any order of the events.

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

from bisect import bisect_right
from functools import cached_property
from typing import Any

from basketflow.features.declared_codegen import (
    Output,
    conditions_of,
    exact_rounded,
    empties_source,
    fold_latest_source,
    fold_source,
    merge_picked,
    round_or_null,
    values_source,
)
from basketflow.schemas.declare import (
    CURRENT_INVOICE,
    Agg,
    INVOICE_WINDOWS,
    FeatureDecl,
    View,
    compiled,
    compiled_function,
    event_order,
)
from basketflow.schemas.events import Transaction

HOUR = 3600

#: The latest purchase invoices (:meth:`DeclaredState._add_to_basket`): the latest
#: invoice (None before any purchase), the latest purchase time, and a partial per
#: ``LATEST_INVOICE`` feature of each invoice with a purchase at that time.
Basket = tuple[str | None, int, dict[str, list[Any]]]
#: The tile a view without windows over time folds into: it holds nothing.
_NO_TILE: list[Any] = []


# ------------------------------------------------------------------ the engine

def one_partial_each(features: list[FeatureDecl]) -> tuple[list[Agg], list[int]]:
    """The partials ``features`` keep, and the index of each feature's: the shares of one
    sum by one grouping (``agg.share``) keep one partial, so an event adds to it once;
    every other feature keeps its own."""
    aggs: list[Agg] = []
    shared: dict[str, int] = {}
    index: list[int] = []
    for f in features:
        a = f.aggregation
        if a.function == "share" and a.partial_text in shared:
            index.append(shared[a.partial_text])
            continue
        if a.function == "share":
            shared[a.partial_text] = len(aggs)
        index.append(len(aggs))
        aggs.append(a)
    return aggs, index


class Engine:
    """A declared view compiled for the generic engine: its windowed features with their
    windows in hours, and its lifetime features."""

    def __init__(self, view: View) -> None:
        self.view = view
        #: Whether its values are read as of the last hour end (``values_at``).
        self.hour_end = view.values_at == "hour_end"
        self.windowed: list[tuple[FeatureDecl, tuple[tuple[str, int], ...]]] = []
        self.lifetime: list[FeatureDecl] = []
        #: Features over one invoice's lines: the latest purchase invoice's, or (when
        #: ``current``) the current invoice's (``CURRENT_INVOICE``).
        self.latest: list[FeatureDecl] = []
        self.current = False
        #: Ratios of two windowed features (:meth:`View.ratio_of_features`): read from
        #: their stored values, with no partial of their own in the tiles.
        self.ratios: list[tuple[FeatureDecl, tuple[FeatureDecl, FeatureDecl]]] = []
        for f in view.features:
            if not isinstance(f, FeatureDecl):
                continue  # request-time: computed when read
            parts = view.ratio_of_features(f)
            if parts is not None:
                self.ratios.append((f, parts))
            elif f.windows[0] in INVOICE_WINDOWS:  # alone, one kind: the view checks it
                self.latest.append(f)
                self.current = f.windows[0] == CURRENT_INVOICE
            elif f.windows[0].hours <= 0:
                self.lifetime.append(f)
            else:
                self.windowed.append((f, tuple((f"{f.name}_{w.text}", w.hours)
                                               for w in f.windows)))
        self.spans = tuple(sorted({hours for _, ws in self.windowed for _, hours in ws}))
        #: Hours after a tile's hour at whose end a view read at hour ends changes: 0 (it
        #: enters every window) and each window's span (it leaves that window).
        self.change_hours = (0, *self.spans)
        windowed = [f.aggregation for f, _ in self.windowed]
        #: The lifetime and invoice partials, and each feature's partial among them
        #: (:func:`one_partial_each`).
        lifetime, self.lifetime_partial = one_partial_each(self.lifetime)
        latest, self.latest_partial = one_partial_each(self.latest)
        #: The features' distinct conditions (``where=``), each evaluated once per event.
        conditions = conditions_of(windowed + lifetime + latest)
        scope = {"_merge_picked": merge_picked, "_event_order": event_order,
                 "_round_or_null": round_or_null, "_exact_rounded": exact_rounded}
        #: New partials: ``new_tile()`` (one per windowed feature), ``new_lifetime()``,
        #: ``new_basket()`` (one per latest invoice feature).
        self.new_tile, self.new_lifetime, self.new_basket = (
            compiled_function(empties_source(name, aggs), name, scope)
            for name, aggs in (("new_tile", windowed), ("new_lifetime", lifetime),
                               ("new_basket", latest)))
        #: ``fold(tile, lifetime, e)``: an event added to its tile and the lifetime
        #: partials; it returns each condition's truth, for ``fold_latest(partials, met,
        #: e)``, which adds it to the latest invoice's partials.
        self.fold = compiled_function(fold_source(windowed, lifetime, conditions),
                                      "fold", scope)
        self.fold_latest = compiled_function(fold_latest_source(latest, conditions),
                                             "fold_latest", scope)
        self.where = compiled(view.where) if view.where is not None else None
        self.names = tuple(view.reference([], 0))  # every stored feature, in order
        #: ``values(tiles, end, starts, lifetime, basket)``: a row's stored features.
        self.values = compiled_function(values_source(windowed, self.spans,
                                                      self._outputs()), "values", scope)

    def _outputs(self) -> list[Output]:
        """The stored features in the view's order, as the generated values function
        computes them."""
        out: dict[str, Output] = {}
        for i, (f, ws) in enumerate(self.windowed):
            out |= {name: Output(name, f.aggregation, f.decimals, feature=i, hours=hours)
                    for name, hours in ws}
        for f, (top, bottom) in self.ratios:
            out |= {f"{f.name}_{w.text}": Output(
                f"{f.name}_{w.text}", f.aggregation, f.decimals, hours=w.hours,
                divides=(f"{top.name}_{w.text}", f"{bottom.name}_{w.text}"))
                for w in f.windows}
        for source, features, partial in (("lifetime", self.lifetime, self.lifetime_partial),
                                          ("basket", self.latest, self.latest_partial)):
            out |= {f.name: Output(f.name, f.aggregation, f.decimals,
                                   partial=f"{source}[{partial[i]}]")
                    for i, f in enumerate(features)}
        return [out[name] for name in self.names]

    @cached_property
    def version(self) -> str:
        """The compiled view's version: a state folded under another is not this one's."""
        return self.view.compile().version

    @staticmethod
    def computes(view: View) -> bool:
        """Whether the declared views' feature step
        (:mod:`basketflow.features.declared_folder`) computes ``view``: not a view read
        as of hour ends, which only the built-in ``product`` view's folder writes (its
        rows are hourly tiles)."""
        return view.values_at == "event"

    def state(self) -> DeclaredState:
        """A new entity's state."""
        return DeclaredState(self)


class DeclaredState:
    """One entity's tiles (hour -> a partial per windowed feature; in hour order once
    :meth:`in_order` has put them so),
    lifetime partials, and the latest purchase invoices (``basket``, see
    :meth:`_add_to_basket`)."""

    __slots__ = ("engine", "tiles", "lifetime", "basket", "unordered")

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.tiles: dict[int, list[Any]] = {}
        self.lifetime = engine.new_lifetime()
        self.basket: Basket = (None, 0, {})
        #: Whether a tile was added behind the newest since the tiles were last put in
        #: hour order (:meth:`in_order`).
        self.unordered = False

    def in_order(self) -> dict[int, list[Any]]:
        """The tiles in hour order (what reads, eviction and snapshots need), sorted
        here once after events out of order: sorting at each such event cost a
        product, whose lines come from every partition interleaved, most of its
        folding time."""
        if self.unordered:
            self.tiles = dict(sorted(self.tiles.items()))
            self.unordered = False
        return self.tiles

    def update(self, e: Transaction) -> None:
        """Fold one event of the entity in (the view's filter applied here)."""
        engine = self.engine
        if engine.where is not None and not engine.where(e):
            return
        if engine.windowed:
            hour = e.ts // HOUR
            tiles = self.tiles
            tile = tiles.get(hour)
            if tile is None:
                if not self.unordered and tiles and hour < next(reversed(tiles)):
                    self.unordered = True  # an event out of order: sorted when read
                tile = tiles[hour] = engine.new_tile()
        else:  # no window over time (the basket's): no tiles to keep
            tile = _NO_TILE
        met = engine.fold(tile, self.lifetime, e)
        if engine.latest and not (e.is_cancellation or e.is_adjustment):
            if engine.current:
                self._add_to_current(e, met)
            else:
                self._add_to_basket(e, met)

    def _add_to_current(self, e: Transaction, met: tuple[bool, ...]) -> None:
        """Fold a purchase line into the current invoice's partials (``basket``: that
        invoice, 0, its partials by invoice): a line of another invoice, a late one of an
        older invoice too, starts them afresh with its own, as lines arrive."""
        invoice, _, partials = self.basket
        if e.invoice != invoice:
            invoice = e.invoice
            partials = {invoice: self.engine.new_basket()}
            self.basket = (invoice, 0, partials)
        self.engine.fold_latest(partials[invoice], met, e)

    def _add_to_basket(self, e: Transaction, met: tuple[bool, ...]) -> None:
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
                partials = open_invoices[invoice] = self.engine.new_basket()
        elif partials is None:
            return
        self.engine.fold_latest(partials, met, e)
        self.basket = (invoice, latest, open_invoices)

    def values(self, as_of: int) -> dict[str, Any]:
        """Every stored feature at ``as_of`` (every event at or before it folded in; of a
        view read at hour ends, as of the last hour end at or before it), in the view's
        order, rounded as declared: the engine's generated ``values`` over the
        tiles of the windows at ``as_of`` (found by bisection, the tiles in hour order)."""
        engine = self.engine
        last = (as_of + 1) // HOUR - 1 if engine.hour_end else as_of // HOUR
        tiles = self.in_order()
        hours = list(tiles)
        starts = [bisect_right(hours, last - span) for span in engine.spans]
        invoice, _, open_invoices = self.basket
        basket = open_invoices.get(invoice) or engine.new_basket()
        return engine.values(list(tiles.values()), bisect_right(hours, last), starts,
                             self.lifetime, basket)

    def changes(self, after: int, until: int) -> list[int]:
        """The moments in ``(after, until]`` at which one of the tiles leaves a window
        (hour starts), in order."""
        return sorted({moment for h in self.tiles for hours in self.engine.spans
                       if after < (moment := (h + hours) * HOUR) <= until})

    def last_change(self, until: int) -> int | None:
        """Of a view read at hour ends: the last hour end at or before ``until`` at which
        its values changed (a tile entered every window at its hour's end, or left one a
        span later); None if none.

        >>> from basketflow.schemas.declare import Feature, View, agg, days
        >>> hourly = View("h", entity="stock_code", values_at="hour_end",
        ...               features=[Feature("n", agg.count(), windows=days(1))])
        >>> p = Engine(hourly).state()
        >>> p.tiles = {10: [1]}
        >>> p.last_change(11 * HOUR), p.last_change(40 * HOUR) // HOUR, p.last_change(9 * HOUR)
        (39599, 34, None)
        """
        last = (until + 1) // HOUR - 1
        hours = list(self.in_order())
        latest = -1
        for after in self.engine.change_hours:  # the latest tile that changed it so
            found = bisect_right(hours, last - after)
            if found and hours[found - 1] + after > latest:
                latest = hours[found - 1] + after
        return None if latest < 0 else latest * HOUR + HOUR - 1

    def moves_after(self, after: int) -> bool:
        """Whether a tile will leave a window after ``after``."""
        longest = self.engine.spans[-1] if self.engine.spans else 0
        return any((h + longest) * HOUR > after for h in self.tiles)

    def evict(self, as_of: int) -> None:
        """Drop the tiles no window at ``as_of`` or later can see (the oldest tile is the
        first: the tiles are in hour order)."""
        if self.engine.spans and self.tiles:
            oldest = as_of // HOUR - self.engine.spans[-1]
            if next(iter(self.in_order())) <= oldest:
                self.tiles = {h: t for h, t in self.tiles.items() if h > oldest}
