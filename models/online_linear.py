"""One-vs-rest logistic regression learnt one example at a time by AdaGrad, over numpy.

Why not River's own: the same model built from River parts (``FuncTransformer`` one-hot
+ ``SelectType | StandardScaler`` + ``OneVsRestClassifier(LogisticRegression(AdaGrad))``)
costs several times more per ``learn_one``, over the live classifier's budget per basket.
River's ``AdaGrad`` steps each weight in a Python loop (reading its ``learning_rate``
property once per feature), once per category's regression, and the scaler walks a dict
as well. Plain SGD is cheaper but less accurate; ``SoftmaxRegression`` (one model, one
step) is no cheaper. Here the whole example is one vector and every step is a handful of
numpy operations on it (``benchmarks/classifier.py`` prints both side by side; the
figures are in docs/PERFORMANCE.md).

:class:`AdaGradOneVsRest` is a River ``base.Classifier`` (``learn_one``,
``predict_proba_one``, ``predict_one``), so it drops into River pipelines and tools. It
takes a dict of features and does the two preprocessing steps itself, because each would
cost as much again as a separate River stage:

- a **number** is standard-scaled by its running mean and variance (updated with each
  learnt example before it is used, like River's ``StandardScaler``; 0.0 while its
  variance is 0);
- a **string** value ``v`` of feature ``k`` is the one-hot feature ``k=v`` (1.0, not
  scaled), so a new country needs no declaration.

A feature absent from an example contributes nothing to it, as in River's linear models.
Each category has its own weights and intercept, learnt by AdaGrad from the log loss of
"this category or not"; a category is added (with zero weights) when first learnt.
Probabilities are the categories' sigmoids normalised to sum to 1.

>>> model = AdaGradOneVsRest(learning_rate=0.5)
>>> for _ in range(20):
...     model.learn_one({"value": 5.0, "country": "France"}, "wholesale")
...     model.learn_one({"value": 1.0, "country": "United Kingdom"}, "retail")
>>> model.predict_one({"value": 4.0, "country": "France"})
'wholesale'
>>> proba = model.predict_proba_one({"value": 1.5, "country": "United Kingdom"})
>>> sorted(proba), proba["retail"] > 0.9
(['retail', 'wholesale'], True)
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
from river import base

#: Columns are added in blocks of this many (arrays grow by doubling beyond it).
_START_COLUMNS = 64
#: Layouts kept at most (one per list of feature names; the live model has two).
_MAX_LAYOUTS = 256


@dataclass(frozen=True)
class _Layout:
    """Where the features of one list of names go in the vector: ``numbers`` picks the
    numbers from the example's values (in order), ``number_columns`` are their columns,
    ``string_positions`` the places of the string values (one-hot, looked up per
    example), ``present`` the number columns as a mask. A feature keeps its type (number
    or string) from one example to the next."""

    numbers: Callable[[list[Any]], Any]
    number_columns: np.ndarray
    string_positions: tuple[int, ...]
    present: np.ndarray


def _none(values: list[Any]) -> tuple[()]:
    """No values (``itemgetter`` needs at least one position)."""
    return ()


def _picker(positions: list[int]) -> Callable[[list[Any]], Any]:
    """The values at ``positions`` of a list; a picklable function, as the layouts are
    part of the model's registered versions."""
    return itemgetter(*positions) if positions else _none


