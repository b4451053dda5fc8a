"""The hand-written ``CustomerState`` that computed the built-in ``customer`` view before
the generic engine did (as it was, unchanged): the reference the engine's rows must equal
to the bit (``test_builtin_views.py``), and that the declarations' plain-Python reference
is checked against (``tests/schemas/test_declare.py``)."""

from __future__ import annotations

from typing import Any

from basketflow.features.feature_state import HOUR, _windows_of
from tests.features.hand_written_tiles import _cutoffs, _nested_sums
from basketflow.schemas.events import Transaction
from basketflow.schemas.features import CUSTOMER

#: The customer's windows in days, shortest first: its tiles are summed over each.
_CUSTOMER_DAYS = CUSTOMER.windows_days
#: Hours of tiles a customer needs: its longest window, and a day more.
_CUSTOMER_KEPT_HOURS = max(_CUSTOMER_DAYS) * 24 + 24
#: Hours after a tile's hour at whose start it leaves each of the customer's windows,
#: shortest window first: the only moments its windowed values change between events.
CUSTOMER_CHANGE_HOURS = tuple(days * 24 for days in _CUSTOMER_DAYS)
_SPEND = _windows_of(CUSTOMER, "spend")
_ORDERS = _windows_of(CUSTOMER, "orders")
_ITEMS = _windows_of(CUSTOMER, "items")
_DISTINCT_PRODUCTS = _windows_of(CUSTOMER, "distinct_products")
_CANCELLED_LINES = _windows_of(CUSTOMER, "cancelled_lines")
_AVG_BASKET_VALUE = _windows_of(CUSTOMER, "avg_basket_value")


class CustomerState:
    """Purchase history of one customer over sliding windows, plus lifetime totals.

    Hourly tiles hold ``[spend, items, cancelled lines, invoices, products]``: purchase
    invoices and products remember their latest hour, and each is counted in the tile of
    that hour only, so a window's sums count each distinct invoice and product once,
    exactly. Tiles older than the longest window are dropped.
    """

    __slots__ = ("tiles", "invoices", "products", "lifetime_invoices", "lifetime_spend",
                 "first_purchase", "last_purchase", "max_ts")

    def __init__(self) -> None:
        self.tiles: dict[int, list[float]] = {}
        self.invoices: dict[str, int] = {}
        self.products: dict[str, int] = {}
        self.lifetime_invoices = 0
        self.lifetime_spend = 0.0
        self.first_purchase: int | None = None
        self.last_purchase: int | None = None
        self.max_ts = 0

    def update(self, e: Transaction) -> None:
        """Fold one line in (cancellations count negative)."""
        ts = e.ts
        hour = ts // HOUR
        tiles = self.tiles
        tile = tiles.get(hour)
        if tile is None:
            tile = tiles[hour] = [0.0, 0, 0, 0, 0]
            self._evict(hour)
            tiles = self.tiles
        amount = e.quantity * e.unit_price
        tile[0] += amount
        self.lifetime_spend += amount
        if e.is_product:
            tile[1] += e.quantity
        if e.is_cancellation:
            tile[2] += 1
        elif not e.is_adjustment:
            latest = self.invoices.get(e.invoice)
            if latest is None:
                self.lifetime_invoices += 1
            if latest is None or hour > latest:
                self.invoices[e.invoice] = hour
                _move_count(tiles, latest, tile, 3)
            if e.is_product:
                latest = self.products.get(e.stock_code)
                if latest is None or hour > latest:
                    self.products[e.stock_code] = hour
                    _move_count(tiles, latest, tile, 4)
            if self.first_purchase is None or ts < self.first_purchase:
                self.first_purchase = ts
            if self.last_purchase is None or ts > self.last_purchase:
                self.last_purchase = ts
        if ts > self.max_ts:
            self.max_ts = ts

    def _evict(self, newest_hour: int) -> None:
        """Drop what no window can see any more (older than the longest window)."""
        oldest = max(newest_hour, self.max_ts // HOUR) - _CUSTOMER_KEPT_HOURS
        if next(iter(self.tiles)) >= oldest:
            return
        self.tiles = {h: t for h, t in self.tiles.items() if h >= oldest}
        self.invoices = {i: h for i, h in self.invoices.items() if h >= oldest}
        self.products = {p: h for p, h in self.products.items() if h >= oldest}

    def next_change(self, after: int) -> int | None:
        """The first moment after ``after`` at which a window moves on without an event:
        the start of the hour in which one of the tiles leaves one of the windows (a tile
        of hour ``h`` leaves the ``W``-day window when hour ``h + W*24`` begins); None when
        no tile will leave any window. Purchase invoices and products remember hours of
        tiles, so these are the only moments the windowed values change between events.

        >>> c = CustomerState()
        >>> c.tiles = {10: [5.0, 1, 0, 1, 1]}
        >>> c.next_change(0) // HOUR, c.next_change(34 * HOUR) // HOUR
        (34, 178)
        >>> c.next_change((10 + 90 * 24) * HOUR) is None
        True
        """
        first: int | None = None
        for hour in self.tiles:
            for after_hours in CUSTOMER_CHANGE_HOURS:
                moment = (hour + after_hours) * HOUR
                if moment > after:
                    if first is None or moment < first:
                        first = moment
                    break
        return first

    def values(self, as_of: int) -> dict[str, Any]:
        """Every stored feature of :data:`basketflow.schemas.features.CUSTOMER` as of
        ``as_of``, in its declared order (its request-time features are computed when
        they are read): the windowed ``spend``, ``orders``, ``items``,
        ``distinct_products``, ``cancelled_lines`` and ``avg_basket_value`` (spend over
        orders) from the tiles, invoices and products, each over its declared windows; the
        rest from the lifetime fields."""
        cuts = _cutoffs(as_of, _CUSTOMER_DAYS)
        sums = _nested_sums(self.tiles.items(), cuts, as_of // HOUR, 5)
        spend, items, cancelled, orders, products = zip(*sums)
        out: dict[str, Any] = {}
        spend = [round(s, 2) for s in spend]  # as served: the average divides these
        for name, w in _SPEND:
            out[name] = spend[w]
        for windows, series in ((_ORDERS, orders), (_ITEMS, items),
                                (_DISTINCT_PRODUCTS, products), (_CANCELLED_LINES, cancelled)):
            for name, w in windows:
                out[name] = series[w]
        for name, w in _AVG_BASKET_VALUE:
            out[name] = round(spend[w] / orders[w], 2) if orders[w] else None
        out["lifetime_orders"] = self.lifetime_invoices
        out["lifetime_spend"] = round(self.lifetime_spend, 2)
        out["first_purchase"] = self.first_purchase
        out["last_purchase"] = self.last_purchase
        return out



def _move_count(tiles: dict[int, list[Any]], was: int | None, tile: list[Any],
                field: int) -> None:
    """Count an invoice or product (``field`` of a customer's tile) in ``tile``, its new
    latest hour, and no more in the tile of hour ``was`` (if any, and still kept)."""
    tile[field] += 1
    if was is not None:
        old = tiles.get(was)
        if old is not None:
            old[field] -= 1


