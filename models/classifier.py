"""The online customer-category classifier: a linear model over the basket so far.

The business wants a customer's category from the very first visit, while the basket is
being filled. The live flow holds one :class:`BasketClassifier`, calls
:meth:`BasketClassifier.predict` on every basket update and
:meth:`BasketClassifier.learn` when a basket closes and its customer has a label from the
current segmentation. This module is only the model: its input
(:func:`classifier_features`) and its output (:class:`Score`); its versions are kept by
the model registry (:mod:`basketflow.models.registry`).

**Input.** :func:`classifier_features` reads only registered features (the ``basket`` and
``customer`` views of :mod:`basketflow.schemas.features`, as :mod:`basketflow.features.entity_features` computes them),
so training and serving see the same values:

- the basket so far: ``log_value``, ``log_items``, ``log_lines``,
  ``log_distinct_products``, ``log_non_product_lines`` (log1p: money and counts are
  heavy-tailed, a few wholesale baskets are orders of magnitude above the median; negative
  values count as 0),
  the squares of the first four (``*_sq``: a linear model then sees "mid spend" as well as
  "more" and "less"), ``log_unit_value`` (value per item) and ``log_items_per_line``, every
  ``share_<category>`` as is (already in [0, 1]), ``top_share`` (the largest) and
  ``share_entropy`` (how mixed the basket is), ``hour_of_day`` and ``weekday`` as numbers,
  and ``country`` as a categorical (a string, one-hot encoded by the model);
- the customer's history *before* this basket: the customer view counts the basket being
  filled, so it is taken out again: ``log_prior_orders`` (lifetime orders - 1),
  ``log_prior_spend`` (lifetime spend - basket value), ``log_prior_avg_basket``,
  ``log_prior_orders_90d``, ``log_prior_spend_90d`` (the 90-day figures minus this
  basket), ``log_cancelled_lines_90d``, ``log_tenure_days`` (days from the first purchase
  to the start of this basket) and ``returning`` (1.0 when there is an earlier order).
  Without history (``customer`` is None: a first visit or a guest) all of them are 0.0,
  which is exactly what a customer whose only order is this basket gets, so a first visit
  looks the same with or without a customer row;
- on a first visit only (``returning`` 0.0), a copy of every basket feature named
  ``first_<name>`` (absent otherwise). About three quarters of the baskets the model learns
  from are returning customers', but what it is for is the first visit, where one basket
  must tell a customer's whole future: the copies give first visits weights of their own
  on top of the shared ones, an interaction with ``returning`` that a linear model cannot
  otherwise express (``basketflow evaluate`` measures what they add; docs/PERFORMANCE.md
  has the figures).

**Model.** :class:`basketflow.models.online_linear.AdaGradOneVsRest`: one logistic regression per
category trained by AdaGrad, with the numbers standard-scaled and the strings one-hot
encoded inside it, over numpy, at a fraction of the cost per basket of River's own
pipeline of the same model (see :data:`PIPELINES`, and ``benchmarks/classifier.py`` for
the cost of each). Its :attr:`~BasketClassifier.version`
is a digest of the pipeline's definition, of the feature definitions and of the labels'
version, never of the learnt weights: every score carries it, and the flow never
continues a registered version of another.

>>> basket = {"value": 54.08, "items": 40, "lines": 7, "distinct_products": 7,
...           "non_product_lines": 0, "hour_of_day": 8, "weekday": 2,
...           "country": "United Kingdom", "started": 1291191960, "share_home_decor": 1.0}
>>> x = classifier_features(basket, None)
>>> x["country"], x["log_value"], x["returning"], x["first_country"], x["first_log_value"]
('United Kingdom', 4.0088, 0.0, 'United Kingdom', 4.0088)
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import river
from river.base import Classifier

# River's pipeline modules are imported by the pipelines that use them: importing them
# would lengthen every flow's start (the live flow and the backfill), for the default model,
# which does not use them.
if TYPE_CHECKING:
    from river import compose

from basketflow.features.feature_state import DAY
from basketflow.models.online_linear import AdaGradOneVsRest
from basketflow.schemas.features import BASKET, CATEGORY_SHARES, CUSTOMER
from basketflow.schemas.records import Score

#: Bump when :func:`classifier_features` computes something else under the same names.
FEATURES_REVISION = 2
_SHARES = tuple(name for _, name in CATEGORY_SHARES)
#: The customer's 90-day features the history reads, under their declared names.
_ORDERS_90D, _SPEND_90D, _CANCELLED_LINES_90D = (
    CUSTOMER.windowed(stem).name(90) for stem in ("orders", "spend", "cancelled_lines"))
#: The customer features the history features read (what a batch prediction fetches).
CUSTOMER_INPUTS: tuple[str, ...] = ("lifetime_orders", "lifetime_spend", _ORDERS_90D,
                                    _SPEND_90D, _CANCELLED_LINES_90D, "first_purchase")
_BASKET_COUNTS = ("value", "items", "lines", "distinct_products", "non_product_lines")
_SQUARED = ("log_value", "log_items", "log_lines", "log_distinct_products")
#: The numeric inputs from the basket alone, in a fixed order.
BASKET_NUMBERS: tuple[str, ...] = (
    tuple(f"log_{k}" for k in _BASKET_COUNTS) + tuple(f"{k}_sq" for k in _SQUARED)
    + ("log_unit_value", "log_items_per_line") + _SHARES + ("top_share", "share_entropy",
                                                            "hour_of_day", "weekday"))
HISTORY_FEATURES: tuple[str, ...] = (
    "log_prior_orders", "log_prior_spend", "log_prior_avg_basket", "log_prior_orders_90d",
    "log_prior_spend_90d", "log_cancelled_lines_90d", "log_tenure_days", "returning")
#: Every numeric input, in a fixed order; the ``first_`` copies only on a first visit.
NUMERIC_FEATURES: tuple[str, ...] = (
    BASKET_NUMBERS + HISTORY_FEATURES + tuple(f"first_{k}" for k in BASKET_NUMBERS))
#: The string inputs (one-hot encoded by the model).
CATEGORICAL_FEATURES: tuple[str, ...] = ("country", "first_country")
#: The first-visit copies' names, in the order of :func:`_basket`'s features.
_FIRST_VISIT = tuple(f"first_{k}" for k in (*BASKET_NUMBERS, "country"))


def _log1p(v: float | int | None) -> float:
    """log1p of a count or an amount, 0.0 for None or negative; rounded for stable output."""
    return round(math.log1p(v), 4) if v is not None and v > 0 else 0.0


def _history(basket: Mapping[str, Any], customer: Mapping[str, Any] | None) -> dict[str, float]:
    """The customer's history before this basket (all 0.0 without one), from the
    customer's values that count the basket (the flow's): the basket is taken out."""
    if customer is None:
        return dict.fromkeys(HISTORY_FEATURES, 0.0)
    value = basket.get("value") or 0.0
    in_basket = 1 if basket.get("lines") else 0
    return _prior(basket, max((customer.get("lifetime_orders") or 0) - in_basket, 0),
                  (customer.get("lifetime_spend") or 0.0) - value,
                  (customer.get(_ORDERS_90D) or 0) - in_basket,
                  (customer.get(_SPEND_90D) or 0.0) - value, customer)


def history_before(basket: Mapping[str, Any],
                   customer: Mapping[str, Any] | None) -> dict[str, float]:
    """The history features from the customer's values *before* the basket (the online
    store's, for a basket the flow has not seen: ``basketflow serve``'s ``/predict``),
    by the rules of :func:`classifier_features`, with nothing taken out.

    >>> history_before({"started": 86_400 * 11}, {"lifetime_orders": 2, "lifetime_spend":
    ...     30.0, "first_purchase": 86_400})["log_prior_avg_basket"]
    2.7726
    """
    if customer is None:
        return dict.fromkeys(HISTORY_FEATURES, 0.0)
    return _prior(basket, customer.get("lifetime_orders") or 0,
                  customer.get("lifetime_spend") or 0.0, customer.get(_ORDERS_90D) or 0,
                  customer.get(_SPEND_90D) or 0.0, customer)


def _prior(basket: Mapping[str, Any], orders: int, spend: float, orders_90d: int,
           spend_90d: float, customer: Mapping[str, Any]) -> dict[str, float]:
    """The history features from the customer's figures before the basket."""
    first, started = customer.get("first_purchase"), basket.get("started")
    tenure = (started - first) / DAY if first is not None and started is not None else 0.0
    return {
        "log_prior_orders": _log1p(orders),
        "log_prior_spend": _log1p(spend),
        "log_prior_avg_basket": _log1p(spend / orders) if orders else 0.0,
        "log_prior_orders_90d": _log1p(orders_90d),
        "log_prior_spend_90d": _log1p(spend_90d),
        "log_cancelled_lines_90d": _log1p(customer.get(_CANCELLED_LINES_90D)),
        "log_tenure_days": _log1p(tenure),
        "returning": 1.0 if orders else 0.0,
    }


