"""The feature step: fold each entity's events into its state, emit values and log rows.

One folder per entity lives in a Bytewax stateful step
(:func:`basketflow.flows.pickled_state.pickled_flat_map`): a :class:`CustomerFolder` for
customers (the ``customer`` and ``basket`` views), a :class:`ProductFolder` for products
(``product``), both keeping what the rules below need in their base, :class:`Folder`. For
every batch of an entity's events a folder emits one :class:`FeatureUpdate`: the latest
values of the views that moved (for the online store) and the feature-log rows.

Rules, the same for the live flow and the backfill:

- an event already folded in (same ``event_id``) is skipped: a replayed line counts once.
  An entity remembers the ids of the last :data:`SEEN_IDS_KEPT_S` (its longest window)
  and of every event not yet late, so its memory follows its windows, not its history;
  a copy of an older event is late (below), never folded in twice;
- an event older than the entity's latest event time minus the allowed lateness is late:
  left out of the online values and the feature log, counted, and recorded offline with
  the time it was behind (``late/``); it still reaches the offline event store;
- a customer's log row is written after the last event of each event time *in a
  batch*, labelled with the entity's latest event time ``ts`` and ``seq``, the number of
  events folded in so far; a later row for the same ``ts`` (higher ``seq``) supersedes
  an earlier one. What is deterministic is the row in effect per entity and event time,
  the one with the highest ``seq``: a customer's events are in order on one partition,
  so the live flow, the backfill and a run resumed after a crash all write it, with the
  same id and values. Where a batch boundary falls inside one event time (an invoice
  split across two polls), an intermediate row with a lower ``seq`` is written too;
  batch boundaries differ between runs, so these superseded rows may differ;
- a product's events arrive from every partition, interleaved as the partitions are
  read, so a product row is written at each hour end where its values change, once the
  clock has passed it (:class:`ProductFolder`): exact whatever the order of its lines;
- **windows move on without events**: a customer's windowed values also change when one
  of its hourly tiles leaves a window (:meth:`DeclaredState.changes`). At each such
  moment ``P`` a row is written as of ``P`` (``ts = P``, ``seq`` the events folded so
  far), as if the customer had an event there: before folding an event later than ``P``
  (so the row holds exactly the events before it), or when the flow's event-time clock
  (``clock``, passed with each batch by :mod:`basketflow.flows.event_clock`) reaches
  ``P``. ``rows_through`` is the moment up to which the customer's rows are written; an
  event that arrives behind it (its partition lagged the clock) writes the rows after it
  again, with a higher ``seq``. So the row in effect at every moment is a function of the
  customer's own events, whatever the clock and the batches: the live flow and the
  backfill write the same rows;
- **a guest's state is dropped once its windows have passed**: every guest invoice is an
  entity of its own (``guest-<invoice>``) that never buys again, so once the clock has
  reached the moment its latest event's tile leaves the longest window (:data:`SEEN_IDS_KEPT_S`),
  its rows all written, its folder is discarded (:meth:`Folder.done`) and the flow's
  memory stays bounded by its windows. An event of a guest with no folder whose tile had
  left every window by the clock before its batch is late (a copy of a forgotten guest's line, or a line that far out
  of order): it is never folded into a new folder as if it were the guest's first.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, TypeVar

from basketflow.features.declared_state import Basket, DeclaredState, Engine
from basketflow.features.feature_state import (
    HOUR,
    MILLI,
    PRODUCT_SPAN_HOURS,
    hour_end,
    last_ended_hour,
)
from basketflow.features.seen_ids import SeenIds
from basketflow.schemas.default_repository.basket import basket as basket_declaration
from basketflow.schemas.default_repository.customer import customer as customer_declaration
from basketflow.schemas.default_repository.product import product as product_declaration
from basketflow.schemas.events import GUEST_PREFIX, Transaction
from basketflow.schemas.features import DAY_SECONDS, WINDOW_DAYS
from basketflow.schemas.records import FeatureUpdate, LateEvent, LogRow, Work

#: The built-in ``customer`` view, computed by the generic engine from its declaration
#: (``schemas/default_repository/customer.py``): its rows are those of the hand-written
#: class it replaced, to the bit (``tests/features/test_builtin_views.py``).
CUSTOMER_ENGINE = Engine(customer_declaration)
#: What a snapshot's customer state holds: its tiles and lifetime partials.
_CUSTOMER_SLOTS = ("tiles", "lifetime")
#: The built-in ``basket`` view, computed by the generic engine from its declaration
#: (``schemas/default_repository/basket.py``: the current invoice as lines arrive, its
#: category shares): its values are those of the hand-written class it replaced, to the
#: bit (``tests/features/test_current_invoice.py``).
BASKET_ENGINE = Engine(basket_declaration)
#: What a snapshot's basket state holds: the current invoice's partials (``basket``).
_BASKET_SLOTS = ("basket",)
#: The feature of each of the basket's partials (the first that keeps it).
_BASKET_PARTIAL_FEATURES = tuple(
    f for i, f in enumerate(BASKET_ENGINE.latest)
    if BASKET_ENGINE.latest_partial[i] not in BASKET_ENGINE.latest_partial[:i])
#: The built-in ``product`` view, computed by the generic engine from its declaration
#: (``schemas/default_repository/product.py``), read as of hour ends, its revenue an
#: exact sum: its values are those of the hand-written class it replaced, to the bit.
PRODUCT_ENGINE = Engine(product_declaration)
#: What a snapshot's product state holds: its tiles (each of the view's partials).
_PRODUCT_SLOTS = ("tiles",)
#: Where each windowed feature's partial is in a product tile, by the feature's name.
_PRODUCT_PARTIAL = {f.name: i for i, (f, _) in enumerate(PRODUCT_ENGINE.windowed)}

#: How long an entity remembers the ids it folded in, behind its latest event, at least:
#: its longest window. A copy of an event older than that (and than the rule for late
#: events) is taken as a late event, whether or not it was folded in before.
SEEN_IDS_KEPT_S = max(WINDOW_DAYS) * DAY_SECONDS


class Folder(ABC):
    """What every entity's folder keeps for the rules: the ids folded in, ``seq`` (events
    folded in so far) and ``max_ts`` (the latest event time, against which an event is
    late)."""

    __slots__ = ("seen", "seq", "max_ts", "rows_through")

    def __init__(self) -> None:
        self.seen = SeenIds()
        self.seq = 0
        self.max_ts = 0
        self.rows_through = 0

    def fold(self, entity: str, events: list[Transaction], lateness: int,
             clock: int | None = None, since: int = 0) -> FeatureUpdate | None:
        """Fold a batch of this entity's events in, in order, then write the rows of the
        moments its windows move on up to the event-time ``clock`` (None: none); see the
        module rules. ``since`` is the clock before the batch. None when nothing moved and
        nothing was late."""
        update = FeatureUpdate(entity, 0, {})
        fresh = self.seen.fresh(events)
        if not self.seq and since and fresh:
            fresh = self._behind_forgotten(entity, fresh, since, update)
        self._fold(entity, fresh, lateness, update)
        if clock is not None and clock > self.rows_through:
            self._expire(entity, clock, update)
        self.seen.forget(min(self._late_before(lateness), self.max_ts - SEEN_IDS_KEPT_S))
        if not update.values and not update.late:
            return None
        update.ts = self.max_ts
        return update

    def _late_before(self, lateness: int) -> int:
        """The event time before which an event is late, seen or not."""
        return self.max_ts - lateness

    def done(self, entity: str, clock: int | None) -> bool:
        """Whether the entity's state is needed no more and is dropped (a guest's, once
        its windows have passed); never for an entity that may come back."""
        return False

    def _behind_forgotten(self, entity: str, fresh: list[Transaction], clock: int,
                          update: FeatureUpdate) -> list[Transaction]:
        """The events of a new folder, less those that may belong to a state already
        dropped (:meth:`done`) by ``clock`` (the clock before their batch): they are
        late."""
        return fresh

    def _fold_in_order(self, entity: str, fresh: list[Transaction], lateness: int,
                       update: FeatureUpdate, add: Callable[[Transaction], bool | None],
                       has_tiles: Callable[[], bool], emit: Callable[[bool], None]) -> None:
        """Fold events of an entity whose events come in order: each late one is listed,
        not folded; before an event, the rows of the moments since the last row are
        written (when ``has_tiles()``); each other event is added (``add``), and after the
        last event of each event time ``emit(whether an add said True since the last
        emit)``. One loop with the fields in local variables: it runs once per event."""
        max_ts, seq, late = self.max_ts, self.seq, update.late
        moved = flagged = False
        last = len(fresh) - 1
        for i, e in enumerate(fresh):
            ts = e.ts
            if max_ts and ts < max_ts - lateness:
                late.append(LateEvent(e.event_id, entity, ts, max_ts))
                continue
            if ts > self.rows_through + 1 and has_tiles():
                self._expire(entity, ts - 1, update)  # the moments before this event
            if add(e):
                flagged = True
            moved = True
            seq += 1
            if ts > max_ts:
                max_ts = ts
            if i == last or fresh[i + 1].ts != ts:
                self.seq, self.max_ts = seq, max_ts
                emit(flagged)
                moved = flagged = False
        self.seq, self.max_ts = seq, max_ts
        if moved:
            emit(flagged)

    @abstractmethod
    def _fold(self, entity: str, fresh: list[Transaction], lateness: int,
              update: FeatureUpdate) -> None:
        """Fold events not seen before into the entity's state, adding its values, log rows
        and late events to ``update``."""

    @abstractmethod
    def _expire(self, entity: str, until: int, update: FeatureUpdate) -> None:
        """Write the rows of the moments after ``rows_through`` up to ``until`` at which
        the entity's windows move on; ``rows_through`` becomes ``until``."""


