"""Drift: each feature's distribution on one day against a reference window, from the
offline store (``basketflow drift``, the daily report's drift section).

**Samples.** A view's feature log holds a row per entity at each change; a day's sample
is the value each entity had at the end of the day (its last row of the day, of the
view's current version) for ``customer`` and ``basket``, and every hourly tile of the day
for ``product`` (whose log keeps tiles, not features: units, revenue, lines and
cancellations per product and hour). A reference window's sample is the same over each of
its days. The predicted-category mix is every live prediction of the score log.

**Measures.** A numeric feature (``int``, ``float``) gets the population stability index
over fixed bins: the reference's deciles (equal values merged, so a discrete feature
gets fewer bins), each share floored at :data:`SHARE_FLOOR`;
``PSI = sum((day - ref) * ln(day / ref))``, 0.1 a warning, 0.25 an alert. A categorical
feature (``country``, the predicted category) gets the Jensen-Shannon distance (base 2,
0..1) of the two shares, 0.1 a warning and 0.2 an alert (our thresholds: there is no
convention). Where the day has fewer than :data:`SMALL_SAMPLE` values, binned shares are
too coarse to trust and a two-sample test decides instead: Kolmogorov-Smirnov for
numbers, Pearson's chi-square on the counts for categories (no continuity correction), a
p-value under 0.05 a warning, under 0.01 an alert. Times (``epoch_s``), ids
(``invoice``), lists (``buyers``) and the basket's ``weekday`` (one per day) are left out.

>>> psi([0.5, 0.5], [0.5, 0.5])
0.0
>>> round(js_distance({"a": 1, "b": 1}, {"a": 1}), 4)
0.5579
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from basketflow.errors import BasketflowError
from basketflow.reports.offline_query import arrow_table
from basketflow.schemas.features import FeatureView, registry
from basketflow.sinks.offline_layout import (
    ensure_whole,
    feature_log_dir,
    files_by_day,
    files_of,
    log_by_day,
    scores_dir,
)
from basketflow.sinks.offline_scan import parquet_source

#: Views whose drift is measured, and the predicted-category mix.
VIEWS = ("customer", "basket", "product")
SCORES = "scores"
#: Features left out: ids, and the weekday (a day has one, so it always "moves").
NOT_MEASURED = frozenset({"invoice", "weekday"})
NUMERIC = ("int", "float")
CATEGORICAL = ("str",)
BINS = 10
SHARE_FLOOR = 1e-4
PSI_WARN, PSI_ALERT = 0.1, 0.25
JS_WARN, JS_ALERT = 0.1, 0.2
P_WARN, P_ALERT = 0.05, 0.01
SMALL_SAMPLE = 100
REFERENCE_DAYS = 28
OK, WARN, ALERT = "ok", "warn", "alert"
SEVERITY = {ALERT: 0, WARN: 1, OK: 2}


class DriftError(BasketflowError):
    """Drift cannot be measured as asked (no data on the day or in the reference)."""


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's drift: the measure used (``psi``, ``js``, ``ks``, ``chi2``), its
    value, the test's p-value (tests only), the status and the samples' sizes."""

    view: str
    feature: str
    method: str
    score: float
    p_value: float | None
    status: str
    day_n: int
    reference_n: int


@dataclass(frozen=True)
class DriftReport:
    """The drift of every measured feature on ``day`` against ``reference`` (first and
    last day, inclusive), most severe first; ``empty`` lists what had no values."""

    day: date
    reference: tuple[date, date]
    features: list[FeatureDrift]
    empty: list[str] = field(default_factory=list)
    #: Where the reference window comes from (see :func:`choose_reference`).
    reference_from: str = "given"

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json`` and the report's JSON."""
        return {"day": self.day.isoformat(),
                "reference": [d.isoformat() for d in self.reference],
                "reference_from": self.reference_from,
                "thresholds": {"psi": [PSI_WARN, PSI_ALERT], "js": [JS_WARN, JS_ALERT],
                               "p_value": [P_WARN, P_ALERT], "small_sample": SMALL_SAMPLE},
                "features": [asdict(f) for f in self.features], "empty": self.empty}


def default_reference(day: date) -> tuple[date, date]:
    """The 28 days before ``day``.

    >>> default_reference(date(2011, 11, 15))
    (datetime.date(2011, 10, 18), datetime.date(2011, 11, 14))
    """
    return day - timedelta(days=REFERENCE_DAYS), day - timedelta(days=1)