def _basket(basket: Mapping[str, Any]) -> dict[str, float | str]:
    """The basket's own features (see the module docstring), in :data:`BASKET_NUMBERS`
    order, then the country."""
    get = basket.get
    value, items, lines = get("value") or 0.0, get("items") or 0, get("lines") or 0
    logs = [_log1p(value), _log1p(items), _log1p(lines), _log1p(get("distinct_products")),
            _log1p(get("non_product_lines"))]
    shares = [float(get(name) or 0.0) for name in _SHARES]
    values = [*logs, *(round(v * v, 4) for v in logs[:len(_SQUARED)]),
              _log1p(value / items) if items > 0 else 0.0,
              _log1p(items / lines) if lines > 0 else 0.0,
              *shares, max(shares),
              round(-sum(s * math.log(s) for s in shares if s > 0), 4),
              float(get("hour_of_day") or 0), float(get("weekday") or 0)]
    x: dict[str, float | str] = dict(zip(BASKET_NUMBERS, values))
    x["country"] = str(get("country") or "")
    return x


def classifier_features(basket: Mapping[str, Any],
                        customer: Mapping[str, Any] | None) -> dict[str, float | str]:
    """The model's input from a basket's values and its customer's values (or None).

    ``basket`` is the ``basket`` view's values, ``customer`` the ``customer`` view's
    values (:data:`basketflow.features.entity_features.CUSTOMER_ENGINE`) at the same
    event time, which count this basket too (the history features take it out again;
    see the module docstring).
    Missing share features count as 0.0, so a basket without product lines works.
    """
    return with_history(basket, _history(basket, customer))


