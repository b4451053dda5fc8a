"""Each customer's basket being filled, and the rule that closes it.

The predict step (:mod:`basketflow.flows.scoring`), keyed by customer like the customer
feature step, keeps the basket a labelled customer is filling: its invoice, the
classifier's features of its last update and that update's event time. A basket
**closes** at the customer's next invoice, or once ``gap_seconds`` of event time passed
after its last line. The gap is seen at the customer's next feature row: its next line,
or the next moment a tile of it leaves a window (the clock wakes the customer then, a
day after its last hour at the latest), so a basket closed by the gap reaches the
learner up to a day of event time after the gap. Its *moment* is the event time of the
row that closed it: it depends on the customer's own events only, never on the order
other customers' events arrived in, so a replay of the same events closes each basket
at the same moment. A closed basket becomes a :class:`ClosedBasket`, the one thing
the learner receives: far fewer items than the updates, so one learner keeps up with
every worker's predictions. Unlabelled customers and guests teach nothing: no basket of
theirs is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from basketflow.models.classifier import classifier_features
from basketflow.schemas.records import FeatureUpdate


@dataclass(frozen=True, slots=True)
class ClosedBasket:
    """A labelled customer's basket, seen complete at event time ``moment`` (the row
    that closed it): its last features ``x`` and its customer's category ``label``: what
    the learner learns."""

    entity: str
    invoice: str
    x: dict[str, Any]
    label: str
    moment: int


@dataclass(frozen=True, slots=True)
class BasketUpdate:
    """A basket as of one feature row: what the predict step scores."""

    entity: str
    invoice: str
    ts: int
    seq: int
    x: dict[str, Any]


@dataclass(slots=True)
class OpenBasket:
    """A labelled customer's basket being filled: its invoice, the classifier's features
    of its last update, and that update's event time."""

    invoice: str
    x: dict[str, Any]
    last_ts: int


def fold_basket(basket: OpenBasket | None, update: FeatureUpdate, label: str | None,
                gap_seconds: int,
                ) -> tuple[OpenBasket | None, list[BasketUpdate], list[ClosedBasket]]:
    """Fold one customer's feature update into the basket it is filling (None: none, or
    the customer has no ``label``: its baskets teach nothing, so none is kept): the
    basket kept, the basket rows to score, in order, and the baskets that closed
    (module rules).

    >>> from basketflow.features.entity_features import CustomerFolder
    >>> from basketflow.schemas.events import parse_row
    >>> def update(invoice, when):
    ...     e = parse_row([invoice, "85123A", "HEART", "1", when, "9.5", "17850",
    ...                    "United Kingdom"], f"doc:{invoice}")
    ...     return folder.fold("17850", [e], 3600)
    >>> folder = CustomerFolder()
    >>> basket, scored, closed = fold_basket(None, update("5001", "3/1/2011 10:00"), "big", 3600)
    >>> [(u.invoice, u.seq) for u in scored], basket.invoice, closed
    ([('5001', 1)], '5001', [])
    >>> basket, scored, closed = fold_basket(basket, update("5002", "3/1/2011 10:30"), "big", 3600)
    >>> [(c.invoice, c.moment == basket.last_ts) for c in closed]
    [('5001', True)]
    """
    scored: list[BasketUpdate] = []
    closed: list[ClosedBasket] = []
    customer_rows = {(ts, seq): values for view, _e, ts, seq, values in update.rows
                     if view == "customer"}
    for view, entity, ts, seq, values in update.rows:
        if basket is not None and ts > basket.last_ts + gap_seconds:
            _close(entity, basket, label, ts, closed)
            basket = None
        if view != "basket":
            continue
        x = classifier_features(values, customer_rows.get((ts, seq)))
        if basket is not None and basket.invoice != values["invoice"]:
            _close(entity, basket, label, ts, closed)
        basket = None if label is None else OpenBasket(values["invoice"], x, ts)
        scored.append(BasketUpdate(entity, values["invoice"], ts, seq, x))
    return basket, scored, closed


def _close(entity: str, basket: OpenBasket, label: str | None, moment: int,
           closed: list[ClosedBasket]) -> None:
    """Add the basket to ``closed`` as the learner gets it, if its customer is labelled
    (a basket kept under earlier labels, restored from a snapshot, may be unlabelled)."""
    if label is not None:
        closed.append(ClosedBasket(entity, basket.invoice, basket.x, label, moment))
