"""The time to make a flow's recovery state again, and what keeping each stored row's
position on the topic costs the flow.

Replays the file once into its own embedded broker. Then, alternated, ``--rounds``
times each, on fresh data directories over the same topic:

- **the positions' cost**: the real command (``run --stop-at-end``, two processes) with
  this code and, given ``--baseline DIR`` (a copy of the code before, for instance
  ``git archive main | tar -x -C DIR``), with that code (each first in turn): the
  flow's events/s (the command's own figure), the command's wall time and CPU time
  (its processes'), and the bytes of the offline store's event and dead-letter files;
- **the rebuild**: on the data directory each code wrote, ``run --rebuild-state`` (this
  code: the stored messages taken from the store up to each partition's end, the topic
  read only from there; the baseline's: every partition read from offset 0 and each
  message matched to the store), beside ``run --from-start`` (from the topic, the way out
  after ``check --repair``): wall time of the command, start-up included, and how many
  messages came from the offline store.

The embedded broker cannot delete a topic's first messages (its memory storage has no
DeleteRecords and no retention), so the rebuild is timed with the topic whole: this
code does not read the topic below each partition's end whether the messages are there
or not. Printed with the machine's load; ratios are of medians of the same run.

    python benchmarks/rebuild_state.py [PATH.csv[.gz]] [--limit N] [--rounds R] [--baseline DIR]
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

from machine import REAL_DATA, describe  # noqa: E402
from recovery import TOPIC, Bench, finish, load  # noqa: E402

from basketflow.app.services import embedded_services  # noqa: E402
from basketflow.config import ENV_DATA_DIR, ENV_KAFKA, ENV_PREFIX, ENV_REDIS, Settings  # noqa: E402
from basketflow.producers.replay import replay  # noqa: E402

THIS = Path(__file__).resolve().parents[1]


def start(bench: Bench, code: Path, settings: Settings, *flags: str,
          ) -> subprocess.Popen[bytes]:
    """The real command of the code under ``code``, to the end of the topic, in the
    background (run from that folder, with it first on the import path)."""
    env = os.environ | {ENV_KAFKA: bench.kafka, ENV_REDIS: bench.redis,
                        ENV_DATA_DIR: str(settings.data_dir), ENV_PREFIX: settings.prefix,
                        "PYTHONPATH": str(code)}
    return subprocess.Popen([sys.executable, "-m", "basketflow.cli", "run", "--stop-at-end",
                             "--json", *flags], env=env, cwd=code, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def store_bytes(settings: Settings) -> int:
    """The bytes of the offline store's event and dead-letter files."""
    offline = Path(settings.offline_dir)
    return sum(f.stat().st_size for folder in ("events", "dead")
               for f in (offline / folder).rglob("*.parquet"))


def children_cpu() -> float:
    """CPU seconds (user and system) of every process this one has waited for, and of
    theirs: a command's, its flow's processes included."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def first_run(bench: Bench, name: str, code: Path, settings: Settings,
              ) -> tuple[float, float, float]:
    """One run to the end on a fresh data directory: print and return its events/s, wall
    time and CPU time (the command's processes, less noisy than the wall on a shared
    machine)."""
    wall, cpu = time.perf_counter(), children_cpu()
    figures = finish(start(bench, code, settings))
    wall, cpu = time.perf_counter() - wall, children_cpu() - cpu
    print(f"  run {name:9} {figures['events_per_second']:9,.0f} events/s, {wall:6.2f} s, "
          f"{cpu:6.2f} s of CPU, {store_bytes(settings):,} bytes of events and dead letters "
          f"({load()})")
    return figures["events_per_second"], wall, cpu


def way_out(bench: Bench, name: str, code: Path, settings: Settings, flag: str) -> float:
    """One run of a way out on a data directory a run filled: print and return its wall
    time."""
    wall = time.perf_counter()
    figures = finish(start(bench, code, settings, flag))
    wall = time.perf_counter() - wall
    print(f"  {flag:16} {name:9} {wall:6.2f} s, {figures['events']:,} events, "
          f"{figures.get('from_store', 0):,} messages from the offline store ({load()})")
    return wall


def median_line(label: str, values: dict[str, list[float]], unit: str) -> str:
    """``label``: each code's median, and their ratio to this code's."""
    medians = {name: statistics.median(v) for name, v in values.items()}
    this = medians["this"]
    return f"{label}: " + ", ".join(
        f"{name} {m:,.2f}{unit} ({m / this:.2f}x)" for name, m in medians.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", type=Path, default=REAL_DATA)
    parser.add_argument("--limit", type=int, default=100_000, help="replay only N lines")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each kind")
    parser.add_argument("--baseline", type=Path,
                        help="a copy of the code to compare with (its repository root)")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    if not args.path.is_file():
        sys.exit(f"no data at {args.path}: give the path of a Kaggle-format file")
    codes = {"this": THIS} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    print(f"machine: {describe()}")
    print(f"data: {args.path} (first {args.limit:,} lines); code: " + ", ".join(
        f"{name} {path}" for name, path in codes.items()))
    with tempfile.TemporaryDirectory() as tmp, embedded_services(Path(tmp)) as (kafka, redis):
        summary = replay(args.path, kafka, TOPIC, f"{TOPIC}.dead", limit=args.limit)
        print(f"replay: {summary.sent:,} events + {summary.rejected:,} rejected lines")
        bench = Bench(Path(tmp), kafka, redis)
        rates: dict[str, list[float]] = {name: [] for name in codes}
        walls: dict[str, list[float]] = {name: [] for name in codes}
        cpus: dict[str, list[float]] = {name: [] for name in codes}
        filled: dict[str, Settings] = {}
        for round_ in range(args.rounds):
            order = list(codes.items())
            for name, code in order[::-1] if round_ % 2 else order:  # each first in turn
                filled[name] = bench.settings(f"{name}-{round_}")
                rate, wall, cpu = first_run(bench, name, code, filled[name])
                rates[name].append(rate)
                walls[name].append(wall)
                cpus[name].append(cpu)
        ways = {"this": (THIS, "--rebuild-state"), "from-start": (THIS, "--from-start")}
        if args.baseline:
            ways["baseline"] = (codes["baseline"], "--rebuild-state")
        times: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(args.rounds):
            for name, (code, flag) in ways.items():
                data = filled["baseline" if name == "baseline" else "this"]
                times[name].append(way_out(bench, name, code, data, flag))
        print(median_line("flow events/s", rates, ""))
        print(median_line("run wall time", walls, " s"))
        print(median_line("run CPU time", cpus, " s"))
        sizes = {name: [float(store_bytes(s))] for name, s in filled.items()}
        print(median_line("offline events + dead letters", sizes, " bytes"))
        print(median_line("way out wall time", times, " s"))


if __name__ == "__main__":
    main()