def with_history(basket: Mapping[str, Any], history: Mapping[str, float],
                 ) -> dict[str, float | str]:
    """The model's input from a basket's values and its history features
    (:func:`classifier_features`, or :func:`history_before`): the first-visit copies
    added when the customer is not returning."""
    own = _basket(basket)
    x = own | history
    if not history["returning"]:
        x.update(zip(_FIRST_VISIT, own.values()))
    return x


def one_hot(x: Mapping[str, Any]) -> dict[str, float]:
    """``{"<name>=<value>": 1.0}`` for every string feature (``country``,
    ``first_country``), without state: River's ``OneHotEncoder`` gives the same features
    but keeps a set of the values seen, at several times the cost per call."""
    return {f"{k}={v}": 1.0 for k, v in x.items() if isinstance(v, str)}


def _scaled_numbers() -> compose.Pipeline:
    """The numeric inputs, standard-scaled by running mean and variance (selected by type:
    the ``first_`` ones are absent from returning customers' baskets)."""
    from river import compose, preprocessing

    return compose.SelectType(numbers.Number) | preprocessing.StandardScaler()


def _adagrad_numpy(seed: int) -> Classifier:
    """The default: :class:`~basketflow.models.online_linear.AdaGradOneVsRest` (learning rate 0.05),
    River's one-vs-rest AdaGrad logistic regression redone over numpy with the scaling and
    one-hot steps inside: it learns the same way as :func:`_ovr_adagrad`, much cheaper per
    basket (``basketflow evaluate`` and ``benchmarks/classifier.py`` compare them; the
    figures are in docs/PERFORMANCE.md). It takes no seed (zero initial weights)."""
    return AdaGradOneVsRest(learning_rate=0.05)


def _ovr_logistic(seed: int) -> Classifier:
    """River: one logistic regression per category (plain SGD), probabilities normalised;
    the reference run's model with a cheaper one-hot step (same features, same predictions).
    River's linear models start from zero weights and take no seed."""
    from river import compose, linear_model, multiclass

    return (compose.FuncTransformer(one_hot) + _scaled_numbers()
            ) | multiclass.OneVsRestClassifier(linear_model.LogisticRegression())


