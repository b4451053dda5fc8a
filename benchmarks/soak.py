"""A tailing flow under a steady stream: does anything pile up?

Starts the embedded broker and Valkey, a tailing ``basketflow run`` (both parts, recovery
on, as a user runs it), and a replay of seeded synthetic events at ``--rate`` events/s for
``--seconds``. Every ``--every`` seconds prints, per part, the events consumed, resident
memory and open files, and the offline store's Parquet files per event day; then stops
the flow as Ctrl-C would and prints how each figure moved over the second half of the run.

    python benchmarks/soak.py [--seconds 300] [--rate 2000] [--every 15]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from flow_watch import PARTS, Sample, parquet_files_per_day, sample, start_run  # noqa: E402
from machine import describe  # noqa: E402

from basketflow.app.services import embedded_services  # noqa: E402
from basketflow.config import Settings  # noqa: E402
from basketflow.producers.replay import replay  # noqa: E402
from basketflow.producers.synthetic import write_csv  # noqa: E402

LOGS = ("events", "features/customer", "features/basket", "features/product", "scores")


def row(elapsed: float, now: Sample, files: dict[str, float]) -> str:
    """One line of the table: elapsed s, per part events/RSS/open files, files per day."""
    parts = "  ".join(f"{now.events.get(p, 0):>8,} {now.rss.get(p, 0):>5.0f} "
                      f"{now.files.get(p, 0):>4}" for p in PARTS)
    per_day = " ".join(f"{files.get(log, 0):>6.1f}" for log in LOGS)
    return f"{elapsed:>6.0f}  {parts}  {per_day}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--rate", type=float, default=2000, help="events per second sent")
    parser.add_argument("--every", type=float, default=15, help="seconds between rows")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(f"machine: {describe()}")
    with tempfile.TemporaryDirectory() as tmp, embedded_services(Path(tmp)) as (kafka, redis):
        data = Path(tmp) / "synthetic.csv"
        write_csv(data, int(args.rate * args.seconds), args.seed)
        settings = Settings(Path(tmp) / "data", kafka, redis, prefix="soak")
        run = start_run(settings)
        sender = threading.Thread(target=replay, daemon=True, args=(
            data, kafka, settings.topic, settings.dead_topic), kwargs={"rate": args.rate})
        sender.start()
        print(f"sending {int(args.rate * args.seconds):,} events at {args.rate:,.0f}/s for "
              f"{args.seconds:.0f} s; per part: events consumed, RSS MB, open files; "
              "Parquet files per event day")
        print(f"{'s':>6}  " + "  ".join(f"{p + ' events':>8} {'MB':>5} {'fds':>4}"
                                         for p in PARTS) + "  " +
              " ".join(f"{log.split('/')[-1][:6]:>6}" for log in LOGS))
        start, rows = time.perf_counter(), []
        while (elapsed := time.perf_counter() - start) < args.seconds and run.poll() is None:
            time.sleep(args.every)
            now = sample(run, settings)
            rows.append(now)
            print(row(time.perf_counter() - start, now,
                      parquet_files_per_day(settings.offline_dir)), flush=True)
        run.send_signal(signal.SIGINT)
        run.wait(timeout=120)
    half = rows[len(rows) // 2:]
    if len(half) >= 2:
        print("over the second half: " + ", ".join(
            f"{p} RSS {half[0].rss.get(p, 0):.0f} -> {half[-1].rss.get(p, 0):.0f} MB, "
            f"open files {half[0].files.get(p, 0)} -> {half[-1].files.get(p, 0)}"
            for p in PARTS))
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
