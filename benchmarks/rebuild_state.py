"""The time to make a flow's recovery state again: ``run --rebuild-state`` (from the
offline store, up to where it ends in each partition) against the other way out,
``run --from-start`` (from the topic's start, as after ``check --repair``).

Replays the file once into its own embedded broker, runs the real command to the end
once, then, on that same data directory, each way out in turn (alternated, ``--rounds``
times each): wall time of the command, start-up included, and how many of the events
came from the offline store's copies (all of them for the rebuild: the store holds the
whole topic). Printed as the ratio of the two, with the machine's load.

    python benchmarks/rebuild_state.py [PATH.csv[.gz]] [--limit N] [--rounds R]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import REAL_DATA, describe  # noqa: E402
from recovery import TOPIC, Bench, finish, load  # noqa: E402

from basketflow.app.services import embedded_services  # noqa: E402
from basketflow.config import Settings  # noqa: E402
from basketflow.producers.replay import replay  # noqa: E402

WAYS = {"--rebuild-state": "from the offline store", "--from-start": "from the topic"}


def timed(bench: Bench, settings: Settings, flag: str) -> float:
    """One run of the command with ``flag``; print and return its wall time."""
    wall = time.perf_counter()
    figures = finish(bench.start(settings, flag))
    wall = time.perf_counter() - wall
    print(f"  {flag:16} {WAYS[flag]:22} {wall:6.2f} s, {figures['events']:,} events, "
          f"{figures.get('from_store', 0):,} of them the offline store's copies ({load()})")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", type=Path, default=REAL_DATA)
    parser.add_argument("--limit", type=int, default=100_000, help="replay only N lines")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each way out")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    if not args.path.is_file():
        sys.exit(f"no data at {args.path}: give the path of a Kaggle-format file")
    print(f"machine: {describe()}")
    print(f"data: {args.path} (first {args.limit:,} lines)")
    with tempfile.TemporaryDirectory() as tmp, embedded_services(Path(tmp)) as (kafka, redis):
        summary = replay(args.path, kafka, TOPIC, f"{TOPIC}.dead", limit=args.limit)
        print(f"replay: {summary.sent:,} events + {summary.rejected:,} rejected lines")
        bench = Bench(Path(tmp), kafka, redis)
        settings = bench.settings("flow")
        finish(bench.start(settings))
        walls: dict[str, list[float]] = {flag: [] for flag in WAYS}
        for _ in range(args.rounds):
            for flag in WAYS:
                walls[flag].append(timed(bench, settings, flag))
        rebuild, from_start = (statistics.median(walls[flag]) for flag in WAYS)
        print(f"median wall time: --rebuild-state {rebuild:.2f} s, --from-start "
              f"{from_start:.2f} s: ratio {rebuild / from_start:.2f}")


if __name__ == "__main__":
    main()