def _ovr_adagrad(seed: int) -> Classifier:
    """River: :func:`_ovr_logistic` with AdaGrad (learning rate 0.05) instead of plain SGD,
    so rare features (a small country, a rare category share) learn as fast as common ones
    (more accurate than plain SGD in ``basketflow evaluate``); :func:`_adagrad_numpy` is
    the same model, cheaper."""
    from river import compose, linear_model, multiclass, optim

    return (compose.FuncTransformer(one_hot) + _scaled_numbers()
            ) | multiclass.OneVsRestClassifier(linear_model.LogisticRegression(
                optimizer=optim.AdaGrad(0.05)))


def _reference(seed: int) -> Classifier:
    """River: the reference run's pipeline as it was: River's OneHotEncoder for the
    country."""
    from river import compose, linear_model, multiclass, preprocessing

    return ((compose.SelectType(str) | preprocessing.OneHotEncoder())
            + _scaled_numbers()) | multiclass.OneVsRestClassifier(
                linear_model.LogisticRegression())


def _softmax(seed: int) -> Classifier:
    """River: one multinomial logistic regression: one weight vector per category, one
    softmax."""
    from river import compose, linear_model

    return (compose.FuncTransformer(one_hot) + _scaled_numbers()
            ) | linear_model.SoftmaxRegression()


#: Pipeline name -> factory(seed); benchmarks/classifier.py compares them on the real data.
PIPELINES: dict[str, Callable[[int], Classifier]] = {
    "adagrad_numpy": _adagrad_numpy,
    "ovr_adagrad": _ovr_adagrad,
    "ovr_logistic": _ovr_logistic,
    "reference_ovr_logistic": _reference,
    "softmax": _softmax,
}
DEFAULT_PIPELINE = "adagrad_numpy"


class BasketClassifier:
    """A customer category from a basket's features, learnt online from labelled baskets.

    ``predict`` returns None until the model has learnt one example (there is no prior:
    a score from an untrained model would be a guess stored as if it were a prediction).
    Afterwards it returns a :class:`Score` over the categories learnt so far.

    >>> model = BasketClassifier(labels_version="seg-1")
    >>> x = classifier_features({"value": 150.0, "lines": 12, "country": "France",
    ...                          "share_christmas_seasonal": 0.9}, None)
    >>> model.predict(x, ts=100) is None
    True
    >>> model.learn(x, "Christmas, frequent")
    >>> score = model.predict(x, ts=100)
    >>> score.category, score.probabilities, score.ts, model.n_learned
    ('Christmas, frequent', {'Christmas, frequent': 1.0}, 100, 1)
    >>> score.model_version == model.version
    True
    """

    def __init__(self, labels_version: str, seed: int = 0,
                 pipeline: str = DEFAULT_PIPELINE) -> None:
        if pipeline not in PIPELINES:
            raise ValueError(f"unknown pipeline {pipeline!r}; choose one of {sorted(PIPELINES)}")
        self.labels_version = labels_version
        self.seed = seed
        self.pipeline = pipeline
        self.model = PIPELINES[pipeline](seed)
        self.version = _version(pipeline, repr(self.model), labels_version)
        self.n_learned = 0

    def predict(self, x: Mapping[str, Any], ts: int) -> Score | None:
        """The category of the basket ``x`` (from :func:`classifier_features`) at ``ts``."""
        if not self.n_learned:
            return None
        proba = self.model.predict_proba_one(x)
        category = max(sorted(proba), key=proba.__getitem__)
        return Score(category, proba, self.version, ts)

    def learn(self, x: Mapping[str, Any], label: str) -> None:
        """Learn that the basket ``x`` belongs to a customer of category ``label``."""
        self.model.learn_one(x, label)
        self.n_learned += 1


def _version(pipeline: str, definition: str, labels_version: str) -> str:
    """A short digest of what the model is: pipeline, features, labels, River release."""
    text = json.dumps({
        "pipeline": pipeline, "definition": definition, "labels": labels_version,
        "features": [FEATURES_REVISION, BASKET.version, CUSTOMER.version,
                     list(NUMERIC_FEATURES), list(CATEGORICAL_FEATURES)],
        "river": river.__version__,
    }, sort_keys=True)
    return f"{pipeline}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"