def windows_passed(ts: int, clock: int, kept_s: int = SEEN_IDS_KEPT_S) -> bool:
    """Whether the tile of event time ``ts`` is ``kept_s`` or more behind ``clock`` (by
    default: it has left the customer's longest window).

    >>> windows_passed(10 * HOUR + 5, (10 + 90 * 24) * HOUR)
    True
    >>> windows_passed(10 * HOUR + 5, (10 + 90 * 24) * HOUR - 1)
    False
    """
    return ts // HOUR * HOUR + kept_s <= clock


def behind_forgotten_guest(entity: str, fresh: list[Transaction], clock: int, kept_s: int,
                           update: FeatureUpdate) -> list[Transaction]:
    """The events of a new folder of ``entity``, less, for a guest, those whose tiles were
    ``kept_s`` behind ``clock``, the clock before their batch: a guest's state is dropped
    that far behind the clock (:meth:`Folder.done`), so they may be lines of a state
    dropped already, and are late. A batch may span more than the windows (a
    backfill's), so never the clock after it."""
    if not entity.startswith(GUEST_PREFIX):
        return fresh
    kept: list[Transaction] = []
    for e in fresh:
        if windows_passed(e.ts, clock, kept_s):
            update.late.append(LateEvent(e.event_id, entity, e.ts, clock))
        else:
            kept.append(e)
    return kept


