"""The online basket classifier: its input, learning and scores, and a registered version
that predicts as the model did (the registry's own checks: tests/models/test_registry.py)."""

from __future__ import annotations

import doctest
import hashlib
import json
import math
import os
import pickle
import random
from pathlib import Path

import pytest

import basketflow.models.classifier as classifier
from basketflow.features.entity_features import CUSTOMER_ENGINE
from tests.features.hand_written_basket import BasketState
from basketflow.models import online_linear
from basketflow.models.classifier import BasketClassifier, Score, classifier_features
from basketflow.models.registry import Lineage, Registry
from basketflow.schemas.events import parse_row
from basketflow.schemas.features import BASKET

#: Three kinds of customer, told apart by what their basket holds, where and how much.
KINDS = {
    "seasonal, small": ("christmas_seasonal", "United Kingdom", 40.0),
    "kitchen, abroad": ("kitchen_dining", "France", 300.0),
    "storage, wholesale": ("bags_storage", "Netherlands", 2500.0),
}


def basket(rng: random.Random, kind: str) -> dict[str, object]:
    """A basket view row (all the view's keys) of one kind, with noise."""
    main, country, value = KINDS[kind]
    row: dict[str, object] = {f.name: 0 for f in BASKET.features}
    shares = {c: rng.random() * 0.2 for c in ("christmas_seasonal", "kitchen_dining",
                                               "bags_storage", "home_decor")}
    shares[main] += 0.6
    total = sum(shares.values())
    row.update({f"share_{c}": round(s / total, 4) for c, s in shares.items()})
    lines = rng.randint(3, 40)
    row.update(invoice=str(rng.randint(536000, 580000)), lines=lines,
               items=lines * rng.randint(1, 12), value=round(value * rng.uniform(0.5, 2), 2),
               distinct_products=lines, non_product_lines=rng.randint(0, 1),
               hour_of_day=rng.randint(8, 18), weekday=rng.randint(0, 4), country=country,
               started=1291191960 + rng.randint(0, 10_000_000))
    return row


def test_doctests() -> None:
    for module in (classifier, online_linear):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__


def test_learns_a_separable_problem_far_above_the_majority() -> None:
    rng = random.Random(7)
    kinds = list(KINDS)
    train = [(k, basket(rng, k)) for k in rng.choices(kinds, weights=(5, 3, 2), k=600)]
    test = [(k, basket(rng, k)) for k in rng.choices(kinds, weights=(5, 3, 2), k=300)]
    model = BasketClassifier(labels_version="toy")
    for label, row in train:
        model.learn(classifier_features(row, None), label)
    correct = 0
    for label, row in test:
        score = model.predict(classifier_features(row, None), ts=int(row["started"]))
        assert score is not None and math.isclose(sum(score.probabilities.values()), 1.0)
        assert score.category == max(score.probabilities, key=score.probabilities.get)
        correct += score.category == label
    majority = max(sum(k == label for label, _ in test) for k in kinds) / len(test)
    assert model.n_learned == 600
    assert correct / len(test) >= 0.95 > majority + 0.4


def test_predict_before_learning_is_none_then_a_full_score() -> None:
    model = BasketClassifier(labels_version="v1", seed=3)
    x = classifier_features(basket(random.Random(1), "kitchen, abroad"), None)
    assert model.predict(x, ts=5) is None
    model.learn(x, "kitchen, abroad")
    model.learn(classifier_features(basket(random.Random(2), "seasonal, small"), None),
                "seasonal, small")
    score = model.predict(x, ts=5)
    assert isinstance(score, Score)
    assert set(score.probabilities) == {"kitchen, abroad", "seasonal, small"}
    assert math.isclose(sum(score.probabilities.values()), 1.0)
    assert (score.model_version, score.ts) == (model.version, 5)


def test_version_names_the_definition_and_labels_not_the_weights() -> None:
    model = BasketClassifier(labels_version="seg-a")
    before = model.version
    model.learn(classifier_features(basket(random.Random(1), "seasonal, small"), None), "x")
    assert model.version == before == BasketClassifier(labels_version="seg-a").version
    assert BasketClassifier(labels_version="seg-b").version != before
    assert BasketClassifier("seg-a", pipeline="softmax").version != before
    assert model.pipeline == classifier.DEFAULT_PIPELINE == "adagrad_numpy"
    with pytest.raises(ValueError, match="unknown pipeline"):
        BasketClassifier("seg-a", pipeline="nope")


def _line(invoice: str, code: str, qty: int, when: str, price: str) -> list[str]:
    return [invoice, code, "JUMBO BAG RED RETROSPOT", str(qty), when, price, "17850",
            "United Kingdom"]


