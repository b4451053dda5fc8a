"""Per-entity feature state of the built-in view the generic engine
(:mod:`basketflow.features.declared_state`) does not compute, ``basket`` (docs/DESIGN.md
says why; the ``customer`` and ``product`` views are the engine's), and what reads the
product's logged tiles (:func:`product_columns`).

The class here is plain Python, kept per entity inside a Bytewax stateful step by
the live flow and by the backfill alike, so what a model is trained on is what it is
served. ``update(event)`` folds one event in; ``values`` returns the features, following
the window rule of :mod:`basketflow.schemas.features`: a ``W``-day window at ``t`` holds
the events of the ``W*24`` hourly tiles ending with the hour of ``t``.

>>> from basketflow.schemas.events import parse_row
>>> row = ["536365", "85123A", "HEART", "6", "12/1/2010 8:26", "2.55", "17850", "UK"]
>>> b = BasketState()
>>> b.update(parse_row(row, "f:2"))
True
>>> b.update(parse_row(["C536366"] + row[1:3] + ["-2"] + row[4:], "f:3"))
False
>>> v = b.values()
>>> v["invoice"], v["value"], v["distinct_products"]
('536365', 15.3, 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from basketflow.features.declared_codegen import exact_rounded
from basketflow.schemas.events import Transaction
from basketflow.schemas.features import CATEGORY_SHARES, PRODUCT, FeatureView
from basketflow.schemas.taxonomy import load_taxonomy

HOUR = 3600
DAY = 86_400
#: Bound once: the basket view's version includes this taxonomy's version.
_category_of = load_taxonomy().category_of


def last_ended_hour(ts: int) -> int:
    """The last hour whose end (its last second) is at or before ``ts``; works on NumPy
    arrays of times too.

    >>> last_ended_hour(7199), last_ended_hour(7200), last_ended_hour(10_799)
    (1, 1, 2)
    """
    return (ts + 1) // HOUR - 1


def hour_end(hour: int) -> int:
    """The last second of ``hour`` (hours since the epoch); works on NumPy arrays too.

    >>> hour_end(1)
    7199
    """
    return hour * HOUR + HOUR - 1


def _windows_of(view: FeatureView, stem: str) -> tuple[tuple[str, int], ...]:
    """Each window of the view's windowed feature ``stem``: the feature's name over it, and
    where its days are in ``view.windows_days`` (the windows a state sums its tiles over).

    >>> _windows_of(PRODUCT, "distinct_buyers")
    (('distinct_buyers_7d', 1),)
    """
    declared = view.windowed(stem)
    return tuple((declared.name(days), view.windows_days.index(days))
                 for days in declared.windows_days)


class BasketState:
    """The customer's current basket (invoice) so far.

    A purchase line of a new invoice starts a new basket; cancellation and adjustment
    lines belong to no basket (they are reversals, counted by the ``customer`` view).
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


#: The product's windows in days, shortest first.
_PRODUCT_DAYS = PRODUCT.windows_days
#: Each of the product's windows in hours, shortest first.
PRODUCT_SPAN_HOURS = tuple(days * 24 for days in _PRODUCT_DAYS)
#: Hours after a tile's hour at whose end the product's values change: its own hour's
#: end (it enters every window), and each window's span (it leaves that window).
PRODUCT_CHANGE_HOURS = (0, *PRODUCT_SPAN_HOURS)
_UNITS = _windows_of(PRODUCT, "units")
_REVENUE = _windows_of(PRODUCT, "revenue")
_DISTINCT_BUYERS = _windows_of(PRODUCT, "distinct_buyers")
_CANCELLED_SHARE = _windows_of(PRODUCT, "cancelled_share")
if len({w for _, w in _DISTINCT_BUYERS}) != 1:
    raise ValueError("the product's feature log keeps buyers for one window: declare "
                     "distinct_buyers over one window only")
_BUYERS_WINDOW = _DISTINCT_BUYERS[0][1]
#: The span in hours of the window distinct buyers are counted over.
BUYERS_SPAN_HOURS = PRODUCT_SPAN_HOURS[_BUYERS_WINDOW]
#: Revenue is kept in thousandths of the currency, as whole numbers (the product
#: declaration's exact sum): window sums are exact however they are added and taken away.
MILLI = 1000


def revenue(milli: int) -> float:
    """A value in thousandths as currency, rounded to cents half to even, in whole numbers
    (so the same in every place that sums tiles: no binary fraction decides a tie).

    >>> revenue(125), revenue(135), revenue(-125), revenue(2_554)
    (0.12, 0.14, -0.12, 2.55)
    """
    return exact_rounded(milli, 3, 2)


def share(part: int, whole: int) -> float | None:
    """``part / whole`` to four decimals; None when ``whole`` is 0.

    >>> share(1, 3), share(0, 0)
    (0.3333, None)
    """
    return round(part / whole, 4) if whole else None


def product_columns(sums: Sequence[Sequence[Sequence[int]]],
                    buyers: Sequence[int]) -> dict[str, list[Any]]:
    """The product's features as columns, by the rules of the ``product`` declaration,
    from columns of sums: ``sums[w]`` holds the window ``w``'s (of ``PRODUCT.windows_days``)
    units, revenue in thousandths, lines and cancelled lines, one column each, and
    ``buyers`` the distinct buyers of the buyers' window. What ``historical`` computes
    from the logged tiles.

    >>> columns = product_columns([[[2], [5_100], [1], [0]]] * 3, [1])
    >>> columns["revenue_7d"], columns["cancelled_share_30d"]
    ([5.1], [0.0])
    """
    out: dict[str, list[Any]] = {}
    for name, w in _UNITS:
        out[name] = list(sums[w][0])
    for name, w in _REVENUE:
        out[name] = [revenue(milli) for milli in sums[w][1]]
    for name, _ in _DISTINCT_BUYERS:
        out[name] = list(buyers)
    for name, w in _CANCELLED_SHARE:
        out[name] = [share(c, n) for c, n in zip(sums[w][3], sums[w][2])]
    return out
