"""Customer categories on the real file: time to profile, fit and assign; sizes and names.

Builds the feature log of the real extract with the backfill into a temporary directory
(or times an existing one given by ``--offline DIR``), then times
:func:`basketflow.reports.profiles.customer_profiles` up to ``--until``, the fit (``--k``, default
chosen by silhouette within 8..12) and :meth:`Segmentation.assign` over every customer's
whole history, and prints the categories with their sizes.

    PYTHONPATH=. python benchmarks/segments.py [--offline DIR] [--until 2011-06-30] [--k N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TypeVar

import duckdb

from basketflow.flows.backfill import file_events, run_backfill
from basketflow.flows.live import FeatureOutputs, RunOptions
from basketflow.reports.profiles import customer_profiles
from basketflow.reports.segments import fit, save
from basketflow.sinks.offline_layout import feature_log_files
from benchmarks.machine import REAL_DATA, describe

T = TypeVar("T")


def build_log(offline: Path) -> float:
    """Backfill the real file into ``offline``; return the seconds it took."""
    if not REAL_DATA.is_file():
        sys.exit(f"real data not found at {REAL_DATA}; give --offline DIR")
    start = time.perf_counter()
    run_backfill(file_events(REAL_DATA, [0]), FeatureOutputs(None, "bench", offline),
                 RunOptions(snapshot_seconds=3600))
    return time.perf_counter() - start


def log_rows(offline: Path) -> dict[str, int]:
    """Rows of the customer and basket feature logs."""
    with duckdb.connect() as con:
        return {view: con.execute("SELECT count(*) FROM read_parquet($1)",
                                  [[str(p) for p in feature_log_files(offline, view)]]
                                  ).fetchone()[0]
                for view in ("customer", "basket")}


def timed(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    """Best wall seconds of ``repeat`` (>= 1) calls, and the last result."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--offline", type=Path, help="an existing offline store to time")
    parser.add_argument("--until", type=date.fromisoformat, default=date(2011, 6, 30))
    parser.add_argument("--k", type=int, default=None, help="categories [default: silhouette]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, choices=range(1, 100), metavar="N", help="timed runs of profiles/assign")
    args = parser.parse_args()
    print(f"machine: {describe()}")
    with tempfile.TemporaryDirectory() as tmp:
        offline = args.offline or Path(tmp) / "offline"
        if args.offline is None:
            print(f"backfill of {REAL_DATA.name}: {build_log(offline):.1f} s")
        rows = log_rows(offline)
        print(f"feature log {offline}: {rows['basket']:,} basket rows, "
              f"{rows['customer']:,} customer rows")
        t_profiles, profiles = timed(lambda: customer_profiles(offline, args.until), args.repeat)
        print(f"profiles up to {args.until}: {len(profiles):,} customers in "
              f"{t_profiles:.2f} s (best of {args.repeat})")
        start = time.perf_counter()
        seg = fit(profiles, args.until, seed=args.seed, k=args.k)
        t_fit = time.perf_counter() - start
        how = f"silhouette {seg.silhouette}" if seg.silhouette else f"k={args.k}"
        print(f"fit: {seg.k} categories ({how}) in {t_fit:.2f} s, version {seg.version}")
        save(seg, Path(tmp) / "data")
        t_all, everyone = timed(lambda: customer_profiles(offline), args.repeat)
        t_assign, labels = timed(lambda: seg.assign(everyone), args.repeat)
        print(f"assign: profiles of all {len(everyone):,} customers {t_all:.2f} s + nearest "
              f"centroid {t_assign * 1000:.1f} ms (best of {args.repeat})")
    counts = labels.value_counts()
    print(f"{'fitted':>7} {'share':>6} {'all':>7}  category")
    for name, size in zip(seg.names, seg.sizes):
        print(f"{size:7,} {size / seg.customers:6.1%} {counts.get(name, 0):7,}  {name}")
    smallest = min(seg.sizes) / seg.customers
    print(f"smallest category: {smallest:.1%} of fitted customers "
          f"(target >= 1%: {'met' if smallest >= 0.01 else 'NOT met'})")


if __name__ == "__main__":
    main()
