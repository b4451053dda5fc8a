"""Throughput of the streaming spine on the real file: replay, then the flow to the end.

Prints replay events/s, and flow events/s end to end (first message consumed to last row
written) in one process with 1 and with 2 Bytewax workers, and as ``basketflow run``
runs it, its serve and store parts in two processes (the slower part's time), each on a
fresh data directory and key prefix over the same topic, without recovery snapshots.
Starts its own embedded broker and Redis-protocol server.

    python benchmarks/throughput.py [PATH.csv[.gz]]
"""

from __future__ import annotations

import json
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
from basketflow.flows.live import RunOptions, run_live  # noqa: E402
from basketflow.producers.replay import replay  # noqa: E402


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else REAL_DATA
    if not path.is_file():
        sys.exit(f"no data at {path}: give the path of a Kaggle-format file")
    print(f"machine: {describe()}")
    print(f"data: {path}")
    with tempfile.TemporaryDirectory() as tmp, embedded_services(Path(tmp)) as (kafka, redis):
        summary = replay(path, kafka, "transactions", "transactions.dead")
        print(f"replay: {summary.sent:,} events + {summary.rejected:,} rejected in "
              f"{summary.seconds:.2f} s = {summary.events_per_second:,.0f} events/s")
        for workers in (1, 2):
            settings = Settings(Path(tmp) / f"w{workers}", kafka, redis,
                                prefix=f"bench{workers}")
            wall = time.perf_counter()
            stats = run_live(settings, stop_at_end=True,
                             options=RunOptions(workers=workers, recovery_dir=None))
            wall = time.perf_counter() - wall
            print(f"flow, {workers} worker(s): {stats.events:,} events in {stats.seconds:.2f} s "
                  f"= {stats.events / stats.seconds:,.0f} events/s end to end "
                  f"({wall:.2f} s with start-up), {stats.offline_rows:,} offline rows, "
                  f"{stats.online_writes:,} online writes")
        settings = Settings(Path(tmp) / "split", kafka, redis, prefix="bench-split")
        wall = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "basketflow.cli", "run", "--stop-at-end",
                               "--no-recovery", "--json"], env=child_env(settings),
                              stdout=subprocess.PIPE, check=True)
        wall = time.perf_counter() - wall
        figures = json.loads(done.stdout)
        print(f"flow, two processes (basketflow run): {figures['events']:,} events in "
              f"{figures['seconds']:.2f} s = {figures['events_per_second']:,.0f} events/s end "
              f"to end ({wall:.2f} s with start-up), {figures['offline_rows_written']:,} "
              f"offline rows, {figures['online_writes']:,} online writes")


if __name__ == "__main__":
    main()