class CustomerFolder(Folder):
    """A customer's ``customer`` and ``basket`` views (the generic engine's states of
    their declarations)."""

    __slots__ = ("customer", "basket")

    def __init__(self) -> None:
        super().__init__()
        self.customer = CUSTOMER_ENGINE.state()
        self.basket = BASKET_ENGINE.state()

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickled as plain values, each state as its slots' names and values: default
        pickling records every object's class and slots, and the snapshot of every entity
        that changed stalls the flow at each epoch's end. The form is that of the one
        ``EntityFolder`` class these two replace, so :func:`_restore_folder` restores
        snapshots of either (the customer's state: its tiles and lifetime partials, or,
        in older snapshots, the hand-written ``CustomerState``'s slots; the basket's: its
        current invoice's partials, or the hand-written ``BasketState``'s slots)."""
        customer = (_CUSTOMER_SLOTS, (self.customer.in_order(), self.customer.lifetime))
        basket = (_BASKET_SLOTS, (self.basket.basket,))
        return _restore_folder, (customer, basket,
                                 None, self.seen, self.seq, self.max_ts, self.rows_through)

    def done(self, entity: str, clock: int | None) -> bool:
        """A guest's folder once the clock has reached the moment its latest event's tile
        leaves its longest window, and no tile is left to leave one after its rows."""
        return (clock is not None and windows_passed(self.max_ts, clock)
                and entity.startswith(GUEST_PREFIX)
                and not self.customer.moves_after(self.rows_through))

    def _behind_forgotten(self, entity: str, fresh: list[Transaction], clock: int,
                          update: FeatureUpdate) -> list[Transaction]:
        """A new guest folder's events whose tiles had left every window by ``clock`` are
        late (:func:`behind_forgotten_guest`)."""
        return behind_forgotten_guest(entity, fresh, clock, SEEN_IDS_KEPT_S, update)

    def _fold(self, entity: str, fresh: list[Transaction], lateness: int,
              update: FeatureUpdate) -> None:
        """A row of each moved view after the last event of each event time."""
        customer, basket = self.customer, self.basket

        def add(e: Transaction) -> bool:  # whether the basket moved: a purchase line
            customer.update(e)
            basket.update(e)
            return not (e.is_cancellation or e.is_adjustment)

        self._fold_in_order(entity, fresh, lateness, update, add,
                            lambda: bool(customer.tiles),
                            lambda basket_moved: self._emit_moved(entity, basket_moved, update))

    def _emit(self, entity: str, view: str, values: dict[str, Any],
              update: FeatureUpdate) -> None:
        """Add one view's current values to the update, as values and a log row."""
        update.values[view] = values
        update.times[view] = self.max_ts
        update.rows.append(LogRow(view, entity, self.max_ts, self.seq, values))

    def _emit_moved(self, entity: str, basket_moved: bool, update: FeatureUpdate) -> None:
        """Add the views that moved, in name order: the basket (if it moved), the customer;
        then the customer's rows after the event again where the clock had written them
        already (the event arrived behind it)."""
        if basket_moved:
            self._emit(entity, "basket", self.basket.values(self.max_ts), update)
        self._emit(entity, "customer", self.customer.values(self.max_ts), update)
        if self.rows_through > self.max_ts:
            self._customer_rows(entity, self.max_ts, self.rows_through, update)
        else:
            self.rows_through = self.max_ts

    def _expire(self, entity: str, until: int, update: FeatureUpdate) -> None:
        """A customer row at each moment after ``rows_through`` up to ``until`` at which
        a tile leaves a window; then the tiles no window at the latest event time or
        later sees are dropped (rows from that time on may be written again)."""
        self._customer_rows(entity, self.rows_through, until, update)
        self.rows_through = until
        self.customer.evict(min(until, self.max_ts))

    def _customer_rows(self, entity: str, after: int, until: int,
                       update: FeatureUpdate) -> None:
        """A customer row at each moment in ``(after, until]`` at which a tile leaves a
        window, as of that moment."""
        customer, seq, rows = self.customer, self.seq, update.rows
        for moment in customer.changes(after, until):
            values = customer.values(moment)
            rows.append(LogRow("customer", entity, moment, seq, values))
            update.values["customer"] = values
            update.times["customer"] = moment


