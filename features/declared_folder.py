"""The feature step of a declared view (:mod:`basketflow.schemas.declare`), computed by
the generic engine (:mod:`basketflow.features.declared_state`): the one implementation
the live flow and ``backfill --views`` both run.

A :class:`DeclaredFolder` follows the rules of every entity's folder
(:class:`~basketflow.features.entity_features.Folder`: ids folded once, late events left
out, rows written up to the flow's event-time clock where windows move on without
events), as the built-in customer view's does: a row after the last event of each
event time, and a row at each hour start at which a tile leaves a window, each only
where the values changed from the row before, so the latest row at or before any time
``t`` up to the clock holds the values at ``t``. ``seq`` counts the entity's events
folded in (those the view's filter leaves out too). An event that arrives behind the
rows written already has every row after it written again, changed or not, exact: the
tiles its windows see are kept (:meth:`DeclaredFolder._expire`).

The folder is pickled without its engine (compiled expressions do not pickle): the step
(:func:`declared_step`) gives it its engine again, or a new state when the view's
version changed (its history is then ``backfill --views``'s to compute).

A guest's folder (entity ``guest-<invoice>``: every guest invoice is an entity of its
own that never buys again) is dropped once the clock is past its latest event by the
view's longest window and the allowed lateness, its rows all written
(:meth:`DeclaredFolder.done`), as the built-in customer view's is; a line of a guest
with no folder that far behind the clock is late, never the first of a new folder.

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

from collections.abc import Callable, Iterable
from typing import Any

from basketflow.features.declared_state import HOUR, Basket, DeclaredState, Engine
from basketflow.features.entity_features import (
    Folder,
    behind_forgotten_guest,
    windows_passed,
)
from basketflow.features.seen_ids import SeenIds
from basketflow.schemas.events import GUEST_PREFIX, Transaction
from basketflow.schemas.records import FeatureUpdate, LogRow, Work

#: A lateness no event of an ordered stream reaches.
NEVER_LATE = 1 << 40


class DeclaredFolder(Folder):
    """One entity's state of one declared view, and the values of its latest row;
    ``guest_kept_s``: how far behind the clock a guest's state is kept (not pickled: the
    step sets it, :meth:`attach`)."""

    __slots__ = ("state", "version", "last", "guest_kept_s")

    def __init__(self, engine: Engine, guest_kept_s: int = NEVER_LATE) -> None:
        super().__init__()
        self.state = engine.state()
        self.version = engine.version
        self.last: dict[str, Any] | None = None
        self.guest_kept_s = guest_kept_s

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickled as plain values, without the engine (see the module)."""
        return _restore, (self.version, self.state.in_order(), self.state.lifetime, self.last,
                          self.seen, self.seq, self.max_ts, self.rows_through,
                          self.state.basket)

    def attach(self, engine: Engine, guest_kept_s: int) -> None:
        """Give a restored folder its engine, and how long a guest's state is kept."""
        self.state.engine = engine
        self.guest_kept_s = guest_kept_s

    def done(self, entity: str, clock: int | None) -> bool:
        """A guest's folder once the clock is ``guest_kept_s`` past its latest event's
        tile, and no tile is left to leave a window after its rows."""
        return (clock is not None and entity.startswith(GUEST_PREFIX)
                and windows_passed(self.max_ts, clock, self.guest_kept_s)
                and not self.state.moves_after(self.rows_through))

    def _behind_forgotten(self, entity: str, fresh: list[Transaction], clock: int,
                          update: FeatureUpdate) -> list[Transaction]:
        """A new guest folder's events ``guest_kept_s`` behind ``clock`` are late
        (:func:`behind_forgotten_guest`)."""
        return behind_forgotten_guest(entity, fresh, clock, self.guest_kept_s, update)

    def _fold(self, entity: str, fresh: list[Transaction], lateness: int,
              update: FeatureUpdate) -> None:
        """A row after the last event of each event time, where the values changed."""
        state = self.state
        self._fold_in_order(entity, fresh, lateness, update, state.update,
                            lambda: bool(state.tiles),
                            lambda _flagged: self._emit_moved(entity, update))

    def _emit_moved(self, entity: str, update: FeatureUpdate) -> None:
        """The row at the latest event time; then, where the clock had written rows after
        it already (the event arrived behind them), every one of those again."""
        behind = self.rows_through > self.max_ts
        self._row(entity, self.max_ts, update, behind)
        if behind:
            self._rows(entity, self.max_ts, self.rows_through, update, True)
        else:
            self.rows_through = self.max_ts

    def _expire(self, entity: str, until: int, update: FeatureUpdate) -> None:
        """The rows of the moments after ``rows_through`` up to ``until`` at which a tile
        leaves a window; then the tiles no window at the latest event time or later sees
        are dropped: an event behind the rows has every row from that time on written
        again, so their windows must keep their tiles, however far the clock went."""
        self._rows(entity, self.rows_through, until, update, False)
        self.rows_through = until
        self.state.evict(min(until, self.max_ts))

    def _rows(self, entity: str, after: int, until: int, update: FeatureUpdate,
              every: bool) -> None:
        """A row at each moment in ``(after, until]`` at which a tile leaves a window
        (``every``: changed or not)."""
        for moment in self.state.changes(after, until):
            self._row(entity, moment, update, every)

    def _row(self, entity: str, ts: int, update: FeatureUpdate, every: bool) -> None:
        """The row of the values at ``ts``, if they changed (``every``: in any case), as a
        log row and as the latest values."""
        values = self.state.values(ts)
        if not every and values == self.last:
            return
        view = self.state.engine.view.name
        update.rows.append(LogRow(view, entity, ts, self.seq, values))
        update.values[view] = values
        update.times[view] = ts
        self.last = values