def choose_reference(day: date, champion: tuple[int, int] | None
                     ) -> tuple[tuple[date, date], str]:
    """The default reference window of ``day`` and what it is: the last 28 days of the
    champion model's training (the days up to the event-time clock its version had
    consumed, ``champion`` = (version, clock) from
    :func:`basketflow.models.registry.champion_clock`), which are what an online model's
    weights reflect most; else, or when those days reach ``day``, the 28 days before it.

    >>> from datetime import datetime, timezone
    >>> clock = int(datetime(2011, 9, 30, 18, tzinfo=timezone.utc).timestamp())
    >>> choose_reference(date(2011, 11, 15), (4, clock))
    ((datetime.date(2011, 9, 3), datetime.date(2011, 9, 30)), 'champion version 4')
    >>> choose_reference(date(2011, 9, 30), (4, clock))[1]
    'the 28 days before'
    """
    if champion is not None:
        version, clock = champion
        last = datetime.fromtimestamp(clock, timezone.utc).date()
        if last < day:
            return (last - timedelta(days=REFERENCE_DAYS - 1), last), f"champion version {version}"
    return default_reference(day), "the 28 days before"


def quantile_edges(reference: np.ndarray, bins: int = BINS) -> np.ndarray:
    """The inner bin edges: the reference's quantiles at 1/bins .. (bins-1)/bins (linear
    interpolation), equal ones merged."""
    return np.unique(np.quantile(reference, np.arange(1, bins) / bins))


def bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The share of ``values`` in each bin ``(-inf, e0], (e0, e1], ..., (e_last, inf)``."""
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    return counts / len(values)


def psi(day: Any, reference: Any) -> float:
    """Population stability index of two share vectors, each share floored at
    :data:`SHARE_FLOOR`."""
    a = np.maximum(np.asarray(day, dtype=float), SHARE_FLOOR)
    e = np.maximum(np.asarray(reference, dtype=float), SHARE_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def js_distance(day: dict[str, int], reference: dict[str, int]) -> float:
    """Jensen-Shannon distance (base 2) of two categories' counts."""
    from scipy.spatial.distance import jensenshannon
    names = sorted(set(day) | set(reference))
    p = np.array([day.get(n, 0) for n in names], dtype=float)
    q = np.array([reference.get(n, 0) for n in names], dtype=float)
    return float(jensenshannon(p / p.sum(), q / q.sum(), base=2))


def numeric_drift(view: str, feature: str, day: np.ndarray,
                  reference: np.ndarray) -> FeatureDrift:
    """PSI on the reference's decile bins, or Kolmogorov-Smirnov for a small day."""
    if len(day) < SMALL_SAMPLE:
        from scipy.stats import ks_2samp
        test = ks_2samp(day, reference)
        return _tested(view, feature, "ks", float(test.statistic), float(test.pvalue),
                       len(day), len(reference))
    edges = quantile_edges(reference)
    value = psi(bin_shares(day, edges), bin_shares(reference, edges))
    status = ALERT if value >= PSI_ALERT else WARN if value >= PSI_WARN else OK
    return FeatureDrift(view, feature, "psi", value, None, status, len(day), len(reference))


def categorical_drift(view: str, feature: str, day: dict[str, int],
                      reference: dict[str, int]) -> FeatureDrift:
    """Jensen-Shannon distance, or chi-square on the counts for a small day."""
    day_n, ref_n = sum(day.values()), sum(reference.values())
    if day_n < SMALL_SAMPLE:
        names = sorted(set(day) | set(reference))
        if len(names) < 2:
            return FeatureDrift(view, feature, "chi2", 0.0, 1.0, OK, day_n, ref_n)
        from scipy.stats import chi2_contingency
        test = chi2_contingency([[day.get(n, 0) for n in names],
                                 [reference.get(n, 0) for n in names]], correction=False)
        return _tested(view, feature, "chi2", float(test.statistic), float(test.pvalue),
                       day_n, ref_n)
    value = js_distance(day, reference)
    status = ALERT if value >= JS_ALERT else WARN if value >= JS_WARN else OK
    return FeatureDrift(view, feature, "js", value, None, status, day_n, ref_n)


def _tested(view: str, feature: str, method: str, statistic: float, p_value: float,
            day_n: int, ref_n: int) -> FeatureDrift:
    """A drift decided by a two-sample test's p-value."""
    status = ALERT if p_value < P_ALERT else WARN if p_value < P_WARN else OK
    return FeatureDrift(view, feature, method, statistic, p_value, status, day_n, ref_n)


def measured(view: FeatureView) -> list[tuple[str, str]]:
    """``(column, dtype)`` of a view's logged columns whose drift is measured."""
    return [(f.name, f.dtype) for f in view.log_features
            if f.name not in NOT_MEASURED and f.dtype in NUMERIC + CATEGORICAL]


