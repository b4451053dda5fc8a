"""The MLflow ``pyfunc`` form of a registered classifier version
(:mod:`basketflow.models.mlflow_export` writes it): MLflow loads it with
``mlflow.pyfunc.load_model`` and calls :meth:`BasketPyfunc.predict` on a DataFrame of
basket features. Needs the optional extra ``mlflow``.
"""

from __future__ import annotations

import hashlib
import math
import pickle
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

from basketflow.models.classifier import BasketClassifier


class BasketPyfunc(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """A registry version's classifier, loaded only when its artifact's sha256 is the
    one recorded at export (``model_config["sha256"]``)."""

    def load_context(self, context: Any) -> None:
        path = Path(context.artifacts["classifier"])
        data = path.read_bytes()
        want = (context.model_config or {}).get("sha256")
        if hashlib.sha256(data).hexdigest() != want:
            raise ValueError(f"the classifier artifact {path} does not match the sha256 "
                             "recorded at export: refused, nothing of it was loaded")
        model = pickle.loads(data)
        if not isinstance(model, BasketClassifier):
            raise ValueError(f"the artifact {path} does not hold a basket classifier")
        self.classifier = model

    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        """One row per basket: ``category`` and ``p_<category>`` per category."""
        rows = []
        for record in model_input.to_dict(orient="records"):
            x = {k: v for k, v in record.items() if not _missing(v)}
            score = self.classifier.predict(x, 0)
            row: dict[str, Any] = {"category": score.category if score else None}
            if score is not None:
                row.update({f"p_{c}": p for c, p in sorted(score.probabilities.items())})
            rows.append(row)
        return pd.DataFrame(rows)


def _missing(value: Any) -> bool:
    """A DataFrame's empty cell (None or NaN)."""
    return value is None or (isinstance(value, float) and math.isnan(value))
