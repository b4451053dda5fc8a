"""Where the flow metrics' cost goes: the live flow in one process (``run_live``'s
steps, no recovery) over the same topic in four modes, in alternating rounds, each on a
fresh data directory and key prefix: nothing; Bytewax's API server alone (its own
metrics on, our counting off); our counting alone (the ``inspect`` steps and the sink's
observer, no server); both. CPU seconds of the process per mode (median), and the CPU
time of the calling thread spent inside our bookkeeping (``FlowMetrics.batch``,
``online_written``, ``clocked``; thread time, since ``online_written`` runs on the sink's
writer threads and a wall clock would count their waits for the interpreter lock).
``--baseline DIR`` (another source tree) runs its counting modes in the same rounds.
``--profile`` runs each mode under cProfile instead, timing the flow's thread's CPU
(the writer threads are not seen), and prints our functions' share of it. Starts its own embedded
broker and Redis-protocol server.

    python benchmarks/flow_metrics_split.py [PATH.csv[.gz]] [--limit N] [--rounds R]
        [--baseline DIR] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import REAL_DATA, describe  # noqa: E402

from basketflow.app.flow_processes import child_env  # noqa: E402
from basketflow.app.services import embedded_services  # noqa: E402
from basketflow.config import Settings  # noqa: E402
from basketflow.flows import flow_metrics  # noqa: E402
from basketflow.producers.replay import replay  # noqa: E402

#: mode -> (Bytewax's API server on, our counting on)
MODES = {"off": (False, False), "bytewax": (True, False), "ours": (False, True),
         "both": (True, True)}
TIMED = ("batch", "online_written", "clocked")


def timed(name: str, spent: dict[str, float]) -> None:
    """Wrap ``FlowMetrics.<name>`` so that its seconds add up in ``spent[name]``."""
    method = getattr(flow_metrics.FlowMetrics, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.thread_time()
        try:
            return method(*args, **kwargs)
        finally:
            spent[name] += time.thread_time() - start

    setattr(flow_metrics.FlowMetrics, name, wrapper)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def child(mode: str, settings: Settings, profile: bool) -> dict[str, Any]:
    """Run the flow once in this process in ``mode``; its CPU seconds, rows and the
    seconds inside our bookkeeping (or, profiled, the profile's path)."""
    from basketflow.flows.live import RunOptions, build_live_flow, prepare_run, run_flow
    from basketflow.sinks.flow_sinks import FlowStats
    server, counting = MODES[mode]
    spent = dict.fromkeys(TIMED, 0.0)
    if not profile:
        for name in TIMED:
            timed(name, spent)
    prepare_run(settings)
    if server:  # Bytewax's server alone, as serve_on turns it on (no relay: nobody scrapes)
        os.environ[flow_metrics.ENV_API_ENABLED] = "true"
        os.environ[flow_metrics.ENV_API_PORT] = str(free_port())
        os.environ[flow_metrics.ENV_API_CACHE] = str(settings.data_dir)
    stats = FlowStats()
    flow = build_live_flow(settings, True, stats, metered=counting)
    profiler = cProfile.Profile(time.thread_time) if profile else None  # CPU, not waits
    cpu = time.process_time()
    run = partial(run_flow, flow, RunOptions())
    if profiler is not None:
        profiler.runcall(run)
        profiler.dump_stats(settings.data_dir / "profile")
    else:
        run()
    return {"cpu": time.process_time() - cpu, "rows": stats.feature_rows, "spent": spent,
            "profile": str(settings.data_dir / "profile") if profile else None}


def ours_in_profile(path: str) -> tuple[float, float]:
    """Seconds inside ``flows/flow_metrics.py``'s functions (cumulative, outermost) and
    the profile's total."""
    stats = pstats.Stats(path)
    ours = sum(cum for (file, _line, name), (_cc, _nc, _tt, cum, _callers)
               in stats.stats.items()  # type: ignore[attr-defined]
               if file.endswith("flow_metrics.py") and name in TIMED)
    return ours, stats.total_tt  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path", nargs="?", type=Path, default=REAL_DATA)
    parser.add_argument("--limit", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--baseline", type=Path, default=None)
    args = parser.parse_args()
    print(f"machine: {describe()}")
    runs = [(mode, None) for mode in MODES]
    if args.baseline is not None:
        runs += [(mode, args.baseline.resolve()) for mode in MODES if MODES[mode][1]]
    names = [("baseline " if tree else "") + mode for mode, tree in runs]
    cpu: dict[str, list[float]] = {name: [] for name in names}
    spent: dict[str, list[float]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as tmp, embedded_services(Path(tmp)) as (kafka, redis):
        sent = replay(args.path, kafka, "transactions", "transactions.dead",
                      limit=args.limit).sent
        print(f"replayed {sent:,} events")
        for r in range(args.rounds):
            for (mode, tree), name in zip(runs, names):
                slug = name.replace(" ", "-")
                settings = Settings(Path(tmp) / f"{slug}{r}", kafka, redis,
                                    prefix=f"split-{slug}{r}")
                load = os.getloadavg()[0]
                env = child_env(settings) | ({"PYTHONPATH": str(tree)} if tree else {})
                done = subprocess.run(
                    [sys.executable, __file__, "--child", mode, *(["--profile"] if
                                                                   args.profile else [])],
                    env=env, capture_output=True, text=True, check=True)
                figures = json.loads(done.stdout.strip().splitlines()[-1])
                cpu[name].append(figures["cpu"])
                ours = sum(figures["spent"].values())
                line = (f"round {r + 1}, {name:>16}: {figures['cpu']:.2f} s CPU, "
                        f"{figures['rows']:,} rows (load average {load:.2f} before)")
                if figures["profile"]:
                    ours, total = ours_in_profile(figures["profile"])
                    line += f"; profiled: our bookkeeping {ours:.3f} s of {total:.2f} s"
                elif MODES[mode][1]:
                    line += "; our bookkeeping " + ", ".join(
                        f"{name} {s * 1000:.0f} ms" for name, s in figures["spent"].items())
                spent[name].append(ours)
                print(line, flush=True)
    off = statistics.median(cpu["off"])
    for (mode, _tree), name in zip(runs, names):
        median = statistics.median(cpu[name])
        print(f"{name:>16}: median {median:.2f} s CPU ({(median / off - 1) * 100:+.1f}% of "
              "off)" + (f", our bookkeeping {statistics.median(spent[name]) / off * 100:.2f}% "
                        "of off's CPU" if MODES[mode][1] else "")
              + f" = {median / sent * 1e6:.1f} us/event")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    if "--child" in sys.argv:
        mode = sys.argv[sys.argv.index("--child") + 1]
        from basketflow.config import load_settings
        print(json.dumps(child(mode, load_settings(), "--profile" in sys.argv)))
    else:
        main()
