"""A basket scored now by the live model (``basketflow serve``'s ``POST /predict``),
with no second implementation of any feature and no state changed.

The posted lines go through the event contract (:mod:`basketflow.app.posted`), are
folded by the flow's own engine state of the basket view
(:data:`~basketflow.features.entity_features.BASKET_ENGINE`), and
the basket's values become the model's input by the flow's
:func:`~basketflow.models.classifier.with_history`; so a basket posted line by line gets
the scores the flow gives the same lines (``tests/serving/test_predict.py``). The
customer's history is their online ``customer`` values, which do not count the posted
basket yet (:func:`~basketflow.models.classifier.history_before`: nothing is taken out
of them, where the flow's own values, which count the basket, have it taken out).

The model is the registry's champion (:mod:`basketflow.models.registry`), checked like
any version (HMAC and sha256) before it is unpickled, and read again within a request of
the champion moving (a promote, a rollback, the flow registering a version it follows):
:class:`LiveModel` asks SQLite whether the registry changed (``data_version``) on each
call, and reads the alias only then.
"""

from __future__ import annotations

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
    from basketflow.models.registry import Registry

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
    """The champion of a data directory's model registry, loaded at first use and again
    when the champion changes; the registry is opened at first use (it may not exist
    when the server starts)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._registry: Registry | None = None
        self._loaded: tuple[int, BasketClassifier] | None = None

    def current(self) -> BasketClassifier:
        """The champion's model; :class:`NoLiveModel` while there is none."""
        from basketflow.models.aliases import CHAMPION
        from basketflow.models.registry import (
            REGISTRY_FILE,
            Registry,
            RegistryError,
            registry_dir,
        )
        directory = registry_dir(self.data_dir)
        try:
            if self._registry is None:
                if not (directory / REGISTRY_FILE).exists():
                    raise NoLiveModel(_NO_CHAMPION)
                self._registry = Registry(directory)
            if self._registry.changed() or self._loaded is None:
                champion = self._registry.alias(CHAMPION)
                if champion is None:
                    raise NoLiveModel(_NO_CHAMPION)
                if self._loaded is None or self._loaded[0] != champion:
                    self._loaded = (champion, self._registry.load(champion))
        except RegistryError as exc:  # a refused version: no model to serve (a 503)
            raise NoLiveModel(str(exc)) from exc
        return self._loaded[1]


_NO_CHAMPION = ("no live model yet: the registry has no champion; the flow registers one "
                "once it has learnt from labelled baskets (`basketflow segment assign`, then "
                "`basketflow run`), or run `basketflow models train`")


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
    """The ``basket`` view's values after the events, folded by the flow's own engine."""
    from basketflow.features.entity_features import BASKET_ENGINE
    basket = BASKET_ENGINE.state()
    for e in events:
        basket.update(e)
    return basket.values(max(e.ts for e in events))


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
