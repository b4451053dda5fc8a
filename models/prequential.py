"""How well the live model does, measured as it learns: prequential (test, then train).

Before the live classifier learns from a closed basket, it predicts that basket; the
prediction is scored against the label the model is about to learn, so every figure is of
a basket the model had not seen yet. :class:`Prequential` keeps, since the start and over
the last ``window`` baskets, overall and per true category: the baskets, the accuracy
(the top category was right) and the log loss (minus the log of the probability given to
the true category, at least :data:`EPSILON`). An ADWIN detector (River) watches the 0/1
error: a detection means the error rate changed, the model drifted (or the customers did);
each is logged and counted. The figures are recorded in each registry version's metrics
(:mod:`basketflow.models.registry`).

>>> p = Prequential(window=2)
>>> p.add({"a": 0.8, "b": 0.2}, "a")
>>> p.add({"a": 0.5, "b": 0.5}, "b")
>>> p.add({"a": 0.1, "b": 0.9}, "a")
>>> m = p.metrics()
>>> m["since_start"]["baskets"], m["since_start"]["accuracy"], m["rolling"]["baskets"]
(3, 0.3333, 2)
>>> m["per_category"]["a"]["since_start"]
{'baskets': 2, 'accuracy': 0.5, 'log_loss': 1.2629}
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

# River's drift package loads its datasets and scikit-learn: imported where a detector is
# made, so a command that only names this module (`segment show`) starts quickly.
if TYPE_CHECKING:
    from river.drift import ADWIN

log = logging.getLogger("basketflow.prequential")

#: The smallest probability a log loss is taken of (a category the model never gave any).
EPSILON = 1e-15
#: Baskets in the rolling window.
DEFAULT_WINDOW = 1000


@dataclass
class _Tally:
    """Baskets, right answers and summed log loss, since the start and over a window."""

    window: int
    baskets: int = 0
    right: int = 0
    loss: float = 0.0
    recent: deque[tuple[int, float]] = field(default_factory=deque)
    recent_right: int = 0
    recent_loss: float = 0.0

    def add(self, right: int, loss: float) -> None:
        """Count one scored basket."""
        self.baskets += 1
        self.right += right
        self.loss += loss
        self.recent.append((right, loss))
        self.recent_right += right
        self.recent_loss += loss
        if len(self.recent) > self.window:
            old_right, old_loss = self.recent.popleft()
            self.recent_right -= old_right
            self.recent_loss -= old_loss

    def figures(self) -> dict[str, dict[str, float | int | None]]:
        """Since the start and rolling: baskets, accuracy, log loss (None without any).
        The rolling sums are recomputed from the window, so they carry no drift of
        floating-point subtraction."""
        recent_loss = math.fsum(loss for _, loss in self.recent)
        return {"since_start": _figures(self.baskets, self.right, self.loss),
                "rolling": _figures(len(self.recent), self.recent_right, recent_loss)}


def _figures(n: int, right: int, loss: float) -> dict[str, float | int | None]:
    return {"baskets": n, "accuracy": round(right / n, 4) if n else None,
            "log_loss": round(loss / n, 4) if n else None}


class Prequential:
    """The prequential figures of one model's learning, and its drift detector."""

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        from river.drift import ADWIN

        self.window = window
        self.overall = _Tally(window)
        self.categories: dict[str, _Tally] = {}
        self.drift: ADWIN = ADWIN()
        self.detections = 0

    def add(self, probabilities: Mapping[str, float], label: str) -> None:
        """Score one prediction (``probabilities`` over the categories) against ``label``."""
        top = max(sorted(probabilities), key=probabilities.__getitem__) if probabilities \
            else None
        right = int(top == label)
        loss = -math.log(max(probabilities.get(label, 0.0), EPSILON))
        self.overall.add(right, loss)
        self.categories.setdefault(label, _Tally(self.window)).add(right, loss)
        self.drift.update(1 - right)
        if self.drift.drift_detected:
            self.detections += 1
            log.warning("model drift: the prequential error rate changed (ADWIN) after "
                        "%d baskets; now %.3f", self.overall.baskets, self.drift.estimation)

    def metrics(self) -> dict[str, Any]:
        """Every figure as plain data (what a registry version records)."""
        return {**self.overall.figures(), "window": self.window,
                "drift": {"detector": "ADWIN", "detections": self.detections},
                "per_category": {name: self.categories[name].figures()
                                 for name in sorted(self.categories)}}