def view_samples(offline_dir: Path, view: FeatureView, days: list[date]) -> Any:
    """The samples of ``view`` on ``days`` (see the module docstring) as an Arrow table of
    its measured columns; None when no file holds any of those days.

    A row's day is the UTC day of its ``ts`` (its partition's day), not its folder's: a
    closed month's rows lie in one month file
    (:func:`~basketflow.sinks.offline_layout.log_by_day`), whose rows of other days are
    left out."""
    import duckdb
    files = files_of(log_by_day(feature_log_dir(offline_dir, view.name)), days)
    if not files:
        return None
    ensure_whole(files)
    unit = "entity_id, ts" if view.name == "product" else "entity_id, log_day"
    columns = ", ".join(f'"{name}"' for name, _ in measured(view))
    con = duckdb.connect()
    try:
        source = parquet_source(con, files, union_by_name=True)
        return arrow_table(con, (
            f"SELECT {columns} FROM (SELECT *, CAST(timezone('UTC', ts) AS DATE) AS log_day "
            f"FROM {source.sql}) WHERE version = $version AND list_contains($days, log_day) "
            f"QUALIFY row_number() OVER (PARTITION BY {unit} ORDER BY ts DESC, seq DESC) = 1"),
            {**source.params, "version": view.version, "days": sorted(days)})
    finally:
        con.close()


def category_counts(offline_dir: Path, days: list[date]) -> dict[str, int]:
    """How many live predictions of each category the score log holds for ``days``."""
    import duckdb
    files = files_of(files_by_day(scores_dir(offline_dir)), days)
    if not files:
        return {}
    ensure_whole(files)
    con = duckdb.connect()
    try:
        source = parquet_source(con, files, hive=True, union_by_name=True)
        rows = con.execute(f"SELECT category, count(*) FROM {source.sql} GROUP BY category",
                           source.params).fetchall()
    finally:
        con.close()
    return {str(category): int(n) for category, n in rows}


def _counts(values: list[Any]) -> dict[str, int]:
    """How many times each value occurs, nulls left out."""
    counts: dict[str, int] = {}
    for v in values:
        if v is not None:
            counts[str(v)] = counts.get(str(v), 0) + 1
    return counts


def _numbers(column: Any) -> np.ndarray:
    """A column's values as floats, nulls left out."""
    values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=float)
    return values[~np.isnan(values)]


def drift_report(offline_dir: Path, day: date, reference: tuple[date, date] | None = None,
                 champion: tuple[int, int] | None = None) -> DriftReport:
    """Every measured feature's drift on ``day`` against ``reference`` (default: the
    champion's last 28 days of training, else the 28 days before: :func:`choose_reference`).
    :class:`DriftError` when the store has no feature log on the day or none in the
    reference window."""
    if reference is None:
        reference, source = choose_reference(day, champion)
    else:
        source = "given"
    first, last = reference
    if first > last:
        raise DriftError(f"the reference window {first}:{last} ends before it starts")
    if first <= day <= last:
        raise DriftError(f"the reference window {first}:{last} holds the day {day} itself; "
                         "give one before or after it")
    ref_days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    views = registry()
    results: list[FeatureDrift] = []
    empty: list[str] = []
    found_day = found_ref = False
    for name in VIEWS:
        view = views[name]
        today, ref = view_samples(offline_dir, view, [day]), view_samples(offline_dir, view,
                                                                          ref_days)
        found_day |= today is not None and today.num_rows > 0
        found_ref |= ref is not None and ref.num_rows > 0
        for column, dtype in measured(view):
            if today is None or ref is None:
                empty.append(f"{name}:{column}")
                continue
            if dtype in NUMERIC:
                a, e = _numbers(today[column]), _numbers(ref[column])
                if len(a) and len(e):
                    results.append(numeric_drift(name, column, a, e))
                    continue
            else:
                a_counts, e_counts = _counts(today[column].to_pylist()), _counts(
                    ref[column].to_pylist())
                if a_counts and e_counts:
                    results.append(categorical_drift(name, column, a_counts, e_counts))
                    continue
            empty.append(f"{name}:{column}")
    mix_day, mix_ref = category_counts(offline_dir, [day]), category_counts(offline_dir, ref_days)
    if mix_day and mix_ref:
        results.append(categorical_drift(SCORES, "category", mix_day, mix_ref))
    else:
        empty.append(f"{SCORES}:category")
    if not found_day:
        raise DriftError(f"no feature log for {day} in {offline_dir}: run the flow or "
                         "`basketflow backfill` over that day first")
    if not found_ref:
        raise DriftError(f"no feature log in the reference window {first}:{last}; give one "
                         "with data (--reference FIRST:LAST)")
    results.sort(key=lambda f: (SEVERITY[f.status], -_rank(f)))
    return DriftReport(day, (first, last), results, empty, source)


def _rank(f: FeatureDrift) -> float:
    """How far a feature moved, comparable within its measure: the score, or for a test
    the smallness of its p-value."""
    if f.p_value is not None:
        return -math.log10(max(f.p_value, 1e-300))
    return f.score