#: How far behind a product's rows a line may arrive and still be folded in, its rows
#: written again: the clock waits for the slowest partition, so only a partition idle
#: past the end of an input, or lines out of order in theirs, arrive behind it at all.
PRODUCT_REWRITE_S = 7 * 86_400


#: How far past the longest window a product's tiles may age before they are dropped,
#: all at once. Its values only read inside its windows, so what is kept past them
#: changes nothing; dropping them every new hour would rebuild a popular product's tiles
#: nearly every hour.
_EVICT_SLACK_HOURS = 7 * 24
#: Hours of tiles a product needs behind what may still be rewritten: its longest
#: window, and a day more.
_PRODUCT_KEPT_HOURS = max(PRODUCT_SPAN_HOURS) + 24


class ProductFolder(Folder):
    """A product's ``product`` view (the generic engine's state of its declaration).
    Online: its values as of the last hour end the clock has passed, written when they
    change. Logged: each hour's tile once the clock has passed its end
    (:func:`product_tile_row`). Its lines arrive from every partition, in any order; one
    for an hour already logged logs that hour again (a higher ``seq``)."""

    __slots__ = ("product",)

    def __init__(self) -> None:
        super().__init__()
        self.product = PRODUCT_ENGINE.state()

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickled as :meth:`CustomerFolder.__reduce__` is (the product's state: its
        tiles, or, in older snapshots, the hand-written ``ProductState``'s slots)."""
        return _restore_folder, (None, None, (_PRODUCT_SLOTS, (self.product.in_order(),)),
                                 self.seen, self.seq, self.max_ts, self.rows_through)

    def _fold(self, entity: str, fresh: list[Transaction], lateness: int,
              update: FeatureUpdate) -> None:
        """Fold the lines in; log again the hours already logged that they fall in. A line
        more than ``lateness`` behind the product's latest line, or more than
        :data:`PRODUCT_REWRITE_S` behind its rows, is late."""
        product = self.product
        max_ts, applied, late = self.max_ts, 0, update.late
        oldest = self.rows_through - PRODUCT_REWRITE_S
        logged_through = hour_end(last_ended_hour(self.rows_through))
        again: set[int] = set()
        for e in fresh:
            ts = e.ts
            if (max_ts and ts < max_ts - lateness) or ts < oldest:
                late.append(LateEvent(e.event_id, entity, ts, max(max_ts, self.rows_through)))
                continue
            product.update(e)
            applied += 1
            if ts <= logged_through:
                again.add(ts // HOUR)
            if ts > max_ts:
                max_ts = ts
        self.seq += applied
        self.max_ts = max_ts
        if again:
            self._log_hours(entity, sorted(again), update)
            changed = product.last_change(logged_through)
            if changed is not None:
                self._emit_values(entity, changed, update)

    def _late_before(self, lateness: int) -> int:
        """Lines behind the product's latest by ``lateness`` or behind its rows by
        :data:`PRODUCT_REWRITE_S` are late."""
        return max(self.max_ts - lateness, self.rows_through - PRODUCT_REWRITE_S)

    def _expire(self, entity: str, until: int, update: FeatureUpdate) -> None:
        """Log the hours whose end the clock passed since ``rows_through``; the values as
        of the last hour end up to ``until``, if they changed."""
        product, after = self.product, self.rows_through
        first, last = last_ended_hour(after) + 1, last_ended_hour(until)
        self._log_hours(entity, sorted(h for h in product.tiles if first <= h <= last),
                        update)
        changed = product.last_change(until)
        if changed is not None and changed > after:
            self._emit_values(entity, changed, update)
        self.rows_through = until
        self._evict(until)

    def _evict(self, written_through: int) -> None:
        """Drop the tiles no row can need any more: the rows are written up to
        ``written_through``, and a line may still arrive :data:`PRODUCT_REWRITE_S` behind
        it (its hour is logged again, its values read over the windows before it)."""
        tiles = self.product.in_order()
        oldest = (written_through - PRODUCT_REWRITE_S) // HOUR - _PRODUCT_KEPT_HOURS
        if tiles and next(iter(tiles)) < oldest - _EVICT_SLACK_HOURS:  # in hour order
            self.product.tiles = {h: t for h, t in tiles.items() if h >= oldest}

    def _log_hours(self, entity: str, hours: list[int], update: FeatureUpdate) -> None:
        """A log row of each hour's tile, stamped with the hour's end."""
        seq, rows, tiles = self.seq, update.rows, self.product.tiles
        for hour in hours:
            rows.append(LogRow("product", entity, hour_end(hour), seq,
                               product_tile_row(tiles[hour])))

    def _emit_values(self, entity: str, moment: int, update: FeatureUpdate) -> None:
        """The values as of the hour end ``moment`` (their last change), for the online
        store."""
        update.values["product"] = self.product.values(moment)
        update.times["product"] = moment


def product_tile_row(tile: list[Any]) -> dict[str, Any]:
    """What the product's feature log keeps of one hour (``PRODUCT.logged``): its tile's
    partials, the buyers sorted; from these ``historical`` sums any window at any hour
    end.

    >>> tile = PRODUCT_ENGINE.new_tile()
    >>> from basketflow.schemas.events import parse_row
    >>> row = ["536365", "85123A", "HEART", "6", "12/1/2010 8:26", "2.55", "17850", "UK"]
    >>> _ = PRODUCT_ENGINE.fold(tile, [], parse_row(row, "f:2"))
    >>> product_tile_row(tile)
    {'units': 6, 'revenue_milli': 15300, 'lines': 1, 'cancelled_lines': 0, 'buyers': ['17850']}
    """
    where = _PRODUCT_PARTIAL
    cancelled, lines = tile[where["cancelled_share"]]
    return {"units": tile[where["units"]], "revenue_milli": tile[where["revenue"]],
            "lines": lines, "cancelled_lines": cancelled,
            "buyers": sorted(tile[where["distinct_buyers"]])}


SlotValues = tuple[tuple[str, ...], tuple[Any, ...]]


def _restore_folder(customer: SlotValues | None, basket: SlotValues | None,
                    product: SlotValues | None, seen: SeenIds | set[str], seq: int,
                    max_ts: int, rows_through: int | None = None,
                    ) -> CustomerFolder | ProductFolder:
    """The folder that ``__reduce__`` pickled: a product's snapshot holds ``product``
    alone, a customer's ``customer`` and ``basket`` (snapshots of the one ``EntityFolder``
    class before these two have the same form, and restore the same way; those, and
    snapshots made before windows moved on without events, have no ``rows_through``:
    their rows are written up to their latest event).

    >>> import pickle
    >>> from basketflow.schemas.events import parse_row
    >>> row = ["536365", "85123A", "HEART", "6", "12/1/2010 8:26", "2.55", "17850", "UK"]
    >>> folder = CustomerFolder()
    >>> first = folder.fold("17850", [parse_row(row, "f:2")], 3600)
    >>> copy = pickle.loads(pickle.dumps(folder))
    >>> copy.fold("17850", [parse_row(row, "f:2")], 3600) is None  # seen already
    True
    >>> copy.customer.values(copy.max_ts) == folder.customer.values(folder.max_ts)
    True
    """
    folder: CustomerFolder | ProductFolder
    if product is not None:
        folder = ProductFolder.__new__(ProductFolder)
        folder.product = _product_state(product, upgrade=rows_through is None)
    elif customer is not None and basket is not None:
        folder = CustomerFolder.__new__(CustomerFolder)
        folder.customer = _customer_state(customer)
        folder.basket = _basket_state(basket)
    else:
        raise ValueError("a folder snapshot holds either a product or a customer and basket")
    folder.seen, folder.seq, folder.max_ts = SeenIds.of(seen), seq, max_ts
    folder.rows_through = max_ts if rows_through is None else rows_through
    return folder


def _basket_state(values: SlotValues) -> DeclaredState:
    """A snapshot's basket state: its current invoice's partials, or those of the
    hand-written ``BasketState`` it held before the generic engine computed the view
    (:func:`_basket_from_hand_written`)."""
    names, slots = values
    state = BASKET_ENGINE.state()
    state.basket = slots[0] if names == _BASKET_SLOTS else _basket_from_hand_written(
        dict(zip(names, slots)))
    return state


def _basket_from_hand_written(old: dict[str, Any]) -> Basket:
    """The ``basket`` view's current invoice partials (in the order of
    ``BASKET_ENGINE.latest_partial``'s partials) from the slots of a hand-written
    ``BasketState``, so its values go on exactly where they were: its first line stands
    as one of its invoice at its start time, ordered before any other of that time (so
    the basket's hour, weekday and country stay those of its first line)."""
    invoice = old["invoice"]
    if invoice is None:
        return None, 0, {}
    started = old["started"]
    first = (started, invoice, "")  # before every line of the invoice at that time
    by_feature = {
        "invoice": (first, invoice), "lines": old["lines"], "items": old["items"],
        "value": old["value"], "distinct_products": set(old["products"]),
        "non_product_lines": old["non_product_lines"],
        "hour_of_day": (first, started % DAY_SECONDS // HOUR),
        "weekday": (first, (started // DAY_SECONDS + 3) % 7),
        "country": (first, old["country"]), "started": started,
        "share": dict(old["by_category"])}
    partials = [by_feature["share" if f.aggregation.function == "share" else f.name]
                for f in _BASKET_PARTIAL_FEATURES]
    return invoice, 0, {invoice: partials}


def _customer_state(values: SlotValues) -> DeclaredState:
    """A snapshot's customer state: its tiles and lifetime partials, or those of the
    hand-written ``CustomerState`` it held before the generic engine computed the view
    (:func:`_from_hand_written`)."""
    names, slots = values
    state = CUSTOMER_ENGINE.state()
    if names == _CUSTOMER_SLOTS:
        state.tiles, state.lifetime = slots
    else:
        state.tiles, state.lifetime = _from_hand_written(dict(zip(names, slots)))
    return state


def _from_hand_written(old: dict[str, Any]) -> tuple[dict[int, list[Any]], list[Any]]:
    """The generic engine's tiles and lifetime partials of the ``customer`` view from the
    slots of a hand-written ``CustomerState`` (tiles of ``[spend, items, cancelled
    lines, ...]``, each kept purchase invoice and product by its latest hour, lifetime
    totals), so its values go on exactly where they were: an invoice or product counts in
    the tile of its latest hour (as it did), and the lifetime invoices it no longer knew
    by name stand as placeholders that no invoice number equals (``\0`` is in none).

    >>> tiles, lifetime = _from_hand_written({
    ...     "tiles": {10: [5.0, 2, 0, 1, 1], 12: [1.5, 1, 1]}, "invoices": {"536365": 12},
    ...     "products": {"85123A": 10}, "lifetime_invoices": 3, "lifetime_spend": 9.5,
    ...     "first_purchase": 36_000, "last_purchase": 43_300, "max_ts": 43_300})
    >>> tiles
    {10: [5.0, set(), 2, {'85123A'}, 0], 12: [1.5, {'536365'}, 1, set(), 1]}
    >>> len(lifetime[0]), lifetime[1:]
    (3, [9.5, 36000, 43300])
    """
    tiles: dict[int, list[Any]] = {}
    for hour, (spend, items, cancelled, *_) in sorted(old["tiles"].items()):
        tiles[hour] = [spend, set(), items, set(), cancelled]
    for field, latest in ((1, old["invoices"]), (3, old["products"])):
        for name, hour in latest.items():
            if hour in tiles:
                tiles[hour][field].add(name)
    invoices = set(old["invoices"])
    invoices |= {f"\0forgotten {n}" for n in range(old["lifetime_invoices"] - len(invoices))}
    return tiles, [invoices, old["lifetime_spend"], old["first_purchase"],
                   old["last_purchase"]]


def _product_state(values: SlotValues, upgrade: bool) -> DeclaredState:
    """A snapshot's product state: its tiles, or those of the hand-written
    ``ProductState`` it held before the generic engine computed the view
    (:func:`_product_tiles`; ``upgrade``: one from before hour-end rows,
    :func:`_upgraded_product`)."""
    names, slots = values
    state = PRODUCT_ENGINE.state()
    if names == _PRODUCT_SLOTS:
        (state.tiles,) = slots
    else:
        old = dict(zip(names, slots))
        tiles, buyers = old["tiles"], old["buyers"]
        if upgrade:
            tiles, buyers = _upgraded_product(tiles, buyers)
        state.tiles = _product_tiles(tiles, buyers)
    return state


def _product_tiles(tiles: dict[int, list[int]],
                   buyers: dict[int, set[str]]) -> dict[int, list[Any]]:
    """The generic engine's product tiles, in hour order, from a hand-written
    ``ProductState``'s: its tiles of ``[units, revenue in thousandths, lines, cancelled
    lines]`` and its buyers by hour (each hour's the same values, so its rows go on
    exactly where they were).

    >>> _product_tiles({12: [2, 5_100, 1, 0], 10: [-1, -2_550, 1, 1]}, {12: {"17850"}})
    {10: [-1, -2550, set(), (1, 1)], 12: [2, 5100, {'17850'}, (0, 1)]}
    """
    where = _PRODUCT_PARTIAL
    out: dict[int, list[Any]] = {}
    for hour, (units, revenue, lines, cancelled) in sorted(tiles.items()):
        tile = out[hour] = PRODUCT_ENGINE.new_tile()
        tile[where["units"]], tile[where["revenue"]] = units, revenue
        tile[where["distinct_buyers"]] = set(buyers.get(hour, ()))
        tile[where["cancelled_share"]] = (cancelled, lines)
    return out


def _upgraded_product(tiles: dict[int, list[Any]], buyers: dict[str, int],
                      ) -> tuple[dict[int, list[int]], dict[int, set[str]]]:
    """A hand-written product state of a snapshot from before hour-end rows, in its
    later form: revenue in thousandths, buyers by hour (it knew each buyer's latest hour
    only, so a buyer's earlier hours in the 7-day window are not known: they count from
    its latest)."""
    by_hour: dict[int, set[str]] = {}
    for buyer, hour in buyers.items():
        by_hour.setdefault(hour, set()).add(buyer)
    return {h: [u, round(r * MILLI), n, c] for h, (u, r, n, c) in tiles.items()}, by_hour


F = TypeVar("F", bound=Folder)


def folder_step(folder: type[F], lateness: int) -> Callable[
        [F | None, Work], tuple[F | None, list[FeatureUpdate]]]:
    """A ``pickled_flat_map`` mapper folding an entity's :class:`Work` (its events of a
    batch, and the clock) into a ``folder`` (a :class:`CustomerFolder` or
    :class:`ProductFolder`), with an allowed lateness in seconds; a folder that is
    :meth:`~Folder.done` is dropped (None: Bytewax discards the key's state)."""
    def mapper(state: F | None, work: Work) -> tuple[F | None, list[FeatureUpdate]]:
        state = state or folder()
        update = state.fold(work.entity, work.events, lateness, work.clock, work.since)
        out = [update] if update is not None else []
        return (None if state.done(work.entity, work.clock) else state), out

    return mapper
