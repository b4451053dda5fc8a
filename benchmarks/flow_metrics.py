"""What the flow's Prometheus metrics cost: ``basketflow run --stop-at-end`` (two
processes, no recovery snapshots) over the same topic with metrics off, on and scraped
once a second, and on but not scraped (the counting alone), in alternating rounds, each
on a fresh data directory and key prefix: events/s (wall, from the first message to the
last row, as the run reports it) and CPU per event (the CPU time of the run and both its
parts, which the machine's other load disturbs less than wall time); and the time of a
scrape of each part's ``/metrics`` while the metered flow is busy (one a second) and
once it is idle (p50, p99, max). With ``--baseline DIR`` (another source tree, e.g.
``git archive main | tar -x -C DIR``) its metered modes run in the same rounds, so the
two trees' figures come from the same load. Starts its own embedded broker and
Redis-protocol server.

    python benchmarks/flow_metrics.py [PATH.csv[.gz]] [--limit N] [--rounds R] [--baseline DIR]
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


def one_run(settings: Settings, port: int | None, scrapes: list[float] | None,
            tree: Path | None = None) -> dict:
    """One ``basketflow run --stop-at-end`` (with ``tree``'s code; None: this tree's);
    with ``port``, metrics on, and with ``scrapes`` both parts scraped once a second while
    it runs (times into ``scrapes``). Its figures, with ``cpu_seconds``."""
    cpu = children_cpu()
    args = [sys.executable, "-m", "basketflow.cli", "run", "--stop-at-end", "--no-recovery",
            "--json", *(["--metrics-port", str(port)] if port else [])]
    proc = subprocess.Popen(args, env=tree_env(child_env(settings), tree), cwd=tree,
                            stdout=subprocess.PIPE)
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


def tree_env(env: dict[str, str], tree: Path | None) -> dict[str, str]:
    """``env`` for a command that runs ``tree``'s code (None: this tree's)."""
    return env if tree is None else env | {"PYTHONPATH": str(tree)}


def idle_scrapes(settings: Settings, tree: Path | None, count: int = 200) -> list[float]:
    """Times of ``count`` scrapes of a tailing flow that has read everything."""
    port = free_port_pair()
    proc = subprocess.Popen([sys.executable, "-m", "basketflow.cli", "run", "--no-recovery",
                             "--metrics-port", str(port)], env=tree_env(child_env(settings), tree),
                            cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times: list[float] = []
    try:
        time.sleep(3)
        while len(times) < count:
            ms = scrape_ms(port)
            if ms is not None:
                times.append(ms)
            else:
                time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait()
    return times


def quantiles(times: list[float]) -> str:
    """p50, p99 and max of scrape times, and how many."""
    ordered = sorted(times)
    p99 = ordered[min(int(len(ordered) * 0.99), len(ordered) - 1)]
    return (f"p50 {statistics.median(ordered):.2f} ms, p99 {p99:.2f} ms, "
            f"max {ordered[-1]:.2f} ms ({len(ordered)} scrapes)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path", nargs="?", type=Path, default=REAL_DATA)
    parser.add_argument("--limit", type=int, default=150_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--baseline", type=Path, default=None,
                        help="another source tree whose metered modes run in the same rounds")
    args = parser.parse_args()
    if not args.path.is_file():
        sys.exit(f"no data at {args.path}: give the path of a Kaggle-format file")
    print(f"machine: {describe()}")
    print(f"data: {args.path}, first {args.limit:,} lines")
    trees: dict[str, Path | None] = {"": None}
    if args.baseline is not None:
        trees["baseline "] = args.baseline.resolve()
    modes = ["off", *(f"{name}{mode}" for name in trees for mode in ("on", "unscraped"))]
    rates: dict[str, list[float]] = {mode: [] for mode in modes}
    cpu_us: dict[str, list[float]] = {mode: [] for mode in modes}
    busy: dict[str, list[float]] = {name: [] for name in trees}
    idle: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, embedded_services(Path(tmp)) as (kafka, redis):
        summary = replay(args.path, kafka, "transactions", "transactions.dead",
                         limit=args.limit)
        print(f"replayed {summary.sent:,} events")
        for r in range(args.rounds):
            for mode in modes:
                name = "baseline " if mode.startswith("baseline ") else ""
                slug = mode.replace(" ", "-")
                settings = Settings(Path(tmp) / f"{slug}{r}", kafka, redis,
                                    prefix=f"bench-{slug}{r}")
                load = os.getloadavg()[0]
                figures = one_run(settings, free_port_pair() if mode != "off" else None,
                                  busy[name] if mode.endswith(" on") or mode == "on" else None,
                                  trees[name])
                rates[mode].append(figures["events_per_second"])
                cpu_us[mode].append(figures["cpu_seconds"] / figures["events"] * 1e6)
                print(f"round {r + 1}, metrics {mode:>18}: {figures['events']:,} events, "
                      f"{figures['events_per_second']:,.0f} events/s, "
                      f"{cpu_us[mode][-1]:.1f} us CPU/event (load average {load:.2f} before)")
        for name, tree in trees.items():
            settings = Settings(Path(tmp) / f"idle{name.strip()}", kafka, redis,
                                prefix=f"bench-idle{name.strip()}")
            idle[name] = idle_scrapes(settings, tree)
    for what, figures in (("flow events/s", rates), ("CPU per event (all processes), us", cpu_us)):
        off = statistics.median(figures["off"])
        shown = ", ".join(f"{mode} {statistics.median(figures[mode]):,.1f}"
                          f" ({(statistics.median(figures[mode]) / off - 1) * 100:+.1f}%)"
                          for mode in modes[1:])
        print(f"{what}, median of {args.rounds}: off {off:,.1f}, {shown}")
    for name in trees:
        for what, times in (("busy flow, 1/s", busy[name]), ("idle flow", idle[name])):
            if times:
                print(f"{name}scrape of /metrics, {what}: {quantiles(times)}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
