"""A small training set over a live flow's feature log, before and after ``basketflow
compact``, beside Feast in the same run.

Builds the synthetic log of ``benchmarks/historical.py`` (its views, ~400,000 rows over 300
days), cut into ``--flushes`` files per view and day as a live flow writes it (one file
per flush), then times ``get_historical_features`` for ``--rows`` label rows (default
10,000) x 20 features over those files, compacts the log (timed), times it again and
checks both give the same values. Prints the machine, the load, best and median of
``--repeat`` calls and rows/s of each.

With ``--feast-python`` (an interpreter with Feast installed, see
``benchmarks/feast_historical.py``), basketflow and Feast are then timed on the same
label rows (a Parquet file: ids as text, a UTC ``event_timestamp``), in ``--rounds``
rounds, each side in a fresh process per round, in turns: basketflow's
``get_historical_features`` over the compacted log, Feast's
``get_historical_features(...).to_df()`` over one Parquet file per view (the whole log,
its best case: Feast's file readers are slowest on many files), with ``--feast-store``
(``duckdb``, its fastest, or ``file``). Each process times ``--repeat`` calls; neither
side's imports nor Feast's ``apply`` are counted; the first call of each process is
reported apart (it warms each side's caches: DuckDB's connection and footers, Feast's
registry and ibis), then the median of the warm calls over all rounds.

    python benchmarks/historical_compaction.py [--rows N] [--flushes K] [--repeat R]
        [--feast-python V/bin/python [--feast-store duckdb|file] [--rounds N]]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

import historical as bench  # noqa: E402
from machine import describe  # noqa: E402

from basketflow.reports import historical  # noqa: E402
from basketflow.sinks.compaction import compact_store  # noqa: E402
from basketflow.sinks.offline_layout import feature_log_files  # noqa: E402

HERE = Path(__file__).resolve().parent
#: basketflow's side of the comparison with Feast, run in a fresh process per round: the
#: same request as ``feast_historical.py``'s, the same timing.
OURS = """
import json, sys, time
sys.path.insert(0, {bench!r})
import pandas as pd
import historical as bench
from basketflow.reports import historical
historical.registry = lambda: bench.BENCH_VIEWS
request = json.load(sys.stdin)
labels = pd.read_parquet(request["labels"])
seconds = []
for _ in range(request["repeat"]):
    start = time.perf_counter()
    result = historical.get_historical_features(request["root"], labels, request["features"],
                                                timestamp_column="event_timestamp")
    seconds.append(time.perf_counter() - start)
asked = [f.replace(":", "__") for f in request["features"]]
print(json.dumps({{"seconds": seconds, "rows": len(result),
                  "non_null": int(result[asked].notna().sum().sum())}}))
