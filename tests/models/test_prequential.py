"""Prequential figures (models/prequential.py) against a plain-Python reference, and
ADWIN's detections of a change in the error rate."""

from __future__ import annotations

import math
import random

from basketflow.models.prequential import EPSILON, Prequential


def reference(seen: list[tuple[dict[str, float], str]], window: int,
              ) -> dict[str, dict[str, float | int | None]]:
    """Since the start and over the last ``window``: baskets, accuracy, mean log loss."""
    def figures(part: list[tuple[dict[str, float], str]]) -> dict[str, float | int | None]:
        if not part:
            return {"baskets": 0, "accuracy": None, "log_loss": None}
        right = 0
        loss = 0.0
        for probabilities, label in part:
            best = sorted(probabilities)[0]
            for name in sorted(probabilities):
                if probabilities[name] > probabilities[best]:
                    best = name
            right += best == label
            loss += -math.log(max(probabilities.get(label, 0.0), EPSILON))
        return {"baskets": len(part), "accuracy": round(right / len(part), 4),
                "log_loss": round(loss / len(part), 4)}
    return {"since_start": figures(seen), "rolling": figures(seen[-window:])}


def test_figures_equal_a_plain_python_reference_overall_and_per_category() -> None:
    rng = random.Random(11)
    categories = ["a", "b", "c", "d"]
    quality = Prequential(window=50)
    seen: list[tuple[dict[str, float], str]] = []
    for _ in range(400):
        known = rng.sample(categories, rng.randint(1, 4))  # a label it never gave: EPSILON
        weights = [rng.random() for _ in known]
        probabilities = {c: w / sum(weights) for c, w in zip(known, weights)}
        label = rng.choice(categories)
        quality.add(probabilities, label)
        seen.append((probabilities, label))
    metrics = quality.metrics()
    expected = reference(seen, 50)
    assert {k: metrics[k] for k in ("since_start", "rolling")} == expected
    for category in categories:
        mine = [(p, label) for p, label in seen if label == category]
        assert metrics["per_category"][category] == reference(mine, 50)


def test_adwin_counts_a_change_of_the_error_rate() -> None:
    quality = Prequential()
    rng = random.Random(2)
    for _ in range(2000):  # right 90% of the time
        quality.add({"a": 0.9, "b": 0.1}, "a" if rng.random() < 0.9 else "b")
    steady = quality.detections
    for _ in range(2000):  # then right 30% of the time
        quality.add({"a": 0.9, "b": 0.1}, "a" if rng.random() < 0.3 else "b")
    assert steady == 0 and quality.detections >= 1
    assert quality.metrics()["drift"] == {"detector": "ADWIN",
                                          "detections": quality.detections}
