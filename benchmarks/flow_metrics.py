"""What the flow's Prometheus metrics cost: ``basketflow run --stop-at-end`` (two
processes, no recovery snapshots) over the same topic with metrics off, on and scraped
once a second, and on but not scraped (the counting alone), in alternating rounds, each on a fresh data directory and key prefix: events/s (wall, from
the first message to the last row, as the run reports it) and CPU per event (the CPU
time of the run and both its parts, which the machine's other load disturbs less than
wall time); and the time of a
scrape of each part's ``/metrics`` while the metered flow is busy (one a second) and
once it is idle. Starts its own embedded broker and Redis-protocol server.

    python benchmarks/flow_metrics.py [PATH.csv[.gz]] [--limit N] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import REAL_DATA, describe  # noqa: E402

from basketflow.app.flow_processes import child_env  # noqa: E402
from basketflow.app.services import embedded_services  # noqa: E402
from basketflow.config import Settings  # noqa: E402
from basketflow.producers.replay import replay  # noqa: E402


def free_port_pair() -> int:
    """A port P with P and P+1 free."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("0.0.0.0", port))
                b.bind(("0.0.0.0", port + 1))
            return port
        except OSError:
            continue


def scrape_ms(port: int) -> float | None:
    """Milliseconds of one GET /metrics (None: nothing answered)."""
    start = time.perf_counter()
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    except OSError:
        return None
    return (time.perf_counter() - start) * 1000


def children_cpu() -> float:
    """CPU seconds of this process's waited-for children so far (a run's parts are its
    children, waited for by it, so they count too)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_run(settings: Settings, port: int | None, scrapes: list[float] | None) -> dict:
    """One ``basketflow run --stop-at-end``; with ``port``, metrics on, and with
    ``scrapes`` both parts scraped once a second while it runs (times into ``scrapes``).
    Its figures, with ``cpu_seconds``."""
    cpu = children_cpu()
    args = [sys.executable, "-m", "basketflow.cli", "run", "--stop-at-end", "--no-recovery",
            "--json", *(["--metrics-port", str(port)] if port else [])]
    proc = subprocess.Popen(args, env=child_env(settings), stdout=subprocess.PIPE)
    done = threading.Event()

    def scraper() -> None:
        while not done.wait(1.0):
            for p in (port, port + 1):  # type: ignore[operator]
                ms = scrape_ms(p)
                if ms is not None and scrapes is not None:
                    scrapes.append(ms)

    thread = threading.Thread(target=scraper, daemon=True)
    scraping = port is not None and scrapes is not None
    if scraping:
        thread.start()
    out, _ = proc.communicate()
    done.set()
    if scraping:
        thread.join()
    assert proc.returncode == 0, "the run failed"
    return json.loads(out) | {"cpu_seconds": children_cpu() - cpu}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path", nargs="?", type=Path, default=REAL_DATA)
    parser.add_argument("--limit", type=int, default=150_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not args.path.is_file():
        sys.exit(f"no data at {args.path}: give the path of a Kaggle-format file")
    print(f"machine: {describe()}")
    print(f"data: {args.path}, first {args.limit:,} lines")
    modes = ("off", "on", "unscraped")
    rates: dict[str, list[float]] = {mode: [] for mode in modes}
    cpu_us: dict[str, list[float]] = {mode: [] for mode in modes}
    busy: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, embedded_services(Path(tmp)) as (kafka, redis):
        summary = replay(args.path, kafka, "transactions", "transactions.dead",
                         limit=args.limit)
        print(f"replayed {summary.sent:,} events")
        for r in range(args.rounds):
            for mode in modes:
                settings = Settings(Path(tmp) / f"{mode}{r}", kafka, redis,
                                    prefix=f"bench-{mode}{r}")
                load = os.getloadavg()[0]
                figures = one_run(settings, free_port_pair() if mode != "off" else None,
                                  busy if mode == "on" else None)
                rates[mode].append(figures["events_per_second"])
                cpu_us[mode].append(figures["cpu_seconds"] / figures["events"] * 1e6)
                print(f"round {r + 1}, metrics {mode:>9}: {figures['events']:,} events, "
                      f"{figures['events_per_second']:,.0f} events/s, "
                      f"{cpu_us[mode][-1]:.1f} us CPU/event (load average {load:.2f} before)")
        port = free_port_pair()
        settings = Settings(Path(tmp) / "idle", kafka, redis, prefix="bench-idle")
        proc = subprocess.Popen([sys.executable, "-m", "basketflow.cli", "run", "--no-recovery",
                                 "--metrics-port", str(port)], env=child_env(settings),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        idle: list[float] = []
        try:
            time.sleep(3)
            while len(idle) < 200:
                ms = scrape_ms(port)
                if ms is not None:
                    idle.append(ms)
                else:
                    time.sleep(0.5)
        finally:
            proc.terminate()
            proc.wait()
    for what, figures, unit in (("flow events/s", rates, ""),
                                ("CPU per event (all processes), us", cpu_us, "")):
        off = statistics.median(figures["off"])
        shown = ", ".join(f"{mode} {statistics.median(figures[mode]):,.1f}"
                          f" ({(statistics.median(figures[mode]) / off - 1) * 100:+.1f}%)"
                          for mode in modes[1:])
        print(f"{what}, median of {args.rounds}: off {off:,.1f}{unit}, {shown}")
    for name, times in (("busy flow, 1/s", busy), ("idle flow", idle)):
        if times:
            times.sort()
            print(f"scrape of /metrics, {name}: p50 {statistics.median(times):.2f} ms, "
                  f"p90 {times[int(len(times) * 0.9)]:.2f} ms, max {times[-1]:.2f} ms "
                  f"({len(times)} scrapes)")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