"""


def cut_into_flushes(root: Path, view: str, flushes: int) -> int:
    """Cut each day file of a view's log into ``flushes`` files of consecutive rows, as a
    flow writing a file per flush leaves it; return the file count."""
    count = 0
    for path in feature_log_files(root, view):
        table = pq.read_table(path)
        path.unlink()
        bounds = np.linspace(0, table.num_rows, flushes + 1).astype(int)
        for i in range(flushes):
            pq.write_table(table.slice(bounds[i], bounds[i + 1] - bounds[i]),
                           path.parent / f"part-{i:04d}.parquet")
            count += 1
    return count


def describe_times(label: str, seconds: list[float], rows: int) -> str:
    """One line: best and median seconds and rows/s at the best."""
    best = min(seconds)
    return (f"  {label:38} best {best:6.3f} s, median {statistics.median(seconds):6.3f} s "
            f"= {rows / best:9,.0f} rows/s")


def one_file(root: Path, view: str, tmp: Path) -> str:
    """The view's whole log as one Parquet file (Feast's file store is slowest on many
    files: given one, it is timed at its best)."""
    import pyarrow as pa
    path = tmp / f"{view}.parquet"
    tables = [pq.read_table(p) for p in feature_log_files(root, view)]
    pq.write_table(pa.concat_tables(tables).replace_schema_metadata(None), path)
    return str(path)


def comparison_request(root: Path, entities: object, features: list[str],
                       views: dict[str, object], repeat: int, store: str,
                       tmp: Path) -> dict[str, object]:
    """The request both sides of the comparison read: the label rows written as Parquet
    (ids as text, ``event_timestamp`` in UTC), one Parquet file per asked view for Feast,
    the offline root for basketflow."""
    import pandas as pd
    assert isinstance(entities, pd.DataFrame)
    labels = entities.drop(columns=["label"]).rename(columns={"timestamp": "event_timestamp"})
    for column in labels.columns:
        if column != "event_timestamp":
            labels[column] = labels[column].astype(str)
    labels["event_timestamp"] = pd.to_datetime(labels["event_timestamp"], utc=True)
    labels.to_parquet(tmp / "labels.parquet")
    asked = {f.split(":")[0] for f in features}
    return {"labels": str(tmp / "labels.parquet"), "features": features, "repeat": repeat,
            "root": str(root), "offline_store": store,
            "views": [{"name": name, "entity": view.entity,  # type: ignore[attr-defined]
                       "path": one_file(root, name, tmp),
                       "features": [(f.name, f.dtype)
                                    for f in view.stored_features]}  # type: ignore[attr-defined]
                      for name, view in views.items() if name in asked]}


def side_times(command: list[str], request: dict[str, object], tmp: Path,
               name: str) -> dict[str, object]:
    """One side's timings in a fresh process (its JSON answer)."""
    done = subprocess.run(command, cwd=tmp, input=json.dumps(request), capture_output=True,
                          text=True, check=False)
    if done.returncode:
        sys.exit(f"{name} failed (status {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare_with_feast(python: str, request: dict[str, object], rounds: int, rows: int,
                       tmp: Path) -> None:
    """Both sides in turns, ``rounds`` times; print first and warm calls of each."""
    sides = {"basketflow": [sys.executable, "-c", OURS.format(bench=str(HERE))],
             f"Feast ({request['offline_store']} offline store)":
                 [python, "-W", "ignore", str(HERE / "feast_historical.py")]}
    found: dict[str, list[dict[str, object]]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, command in sides.items():
            found[name].append(side_times(command, request, tmp, name))
    print(f"beside Feast, {rounds} rounds in turns, a fresh process per side and round "
          f"(imports and Feast's apply not counted):")
    for name, answers in found.items():
        first = [float(a["seconds"][0]) for a in answers]  # type: ignore[index]
        warm = [float(s) for a in answers for s in a["seconds"][1:]]  # type: ignore[index]
        print(describe_times(f"{name}, first call", first, rows))
        if warm:
            print(describe_times(f"{name}, warm calls", warm, rows))
        print(f"    {answers[-1]['rows']:,} rows, {answers[-1]['non_null']:,} non-null values")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000, help="label rows")
    parser.add_argument("--log-rows", type=int, default=400_000, help="feature-log rows")
    parser.add_argument("--flushes", type=int, default=20, help="files per view and day")
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--feast-python", help="an interpreter with Feast installed")
    parser.add_argument("--feast-store", default="duckdb", choices=("duckdb", "file"))
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of the comparison with Feast")
    args = parser.parse_args()
    views = bench.BENCH_VIEWS
    historical.registry = lambda: views  # the views of this run, for the join's lookups
    rng = np.random.default_rng(20101201)
    print(f"machine: {describe()}")
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "offline"
        total = sum(bench.ROW_SHARE.values())
        for name, view in views.items():
            bench.write_view_log(root, view, int(args.log_rows * bench.ROW_SHARE[name] / total),
                                 rng)
        files = sum(cut_into_flushes(root, name, args.flushes) for name in views)
        entities = bench.entity_rows(views, args.rows, rng)
        features = bench.asked_features(views, args.features)
        print(f"feature log: {args.log_rows:,} rows, {len(views)} views x {bench.DAYS} days "
              f"x {args.flushes} files = {files:,} files; {args.rows:,} label rows x "
              f"{len(features)} features")

        def ours() -> object:
            return historical.get_historical_features(root, entities, features)

        before, expected = bench.timed(ours, args.repeat)
        start = time.perf_counter()
        done = compact_store(root)
        compact_seconds = time.perf_counter() - start
        after, result = bench.timed(ours, args.repeat)
        columns = [f.replace(":", "__") for f in features]
        print(f"compact: {done.files_replaced:,} files into {done.days:,}, {done.months:,} "
              f"closed months moved into a month file each, in {compact_seconds:.1f} s "
              f"({done.rows:,} rows)")
        print(describe_times(f"basketflow, {args.flushes} files a day", before, args.rows))
        print(describe_times("basketflow, compacted (days, months)", after, args.rows))
        print(f"  same values before and after: {bench.same_values(expected, result, columns)}")
        if args.feast_python:
            request = comparison_request(root, entities, features, views, args.repeat,
                                         args.feast_store, Path(tmp))
            compare_with_feast(args.feast_python, request, args.rounds, args.rows, Path(tmp))
            print("  (Feast has no version filter or seq order: its non-null count may "
                  "differ a little)")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
