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
from basketflow.schemas.features import BASKET, CUSTOMER, PRODUCT, WINDOW_DAYS
from basketflow.schemas.taxonomy import CATEGORY_NAMES, NON_PRODUCT, load_taxonomy

HOUR = 3600
DAY = 86_400
#: Each category of the basket's value shares with its feature's name.
_SHARE_KEYS = tuple((c, f"share_{c}") for c in CATEGORY_NAMES if c != NON_PRODUCT)
#: Bound once: the basket view's version includes this taxonomy's version.
_category_of = load_taxonomy().category_of


def _cutoffs(as_of: int, days: tuple[int, ...]) -> tuple[int, ...]:
    """The first hour tile inside each window ending at ``as_of``."""
    hour = as_of // HOUR + 1
    return tuple(hour - d * 24 for d in days)


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
        oldest = max(newest_hour, self.max_ts // HOUR) - WINDOW_DAYS[-1] * 24 - 24
        if next(iter(self.tiles)) >= oldest:
            return
        self.tiles = {h: t for h, t in self.tiles.items() if h >= oldest}
        self.invoices = {i: h for i, h in self.invoices.items() if h >= oldest}
        self.products = {p: h for p, h in self.products.items() if h >= oldest}

    def values(self, as_of: int) -> dict[str, Any]:
        """Every feature of :data:`basketflow.schemas.features.CUSTOMER` as of ``as_of``."""
        cuts = _cutoffs(as_of, WINDOW_DAYS)
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
        out: dict[str, Any] = dict(zip(_WINDOW_KEYS["spend"], [round(x, 2) for x in spend]))
        for stem, series in (("orders", orders), ("items", items),
                             ("distinct_products", products), ("cancelled_lines", cancelled)):
            out.update(zip(_WINDOW_KEYS[stem], series))
        out["avg_basket_value_30d"] = round(spend[2] / orders[2], 2) if orders[2] else None
        out["days_since_first_purchase"] = _days(as_of, self.first_purchase)
        out["days_since_last_purchase"] = _days(as_of, self.last_purchase)
        out["lifetime_orders"] = self.lifetime_invoices
        out["lifetime_spend"] = round(self.lifetime_spend, 2)
        out["first_purchase"] = self.first_purchase
        out["last_purchase"] = self.last_purchase
        return out


#: The names of the windowed customer features, per stem, in window order (built once:
#: formatting them took a fifth of ``values``).
_WINDOW_KEYS = {stem: tuple(f"{stem}_{days}d" for days in WINDOW_DAYS)
                for stem in ("spend", "orders", "items", "distinct_products", "cancelled_lines")}


def _counts_within(hours: Iterable[int], cuts: tuple[int, ...], last_hour: int) -> list[int]:
    """How many of ``hours`` fall in each window ``[cut, last_hour]``. Many share an hour
    (an invoice's products), so they are counted per distinct hour first, in C.

    >>> _counts_within([5, 5, 9, 12], (9, 4), 10)
    [1, 3]
    """
    counts = [0] * len(cuts)
    for hour, n in Counter(hours).items():
        if hour <= last_hour:
            for w, cut in enumerate(cuts):
                if hour >= cut:
                    counts[w] += n
    return counts


def _days(as_of: int, ts: int | None) -> float | None:
    """Days from ``ts`` to ``as_of`` (None when there is no ``ts``)."""
    return None if ts is None else round((as_of - ts) / DAY, 4)


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
        """The basket so far, with its product value shares per category."""
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
        for c, key in _SHARE_KEYS:
            share = by_category.get(c, 0.0) / product_value if product_value > 0 else 0.0
            out[key] = round(share, 4)
        return out


#: How far past the longest window a product's tiles and buyers may age before they are
#: dropped, all at once. Its values only read inside its windows, so what is kept past
#: them changes nothing; dropping them every new hour rebuilt a popular product's dicts
#: nearly every hour (a tenth of the backfill's feature time).
_EVICT_SLACK_HOURS = 7 * 24
#: Hours of tiles a product needs: its longest window, and a day more.
_PRODUCT_KEPT_HOURS = PRODUCT.windows_days[-1] * 24 + 24


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
        """Every feature of :data:`basketflow.schemas.features.PRODUCT` as of ``as_of``."""
        cut1, cut7, cut30 = _cutoffs(as_of, (1, 7, 30))
        last_hour = as_of // HOUR
        units1 = units7 = lines30 = cancelled30 = 0
        revenue1 = revenue7 = 0.0
        for hour, (units, revenue, lines, cancelled) in self.tiles.items():
            if hour > last_hour or hour < cut30:
                continue
            lines30 += lines
            cancelled30 += cancelled
            if hour >= cut7:
                units7 += units
                revenue7 += revenue
                if hour >= cut1:
                    units1 += units
                    revenue1 += revenue
        buyers = sum(1 for h in self.buyers.values() if cut7 <= h <= last_hour)
        return {"units_1d": units1, "units_7d": units7, "revenue_1d": round(revenue1, 2),
                "revenue_7d": round(revenue7, 2), "distinct_buyers_7d": buyers,
                "cancelled_share_30d": round(cancelled30 / lines30, 4) if lines30 else None}


assert set(CustomerState().values(0)) == set(CUSTOMER.feature_names), "customer view drift"
assert set(ProductState().values(0)) == set(PRODUCT.feature_names), "product view drift"
assert set(BasketState().values()) == {f.name for f in BASKET.features}, "basket view drift"
