"""Crash recovery on the real file: the cost of snapshots, and the time to recover a kill.

Replays the file once into its own embedded broker, then runs the real command
(``python -m basketflow.cli run --stop-at-end``) as a subprocess, each run on a fresh data
directory and key prefix over the same topic:

- **snapshot overhead**: flow events/s (first message consumed to last row written, the
  command's own figure) without recovery, with recovery at the default snapshot interval,
  and at 1 s; printed as ratios to the run without recovery;
- **recovery after a kill**: for each snapshot interval, a run killed with SIGKILL once its
  progress hash shows half the topic consumed, then restarted: the wall time from the
  restart to caught up (the command ends at the end of the topic, start-up included),
  where it resumed, and how many events it processed a second time (the killed run's
  progress minus where the restart resumed; the progress hash is written per batch, so
  this is a lower bound by at most one batch).

    python benchmarks/recovery.py [PATH.csv[.gz]] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import REAL_DATA, describe  # noqa: E402

from basketflow.app.services import embedded_services  # noqa: E402
from basketflow.app.status import consumed as flow_consumed  # noqa: E402
from basketflow.config import ENV_DATA_DIR, ENV_KAFKA, ENV_PREFIX, ENV_REDIS, Settings  # noqa: E402
from basketflow.producers.replay import replay  # noqa: E402

DEFAULT_SNAPSHOT_S = 10.0
TOPIC = "transactions"


@dataclass
class Bench:
    """The servers and the root directory every run of the benchmark shares."""

    root: Path
    kafka: str
    redis: str

    def settings(self, name: str) -> Settings:
        """A fresh data directory and key prefix for one run."""
        return Settings(self.root / name, self.kafka, self.redis, prefix=f"bench-{name}")

    def start(self, settings: Settings, *flags: str) -> subprocess.Popen[bytes]:
        """The real command, to the end of the topic, in the background."""
        env = os.environ | {ENV_KAFKA: self.kafka, ENV_REDIS: self.redis,
                            ENV_DATA_DIR: str(settings.data_dir), ENV_PREFIX: settings.prefix}
        return subprocess.Popen([sys.executable, "-m", "basketflow.cli", "run", "--stop-at-end",
                                 "--json", *flags], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    """Wait for a run to end by itself; its --json figures."""
    out, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"the flow failed:\n{err.decode(errors='replace')[-3000:]}")
    return json.loads(out)


def consumed(settings: Settings) -> int:
    """Messages of the events topic consumed so far by the flow's slower part."""
    return flow_consumed(settings.redis_url or "", settings.prefix, TOPIC)


def snapshot_flags(seconds: float | None) -> list[str]:
    """Command flags for a snapshot interval (None: recovery off)."""
    return ["--no-recovery"] if seconds is None else ["--snapshot-interval", str(seconds)]


def throughput(bench: Bench, label: str, seconds: float | None) -> float:
    """One uninterrupted run; print and return its events/s."""
    wall = time.perf_counter()
    figures = finish(bench.start(bench.settings(label), *snapshot_flags(seconds)))
    wall = time.perf_counter() - wall
    rate = float(figures["events_per_second"])
    print(f"  {label:22} {figures['events']:,} events in {figures['seconds']:.2f} s = "
          f"{rate:,.0f} events/s ({wall:.2f} s with start-up; {load()})")
    return rate


def kill_and_recover(bench: Bench, label: str, seconds: float, total: int) -> None:
    """Kill a run at half the topic, restart it, print the recovery figures."""
    settings = bench.settings(label)
    proc = bench.start(settings, *snapshot_flags(seconds))
    started = time.perf_counter()
    while (seen := consumed(settings)) < total // 2:
        if proc.poll() is not None:
            sys.exit(f"{label}: the flow ended before half-way")
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_after = time.perf_counter() - started
    reached = consumed(settings)
    restart = time.perf_counter()
    figures = finish(bench.start(settings, *snapshot_flags(seconds)))
    recovery = time.perf_counter() - restart
    resumed_at = total - int(figures["events"])
    print(f"  {label:22} killed after {killed_after:.1f} s at {reached:,} of {total:,} "
          f"events (watched {seen:,}); restart resumed at {resumed_at:,}: "
          f"{max(reached - resumed_at, 0):,} events processed again, caught up "
          f"{recovery:.2f} s after the restart ({figures['events']:,} events, "
          f"{figures['events_per_second']:,.0f} events/s; {load()})")


def load() -> str:
    """The machine's 1-minute load average: the figures are only as quiet as the machine."""
    return f"load {os.getloadavg()[0]:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", type=Path, default=REAL_DATA)
    parser.add_argument("--limit", type=int, default=None, help="replay only N lines")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    if not args.path.is_file():
        sys.exit(f"no data at {args.path}: give the path of a Kaggle-format file")
    print(f"machine: {describe()}")
    print(f"data: {args.path}" + (f" (first {args.limit:,} lines)" if args.limit else ""))
    with tempfile.TemporaryDirectory() as tmp, embedded_services(Path(tmp)) as (kafka, redis):
        summary = replay(args.path, kafka, TOPIC, f"{TOPIC}.dead", limit=args.limit)
        total = summary.sent
        print(f"replay: {total:,} events + {summary.rejected:,} rejected lines")
        bench = Bench(Path(tmp), kafka, redis)
        print("snapshot overhead (flow events/s, one worker):")
        off = throughput(bench, "no-recovery", None)
        default = throughput(bench, f"recovery-{DEFAULT_SNAPSHOT_S:g}s", DEFAULT_SNAPSHOT_S)
        every_second = throughput(bench, "recovery-1s", 1.0)
        print(f"  ratio to no recovery: {default / off:.3f} with {DEFAULT_SNAPSHOT_S:g} s "
              f"snapshots, {every_second / off:.3f} with 1 s snapshots")
        print("recovery after SIGKILL at half the topic:")
        for seconds in (DEFAULT_SNAPSHOT_S, 1.0):
            kill_and_recover(bench, f"kill-{seconds:g}s-snapshots", seconds, total)


if __name__ == "__main__":
    main()
