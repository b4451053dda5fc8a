"""What exact windows cost: ``basketflow run`` over the real file, this tree against another.

Replays the file once, then runs ``basketflow run --stop-at-end --no-recovery --json`` (two
processes, as a user runs it) over the whole topic with this tree's code and with the
code of ``--baseline DIR`` (a tree from ``git archive REV | tar -x -C DIR``), in turns,
each on a fresh data directory and key prefix (``--recovery``: with recovery snapshots,
as ``basketflow run`` runs by default). Prints, per run: events/s end to end and with
start-up, the CPU seconds of all the command's processes, online writes per event, and per
feature view the feature-log rows, rows per event day and Parquet files per event day.
Starts its own broker and Redis.

    python benchmarks/exact_windows.py [PATH.csv[.gz]] [--baseline DIR] [--rounds N] [--recovery]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import REAL_DATA, describe  # noqa: E402

from basketflow.app.flow_processes import child_env  # noqa: E402
from basketflow.app.services import embedded_services  # noqa: E402
from basketflow.config import Settings  # noqa: E402
from basketflow.producers.replay import replay  # noqa: E402

VIEWS = ("customer", "basket", "product")


def log_figures(offline: Path) -> dict[str, tuple[int, int, int]]:
    """Per view: feature-log rows, event days with rows, Parquet files."""
    import pyarrow.parquet as pq

    out = {}
    for view in VIEWS:
        files = sorted((offline / "features" / view).glob("date=*/*.parquet"))
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        days = len({f.parent.name for f in files})
        out[view] = (rows, days, len(files))
    return out


def _children_cpu() -> float:
    """CPU seconds of this process's ended children and theirs (the command's processes)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def run(tree: Path | None, settings: Settings, recovery: bool) -> dict[str, object]:
    """One ``basketflow run`` to the end with the code of ``tree`` (None: this one), with
    recovery snapshots or without."""
    env = child_env(settings)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(tree), env.get("PYTHONPATH", "")])
    wall, cpu = time.perf_counter(), _children_cpu()
    command = [sys.executable, "-m", "basketflow.cli", "run", "--stop-at-end", "--json"]
    done = subprocess.run(command + ([] if recovery else ["--no-recovery"]), env=env,
                          stdout=subprocess.PIPE, check=True, cwd=tree or Path.cwd())
    figures = json.loads(done.stdout)
    figures["wall"] = time.perf_counter() - wall
    figures["cpu"] = _children_cpu() - cpu
    figures["log"] = log_figures(settings.offline_dir)
    return figures


def report(name: str, f: dict[str, object]) -> None:
    """Print one run's figures."""
    events = int(f["events"])  # type: ignore[call-overload]
    print(f"  {name}: {events:,} events in {f['seconds']:.2f} s = "
          f"{f['events_per_second']:,.0f} events/s ({events / f['wall']:,.0f} with start-up, "
          f"{f['cpu']:.2f} CPU s in all, load {os.getloadavg()[0]:.1f}); "
          f"{int(f['online_writes']) / events:.2f} online writes/event")  # type: ignore[call-overload]
    parts = f.get("parts") or {}
    if parts:
        print("    parts: " + ", ".join(f"{name} {p['seconds']:.2f} s"  # type: ignore[index]
                                         for name, p in parts.items()))  # type: ignore[attr-defined]
    for view, (rows, days, files) in f["log"].items():  # type: ignore[attr-defined]
        print(f"    {view:<9} {rows:>9,} log rows  {rows / max(days, 1):>8,.0f} rows/day  "
              f"{files / max(days, 1):>5.1f} files/day  ({rows / events:.2f} rows/event)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=REAL_DATA)
    parser.add_argument("--baseline", type=Path, help="a source tree to compare with")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--recovery", action="store_true",
                        help="with recovery snapshots (the command's default)")
    args = parser.parse_args()
    if not args.path.is_file():
        sys.exit(f"Error: no data at {args.path}: give the path of a Kaggle-format file")
    print(f"machine: {describe()}")
    print(f"data: {args.path}")
    trees: list[tuple[str, Path | None]] = [("this tree", None)]
    if args.baseline:
        trees.append((f"baseline {args.baseline}", args.baseline.resolve()))
    with tempfile.TemporaryDirectory() as tmp, embedded_services(Path(tmp)) as (kafka, redis):
        summary = replay(args.path, kafka, "transactions", "transactions.dead")
        print(f"replayed {summary.sent:,} events")
        for r in range(args.rounds):
            print(f"round {r + 1}:")
            for i, (name, tree) in enumerate(trees):
                settings = Settings(Path(tmp) / f"r{r}t{i}", kafka, redis, prefix=f"b{r}t{i}")
                report(name, run(tree, settings, args.recovery))


if __name__ == "__main__":
    main()
