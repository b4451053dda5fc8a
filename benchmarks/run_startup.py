"""Start-up of the live flow: the wall time of ``basketflow run --stop-at-end`` on an empty
topic (the command's fixed cost: the parent's checks, two child processes, their imports,
the brokers' first answers), for this tree and, in turns, another source tree
(``git archive main | tar -x -C DIR``).

Each run gets a fresh data directory and a topic of its own (so it is empty and has no
recovery state: a first start); then the same command again on that data directory (a
restart: its recovery state is read back). Starts its own embedded broker and
Redis-protocol server; prints the machine, the load, and per tree the median and the
spread of ``--runs`` runs, and the CPU seconds of the command's processes.

    python benchmarks/run_startup.py [--runs N] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

HERE = Path(__file__).resolve().parents[1]


def children_cpu() -> float:
    """CPU seconds (user and system) of every descendant process waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(tree: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds of one ``basketflow run --stop-at-end`` with ``tree``'s code, and the
    CPU seconds of its processes (the command and both parts)."""
    cpu = children_cpu()
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "basketflow.cli", "run", "--stop-at-end"],
                   env=env | {"PYTHONPATH": str(tree)}, cwd=tree, check=True,
                   capture_output=True)
    return time.perf_counter() - start, children_cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline", type=Path, default=None,
                        help="another source tree to time in turns with this one")
    args = parser.parse_args()
    from basketflow.app.services import embedded_services
    trees = {"this tree": HERE, **({"baseline": args.baseline.resolve()}
                                   if args.baseline else {})}
    print(describe())
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    first: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
    again: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory() as tmp, \
            embedded_services(Path(tmp) / "servers") as (bootstrap, redis_url):
        for n in range(args.runs):
            for name, tree in trees.items():
                data = Path(tmp) / f"{name.replace(' ', '-')}-{n}"
                env = {**os.environ, "BASKETFLOW_DATA_DIR": str(data),
                       "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "REDIS_URL": redis_url,
                       "BASKETFLOW_TOPIC": f"empty-{data.name}",
                       "BASKETFLOW_DEAD_TOPIC": f"empty-{data.name}.dead",
                       "BASKETFLOW_PREFIX": data.name}
                first[name].append(run_once(tree, env))
                again[name].append(run_once(tree, env))
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print(f"`basketflow run --stop-at-end` on an empty topic, {args.runs} runs per tree "
          "in turns: wall seconds, median (min-max); CPU seconds of its processes, median")
    for label, figures in (("first start", first), ("restart (recovery state)", again)):
        for name in trees:
            wall = [w for w, _ in figures[name]]
            cpu = statistics.median(c for _, c in figures[name])
            print(f"  {label:26} {name:10} {statistics.median(wall):6.2f} s "
                  f"({min(wall):.2f}-{max(wall):.2f}), CPU {cpu:.2f} s")


if __name__ == "__main__":
    main()
