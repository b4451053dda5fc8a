"""``basketflow predict``: batch predictions from the offline store, each row scored by
the model live at its time (:mod:`basketflow.reports.predictions`), written to Parquet."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from basketflow.config import Settings
from basketflow.errors import BasketflowError


class BadPredictInput(BasketflowError, ValueError):
    """The entity file, the day or the time cannot be used; the message says why."""


@dataclass(frozen=True)
class PredictionsWritten:
    """Predictions written: rows, those without a basket or a model, the model versions
    used, the file, and the speed."""

    rows: int
    no_basket: int
    no_model: int
    models: list[str]
    out: Path
    seconds: float

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {"rows": self.rows, "predicted": self.rows - self.no_basket - self.no_model,
                "no_basket": self.no_basket, "no_model": self.no_model,
                "model_versions": self.models, "out": str(self.out),
                "seconds": round(self.seconds, 3), "rows_per_second": self.rows_per_second}

    @property
    def rows_per_second(self) -> float:
        """Rows predicted per second of wall time, features included."""
        return round(self.rows / self.seconds, 1) if self.seconds else 0.0


def predict(settings: Settings, out_path: Path, *, entities: Path | None = None,
            day: date | None = None, at: str | None = None, model: str | None = None,
            mkdir: bool = False, on_start: Callable[[int], None] = lambda total: None,
            on_rows: Callable[[int], None] = lambda n: None) -> PredictionsWritten:
    """Predict for an entity file's rows (or every customer of ``day``) at their times
    (or ``at``), with the model live then (or the version ``model``), into ``out_path``
    (.parquet, in a folder that exists unless ``mkdir``)."""
    from basketflow.app.paths import input_file, output_path
    from basketflow.reports.predictions import (
        choose_models,
        entity_rows,
        parse_at,
        predict_rows,
        saved_models,
    )
    if out_path.suffix.lower() != ".parquet":
        raise BadPredictInput(f"--out {out_path}: predictions are written as Parquet; give "
                              "a .parquet file")
    output_path(out_path, mkdir)
    if entities is not None:
        input_file(entities, "a CSV or Parquet file with a customer_id column")
    start = time.perf_counter()
    try:
        moment = parse_at(at) if at is not None else None
        ids, times = entity_rows(settings.offline_dir, entities, day, moment)
    except ValueError as exc:
        raise BadPredictInput(str(exc)) from exc
    from basketflow.models.registry import Registry, registry_dir
    registry = Registry(registry_dir(settings.data_dir))
    try:
        history = saved_models(registry)
        chosen = choose_models(history, times, model)
        on_start(len(ids))
        predicted = predict_rows(settings.offline_dir, registry, history, ids, times,
                                 chosen, on_rows)
    finally:
        registry.close()
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    predicted.frame.to_parquet(tmp, index=False)
    tmp.replace(out_path)
    versions = sorted(predicted.frame["model_version"].dropna().unique().tolist())
    return PredictionsWritten(len(predicted.frame), predicted.no_basket, predicted.no_model,
                              versions, out_path, time.perf_counter() - start)
