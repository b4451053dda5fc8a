"""Per-entity feature state: the one implementation of every feature's logic.

Each class here is plain Python, kept per entity inside a Bytewax stateful step by
the live flow and by the backfill alike, so what a model is trained on is what it is
served. ``update(event)`` folds one event in; ``values(as_of)`` returns the features as of
event time ``as_of`` (the latest event folded in), following the window rule of
:mod:`basketflow.schemas.features`: a ``W``-day window at ``t`` holds the events of the ``W*24``
hourly tiles ending with the hour of ``t``.

>>> from basketflow.schemas.events import parse_row
>>> row = ["536365", "85123A", "HEART", "6", "12/1/2010 8:26", "2.55", "17850", "UK"]
>>> c = CustomerState()
>>> c.update(parse_row(row, "f:2"))
>>> c.update(parse_row(["C536366"] + row[1:3] + ["-2"] + row[4:], "f:3"))
>>> v = c.values(c.max_ts)
>>> v["spend_1d"], v["orders_1d"], v["cancelled_lines_1d"], v["lifetime_orders"]
(10.2, 1, 1, 1)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from basketflow.schemas.events import Transaction
from basketflow.schemas.features import CATEGORY_SHARES, CUSTOMER, PRODUCT, FeatureView
from basketflow.schemas.taxonomy import load_taxonomy

HOUR = 3600
DAY = 86_400
#: Bound once: the basket view's version includes this taxonomy's version.
_category_of = load_taxonomy().category_of


def _cutoffs(as_of: int, days: tuple[int, ...]) -> list[int]:
    """The first hour tile inside each window ending at ``as_of``."""
    hour = as_of // HOUR + 1
    return [hour - d * 24 for d in days]


def _windows_of(view: FeatureView, stem: str) -> tuple[tuple[str, int], ...]:
    """Each window of the view's windowed feature ``stem``: the feature's name over it, and
    where its days are in ``view.windows_days`` (the windows a state sums its tiles over).

    >>> _windows_of(PRODUCT, "distinct_buyers")
    (('distinct_buyers_7d', 1),)
    """
    declared = view.windowed(stem)
    return tuple((declared.name(days), view.windows_days.index(days))
                 for days in declared.windows_days)


#: The customer's windows in days, shortest first: its tiles are summed over each.
_CUSTOMER_DAYS = CUSTOMER.windows_days
#: Hours of tiles a customer needs: its longest window, and a day more.
_CUSTOMER_KEPT_HOURS = max(_CUSTOMER_DAYS) * 24 + 24
_SPEND = _windows_of(CUSTOMER, "spend")
_ORDERS = _windows_of(CUSTOMER, "orders")
_ITEMS = _windows_of(CUSTOMER, "items")
_DISTINCT_PRODUCTS = _windows_of(CUSTOMER, "distinct_products")
_CANCELLED_LINES = _windows_of(CUSTOMER, "cancelled_lines")
_AVG_BASKET_VALUE = _windows_of(CUSTOMER, "avg_basket_value")


class CustomerState:
    """Purchase history of one customer over sliding windows, plus lifetime totals.

    Hourly tiles hold ``[spend, items, cancelled lines]``; purchase invoices and products
    remember their latest hour, so distinct counts per window are exact. Tiles older than
    the longest window are dropped.
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
        tile = self.tiles.get(hour)
        if tile is None:
            tile = self.tiles[hour] = [0.0, 0, 0]
            self._evict(hour)
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
            if e.is_product:
                latest = self.products.get(e.stock_code)
                if latest is None or hour > latest:
                    self.products[e.stock_code] = hour
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

    def values(self, as_of: int) -> dict[str, Any]:
        """Every stored feature of :data:`basketflow.schemas.features.CUSTOMER` as of
        ``as_of``, in its declared order (its request-time features are computed when
        they are read): the windowed ``spend``, ``orders``, ``items``,
        ``distinct_products``, ``cancelled_lines`` and ``avg_basket_value`` (spend over
        orders) from the tiles, invoices and products, each over its declared windows; the
        rest from the lifetime fields."""
        cuts = _cutoffs(as_of, _CUSTOMER_DAYS)
        n = len(cuts)
        spend, items, cancelled = [0.0] * n, [0] * n, [0] * n
        last_hour = as_of // HOUR
        for hour, (s, i, c) in self.tiles.items():
            if hour > last_hour:
                continue
            for w in range(n):
                if hour >= cuts[w]:
                    spend[w] += s
                    items[w] += i
                    cancelled[w] += c
        orders = _counts_within(self.invoices.values(), cuts, last_hour)
        products = _counts_within(self.products.values(), cuts, last_hour)
        out: dict[str, Any] = {}
        for name, w in _SPEND:
            out[name] = round(spend[w], 2)
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