class AdaGradOneVsRest(base.Classifier):
    """Online one-vs-rest logistic regression with AdaGrad (see the module docstring).

    ``learning_rate`` is AdaGrad's base rate (for weights and intercepts alike); ``eps``
    keeps its first steps finite.
    """

    def __init__(self, learning_rate: float = 0.05, eps: float = 1e-8) -> None:
        self.learning_rate = learning_rate
        self.eps = eps
        self.classes: list[Hashable] = []
        self._class_index: dict[Hashable, int] = {}
        self._column: dict[str, int] = {}
        #: Feature names (in an example's order) -> their layout; see :meth:`_layout`.
        self._layouts: dict[tuple[str, ...], _Layout] = {}
        self._is_number = np.zeros(_START_COLUMNS, dtype=bool)
        self._count = np.zeros(_START_COLUMNS)  # learnt examples holding each number
        self._m2 = np.zeros(_START_COLUMNS)  # their sum of squared deviations (Welford)
        #: x -> (x - shift) * inv_scale: a number's running mean and 1/deviation (0 while
        #: its variance is 0); 0 and 1 for a one-hot column.
        self._shift = np.zeros(_START_COLUMNS)
        self._inv_scale = np.ones(_START_COLUMNS)
        self._weights = np.zeros((0, _START_COLUMNS))
        self._weights_g2 = np.zeros((0, _START_COLUMNS))  # AdaGrad: squared gradients
        self._intercepts = np.zeros(0)
        self._intercepts_g2 = np.zeros(0)

    @property
    def _multiclass(self) -> bool:
        return True

    def _add_column(self, name: str, is_number: bool) -> int:
        """A column for a feature first seen now (the arrays double when full)."""
        column = len(self._column)
        size = len(self._is_number)
        if column == size:
            self._is_number = np.concatenate([self._is_number, np.zeros(size, dtype=bool)])
            for attr in ("_count", "_m2", "_shift"):
                setattr(self, attr, np.concatenate([getattr(self, attr), np.zeros(size)]))
            self._inv_scale = np.concatenate([self._inv_scale, np.ones(size)])
            for attr in ("_weights", "_weights_g2"):
                old = getattr(self, attr)
                setattr(self, attr, np.hstack([old, np.zeros((old.shape[0], size))]))
        self._is_number[column] = is_number
        self._inv_scale[column] = 0.0 if is_number else 1.0
        self._column[name] = column
        self._layouts.clear()
        return column

    def _add_class(self, label: Hashable) -> int:
        """A row of zero weights for a category first learnt now."""
        self._class_index[label] = len(self.classes)
        self.classes.append(label)
        zeros = np.zeros((1, self._weights.shape[1]))
        self._weights = np.vstack([self._weights, zeros])
        self._weights_g2 = np.vstack([self._weights_g2, zeros])
        self._intercepts = np.append(self._intercepts, 0.0)
        self._intercepts_g2 = np.append(self._intercepts_g2, 0.0)
        return self._class_index[label]

    def _layout(self, x: Mapping[str, Any], learning: bool) -> _Layout:
        """Where the features of ``x`` go, for every example with the same names in the
        same order (kept until a column is added). Features never learnt are left out when
        predicting: no weight would meet them."""
        number_positions, number_columns, string_positions = [], [], []
        for position, (name, value) in enumerate(x.items()):
            if isinstance(value, str):
                string_positions.append(position)
                continue
            column = self._column.get(name)
            if column is None:
                if not learning:
                    continue
                column = self._add_column(name, is_number=True)
            number_positions.append(position)
            number_columns.append(column)
        present = np.zeros(len(self._is_number), dtype=bool)
        present[number_columns] = True
        layout = _Layout(_picker(number_positions), np.array(number_columns, dtype=np.intp),
                         tuple(string_positions), present)
        if len(self._layouts) >= _MAX_LAYOUTS:  # examples of ever new feature sets
            self._layouts.clear()
        self._layouts[tuple(x)] = layout
        return layout

    def _vector(self, x: Mapping[str, Any], learning: bool,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The raw example as a dense vector, which columns it holds, and which of them are
        numbers."""
        names = tuple(x)
        layout = self._layouts.get(names) or self._layout(x, learning)
        values = list(x.values())
        hot_names = [f"{names[i]}={values[i]}" for i in layout.string_positions]
        hot = [self._column.get(name) for name in hot_names]
        if None in hot:
            if learning:  # new one-hot columns; the layouts start again
                for name, column in zip(hot_names, hot):
                    if column is None:
                        self._add_column(name, is_number=False)
                return self._vector(x, learning)
            hot = [column for column in hot if column is not None]
        vector = np.zeros(len(self._is_number))
        vector[layout.number_columns] = layout.numbers(values)
        vector[hot] = 1.0
        present = layout.present.copy()
        present[hot] = True
        return vector, present, layout.present

    def _learn_scaling(self, vector: np.ndarray, numbers: np.ndarray) -> None:
        """Fold the example's ``numbers`` (a mask) into their running means and variances."""
        self._count += numbers
        seen = np.maximum(self._count, 1.0)
        delta = (vector - self._shift) * numbers
        self._shift += delta / seen
        self._m2 += delta * (vector - self._shift)
        variance = self._m2 / seen
        np.divide(1.0, np.sqrt(variance), out=self._inv_scale, where=numbers & (variance > 0))

    def _scores(self, vector: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The scaled example (absent columns 0) and each category's sigmoid."""
        from scipy.special import expit  # here: scipy is slow to import, and a flow
        # that scores nothing (an empty topic, no segmentation yet) never needs it
        scaled = (vector - self._shift) * self._inv_scale * present
        return scaled, expit(self._weights @ scaled + self._intercepts)

    def learn_one(self, x: Mapping[str, Any], y: Hashable) -> None:
        """Update the scaling with ``x``, then take one AdaGrad step on every category."""
        target = self._class_index.get(y)
        if target is None:
            target = self._add_class(y)
        vector, present, numbers = self._vector(x, learning=True)
        self._learn_scaling(vector, numbers)
        scaled, gradient = self._scores(vector, present)
        gradient[target] -= 1.0
        weight_gradient = np.outer(gradient, scaled)
        self._weights_g2 += weight_gradient * weight_gradient
        self._weights -= self.learning_rate * weight_gradient / np.sqrt(
            self._weights_g2 + self.eps)
        self._intercepts_g2 += gradient * gradient
        self._intercepts -= self.learning_rate * gradient / np.sqrt(
            self._intercepts_g2 + self.eps)

    def predict_proba_one(self, x: Mapping[str, Any]) -> dict[Hashable, float]:
        """Every learnt category's probability (normalised sigmoids); {} before learning."""
        if not self.classes:
            return {}
        vector, present, _ = self._vector(x, learning=False)
        _, p = self._scores(vector, present)
        return dict(zip(self.classes, (p / p.sum()).tolist()))
