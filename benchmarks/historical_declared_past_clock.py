"""A declared view's training set after the flow's clock, on the real file: this tree
against another tree, and against the built-in ``customer`` view.

Makes a project (``basketflow init``) in a temporary folder, declares a copy of the
built-in ``customer`` view under another name (``customer_declared``, computed by the
generic engine), stores the file's events and the built-in views' logs (``backfill
--from``), computes the declared view's log (``backfill --views customer_declared
--from-offline``), then draws ``--rows`` label rows: customers of the log, at times up
to ``--days`` days after its clock (its newest row). Each tree's ``historical`` (the
command's function, the repository's views and declarations) runs in a fresh process of
that tree, in turns (``--runs``), for the windowed features of both views; imports are
not counted. Prints the machine, the load, per tree the median seconds, and how many
label rows have every declared windowed value equal to the built-in view's (which
computes them after the clock from the same events: issue #14), by feature.

    git archive main | tar -x -C /tmp/main-tree
    python benchmarks/historical_declared_past_clock.py [PATH.csv[.gz]] --baseline /tmp/main-tree
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

from machine import REAL_DATA, describe  # noqa: E402
from view_backfill import basketflow, declared_copy_project  # noqa: E402

from basketflow.config import ENV_OF_KEY  # noqa: E402
from basketflow.sinks.offline_layout import feature_log_files  # noqa: E402

#: The windowed features asked of both views.
WINDOWED = [f"{name}_{w}" for name in ("spend", "orders", "items", "distinct_products",
                                       "cancelled_lines") for w in ("1d", "7d", "30d")]
WINDOWED.append("avg_basket_value_30d")
#: One timed call, run by each tree's interpreter in the project: the command's function.
CALL = """
import json, time
from pathlib import Path
from basketflow.config import load_settings
from basketflow.app.backfill import historical
settings = load_settings(cwd=Path({root!r}))
start = time.perf_counter()
historical(settings, Path({labels!r}), {features!r}, Path({out!r}))
print(json.dumps({{"seconds": time.perf_counter() - start}}))
"""


def labels_after_clock(root: Path, rows: int, days: int) -> tuple[pd.DataFrame, int]:
    """``rows`` label rows of the declared log's customers at times up to ``days`` days
    after its clock; and the clock."""
    files = [str(p) for p in feature_log_files(root / "data" / "offline", "customer_declared")]
    with duckdb.connect() as con:
        ids, clock = con.execute(
            "SELECT list(DISTINCT CAST(entity_id AS VARCHAR)), "
            "CAST(epoch(max(ts)) AS BIGINT) FROM read_parquet($1)", [files]).fetchone()
    rng = np.random.default_rng(20101201)
    times = clock + rng.integers(1, days * 86_400, rows)
    return pd.DataFrame({"customer_id": np.asarray(ids)[rng.integers(0, len(ids), rows)],
                         "timestamp": pd.to_datetime(times, unit="s", utc=True)}), clock


def one_call(tree: Path, root: Path, labels: Path, out: Path) -> float:
    """Seconds of one ``historical`` with ``tree``'s code, in a fresh process."""
    features = [f"{view}:{f}" for view in ("customer_declared", "customer") for f in WINDOWED]
    env = {k: v for k, v in os.environ.items() if k not in ENV_OF_KEY.values()}
    code = CALL.format(root=str(root), labels=str(labels), features=features, out=str(out))
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env | {
        "PYTHONPATH": str(tree)}, capture_output=True, text=True, check=True)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])


def agreement(out: Path) -> dict[str, float]:
    """Per windowed feature, the share of label rows whose declared value equals the
    built-in view's (both null counts as equal), and of rows equal in every one."""
    frame = pd.read_parquet(out)
    equal = {f: (frame[f"customer_declared__{f}"].astype(float).round(6)
                 .eq(frame[f"customer__{f}"].astype(float).round(6))
                 | (frame[f"customer_declared__{f}"].isna() & frame[f"customer__{f}"].isna()))
             for f in WINDOWED}
    every = pd.concat(equal.values(), axis=1).all(axis=1)
    return {"every feature": float(every.mean())} | {f: float(e.mean()) for f, e in equal.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", type=Path, default=REAL_DATA)
    parser.add_argument("--baseline", type=Path, required=True, help="a tree of main")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(describe())
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    trees = {"this tree": Path(__file__).resolve().parents[1],
             "baseline": args.baseline.resolve()}
    with tempfile.TemporaryDirectory() as tmp:
        root, stored = declared_copy_project(Path(tmp), args.path)
        basketflow("backfill", "--views", "customer_declared", "--from-offline", cwd=root)
        labels, clock = labels_after_clock(root, args.rows, args.days)
        labels.to_parquet(Path(tmp) / "labels.parquet")
        print(f"{int(stored['events']):,} events; {args.rows:,} label rows up to "  # type: ignore[call-overload]
              f"{args.days} days after the clock ({pd.Timestamp(clock, unit='s')}), "
              f"{len(WINDOWED)} windowed features of each view")
        seconds: dict[str, list[float]] = {name: [] for name in trees}
        shares: dict[str, dict[str, float]] = {}
        for _ in range(args.runs):
            for name, tree in trees.items():
                out = Path(tmp) / f"{name.replace(' ', '-')}.parquet"
                seconds[name].append(one_call(tree, root, Path(tmp) / "labels.parquet", out))
                shares[name] = agreement(out)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    for name in trees:
        median = statistics.median(seconds[name])
        print(f"  {name:10} median {median:.3f} s ({min(seconds[name]):.3f}-"
              f"{max(seconds[name]):.3f}) = {args.rows / median:,.0f} rows/s; declared "
              f"equal to built-in in every feature: {shares[name]['every feature']:.1%}")
        print("    by feature: " + ", ".join(f"{f} {s:.1%}" for f, s in shares[name].items()
                                             if f != "every feature"))


if __name__ == "__main__":
    main()