def _counts_within(hours: Iterable[int], cuts: list[int], last_hour: int) -> list[int]:
    """How many of ``hours`` fall in each window ``[cut, last_hour]``. Many share an hour
    (an invoice's products), so they are counted per distinct hour first, in C.

    >>> _counts_within([5, 5, 9, 12], [9, 4], 10)
    [1, 3]
    """
    counts = [0] * len(cuts)
    for hour, n in Counter(hours).items():
        if hour <= last_hour:
            for w, cut in enumerate(cuts):
                if hour >= cut:
                    counts[w] += n
    return counts


class BasketState:
    """The customer's current basket (invoice) so far.

    A purchase line of a new invoice starts a new basket; cancellation and adjustment
    lines belong to no basket (they are reversals, counted by :class:`CustomerState`).
    """

    __slots__ = ("invoice", "lines", "items", "value", "products", "non_product_lines",
                 "started", "country", "by_category")

    def __init__(self) -> None:
        self.invoice: str | None = None
        self._start(None, 0, "")

    def _start(self, invoice: str | None, ts: int, country: str) -> None:
        self.invoice = invoice
        self.lines = 0
        self.items = 0
        self.value = 0.0
        self.products: set[str] = set()
        self.non_product_lines = 0
        self.started = ts
        self.country = country
        self.by_category: dict[str, float] = {}

    def update(self, e: Transaction) -> bool:
        """Fold one line in; return False when the line is not part of a basket."""
        if e.is_cancellation or e.is_adjustment:
            return False
        if e.invoice != self.invoice:
            self._start(e.invoice, e.ts, e.country)
        self.started = min(self.started, e.ts)
        self.lines += 1
        amount = e.quantity * e.unit_price
        self.value += amount
        if e.is_product:
            self.items += e.quantity
            self.products.add(e.stock_code)
            category = _category_of(e.stock_code, e.description)
            self.by_category[category] = self.by_category.get(category, 0.0) + amount
        else:
            self.non_product_lines += 1
        return True

    def values(self) -> dict[str, Any]:
        """Every feature of :data:`basketflow.schemas.features.BASKET`, in its declared
        order: the basket so far, with its product value shares per category."""
        started = self.started
        product_value = sum(self.by_category.values())
        out: dict[str, Any] = {
            "invoice": self.invoice, "lines": self.lines, "items": self.items,
            "value": round(self.value, 2), "distinct_products": len(self.products),
            "non_product_lines": self.non_product_lines,
            # UTC hour and weekday (1970-01-01 was a Thursday, weekday 3), as datetime's.
            "hour_of_day": started % DAY // HOUR, "weekday": (started // DAY + 3) % 7,
            "country": self.country, "started": started,
        }
        by_category = self.by_category
        for c, name in CATEGORY_SHARES:
            share = by_category.get(c, 0.0) / product_value if product_value > 0 else 0.0
            out[name] = round(share, 4)
        return out


