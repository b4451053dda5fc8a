"""Flow events/s as a Bytewax cluster beside one process, over the same topic in one run.

Replays the real file (or a given one) once, then runs ``basketflow run --stop-at-end``
to the end of the topic, each on a fresh data directory and key prefix, with recovery
snapshots as a user runs it: in one process (``--processes 1``), as the default two
processes (serve and store parts, each reading the whole topic), as a cluster of 2 per
part (``--processes 4``), as a cluster of the whole flow of 2 and of 3 processes
(``--whole-flow``), and as a cluster of 2 started by hand (``--process-id``)
unpinned and with each process pinned to a core of its own (``taskset``), beside one
process pinned to one core and the two parts started by hand on a core each. Prints events/s end to end (the slowest process's time) and
with start-up, the CPU seconds of each command (a cluster by hand: of each process) and
per event, the machine and its load. Starts its own embedded broker and Redis-protocol server.

    python benchmarks/cluster.py [PATH.csv[.gz]] [--runs one,parts,...] [--rounds R]
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import REAL_DATA, describe  # noqa: E402

from basketflow.app.flow_processes import child_env, loopback_addresses  # noqa: E402
from basketflow.app.services import embedded_services  # noqa: E402
from basketflow.config import Settings  # noqa: E402
from basketflow.producers.replay import replay  # noqa: E402

RUN = [sys.executable, "-m", "basketflow.cli", "run", "--stop-at-end", "--json"]


def timed(commands: list[list[str]], settings: Settings,
          ) -> tuple[dict[str, Any], float, list[float]]:
    """Run the commands side by side to their end; the figures they printed (added up
    over the processes of a cluster started by hand), the wall time, and each command's
    CPU seconds (its children's included)."""
    wall = time.perf_counter()
    procs = [subprocess.Popen(c, env=child_env(settings), stdout=subprocess.PIPE)
             for c in commands]
    outs = [json.loads(p.stdout.read()) for p in procs]  # type: ignore[union-attr]
    cpu = []
    for proc in procs:
        _pid, status, usage = os.wait4(proc.pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, proc.args
        proc.returncode = 0
        cpu.append(usage.ru_utime + usage.ru_stime)
    wall = time.perf_counter() - wall
    if len(outs) == 1:
        return outs[0], wall, cpu
    events, seconds = sum(o["events"] for o in outs), max(o["seconds"] for o in outs)
    return {"events": events, "seconds": seconds}, wall, cpu


def runs(addresses: str, pinned: str) -> dict[str, tuple[str, list[list[str]]]]:
    """Every way of running the flow the benchmark knows, by key: a name and the
    commands run side by side."""
    return {
        "one": ("one process (--processes 1)", [[*RUN, "--processes", "1"]]),
        "parts": ("two parts (--processes 2, the default)", [RUN]),
        "part-clusters": ("a cluster of 2 per part (--processes 4)",
                          [[*RUN, "--processes", "4"]]),
        "whole-2": ("whole-flow cluster of 2 (--processes 2 --whole-flow)",
                    [[*RUN, "--processes", "2", "--whole-flow"]]),
        "whole-3": ("whole-flow cluster of 3 (--processes 3 --whole-flow)",
                    [[*RUN, "--processes", "3", "--whole-flow"]]),
        "one-pinned": ("one process pinned to core 0",
                       [["taskset", "-c", "0", *RUN, "--one-process"]]),
        "parts-pinned": ("two parts by hand, one core each (taskset)", [
            ["taskset", "-c", str(i), *RUN, "--part", part]
            for i, part in enumerate(("serve", "store"))]),
        "by-hand": ("whole-flow cluster of 2 by hand (--process-id)", [
            [*RUN, "--process-id", str(i), "--addresses", addresses] for i in (0, 1)]),
        "by-hand-pinned": ("whole-flow cluster of 2 by hand, one core each", [
            ["taskset", "-c", str(i), *RUN, "--process-id", str(i), "--addresses", pinned]
            for i in (0, 1)]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", type=Path, default=REAL_DATA)
    parser.add_argument("--runs", default="all", help="comma-separated keys of the runs "
                        "(one, parts, part-clusters, whole-2, whole-3, one-pinned, "
                        "parts-pinned, by-hand, by-hand-pinned), the first the baseline "
                        "[default: all]")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run them all this many times, in turns; then the medians")
    args = parser.parse_args()
    if not args.path.is_file():
        sys.exit(f"no data at {args.path}: give the path of a Kaggle-format file")
    print(f"machine: {describe()}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"data: {args.path}")
    with tempfile.TemporaryDirectory() as tmp, embedded_services(Path(tmp)) as (kafka, redis):
        summary = replay(args.path, kafka, "transactions", "transactions.dead")
        print(f"replay: {summary.sent:,} events + {summary.rejected:,} rejected")
        known = runs(",".join(loopback_addresses(2)), ",".join(loopback_addresses(2)))
        chosen = list(known) if args.runs == "all" else args.runs.split(",")
        rates: dict[str, list[float]] = {key: [] for key in chosen}
        for round_ in range(args.rounds):
            for key in chosen:
                name, commands = known[key]
                settings = Settings(Path(tmp) / f"run{round_}-{key}", kafka, redis,
                                    prefix=f"bench{round_}-{key}")
                figures, wall, cpu = timed(commands, settings)
                rate = figures["events"] / figures["seconds"]
                rates[key].append(rate)
                print(f"{name}: {figures['events']:,} events in {figures['seconds']:.2f} s = "
                      f"{rate:,.0f} events/s end to end ({rate / rates[chosen[0]][-1]:.2f}x "
                      f"{known[chosen[0]][0]}; {wall:.2f} s with start-up; CPU s "
                      f"{' + '.join(f'{c:.1f}' for c in cpu)} = "
                      f"{1e6 * sum(cpu) / figures['events']:.0f} us per event; load "
                      f"{os.getloadavg()[0]:.2f})")
        if args.rounds > 1:
            base = statistics.median(rates[chosen[0]])
            for key in chosen:
                median = statistics.median(rates[key])
                print(f"median of {args.rounds}, {known[key][0]}: {median:,.0f} events/s = "
                      f"{median / base:.2f}x")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
