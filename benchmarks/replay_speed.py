"""Replay speed: ``basketflow replay FILE --json`` of the whole file into fresh topics, for
this tree and, in turns, another source tree (``git archive main | tar -x -C DIR``).

Prints the machine, the load before and after, and per tree the median of ``--runs``
runs: events/s as the command reports them (lines handed to the broker and acknowledged,
per wall second from the first line read to the last acknowledgement), and the CPU
seconds of the replaying process (its own and the client library's threads). Starts its
own embedded broker and Redis-protocol server.

    python benchmarks/replay_speed.py [PATH.csv[.gz]] [--runs N] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import REAL_DATA, describe  # noqa: E402

HERE = Path(__file__).resolve().parents[1]


def children_cpu() -> float:
    """CPU seconds (user and system) of every child process waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def replay_once(tree: Path, path: Path, env: dict[str, str], topic: str) -> tuple[float, float]:
    """Events/s that one replay with ``tree``'s code reported, and its CPU seconds."""
    before = children_cpu()
    done = subprocess.run([sys.executable, "-m", "basketflow.cli", "replay", str(path),
                           "--topic", topic, "--json"],
                          env=env | {"PYTHONPATH": str(tree),
                                     "BASKETFLOW_DEAD_TOPIC": f"{topic}.dead"},
                          cwd=tree, check=True, capture_output=True, text=True)
    summary = json.loads(done.stdout)
    assert summary["delivery_errors"] == 0, summary
    return summary["events_per_second"], children_cpu() - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", type=Path, default=REAL_DATA)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", type=Path, default=None,
                        help="another source tree to time in turns with this one")
    args = parser.parse_args()
    if not args.path.is_file():
        sys.exit(f"no data at {args.path}: give the path of a Kaggle-format file")
    from basketflow.app.services import embedded_services
    trees = {"this tree": HERE, **({"baseline": args.baseline.resolve()}
                                   if args.baseline else {})}
    print(describe())
    print(f"data: {args.path}")
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    rates: dict[str, list[float]] = {name: [] for name in trees}
    cpu: dict[str, list[float]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory() as tmp, \
            embedded_services(Path(tmp) / "servers") as (bootstrap, redis_url):
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "REDIS_URL": redis_url,
               "BASKETFLOW_DATA_DIR": str(Path(tmp) / "data")}
        for n in range(args.runs):
            for name, tree in trees.items():
                rate, seconds = replay_once(tree, args.path, env,
                                            f"replay-{name.replace(' ', '-')}-{n}")
                rates[name].append(rate)
                cpu[name].append(seconds)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print(f"replay of the whole file, {args.runs} runs per tree in turns: median (min-max)")
    for name in trees:
        print(f"  {name:10} {statistics.median(rates[name]):10,.0f} events/s "
              f"({min(rates[name]):,.0f}-{max(rates[name]):,.0f}), "
              f"CPU {statistics.median(cpu[name]):.2f} s")


if __name__ == "__main__":
    main()
