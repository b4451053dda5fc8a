"""Per-entity feature state: the one implementation of every feature's logic.

Each class here is plain Python, kept per entity inside a Bytewax ``stateful_map`` by the
live flow and by the backfill alike, so what a model is trained on is what it is served.
``update(event)`` folds one event in; ``values()`` returns the feature values as of the
latest event folded in, with their event time.

>>> from schemas.events import parse_row
>>> row = ["536365", "85123A", "HEART", "6", "12/1/2010 8:26", "2.55", "17850", "UK"]
>>> c = CustomerTotals()
>>> c.update(parse_row(row, "f:2"))
>>> c.update(parse_row(["C536366"] + row[1:3] + ["-2"] + row[4:], "f:3"))
>>> c.values()["spend"], c.values()["baskets"], c.values()["cancelled_lines"]
(10.2, 1, 1)
"""

from __future__ import annotations

import copy
from typing import Any

from schemas.events import Transaction


class Snapshotable:
    """Cheap deep copies of slot-based state, for Bytewax's per-epoch snapshots.

    Bytewax deep-copies every changed entity's state at each epoch; a generic deepcopy
    walks every element of every set. Slots holding sets, dicts or lists of immutable
    values only need a container copy; other Snapshotable slots are copied the same way.
    """

    __slots__ = ()

    def __deepcopy__(self, memo: dict[int, Any]) -> "Snapshotable":
        new = object.__new__(type(self))
        for name in self.__slots__:
            value = getattr(self, name)
            if isinstance(value, (set, dict, list)):
                value = value.copy()
            elif isinstance(value, Snapshotable):
                value = copy.deepcopy(value, memo)
            setattr(new, name, value)
        return new


class CustomerTotals(Snapshotable):
    """Running lifetime totals of one customer (or one guest invoice).

    ``spend`` and ``items`` are net of cancellations; ``baskets`` counts distinct purchase
    invoices; first and last purchase are the event times of purchase lines.
    """

    __slots__ = ("invoices", "spend", "items", "cancelled_lines", "first_purchase",
                 "last_purchase", "ts")

    def __init__(self) -> None:
        self.invoices: set[str] = set()
        self.spend = 0.0
        self.items = 0
        self.cancelled_lines = 0
        self.first_purchase: int | None = None
        self.last_purchase: int | None = None
        self.ts = 0

    def update(self, e: Transaction) -> None:
        """Fold one line in: spend and items move by its (signed) amount and quantity."""
        self.spend += e.quantity * e.unit_price
        self.ts = max(self.ts, e.ts)
        if e.is_product:
            self.items += e.quantity
        if e.is_cancellation:
            self.cancelled_lines += 1
            return
        self.invoices.add(e.invoice)
        if self.first_purchase is None or e.ts < self.first_purchase:
            self.first_purchase = e.ts
        if self.last_purchase is None or e.ts > self.last_purchase:
            self.last_purchase = e.ts

    def values(self) -> dict[str, Any]:
        """Feature values as of the latest event folded in."""
        return {
            "baskets": len(self.invoices),
            "spend": round(self.spend, 2),
            "items": self.items,
            "cancelled_lines": self.cancelled_lines,
            "first_purchase": self.first_purchase,
            "last_purchase": self.last_purchase,
        }


class CurrentBasket(Snapshotable):
    """The customer's current basket (invoice) so far.

    A purchase line of a new invoice starts a new basket; cancellation lines belong to no
    basket (they are reversals, counted by :class:`CustomerTotals`).
    """

    __slots__ = ("invoice", "lines", "items", "value", "products", "non_product_lines",
                 "started", "ts")

    def __init__(self) -> None:
        self.invoice: str | None = None
        self._reset()

    def _reset(self) -> None:
        self.lines = 0
        self.items = 0
        self.value = 0.0
        self.products: set[str] = set()
        self.non_product_lines = 0
        self.started = 0
        self.ts = 0

    def update(self, e: Transaction) -> bool:
        """Fold one line in; return False when the line is not part of a basket."""
        if e.is_cancellation or e.is_adjustment:
            return False
        if e.invoice != self.invoice:
            self.invoice = e.invoice
            self._reset()
            self.started = e.ts
        self.lines += 1
        self.value += e.quantity * e.unit_price
        self.ts = max(self.ts, e.ts)
        if e.is_product:
            self.items += e.quantity
            self.products.add(e.stock_code)
        else:
            self.non_product_lines += 1
        return True

    def values(self) -> dict[str, Any]:
        """The basket so far."""
        return {
            "invoice": self.invoice,
            "lines": self.lines,
            "items": self.items,
            "value": round(self.value, 2),
            "distinct_products": len(self.products),
            "non_product_lines": self.non_product_lines,
            "started": self.started,
        }
