"""A small training set's fixed cost, this tree against another source tree in turns.

Builds the synthetic log of ``benchmarks/historical.py`` once (its views, ~400,000 rows,
3 views x 300 days, one file per view and day: a log compacted within days), then times
``get_historical_features`` for ``--rows`` label rows (default 10,000) x 20 features with
this tree's code and, in turns, another tree's (``git archive main | tar -x -C DIR``),
each call in a fresh process of that tree so neither warms the other's caches. Checks that
both return the same values; prints the machine, the load, and per tree the median and
spread of ``--runs`` calls. With ``--compact``, the log is compacted first by this tree's
``compact_store`` (which copies each closed month into a month file; a tree without month
files reads the day files beside them, which stay).

    python benchmarks/historical_trees.py --baseline DIR [--rows N] [--runs N] [--compact]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

HERE = Path(__file__).resolve().parent
#: One timed call, run by each tree's interpreter path: builds nothing, reads the log.
CALL = """
import hashlib, json, sys, time
sys.path.insert(0, {bench!r})
import numpy as np
import historical as bench
from basketflow.reports import historical
views = bench.BENCH_VIEWS
historical.registry = lambda: views
entities = bench.entity_rows(views, {rows}, np.random.default_rng(7))
features = bench.asked_features(views, 20)
start = time.perf_counter()
frame = historical.get_historical_features({root!r}, entities, features)
seconds = time.perf_counter() - start
digest = hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()
print(json.dumps({{"seconds": seconds, "digest": digest}}))
"""


def build_log(root: Path, log_rows: int) -> int:
    """The synthetic log under ``root``, one file per view and day; its file count."""
    import numpy as np

    import historical as bench
    rng = np.random.default_rng(20101201)
    total = sum(bench.ROW_SHARE.values())
    for name, view in bench.BENCH_VIEWS.items():
        bench.write_view_log(root, view, int(log_rows * bench.ROW_SHARE[name] / total), rng)
    return sum(1 for _ in root.rglob("*.parquet"))


def one_call(tree: Path, root: Path, rows: int) -> dict[str, object]:
    """Seconds and result digest of one call with ``tree``'s code, in a fresh process."""
    code = CALL.format(bench=str(HERE), rows=rows, root=str(root))
    done = subprocess.run([sys.executable, "-c", code], env=os.environ | {
        "PYTHONPATH": str(tree)}, cwd=tree, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--log-rows", type=int, default=400_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--compact", action="store_true",
                        help="compact the log with this tree's code first")
    args = parser.parse_args()
    trees = {"this tree": HERE.parent, "baseline": args.baseline.resolve()}
    print(describe())
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "offline"
        files = build_log(root, args.log_rows)
        print(f"feature log: {args.log_rows:,} rows in {files:,} files; {args.rows:,} label "
              "rows x 20 features")
        if args.compact:
            from basketflow.sinks.compaction import compact_store
            done = compact_store(root)
            print(f"compacted: {done.months} closed months moved into a month file each")
        calls: dict[str, list[dict[str, object]]] = {name: [] for name in trees}
        for _ in range(args.runs):
            for name, tree in trees.items():
                calls[name].append(one_call(tree, root, args.rows))
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    digests = {str(c["digest"]) for done in calls.values() for c in done}
    print(f"same values from both trees in every call: {len(digests) == 1}")
    for name in trees:
        seconds = [float(str(c["seconds"])) for c in calls[name]]
        best = min(seconds)
        print(f"  {name:10} median {statistics.median(seconds):.3f} s ({best:.3f}-"
              f"{max(seconds):.3f}) = {args.rows / statistics.median(seconds):,.0f} rows/s "
              "at the median")


if __name__ == "__main__":
    main()