#: How far past the longest window a product's tiles and buyers may age before they are
#: dropped, all at once. Its values only read inside its windows, so what is kept past
#: them changes nothing; dropping them every new hour would rebuild a popular product's
#: dicts nearly every hour.
_EVICT_SLACK_HOURS = 7 * 24
#: The product's windows in days, shortest first: its tiles are summed over each.
_PRODUCT_DAYS = PRODUCT.windows_days
#: Hours of tiles a product needs: its longest window, and a day more.
_PRODUCT_KEPT_HOURS = max(_PRODUCT_DAYS) * 24 + 24
_UNITS = _windows_of(PRODUCT, "units")
_REVENUE = _windows_of(PRODUCT, "revenue")
_DISTINCT_BUYERS = _windows_of(PRODUCT, "distinct_buyers")
_CANCELLED_SHARE = _windows_of(PRODUCT, "cancelled_share")
#: The windows units and revenue are summed over (their positions), longest first.
_SALES_LONGEST_FIRST = tuple(sorted({w for _, w in _UNITS + _REVENUE}, reverse=True))
if {w for _, w in _CANCELLED_SHARE} != {len(_PRODUCT_DAYS) - 1}:
    raise ValueError("ProductState sums lines and cancellations over the product's longest "
                     "window alone: declare cancelled_share over that window only")


class ProductState:
    """Demand for one product: hourly tiles of ``[units, revenue, lines, cancelled lines]``
    and each buyer's latest hour (the latest wins, and only those inside the 7-day window
    count, so keeping or dropping older ones gives the same values)."""

    __slots__ = ("tiles", "buyers", "max_ts")

    def __init__(self) -> None:
        self.tiles: dict[int, list[float]] = {}
        self.buyers: dict[str, int] = {}
        self.max_ts = 0

    def update(self, e: Transaction) -> None:
        """Fold one line of this product in."""
        ts = e.ts
        hour = ts // HOUR
        tile = self.tiles.get(hour)
        if tile is None:
            tile = self.tiles[hour] = [0, 0.0, 0, 0]
            oldest = max(hour, self.max_ts // HOUR) - _PRODUCT_KEPT_HOURS
            if next(iter(self.tiles)) < oldest - _EVICT_SLACK_HOURS:
                self.tiles = {h: t for h, t in self.tiles.items() if h >= oldest}
                self.buyers = {b: h for b, h in self.buyers.items() if h >= oldest}
        quantity = e.quantity
        tile[0] += quantity
        tile[1] += quantity * e.unit_price
        tile[2] += 1
        if e.is_cancellation:
            tile[3] += 1
        elif customer := e.customer_id:
            latest = self.buyers.get(customer)
            if latest is None or hour > latest:
                self.buyers[customer] = hour
        if ts > self.max_ts:
            self.max_ts = ts

    def values(self, as_of: int) -> dict[str, Any]:
        """Every feature of :data:`basketflow.schemas.features.PRODUCT` as of ``as_of``,
        in its declared order: the windowed ``units`` and ``revenue`` and
        ``cancelled_share`` (cancelled lines over lines) from the tiles,
        ``distinct_buyers`` from the buyers, each over its declared windows.

        The windows nest: every tile in range is inside the longest, which the lines and
        cancellations are summed over, and only the tiles inside the longest window of
        units and revenue walk their windows (longest first), tile by tile in the tiles'
        order."""
        cuts = _cutoffs(as_of, _PRODUCT_DAYS)
        last_hour = as_of // HOUR
        oldest = cuts[-1]
        sales_oldest = cuts[_SALES_LONGEST_FIRST[0]]
        units, revenue = [0] * len(cuts), [0.0] * len(cuts)
        lines = cancelled = 0
        for hour, (u, r, li, c) in self.tiles.items():
            if hour > last_hour or hour < oldest:
                continue
            lines += li
            cancelled += c
            if hour >= sales_oldest:
                for w in _SALES_LONGEST_FIRST:
                    if hour < cuts[w]:
                        break
                    units[w] += u
                    revenue[w] += r
        out: dict[str, Any] = {}
        for name, w in _UNITS:
            out[name] = units[w]
        for name, w in _REVENUE:
            out[name] = round(revenue[w], 2)
        for name, w in _DISTINCT_BUYERS:
            cut = cuts[w]
            out[name] = len([h for h in self.buyers.values() if cut <= h <= last_hour])
        for name, _ in _CANCELLED_SHARE:
            out[name] = round(cancelled / lines, 4) if lines else None
        return out
