"""Start-up time of each command: the wall time of ``python -m basketflow.cli ARGS`` from
start to exit, for commands that end quickly (help, errors, small reads), and the heavy
libraries each one imported (scikit-learn, pandas, pyarrow, duckdb, bytewax, river,
numpy): a command imports only what it needs, so an unknown id answers as fast as a hit.

Runs against embedded servers of its own (started here, stopped at the end) with a small
generated file replayed and run through the flow, so ``features`` has a hit and a miss.
Prints the machine, then per command the median of ``--runs`` runs (default 5) and the
heavy libraries imported.

    python benchmarks/startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

HEAVY = ("sklearn", "pandas", "pyarrow", "duckdb", "bytewax", "river", "numpy",
         "confluent_kafka", "matplotlib")

COMMANDS: list[tuple[str, list[str]]] = [
    ("--version", ["--version"]),
    ("--help", ["--help"]),
    ("features list", ["features", "list"]),
    ("features describe customer", ["features", "describe", "customer"]),
    ("categories", ["categories"]),
    ("entities --limit 3", ["entities", "--limit", "3"]),
    ("features HIT", ["features", "HIT"]),
    ("features 00000 (unknown id)", ["features", "00000"]),
    ("features 00000 --json", ["features", "00000", "--json"]),
    ("score 00000 (unknown id)", ["score", "00000"]),
    ("status", ["status"]),
    ("replay missing.csv", ["replay", "missing.csv"]),
    ("backfill --from missing.csv", ["backfill", "--from", "missing.csv"]),
    ("generate --out /missing/x.csv", ["generate", "--out", "/missing/x.csv"]),
    ("report --date 1999-01-01", ["report", "--date", "1999-01-01"]),
    ("segment show (none fitted)", ["segment", "show"]),
]


def run_once(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, set[str], int]:
    """Wall seconds of one run, the heavy libraries it imported, its exit status."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "basketflow.cli", *args],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=120)
    seconds = time.perf_counter() - start
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    return seconds, {h for h in HEAVY if h in imported}, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    from basketflow.app.services import embedded_services
    from basketflow.config import Settings
    from basketflow.flows.live import RunOptions, run_live
    from basketflow.producers.replay import replay
    from basketflow.producers.synthetic import write_csv

    print(describe())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with embedded_services(root / "servers") as (bootstrap, redis_url):
            settings = Settings(root / "data", bootstrap, redis_url)
            write_csv(root / "sample.csv", rows=5000, seed=7)
            replay(root / "sample.csv", bootstrap, settings.topic, settings.dead_topic)
            run_live(settings, stop_at_end=True, options=RunOptions())
            from basketflow.app.features import latest_entities
            hit = latest_entities(settings, "customer", 1)[0].entity
            env = {**os.environ, "BASKETFLOW_DATA_DIR": str(settings.data_dir),
                   "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "REDIS_URL": redis_url,
                   "COLUMNS": "80"}
            print(f"median of {runs} runs, wall seconds from start to exit "
                  f"(python -X importtime; a bare `python -c pass` for scale)")
            base = [run_once(["--version"], env, root)[0] for _ in range(1)]  # warm the cache
            bare = statistics.median(
                _timed([sys.executable, "-c", "pass"], env) for _ in range(runs))
            print(f"  {'python -c pass':34} {bare:6.3f} s")
            del base
            for label, args in COMMANDS:
                args = [hit if a == "HIT" else a for a in args]
                results = [run_once(args, env, root) for _ in range(runs)]
                wall = statistics.median(r[0] for r in results)
                heavy = sorted(set().union(*(r[1] for r in results)))
                print(f"  {label:34} {wall:6.3f} s  exit {results[0][2]}  "
                      f"heavy imports: {', '.join(heavy) or 'none'}")


def _timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, capture_output=True, check=False)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
