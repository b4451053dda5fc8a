"""Backfill events/s on the real file: the block reader against the line-by-line reader.

Runs ``basketflow backfill --from FILE`` as the command does (the live flow's feature
steps, events and feature log to Parquet, no Redis), each time into a fresh data
directory, alternating the two ways of reading the file so that both see the same load
on a shared machine; then the readers alone. Prints wall and CPU seconds and events/s
of every run, the best of each, and the machine.

    python benchmarks/backfill.py [PATH.csv[.gz]] [--runs N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import REAL_DATA, describe

from flows.backfill import file_events, run_backfill
from flows.live import FeatureOutputs, RunOptions
from producers.csv_source import read_events, read_events_by_line
from schemas.events import Transaction

Events = Callable[[], Iterator[Transaction]]


def by_line(path: Path) -> Events:
    """The valid events of the file, read line by line (the old way)."""
    return lambda: (e for e in read_events_by_line(path) if isinstance(e, Transaction))


def timed(work: Callable[[], int]) -> tuple[int, float, float]:
    """Run ``work``; return what it counted, wall seconds, CPU seconds of the process."""
    wall, cpu = time.perf_counter(), time.process_time()
    count = work()
    return count, time.perf_counter() - wall, time.process_time() - cpu


def backfill(events: Events) -> int:
    """One backfill into a fresh data directory, as ``basketflow backfill --from``; the
    number of events."""
    done = [0]
    with tempfile.TemporaryDirectory() as tmp:
        outputs = FeatureOutputs(None, "bench", Path(tmp) / "offline")
        run_backfill(events, outputs, RunOptions(snapshot_seconds=3600),
                     lambda n: done.__setitem__(0, n))
    return done[0]


def report(label: str, count: int, wall: float, cpu: float) -> None:
    """One line of figures."""
    print(f"  {label:<28} {count:,} events in {wall:6.2f} s = {count / wall:9,.0f} events/s "
          f"(CPU {cpu:6.2f} s = {count / cpu:9,.0f} events per CPU s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=REAL_DATA)
    parser.add_argument("--runs", type=int, default=2, help="runs of each way [2]")
    args = parser.parse_args()
    if not args.path.is_file():
        sys.exit(f"no data at {args.path}: give the path of a Kaggle-format file")
    print(f"machine: {describe()}")
    print(f"data: {args.path}")
    ways: dict[str, Events] = {"line by line (old)": by_line(args.path),
                               "blocks (new)": file_events(args.path, [0])}
    best: dict[str, float] = {}
    print("backfill (events and feature log to Parquet, no Redis):")
    for run in range(args.runs):
        for label, events in ways.items():
            count, wall, cpu = timed(lambda events=events: backfill(events))
            report(f"{label}, run {run + 1}", count, wall, cpu)
            best[label] = max(best.get(label, 0.0), count / wall)
    print("reading the file alone:")
    for label, read in (("line by line (old)", read_events_by_line),
                        ("blocks (new)", read_events)):
        count, wall, cpu = timed(lambda read=read: sum(1 for _ in read(args.path)))
        report(label, count, wall, cpu)
    old, new = best["line by line (old)"], best["blocks (new)"]
    print(f"best backfill: {old:,.0f} -> {new:,.0f} events/s ({new / old:.2f}x)")


if __name__ == "__main__":
    main()
