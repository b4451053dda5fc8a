"""The hand-written ``BasketState`` that computed the built-in ``basket`` view before the
generic engine did (as it was, unchanged): the reference the engine's values must equal
to the bit (``test_current_invoice.py``), and, in the customer folder
(:class:`HandWrittenBasketFolder`), the benchmark's baseline.

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

from typing import Any

from basketflow.features.entity_features import CustomerFolder
from basketflow.features.feature_state import DAY, HOUR
from basketflow.schemas.events import Transaction
from basketflow.schemas.features import CATEGORY_SHARES
from basketflow.schemas.taxonomy import load_taxonomy

_category_of = load_taxonomy().category_of


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


class _ReadAnyTime(BasketState):
    """``BasketState`` read as the folder reads the engine's state (``values(as_of)``:
    the basket has no window over time, so ``as_of`` changes nothing)."""

    __slots__ = ()

    def values(self, as_of: int = 0) -> dict[str, Any]:  # type: ignore[override]
        return super().values()


class HandWrittenBasketFolder(CustomerFolder):
    """The customer folder with the hand-written basket state, as it was before the
    generic engine computed the basket: the benchmark's baseline."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__()
        self.basket = _ReadAnyTime()  # type: ignore[assignment]
