"""A basket scored now by the live model (``basketflow serve``'s ``POST /predict``),
with no second implementation of any feature and no state changed.

The posted lines go through the event contract (:mod:`basketflow.app.posted`), are
folded by the flow's own :class:`~basketflow.features.feature_state.BasketState`, and
the basket's values become the model's input by the flow's
:func:`~basketflow.models.classifier.with_history`; so a basket posted line by line gets
the scores the flow gives the same lines (``tests/serving/test_predict.py``). The
customer's history is their online ``customer`` values, which do not count the posted
basket yet (:func:`~basketflow.models.classifier.history_before`: nothing is taken out
of them, where the flow's own values, which count the basket, have it taken out).

The model is the live flow's: the checkpoint it writes for the current segmentation
(``<data>/models/classifier-<segmentation>.pkl``), checked like any checkpoint, and
read again whenever the flow writes a newer one (:class:`LiveModel`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from basketflow.app.posted import parse_posted
from basketflow.errors import BasketflowError
from basketflow.schemas.events import Rejection, Transaction

if TYPE_CHECKING:
    from basketflow.models.classifier import BasketClassifier

#: The invoice number a posted basket gets when it names none.
POSTED_INVOICE = "posted"


class BadLines(BasketflowError, ValueError):
    """Posted lines the event contract rejects: each with its number (from 1) and
    reason (:attr:`rejected`)."""

    def __init__(self, rejected: list[tuple[int, str]], accepted: int = 0) -> None:
        self.rejected = rejected
        self.accepted = accepted
        shown = "; ".join(f"line {n}: {reason}" for n, reason in rejected[:3])
        super().__init__(f"{len(rejected)} bad line(s): {shown}")


class NoLiveModel(BasketflowError, RuntimeError):
    """There is no live model to score with yet; the message says what makes one."""


@dataclass(frozen=True)
class Prediction:
    """A posted basket's score: category, probabilities, the model version, the
    basket's own values, and whether the customer's online values were used."""

    category: str
    probabilities: dict[str, float]
    model_version: str
    basket: dict[str, Any]
    customer_known: bool

    def to_json(self) -> dict[str, Any]:
        """Plain data for the response."""
        return {"category": self.category, "probabilities": self.probabilities,
                "model_version": self.model_version, "customer_known": self.customer_known,
                "basket": self.basket}


class LiveModel:
    """The live flow's model of a data directory, read from its checkpoint at first use
    and again when the checkpoint changes (one ``stat`` per call) or the current
    segmentation does."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._loaded: tuple[Path, int, BasketClassifier] | None = None

    def current(self) -> BasketClassifier:
        """The model; :class:`NoLiveModel` while there is none, or it has learnt nothing."""
        from basketflow.models.classifier import BasketClassifier, load_checkpoint
        from basketflow.reports.segments import SegmentationError, current_version
        try:
            version = current_version(self.data_dir)
        except SegmentationError as exc:
            raise NoLiveModel(f"no live model: {exc}") from exc
        path = self.data_dir / "models" / f"classifier-{version}.pkl"
        try:
            stamp = os.stat(path).st_mtime_ns
        except FileNotFoundError:
            raise NoLiveModel(
                f"no live model yet: the flow writes {path} once it has learnt from "
                "labelled baskets (`basketflow segment assign`, then `basketflow run`)"
            ) from None
        loaded = self._loaded
        if loaded is None or loaded[0] != path or loaded[1] != stamp:
            model = load_checkpoint(path, BasketClassifier(version).version)
            loaded = self._loaded = (path, stamp, model)
        return loaded[2]


def basket_events(lines: Sequence[Any], *, customer_id: str | None, country: str,
                  invoice: str | None = None, ts: int | None = None,
                  ) -> list[Transaction]:
    """The posted basket's lines as events of one invoice: ``customer_id``,
    ``country``, ``invoice`` and the time ``ts`` (default: now) filled in where a line
    has none; :class:`BadLines` when any line breaks the contract."""
    when = int(time.time()) if ts is None else ts
    shared = {"invoice": invoice or POSTED_INVOICE, "invoice_date": when,
              "customer_id": customer_id, "country": country}
    filled = [shared | dict(line) if isinstance(line, Mapping) else line for line in lines]
    parsed = parse_posted(filled, "predict")
    rejected = [(n, item.reason) for n, item in enumerate(parsed, 1)
                if isinstance(item, Rejection)]
    if rejected:
        raise BadLines(rejected)
    events = [t for t in parsed if isinstance(t, Transaction)]
    if not any(not (e.is_cancellation or e.is_adjustment) for e in events):
        raise BadLines([(0, "a basket needs a purchase line (not a cancellation or an "
                            "adjustment)")])
    return events


def basket_values(events: Sequence[Transaction]) -> dict[str, Any]:
    """The ``basket`` view's values after the events, folded by the flow's own state."""
    from basketflow.features.feature_state import BasketState
    basket = BasketState()
    for e in events:
        basket.update(e)
    return basket.values()


def predict_basket(model: BasketClassifier, events: Sequence[Transaction],
                   customer: Mapping[str, Any] | None) -> Prediction:
    """Score the basket of ``events`` with ``model``, the customer's history from
    their online ``customer`` values (None: unknown, a first visit), at the time of the
    basket's first line; :class:`NoLiveModel` when the model has learnt nothing."""
    from basketflow.models.classifier import history_before, with_history
    basket = basket_values(events)
    x = with_history(basket, history_before(basket, customer))
    score = model.predict(x, basket["started"])
    if score is None:
        raise NoLiveModel("the live model has not learnt from any basket yet")
    return Prediction(score.category, score.probabilities, score.model_version, basket,
                      customer is not None)