def _restore(version: str, tiles: dict[int, list[Any]], lifetime: list[Any],
             last: dict[str, Any] | None, seen: SeenIds, seq: int, max_ts: int,
             rows_through: int, basket: Any) -> DeclaredFolder:
    """The folder :meth:`DeclaredFolder.__reduce__` pickled, without its engine yet."""
    folder = DeclaredFolder.__new__(DeclaredFolder)
    folder.state = DeclaredState.__new__(DeclaredState)
    folder.state.tiles, folder.state.lifetime = tiles, lifetime  # pickled in hour order
    folder.state.unordered = False
    folder.state.basket = _upgraded_basket(basket)
    folder.version, folder.last, folder.guest_kept_s = version, last, NEVER_LATE
    folder.seen, folder.seq, folder.max_ts, folder.rows_through = seen, seq, max_ts, rows_through
    return folder


def _upgraded_basket(basket: tuple[Any, ...]) -> Basket:
    """A snapshot's latest purchase invoices in today's form: one from before several
    invoices of the latest time were kept held the latest invoice, the order of its
    latest line and its partials (and a count of purchases).

    >>> _upgraded_basket(("536365", (1291191960, 4), [15.3], 5))
    ('536365', 1291191960, {'536365': [15.3]})
    >>> _upgraded_basket((None, (0, 0), [0], 0))
    (None, 0, {})
    """
    if len(basket) == 3:
        return basket  # type: ignore[return-value]
    invoice, (latest, _), partials, _ = basket
    return invoice, latest, ({} if invoice is None else {invoice: partials})


def guest_kept_s(engine: Engine, lateness: int) -> int:
    """How far behind the clock a guest's state of ``engine``'s view is kept: its
    longest window, and at least the allowed lateness (a lifetime feature's guest has
    no window: the lateness alone).

    >>> from basketflow.schemas.declare import E, Feature, View, agg, hours
    >>> view = View("short", entity="customer_id",
    ...             features=[Feature("n", agg.count(), windows=hours(6))])
    >>> guest_kept_s(Engine(view), 3600), guest_kept_s(Engine(view), 86_400)
    (21600, 86400)
    """
    return max(engine.spans[-1] * HOUR if engine.spans else 0, lateness)


def declared_step(engine: Engine, lateness: int) -> Callable[
        [DeclaredFolder | None, Work], tuple[DeclaredFolder | None, list[FeatureUpdate]]]:
    """A ``pickled_flat_map`` mapper folding an entity's :class:`Work` into its
    :class:`DeclaredFolder` of ``engine``'s view, with an allowed lateness in seconds; a
    folder that is :meth:`~DeclaredFolder.done` is dropped (None: Bytewax discards the
    key's state)."""
    kept_s = guest_kept_s(engine, lateness)

    def mapper(state: DeclaredFolder | None,
               work: Work) -> tuple[DeclaredFolder | None, list[FeatureUpdate]]:
        if state is None or state.version != engine.version:
            state = DeclaredFolder(engine, kept_s)
        else:
            state.attach(engine, kept_s)
        update = state.fold(work.entity, work.events, lateness, work.clock, work.since)
        out = [update] if update is not None else []
        return (None if state.done(work.entity, work.clock) else state), out

    return mapper


def feature_rows(engine: Engine, events: Iterable[Transaction], until: int | None = None,
                 ) -> list[tuple[int, dict[str, Any]]]:
    """``(time, values)`` of the rows of one entity whose events, in event-time order,
    are ``events``, with the clock at ``until`` (None: past the last moment a window
    moves on)."""
    events = list(events)
    if until is None:
        longest = engine.spans[-1] if engine.spans else 0
        until = (max((e.ts for e in events), default=0) // HOUR + longest) * HOUR
    update = DeclaredFolder(engine).fold("", events, NEVER_LATE, until)
    return [] if update is None else [(row.ts, row.values) for row in update.rows]
