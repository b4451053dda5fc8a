"""Customer categories seen by the daily report: labels, first-basket predictions, moves.

Why a module of its own: the daily report (:mod:`basketflow.reports.daily`) counts customers per
category, checks the live classifier's first-basket predictions against the labels, and
counts customers whose category changed; all three read the *current* segmentation
(``<data>/segments/CURRENT``, :mod:`basketflow.reports.segments`) and nothing else decides what a
customer's category is. This module says, in one place:

- **category of a customer**: their label in the current segmentation's
  ``labels.parquet`` (``basketflow segment assign``); a registered customer without one
  is :data:`UNLABELLED`; guests have none (they are not in the section);
- **prediction for a new customer**: the live score at the end of their first basket:
  of the score log rows (``<offline>/scores/``, one per basket update scored) of the
  customer's first invoice, the one with the greatest ``(ts, seq)``;
- **a move**: a customer active on a day whose category assigned
  (:meth:`basketflow.reports.segments.Segmentation.assign`) from their profile up to the previous
  trading day differs from the one assigned from their profile up to that day; customers
  without a profile before the day (new ones) are not compared.

>>> unavailable("no segmentation")["available"]
False
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from basketflow.reports.profiles import profiles_at
from basketflow.reports.segments import (
    Segmentation,
    SegmentationError,
    load_labels,
    load_segmentation,
)

UNLABELLED = "unlabelled"
TOP_TRANSITIONS = 10
HOW_TO_SEGMENT = ("run `basketflow segment fit --until DATE` then `basketflow segment "
                  "assign` to make the customer categories and their labels")


def unavailable(message: str) -> dict[str, Any]:
    """The customer-category section when it cannot be computed, saying why."""
    return {"available": False, "message": message}


@dataclass
class CurrentCategories:
    """The current segmentation and its labels, or why there are none (``missing``)."""

    segmentation: Segmentation | None
    labels: dict[str, str]
    missing: str | None = None

    @property
    def names(self) -> list[str]:
        """Every category name of the segmentation, then :data:`UNLABELLED`."""
        return [*(self.segmentation.names if self.segmentation else []), UNLABELLED]

    def assigned(self, offline_dir: Path, untils: Sequence[date],
                 customers: Collection[str]) -> dict[date, pd.Series]:
        """Each of ``customers``' category from their profile up to each day of ``untils``
        (customers without a basket by then are left out); the feature log is read once.

        Raises ProfileError when the offline store has no basket feature log.
        """
        assert self.segmentation is not None
        profiles = profiles_at(offline_dir, untils, customers)
        return {until: self.segmentation.assign(profiles[until]) for until in untils}


def load_current(data_dir: Path) -> CurrentCategories:
    """The current segmentation and labels of a data directory, never an error: when
    either is missing, ``missing`` says what to run instead."""
    try:
        segmentation = load_segmentation(data_dir)
    except SegmentationError:  # the report's reader needs what to do, not which folder
        return CurrentCategories(None, {}, "No customer categories yet. To add this "
                                           f"section, {HOW_TO_SEGMENT}.")
    try:
        labels = load_labels(data_dir, segmentation.version)
    except SegmentationError:
        return CurrentCategories(segmentation, {}, "Customer categories are fitted but no "
                                 "customer has one yet: run `basketflow segment assign`.")
    return CurrentCategories(segmentation, labels)


def moves(active: Collection[str], old: pd.Series, new: pd.Series) -> dict[str, Any]:
    """Moves of the ``active`` customers from their categories ``old`` (assigned from
    profiles up to the previous trading day) to ``new`` (up to the day).

    Returns ``compared`` (active customers in both), ``moved`` and the ``transitions``
    (from, to, count), most frequent first, ties by names.

    >>> old = pd.Series({"1": "A", "2": "A", "3": "B"})
    >>> result = moves({"1", "2", "3", "4"}, old,
    ...                pd.Series({"1": "B", "2": "A", "3": "A", "4": "A"}))
    >>> result["compared"], result["moved"]
    (3, 2)
    >>> [(t["from"], t["to"], t["count"]) for t in result["transitions"]]
    [('A', 'B', 1), ('B', 'A', 1)]
    """
    compared = sorted(c for c in active if c in old.index and c in new.index)
    changes = Counter((old[c], new[c]) for c in compared if old[c] != new[c])
    ranked = sorted(changes.items(), key=lambda item: (-item[1], item[0]))
    return {"compared": len(compared), "moved": sum(changes.values()),
            "transitions": [{"from": a, "to": b, "count": n} for (a, b), n in ranked]}

