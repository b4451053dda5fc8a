"""The numpy one-vs-rest AdaGrad logistic regression (models/online_linear.py)."""

from __future__ import annotations

import copy
import math
import pickle
import random

from basketflow.models.online_linear import AdaGradOneVsRest


def stream(rng: random.Random, n: int) -> list[tuple[dict[str, float | str], str]]:
    """Examples of two categories told apart by ``value`` (and noise)."""
    out = []
    for _ in range(n):
        big = rng.random() < 0.4
        value = rng.gauss(8.0 if big else 5.0, 1.0)
        out.append(({"value": value, "hour": float(rng.randint(8, 18)),
                     "country": rng.choice(["France", "Germany", "United Kingdom"])},
                    "big" if big else "small"))
    return out


def test_numbers_are_standard_scaled_so_units_do_not_matter() -> None:
    """The same stream with ``value`` in other units (x1000, +7) gives the same model."""
    examples = stream(random.Random(3), 400)
    plain, rescaled = AdaGradOneVsRest(), AdaGradOneVsRest()
    for x, y in examples:
        plain.learn_one(x, y)
        rescaled.learn_one(x | {"value": x["value"] * 1000 + 7}, y)
    for x, _ in stream(random.Random(4), 50):
        a = plain.predict_proba_one(x)
        b = rescaled.predict_proba_one(x | {"value": x["value"] * 1000 + 7})
        assert all(math.isclose(a[k], b[k], rel_tol=1e-9) for k in a)


def test_categories_and_one_hot_columns_are_added_as_they_come() -> None:
    rng = random.Random(8)
    model = AdaGradOneVsRest(learning_rate=0.3)
    assert model.predict_proba_one({"value": 1.0}) == {}
    for x, y in stream(rng, 300):
        model.learn_one(x | {"shop": f"shop-{rng.randint(0, 149)}"}, y)  # past 64 columns
    for _ in range(200):  # a category first seen late, and a new number with it
        model.learn_one({"value": rng.gauss(11.0, 0.5), "returns": 1.0, "country": "Japan"},
                        "huge")
    proba = model.predict_proba_one({"value": 11.0, "returns": 1.0, "country": "Japan"})
    assert set(proba) == {"big", "small", "huge"} and math.isclose(sum(proba.values()), 1.0)
    assert model.predict_one({"value": 11.0, "returns": 1.0, "country": "Japan"}) == "huge"
    assert model.predict_one({"value": 5.0, "country": "France"}) == "small"


def test_features_it_never_learnt_are_ignored_when_predicting() -> None:
    model = AdaGradOneVsRest()
    for x, y in stream(random.Random(5), 100):
        model.learn_one(x, y)
    known = {"value": 6.0, "hour": 9.0}
    assert model.predict_proba_one(known | {"country": "Narnia", "new": 3.0}) == \
        model.predict_proba_one(known)


def test_a_pickled_or_copied_model_predicts_the_same_and_keeps_learning() -> None:
    model = AdaGradOneVsRest()
    examples = stream(random.Random(6), 200)
    for x, y in examples:
        model.learn_one(x, y)
    for other in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert repr(other) == repr(model)
        assert [other.predict_proba_one(x) for x, _ in examples[:30]] == \
            [model.predict_proba_one(x) for x, _ in examples[:30]]
        other.learn_one(*examples[0])
        assert other.predict_proba_one(examples[1][0]) != model.predict_proba_one(
            examples[1][0])
