"""Customer categories: seeded KMeans over purchase profiles, saved as a versioned artifact.

Why: the business wants every registered customer in one of 8 to 12 named categories (what
they buy, how often, how much), learnt in batch from the offline store, so the live
classifier can learn to predict them from a first basket and the daily report can count
them. The same data and seed always give the same categories, names and version.

**Inputs** (:data:`INPUTS`): per customer, from :func:`basketflow.reports.profiles.customer_profiles`,
the log means of basket value, items and lines, ``ln(1 + baskets)``,
``ln(baskets per active month)`` and the spend shares of the product categories. Money and
counts are log-scaled (raw, a handful of wholesale customers would take whole categories),
then centred and scaled in blocks (:data:`SCALE_BLOCKS`), each block divided by **one**
common scale (the root mean of its inputs' variances):

- the three basket-size inputs one by one (each its own block);
- the two frequency inputs together: they measure one thing (they are strongly
  correlated), and ``ln(baskets per active month)`` is 0 for most customers (one basket
  a calendar month), so standardised alone its standard deviation would be small and two
  baskets in the *same calendar month* would move a customer far along it, a sizeable
  part of the distance between customers of two different product categories. That
  would put two-basket customers into the "frequent" category by the calendar; scaled as
  a block, frequency keeps the same total weight without that artefact (the figures are
  in docs/PERFORMANCE.md);
- the shares: they stay a composition, and a rare product category's small variance is
  not blown up into a category of its own.

**Fitting**: ``KMeans(k, n_init=10, random_state=seed)``. With ``k=None`` the number of
categories is chosen by the silhouette score (on at most 5,000 customers drawn with the
seed) among 8..12; ties go to the smaller k. Categories are ordered by size (largest
first), then by centroid.

**Names** are made from the centroid, deterministically:
``"<what>, <how often>, <how much>"``:

- what: the product categories whose share in the category is at least 0.15 and at least
  1.5 times their share among all customers, largest share first (at most two, joined by
  " + "); none: "Mixed";
- how often: the median baskets of its customers: below 1.5 "one-off", below 3
  "occasional", below 6 "regular", else "frequent";
- how much: the centroid's log basket value against the population's: below the 1/3
  quantile "low spend", below the 2/3 quantile "mid spend", below the 0.95 quantile
  "high spend", else "very high spend".

Two categories with the same name get "small baskets"/"large baskets" (by log lines against
the population median) and then a number, so names are unique.

**Artifact**: ``<data_dir>/segments/<version>/segmentation.json`` (plain JSON: inputs,
scaling, centroids, names, profiles, metadata; never a pickle), ``meta.json`` beside it with
the file's sha256 (checked on every load), ``labels.parquet`` written by
:func:`assign_customers`, and ``<data_dir>/segments/CURRENT`` naming the latest fit.
``version`` is the first 12 hex digits of the sha256 of the fitted content (everything but
``fitted_at``), so refitting the same data with the same seed gives the same version.

>>> inputs = pd.DataFrame({"baskets": [1, 9], "baskets_per_active_month": [1.0, 1.5],
...                        "log_basket_value_mean": [5.0, 7.0], "log_items_mean": [4.0, 6.0],
...                        "log_lines_mean": [2.0, 3.0],
...                        **{s: [0.5, 0.0] for s in SHARE_COLUMNS[:2]},
...                        **{s: [0.0, 0.1] for s in SHARE_COLUMNS[2:]}},
...                       index=pd.Index(["1", "2"], name="customer_id"))
>>> input_matrix(inputs).shape == (2, len(INPUTS))
True
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from basketflow.reports.profiles import (
    DECIMALS,
    SHARE_COLUMNS,
    ProfileError,
    check_until,
    customer_profiles,
)
from basketflow.reports.segment_files import (  # re-exported: callers import them here
    ARTIFACT,
    CURRENT,
    LABELS,
    META,
    SEGMENTS_DIR,
    Segmentation,
    SegmentationError,
    available_versions,
    content_version,
    current_version,
    load_labels,
    load_segmentation,
    scoring_config,
    segments_dir,
)
from basketflow.schemas.features import versions
from basketflow.schemas.taxonomy import load_taxonomy

if TYPE_CHECKING:  # scikit-learn is imported where a fit needs it: loading a saved
    # segmentation (segment show, report, run) must not pay its second of start-up
    from sklearn.cluster import KMeans


K_RANGE = range(8, 13)
#: Customers per category a fit needs at least (fewer: categories of noise).
MIN_PER_CATEGORY = 5
SILHOUETTE_SAMPLE = 5000
#: The numeric inputs and how each is made from a profile column; the shares follow.
NUMERIC_INPUTS: tuple[tuple[str, str], ...] = (
    ("log_basket_value_mean", "identity"), ("log_items_mean", "identity"),
    ("log_lines_mean", "identity"), ("baskets", "log1p"),
    ("baskets_per_active_month", "log"))
TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": np.asarray, "log1p": np.log1p, "log": np.log}
INPUTS: tuple[str, ...] = tuple(c for c, _ in NUMERIC_INPUTS) + SHARE_COLUMNS
#: Inputs scaled together by one common scale (see the module docstring); every other
#: numeric input is a block of its own.
SCALE_BLOCKS: tuple[tuple[str, ...], ...] = (
    ("baskets", "baskets_per_active_month"), SHARE_COLUMNS)
#: What a name says: a product category stands out at this share and this lift.
MIN_SHARE, MIN_LIFT = 0.15, 1.5
FREQUENCY_WORDS = ((1.5, "one-off"), (3.0, "occasional"), (6.0, "regular"),
                   (math.inf, "frequent"))
SPEND_WORDS = ((1 / 3, "low spend"), (2 / 3, "mid spend"), (0.95, "high spend"),
               (1.0, "very high spend"))


#: ``progress(step)``: told what a long call is doing.
Progress = Callable[[str], None]


def _quiet(step: str) -> None:
    """The default progress: say nothing."""


def input_matrix(profiles: pd.DataFrame) -> np.ndarray:
    """The clustering inputs of profiles, before scaling (rows in the frame's order).

    Raises SegmentationError naming missing columns or null values.
    """
    missing = [c for c in INPUTS if c not in profiles.columns]
    if missing:
        raise SegmentationError(f"profiles lack column(s) {', '.join(missing)}: build them "
                                "with basketflow.reports.profiles.customer_profiles")
    columns = [TRANSFORMS[transform](profiles[column].to_numpy(dtype=float))
               for column, transform in NUMERIC_INPUTS]
    matrix = np.column_stack([*columns, profiles[list(SHARE_COLUMNS)].to_numpy(dtype=float)])
    bad = ~np.isfinite(matrix).all(axis=0)
    if bad.any():
        raise SegmentationError("profiles hold null or infinite inputs in "
                                + ", ".join(np.asarray(INPUTS)[bad]))
    return matrix


def fit_scaling(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre per input and scale per block of :data:`SCALE_BLOCKS` (one common scale, the
    root mean of the block's variances; an input in no block is its own).

    >>> matrix = np.zeros((4, len(INPUTS)))
    >>> matrix[:, INPUTS.index("baskets")] = [0.0, 0.0, 2.0, 2.0]  # variance 1
    >>> matrix[:, INPUTS.index("baskets_per_active_month")] = [0.0, 0.0, 0.0, 0.0]
    >>> center, scale = fit_scaling(matrix)
    >>> frequency = scale[[INPUTS.index("baskets"), INPUTS.index("baskets_per_active_month")]]
    >>> frequency.tolist() == [math.sqrt(0.5)] * 2
    True
    """
    center = matrix.mean(axis=0)
    scale = matrix.std(axis=0)
    for block in SCALE_BLOCKS:
        columns = [INPUTS.index(name) for name in block]
        scale[columns] = math.sqrt(float(np.mean(matrix[:, columns].var(axis=0))))
    scale[scale == 0] = 1.0
    return center, scale


def _quantile_word(value: float, population: np.ndarray,
                   words: tuple[tuple[float, str], ...]) -> str:
    """The word of the first quantile bound of ``population`` that ``value`` is below
    (a bound of 1 takes everything left)."""
    return next(word for q, word in words
                if q >= 1 or value < float(np.quantile(population, q)))


def _threshold_word(value: float, words: tuple[tuple[float, str], ...]) -> str:
    """The word of the first bound that ``value`` is below."""
    return next(word for bound, word in words if value < bound)


def _kmeans(scaled: np.ndarray, k: int, seed: int) -> KMeans:
    """The seeded KMeans fit every caller uses."""
    from sklearn.cluster import KMeans
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit(scaled)


def choose_k(scaled: np.ndarray, seed: int, progress: Progress = _quiet
             ) -> tuple[KMeans, dict[str, float]]:
    """The fit of the k in :data:`K_RANGE` with the best silhouette (ties: smaller k)."""
    from sklearn.metrics import silhouette_score
    sample = min(len(scaled), SILHOUETTE_SAMPLE)
    scores: dict[str, float] = {}
    best: KMeans | None = None
    for k in K_RANGE:
        model = _kmeans(scaled, k, seed)
        score = float(silhouette_score(scaled, model.labels_, sample_size=sample,
                                       random_state=seed))
        scores[str(k)] = round(score, 6)
        progress(f"k={k}: silhouette {score:.3f}")
        if best is None or score > scores[str(best.n_clusters)]:
            best = model
    assert best is not None
    return best, scores


def _order(labels: np.ndarray, centroids: np.ndarray) -> list[int]:
    """Cluster ids largest first, then by centroid coordinates (a total, stable order)."""
    sizes = np.bincount(labels, minlength=len(centroids))
    return sorted(range(len(centroids)), key=lambda c: (-sizes[c], *np.round(centroids[c], 9)))


def category_profile(members: pd.DataFrame, total: int, everyone: pd.DataFrame
                     ) -> dict[str, Any]:
    """What one category's customers are like: size, how often, how much, what they buy."""
    shares = members[list(SHARE_COLUMNS)].mean()
    overall = everyone[list(SHARE_COLUMNS)].mean()
    labels = {c.name: c.label for c in load_taxonomy().categories}
    top = shares.sort_values(ascending=False, kind="stable").head(3)
    return {
        "customers": len(members),
        "share_of_customers": round(len(members) / total, 4),
        "baskets_median": float(members["baskets"].median()),
        "baskets_mean": round(float(members["baskets"].mean()), 3),
        "baskets_per_active_month_mean":
            round(float(members["baskets_per_active_month"].mean()), 3),
        "days_between_baskets_median": _rounded(members["days_between_baskets"].median()),
        "basket_value_median": round(float(members["basket_value_median"].median()), 2),
        "items_per_basket_median": round(float(members["items_mean"].median()), 1),
        "lines_per_basket_median": round(float(members["lines_mean"].median()), 1),
        "lifetime_spend_median": round(float(members["lifetime_spend"].median()), 2),
        "top_categories": [
            {"category": s.removeprefix("share_"), "label": labels[s.removeprefix("share_")],
             "share": round(float(v), 4), "lift": round(float(v / overall[s]), 3)
             if overall[s] > 0 else None} for s, v in top.items()],
        "shares": {s.removeprefix("share_"): round(float(v), 4) for s, v in shares.items()},
    }


def _rounded(value: float) -> float | None:
    """A float rounded for the artifact; NaN (no customer with two baskets) as null."""
    return None if pd.isna(value) else round(float(value), 2)


def category_name(centroid: np.ndarray, baskets_median: float, center: np.ndarray,
                  scale: np.ndarray, everyone: np.ndarray) -> tuple[str, str]:
    """The name of a category from its centroid and its customers' median baskets, and
    its basket-size word for ties.

    ``everyone`` is the unscaled input matrix of all customers (for the shares' lift and the
    spend quantiles); see the module docstring for the rule.
    """
    raw = centroid * scale + center
    position = {name: i for i, name in enumerate(INPUTS)}
    n = len(NUMERIC_INPUTS)
    labels = {c.name: c.label for c in load_taxonomy().categories}
    population = everyone[:, n:].mean(axis=0)
    standing = sorted(((raw[n + i], s) for i, s in enumerate(SHARE_COLUMNS)
                       if raw[n + i] >= MIN_SHARE and population[i] > 0
                       and raw[n + i] >= MIN_LIFT * population[i]), reverse=True)
    what = " + ".join(labels[s.removeprefix("share_")] for _, s in standing[:2]) or "Mixed"
    often = _threshold_word(baskets_median, FREQUENCY_WORDS)
    value = position["log_basket_value_mean"]
    much = _quantile_word(raw[value], everyone[:, value], SPEND_WORDS)
    lines = position["log_lines_mean"]
    size = ("large baskets" if raw[lines] >= float(np.median(everyone[:, lines]))
            else "small baskets")
    return f"{what}, {often}, {much}", size


def unique_names(names: list[tuple[str, str]]) -> list[str]:
    """Names made unique: a clash gets its basket-size word, then a number.

    >>> unique_names([("A", "small baskets"), ("A", "large baskets"), ("B", "small baskets")])
    ['A, small baskets', 'A, large baskets', 'B']
    >>> unique_names([("A", "small baskets"), ("A", "small baskets")])
    ['A, small baskets 1', 'A, small baskets 2']
    """
    bases = [base for base, _ in names]
    named = [f"{base}, {size}" if bases.count(base) > 1 else base for base, size in names]
    counts: dict[str, int] = {}
    out = []
    for name in named:
        if named.count(name) > 1:
            counts[name] = counts.get(name, 0) + 1
            name = f"{name} {counts[name]}"
        out.append(name)
    return out


def _stored(values: np.ndarray) -> list[Any]:
    """Numbers as stored in the artifact and used by :meth:`Segmentation.assign`: rounded
    to :data:`basketflow.reports.profiles.DECIMALS` decimals, so the last bits of parallel arithmetic
    never change a version."""
    return np.round(values, DECIMALS).tolist()


def fit(profiles: pd.DataFrame, until: date, *, seed: int = 0, k: int | None = None,
        progress: Progress = _quiet) -> Segmentation:
    """Fit categories on profiles (not saved): see the module docstring.

    ``progress`` is told each step (one line of text), for a long fit's spinner.
    """
    if k is not None and k not in K_RANGE:
        raise SegmentationError(f"k={k}: the issue asks for {K_RANGE.start} to "
                                f"{K_RANGE.stop - 1} categories")
    needed = MIN_PER_CATEGORY * (k or K_RANGE.stop - 1)
    if len(profiles) < needed:
        raise SegmentationError(f"only {len(profiles)} registered customers have baskets on "
                                f"or before {until}; fitting needs at least {needed}: give a "
                                "later --until or backfill more data")
    matrix = input_matrix(profiles)
    center, scale = fit_scaling(matrix)
    scaled = (matrix - center) / scale
    if k is None:
        model, scores = choose_k(scaled, seed, progress)
    else:
        progress(f"KMeans k={k} on {len(profiles):,} customers")
        model, scores = _kmeans(scaled, k, seed), {}
    order = _order(model.labels_, model.cluster_centers_)
    centroids = model.cluster_centers_[order]
    relabel = np.empty(len(order), dtype=int)
    relabel[order] = np.arange(len(order))
    labels = relabel[model.labels_]
    profiled = [category_profile(profiles[labels == i], len(profiles), profiles)
                for i in range(len(order))]
    names = unique_names([category_name(c, p["baskets_median"], center, scale, matrix)
                          for c, p in zip(centroids, profiled)])
    seg = Segmentation(
        version="", names=names, seed=seed, k=len(order),
        fitted_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        until=until.isoformat(),
        data_range=[profiles["first_basket"].min().date().isoformat(),
                    profiles["last_basket"].max().date().isoformat()],
        feature_versions=versions(), taxonomy_version=load_taxonomy().version,
        customers=len(profiles), sizes=[p["customers"] for p in profiled],
        profiles=profiled, inputs=list(INPUTS), center=_stored(center),
        scale=_stored(scale), centroids=_stored(centroids), silhouette=scores)
    seg.version = content_version(seg.content())
    return seg


# ------------------------------------------------------------------ the artifact


def _write_atomically(path: Path, data: bytes) -> None:
    """Write a file under a hidden temporary name, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save(seg: Segmentation, data_dir: Path) -> Path:
    """Write the artifact and its checksum, then point CURRENT at it; return its directory."""
    directory = segments_dir(data_dir) / seg.version
    body = json.dumps(asdict(seg), indent=2, sort_keys=True).encode()
    _write_atomically(directory / ARTIFACT, body)
    meta = {"version": seg.version, "file": ARTIFACT, "fitted_at": seg.fitted_at,
            "sha256": hashlib.sha256(body).hexdigest()}
    _write_atomically(directory / META, json.dumps(meta, indent=2).encode())
    _write_atomically(segments_dir(data_dir) / CURRENT, f"{seg.version}\n".encode())
    return directory


def fit_segments(data_dir: Path, until: date, *, seed: int = 0, k: int | None = None,
                 progress: Progress = _quiet) -> Segmentation:
    """Profile the customers up to ``until`` (inclusive), fit, save, set CURRENT.

    ``progress`` is told each step (see :func:`fit`).
    """
    offline_dir = Path(data_dir) / "offline"
    try:
        check_until(offline_dir, until)
    except ProfileError as exc:
        raise SegmentationError(str(exc)) from exc
    progress(f"profiling customers up to {until}")
    seg = fit(customer_profiles(offline_dir, until), until, seed=seed, k=k, progress=progress)
    save(seg, data_dir)
    return seg


def assign_customers(data_dir: Path, version: str | None = None, until: date | None = None
                     ) -> pd.DataFrame:
    """Label every registered customer with baskets up to ``until`` (None: all) with a
    category of a saved segmentation; columns customer_id, category, also written to
    ``<data_dir>/segments/<version>/labels.parquet``."""
    seg = load_segmentation(data_dir, version)
    offline_dir = Path(data_dir) / "offline"
    try:
        check_until(offline_dir, until)
    except ProfileError as exc:
        raise SegmentationError(str(exc)) from exc
    labels = seg.assign(customer_profiles(offline_dir, until))
    frame = pd.DataFrame({"customer_id": labels.index.astype(str),
                          "category": labels.to_numpy(dtype=object)})
    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(
        {"segmentation": seg.version, "until": str(until or "")})
    path = segments_dir(data_dir) / seg.version / LABELS
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return frame


