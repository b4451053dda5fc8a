"""What the hand-written ``CustomerState`` and ``ProductState`` (kept as the references
the generic engine must equal) sum their hourly tiles with, as they did in the package."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from basketflow.features.feature_state import HOUR


def _cutoffs(as_of: int, days: tuple[int, ...]) -> list[int]:
    """The first hour tile inside each window ending at ``as_of``."""
    hour = as_of // HOUR + 1
    return [hour - d * 24 for d in days]


def _nested_sums(tiles: Iterable[tuple[int, Sequence[float]]], cuts: list[int],
                 last_hour: int, width: int) -> list[list[Any]]:
    """Each window's sums of the tiles' ``width`` fields up to ``last_hour``, for windows
    that nest, shortest first (``cuts``, their first hours, fall as :func:`_cutoffs`
    gives them): a tile is added once, to the shortest window it is in, and the sums are
    then carried out to the longer ones.

    >>> _nested_sums([(9, [1, 2]), (5, [10, 20]), (12, [99, 99])], [9, 4], 10, 2)
    [[1, 2], [11, 22]]
    """
    n = len(cuts)
    inner = [[0] * width for _ in range(n)]
    longest = cuts[-1]
    for hour, tile in tiles:
        if hour > last_hour or hour < longest:
            continue
        w = 0
        while hour < cuts[w]:
            w += 1
        bucket = inner[w]
        for k in range(width):
            bucket[k] += tile[k]
    for w in range(1, n):  # a shorter window's tiles are in every longer one
        outer, shorter = inner[w], inner[w - 1]
        for k in range(width):
            outer[k] += shorter[k]
    return inner
