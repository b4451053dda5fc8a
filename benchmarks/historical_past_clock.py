"""A training set after the flow's clock, on a real store: this tree against another tree.

Label rows of customers of the store's customer log at times after its clock (the newest
row's time, up to ``--days`` days after) and, for comparison, at times within the log's
span (where the log alone answers). Each tree's ``get_historical_features`` for 20
customer features runs in a fresh process of that tree, in turns (``--runs``); the
script prints the machine, the load, per tree and label set the median seconds and rows/s,
and how many of ``--check`` label rows after the clock equal a plain-pandas sum of the
window over the store's events (``spend_7d`` and ``spend_30d``, by the window rule: the
W*24 hourly tiles ending with the row's hour).

    basketflow backfill --from data.csv                       # a store with events
    git archive main | tar -x -C /tmp/main-tree
    python benchmarks/historical_past_clock.py STORE --baseline /tmp/main-tree
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

from basketflow.sinks.offline_layout import feature_log_files  # noqa: E402

HERE = Path(__file__).resolve().parent
HOUR = 3600
#: One timed call, run by each tree's interpreter: reads the labels, writes the result.
CALL = """
import json, sys, time
import pandas as pd
from basketflow.reports.historical import get_historical_features
labels = pd.read_parquet({labels!r})
start = time.perf_counter()
frame = get_historical_features({root!r}, labels, {features!r})
seconds = time.perf_counter() - start
frame.to_parquet({out!r})
print(json.dumps({{"seconds": seconds}}))
"""


def customer_log(root: Path) -> pd.DataFrame:
    """Entity and epoch-second ``ts`` of every customer-log row of the store."""
    files = [str(p) for p in feature_log_files(root, "customer")]
    with duckdb.connect() as con:
        return con.execute(
            "SELECT CAST(entity_id AS VARCHAR) AS e, CAST(epoch(ts) AS BIGINT) AS ts "
            "FROM read_parquet($files)", {"files": files}).df()


def label_sets(root: Path, rows: int, days: int,
               rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """Label rows of the log's customers (not guests): times within the log's span, and after its
    clock by up to ``days`` days."""
    log = customer_log(root)
    first, clock = int(log.ts.min()), int(log.ts.max())
    customers = log.e.unique()
    ids = rng.choice(customers[~pd.Series(customers).str.startswith("guest-")], rows)
    spans = {"within the log": (first, clock), f"after the clock (<= {days} d)":
             (clock + 1, clock + days * 86_400)}
    return {name: pd.DataFrame({"customer_id": ids, "timestamp": pd.to_datetime(
        rng.integers(lo, hi + 1, rows), unit="s", utc=True)}) for name, (lo, hi) in spans.items()}


def one_call(tree: Path, root: Path, labels: Path, out: Path,
             features: list[str]) -> float:
    """Seconds of one call with ``tree``'s code in a fresh process; its result in ``out``."""
    code = CALL.format(labels=str(labels), root=str(root), features=features, out=str(out))
    done = subprocess.run([sys.executable, "-c", code], env=os.environ | {
        "PYTHONPATH": str(tree)}, cwd=tree, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"Error: the call with {tree} failed: {done.stderr.strip()[-2000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])


def epoch_seconds(times: pd.Series) -> pd.Series:
    """UTC timestamps (of any unit) as whole epoch seconds."""
    return (times - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)


def pandas_windows(root: Path, labels: pd.DataFrame) -> pd.DataFrame:
    """``spend_7d`` and ``spend_30d`` of each label row by a plain pandas sum over the
    store's events of its customer in the W*24 hourly tiles ending with its hour."""
    events = pd.read_parquet(root / "events", columns=["customer_id", "quantity",
                                                       "unit_price", "ts"])
    events["hour"] = epoch_seconds(events.ts) // HOUR
    events["amount"] = events.quantity * events.unit_price
    by_customer = dict(list(events.groupby("customer_id")))
    hours = epoch_seconds(labels.timestamp) // HOUR
    out = {f"spend_{d}d": [] for d in (7, 30)}
    for customer, hour in zip(labels.customer_id, hours):
        mine = by_customer.get(customer, events.iloc[:0])
        for d in (7, 30):
            inside = mine[(mine.hour > hour - d * 24) & (mine.hour <= hour)]
            out[f"spend_{d}d"].append(round(float(inside.amount.sum()), 2))
    return pd.DataFrame(out, index=labels.index)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("store", type=Path, help="the offline store (with events)")
    parser.add_argument("--baseline", type=Path, required=True, help="another source tree")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--check", type=int, default=300)
    args = parser.parse_args()
    if not (args.store / "events").is_dir() or not feature_log_files(args.store, "customer"):
        raise SystemExit(f"Error: {args.store} holds no events or no customer feature log: "
                         "give an offline store a backfill wrote")
    if not (args.baseline / "reports" / "historical.py").is_file():
        raise SystemExit(f"Error: {args.baseline} is not a basketflow source tree")
    from basketflow.schemas.features import CUSTOMER
    features = [f"customer:{f}" for f in CUSTOMER.feature_names[:20]]
    trees = {"this tree": HERE.parent, "baseline": args.baseline.resolve()}
    with tempfile.TemporaryDirectory() as tmp:
        run(args, features, trees, Path(tmp))


def run(args: argparse.Namespace, features: list[str], trees: dict[str, Path],
        work: Path) -> None:
    """Time both trees on both label sets in ``work``; print the figures and the check."""
    print(describe())
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    sets = label_sets(args.store, args.rows, args.days, np.random.default_rng(14))
    seconds: dict[tuple[str, str], list[float]] = {}
    for k, (name, labels) in enumerate(sets.items()):
        labels.to_parquet(work / f"labels{k}.parquet")
        for _ in range(args.runs):
            for tree_name, tree in trees.items():
                seconds.setdefault((name, tree_name), []).append(one_call(
                    tree, args.store, work / f"labels{k}.parquet",
                    work / f"out{k}-{tree_name[0]}.parquet", features))
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print(f"{args.rows:,} label rows x {len(features)} customer features, {args.runs} runs")
    for (name, tree_name), times in seconds.items():
        median = statistics.median(times)
        print(f"  {name:28} {tree_name:10} median {median:.2f} s = "
              f"{args.rows / median:,.0f} rows/s")
    after = list(sets)[1]
    sample = sets[after].iloc[:args.check]
    want = pandas_windows(args.store, sample)
    for tree_name in trees:
        got = pd.read_parquet(work / f"out1-{tree_name[0]}.parquet").iloc[:args.check]
        equal = sum(all(np.isclose(got[f"customer__{c}"].iloc[i], want[c].iloc[i], rtol=0,
                                   atol=1e-9) for c in want) for i in range(len(sample)))
        print(f"  {tree_name:10}: {equal} of {len(sample)} rows after the clock equal the "
              "pandas window sums (spend_7d, spend_30d)")


if __name__ == "__main__":
    main()
