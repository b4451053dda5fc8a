"""Backfill events/s on the real file: one process against several, and against the code
of another source tree, in the same run.

Runs ``basketflow backfill --from FILE`` as the command does (the live flow's feature
steps, events and feature log to Parquet, no Redis), each time in a fresh Python process
and a fresh data directory, the ways in turns (the order rotating every round) so that
all see the same load on a shared machine. ``--baseline DIR`` adds the code of another
source tree, with the same process counts (``--baseline-processes``: others), run the
same way: make it with
``git archive REV | tar -x -C DIR``. Prints, per run, wall and CPU seconds (the process's
own and its forked processes') and events/s with the load average at its start; per way
the best and median events/s and median CPU seconds, with their ratios to the first
way's; the machine; and the file read and parsed alone (``read_events``), by this tree
and the baseline in turns.

    python benchmarks/backfill.py [PATH.csv[.gz]] [--runs N] [--processes 1,2] [--baseline DIR]
        [--baseline-processes 1]
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
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import REAL_DATA, describe


def one_backfill(path: Path, processes: int) -> dict[str, float]:
    """One backfill into a fresh data directory, as ``basketflow backfill --from``, in
    this process (the imports not timed, as the command's figure does not time them);
    its events, wall seconds and CPU seconds."""
    from basketflow.flows.backfill import file_events, run_backfill
    from basketflow.flows.live import FeatureOutputs, RunOptions

    done = [0]
    # A baseline tree may predate the processes parameter: pass it only when it matters.
    extra = {"processes": processes} if processes > 1 else {}
    with tempfile.TemporaryDirectory() as tmp:
        outputs = FeatureOutputs(None, "bench", Path(tmp) / "offline")
        wall, cpu = time.perf_counter(), time.process_time()
        run_backfill(file_events(path, [0]), outputs, RunOptions(snapshot_seconds=3600),
                     lambda n: done.__setitem__(0, n), **extra)
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"events": done[0], "wall": wall,
            "cpu": cpu + children.ru_utime + children.ru_stime}


def one_read(path: Path) -> dict[str, float]:
    """The file read and parsed alone (``read_events``), in this process: its records,
    wall seconds and CPU seconds."""
    from basketflow.producers.csv_source import read_events
    wall, cpu = time.perf_counter(), time.process_time()
    count = sum(1 for _ in read_events(path))
    return {"events": count, "wall": time.perf_counter() - wall,
            "cpu": time.process_time() - cpu}


def in_subprocess(path: Path, processes: int, code: Path | None) -> dict[str, float]:
    """:func:`one_backfill` (``processes`` 0: :func:`one_read`) in a fresh Python
    process, importing the project from ``code`` (None: this tree, as installed)."""
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(code), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, __file__, str(path), "--one", str(processes)],
                          env=env, cwd=code or Path.cwd(), capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        sys.exit(f"backfill run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def _counts(text: str) -> list[int]:
    """Process counts given as ``1,2``; a one-line error for anything else."""
    try:
        counts = [int(p) for p in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        sys.exit(f"Error: process counts are whole numbers from 1, like 1,2; not {text!r}")
    return counts


def report(label: str, figures: dict[str, float], load: float) -> None:
    """One line of figures."""
    count, wall, cpu = figures["events"], figures["wall"], figures["cpu"]
    print(f"  {label:<34} {count:,.0f} events in {wall:6.2f} s = {count / wall:9,.0f} events/s "
          f"(CPU {cpu:6.2f} s = {count / cpu:9,.0f} events per CPU s; load {load:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=REAL_DATA)
    parser.add_argument("--runs", type=int, default=3, help="rounds of every way [3]")
    parser.add_argument("--processes", default="1,2",
                        help="comma-separated process counts of this tree's runs [1,2]")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="a source tree whose code runs too")
    parser.add_argument("--baseline-processes", default=None,
                        help="comma-separated process counts of the baseline's runs "
                             "[those of --processes]")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.path.is_file():
        sys.exit(f"no data at {args.path}: give the path of a Kaggle-format file")
    if args.one is not None:
        path = args.path.resolve()
        print(json.dumps(one_backfill(path, args.one) if args.one else one_read(path)))
        return
    print(f"machine: {describe()}")
    print(f"data: {args.path}")
    ways: list[tuple[str, Path | None, int]] = []
    if args.baseline is not None:
        for n in _counts(args.baseline_processes or args.processes):
            ways.append((f"baseline {args.baseline.name}, {n} process{'es' if n > 1 else ''}",
                         args.baseline.resolve(), n))
    for n in _counts(args.processes):
        ways.append((f"this tree, {n} process{'es' if n > 1 else ''}", None, n))
    rates: dict[str, list[float]] = {label: [] for label, _code, _processes in ways}
    cpus: dict[str, list[float]] = {label: [] for label, _code, _processes in ways}
    print("backfill (events and feature log to Parquet, no Redis), a fresh process per run:")
    for run in range(args.runs):
        turn = run % len(ways)
        for label, code, processes in ways[turn:] + ways[:turn]:
            load = os.getloadavg()[0]
            figures = in_subprocess(args.path.resolve(), processes, code)
            report(f"{label}, run {run + 1}", figures, load)
            rates[label].append(figures["events"] / figures["wall"])
            cpus[label].append(figures["cpu"])
    first = ways[0][0]
    print(f"events/s best and median, CPU s median (ratios to {first}):")
    for label, _code, _processes in ways:
        best, mid, cpu = max(rates[label]), median(rates[label]), median(cpus[label])
        print(f"  {label:<34} best {best:9,.0f} ({best / max(rates[first]):.2f}x), median "
              f"{mid:9,.0f} ({mid / median(rates[first]):.2f}x), CPU {cpu:5.2f} s "
              f"({cpu / median(cpus[first]):.2f}x)")
    print("reading the file alone (read_events, a fresh process per run):")
    reads = [(label, code) for label, code, _processes in ways if _processes == 1] or [
        ("this tree", None)]
    for run in range(args.runs):
        for label, code in reads[run % len(reads):] + reads[:run % len(reads)]:
            load = os.getloadavg()[0]
            report(f"{label.split(',')[0]}, run {run + 1}",
                   in_subprocess(args.path.resolve(), 0, code), load)


if __name__ == "__main__":
    main()