def test_features_of_a_first_visit_and_of_a_returning_customer() -> None:
    customer, current = CUSTOMER_ENGINE.state(), BasketState()
    first = [_line("536365", "85099B", 10, "12/1/2010 8:26", "2.00"),
             _line("536365", "POST", 1, "12/1/2010 8:26", "18.00")]
    for n, row in enumerate(first):
        e = parse_row(row, f"f:{n}")
        customer.update(e)
        current.update(e)
    x1 = classifier_features(current.values(), customer.values(e.ts))
    # A first visit with the customer's row is the same input as one without.
    assert x1 == classifier_features(current.values(), None)
    assert x1["returning"] == 0.0 and x1["log_prior_spend"] == 0.0
    assert x1["log_value"] == round(math.log1p(38.0), 4)
    assert x1["log_value_sq"] == round(x1["log_value"] ** 2, 4)
    assert x1["log_non_product_lines"] == round(math.log1p(1), 4)
    assert x1["log_unit_value"] == round(math.log1p(38.0 / 10), 4)  # items: product units
    assert x1["log_items_per_line"] == round(math.log1p(10 / 2), 4)
    assert x1["share_bags_storage"] == x1["top_share"] == 1.0 and x1["share_entropy"] == 0.0
    assert x1["country"] == "United Kingdom"
    # On a first visit every basket feature is there twice: shared and first-visit weights.
    own = {k: v for k, v in x1.items() if k not in classifier.HISTORY_FEATURES
           and not k.startswith("first_")}
    assert {k: x1[f"first_{k}"] for k in own} == own
    assert set(x1) == set(classifier.NUMERIC_FEATURES) | set(classifier.CATEGORICAL_FEATURES)

    e = parse_row(_line("536999", "85099B", 5, "12/11/2010 9:00", "2.00"), "f:9")
    customer.update(e)
    current.update(e)
    row = customer.values(e.ts)
    x2 = classifier_features(current.values(), row)
    assert x2["returning"] == 1.0
    assert x2["log_prior_orders"] == round(math.log1p(1), 4)
    assert x2["log_prior_spend"] == round(math.log1p(38.0), 4)  # before this basket
    assert x2["log_prior_avg_basket"] == round(math.log1p(38.0), 4)
    assert x2["log_prior_orders_90d"] == round(math.log1p(1), 4)
    assert x2["log_tenure_days"] == round(math.log1p((e.ts - row["first_purchase"]) / 86400), 4)
    assert x2["log_value"] == round(math.log1p(10.0), 4)
    assert not any(k.startswith("first_") for k in x2)  # a returning customer's: no copies
    assert set(x2) == set(own) | set(classifier.HISTORY_FEATURES)
    assert all(isinstance(v, float) for k, v in x2.items() if k != "country")


def test_a_mixed_basket_has_entropy_and_its_largest_share() -> None:
    x = classifier_features({"value": 10.0, "items": 4, "lines": 2, "share_toys_games_party": 0.5,
                             "share_home_decor": 0.5}, None)
    assert x["top_share"] == 0.5 and x["share_entropy"] == round(math.log(2), 4)


@pytest.mark.parametrize("pipeline", sorted(classifier.PIPELINES))
def test_every_compared_pipeline_takes_first_visits_and_returning_customers(
        pipeline: str) -> None:
    """The River pipelines kept for the benchmark's comparison read the same features."""
    rng = random.Random(5)
    model = BasketClassifier("seg-1", pipeline=pipeline)
    history = {"lifetime_orders": 3, "lifetime_spend": 500.0, "first_purchase": 1291191960}
    for kind in rng.choices(list(KINDS), k=60):
        model.learn(classifier_features(basket(rng, kind), rng.choice([None, history])), kind)
    for customer in (None, history):
        score = model.predict(classifier_features(basket(rng, "kitchen, abroad"), customer), 1)
        assert score is not None and set(score.probabilities) == set(KINDS)


def _trained(labels_version: str = "seg-1") -> tuple[BasketClassifier, list[dict]]:
    rng = random.Random(11)
    model = BasketClassifier(labels_version=labels_version)
    xs = []
    for kind in rng.choices(list(KINDS), k=200):
        x = classifier_features(basket(rng, kind), None)
        model.learn(x, kind)
        xs.append(x)
    return model, xs


def test_a_registered_version_gives_identical_predictions(tmp_path: Path) -> None:
    model, xs = _trained()
    registry = Registry(tmp_path)
    version = registry.register(model, Lineage.of(model, "flow"), {})
    assert (version.model, version.lineage.n_learned, version.lineage.segmentation) == \
        (model.version, 200, "seg-1")
    restored = registry.load(version.id)
    assert restored.n_learned == 200 and restored.version == model.version
    for i, x in enumerate(xs):
        before, after = model.predict(x, ts=i), restored.predict(x, ts=i)
        assert before is not None and after is not None
        assert (after.category, after.model_version, after.ts) == \
            (before.category, before.model_version, before.ts)
        assert after.probabilities == before.probabilities
    restored.learn(xs[0], "seasonal, small")  # and it keeps learning
    assert restored.n_learned == 201
