"""``basketflow segment`` and ``evaluate``: customer categories fitted from the feature
log, customers labelled with them, how well the models predict them. (The live score
is an online read: :func:`basketflow.app.features.live_score`.)"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from basketflow.config import Settings
from basketflow.errors import BasketflowError

if TYPE_CHECKING:
    from basketflow.reports.evaluate import Evaluation
    from basketflow.reports.segments import Segmentation

class UnwritableOutput(BasketflowError, ValueError):
    """The extra output file of the labels cannot be written (its name or format)."""


@dataclass(frozen=True)
class Assigned:
    """Customers labelled: the segmentation, how many per category, the files written."""

    version: str
    customers: int
    categories: dict[str, int]
    labels: Path
    out: Path | None

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {"version": self.version, "customers": self.customers,
                "categories": self.categories, "labels": str(self.labels),
                "out": str(self.out) if self.out else None}


def fit(settings: Settings, until: date, *, seed: int = 0, k: int | None = None,
        progress: Callable[[str], None] = lambda step: None) -> Segmentation:
    """Fit customer categories on the baskets up to ``until``, save them under
    ``<data-dir>/segments/`` and make them CURRENT; ``progress(step)`` as it goes."""
    from basketflow.reports.segments import fit_segments
    return fit_segments(settings.data_dir, until, seed=seed, k=k, progress=progress)


def assign(settings: Settings, version: str | None = None, until: date | None = None,
           out_path: Path | None = None, mkdir: bool = False) -> Assigned:
    """Label every registered customer with a category of a segmentation (None: CURRENT),
    into ``<data-dir>/segments/<version>/labels.parquet`` and ``out_path`` (.csv or
    .parquet, in a folder that exists unless ``mkdir``; :class:`UnwritableOutput` if it
    cannot be)."""
    from basketflow.app.paths import output_path
    from basketflow.reports.historical import write_frame
    from basketflow.reports.segments import (
        LABELS,
        assign_customers,
        load_segmentation,
        segments_dir,
    )
    if out_path is not None:
        output_path(out_path, mkdir)
    seg = load_segmentation(settings.data_dir, version)
    labels = assign_customers(settings.data_dir, seg.version, until)
    if out_path is not None:
        try:
            write_frame(labels, out_path)
        except ValueError as exc:
            raise UnwritableOutput(str(exc)) from exc
    counts = {name: int(n) for name, n in
              labels["category"].value_counts().reindex(seg.names, fill_value=0).items()}
    return Assigned(seg.version, len(labels), counts,
                    segments_dir(settings.data_dir) / seg.version / LABELS, out_path)


def show(settings: Settings, version: str | None = None) -> Segmentation:
    """A saved segmentation (None: CURRENT)."""
    from basketflow.reports.segments import load_segmentation
    return load_segmentation(settings.data_dir, version)


def evaluate(settings: Settings, split: date, *, seed: int = 0, k: int | None = None,
             progress: Callable[[str], None] = lambda step: None,
             on_batch: Callable[[int], None] = lambda n: None) -> Evaluation:
    """How well each model knows a customer's category from the first basket alone
    (:mod:`basketflow.reports.evaluate`); ``progress(step)`` and ``on_batch(events)`` as
    it goes."""
    from basketflow.reports.evaluate import evaluate as run_evaluation
    return run_evaluation(settings.data_dir, split, seed=seed, k=k, progress=progress,
                          on_batch=on_batch, offline_dir=settings.offline_dir)
