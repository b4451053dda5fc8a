"""The model registry's costs, each beside a baseline from the same run.

1. Registering a version (:meth:`Registry.register`: pickle, sha256, artifact written
   and fsynced, one SQLite transaction, retention) of a model as the flow has it (tens of
   kB) and of one grown to under 5 MB, against the checkpoint it replaces (main's
   ``save_checkpoint``: the pickle and its sidecar written twice, the file and its
   history copy), median of ``--repeat`` writes each.
2. The live flow's events/s with scoring on, to the end of a topic (one process, no
   recovery), this tree against a baseline tree (``git archive main | tar -x -C DIR``),
   each in a child process of its own on a copy of the same labelled data directory
   whose champion was trained on the first five months (``models train``), so both score
   every basket update and learn the months after; alternated ``--rounds`` times.

    git archive main | tar -x -C /tmp/registry-baseline
    python benchmarks/registry.py --baseline /tmp/registry-baseline [--rows 30000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402

HERE = Path(__file__).resolve().parents[1]

#: Run in a child with a tree's code first on its path: the median seconds of writing
#: a model of ``features`` one-hot inputs ``repeat`` times, by the tree's own way.
_WRITE = """
import json, statistics, sys, tempfile, time
from pathlib import Path
from basketflow.models.classifier import BasketClassifier, classifier_features
features, repeat = int(sys.argv[1]), int(sys.argv[2])
model = BasketClassifier("seg-bench")
for i in range(max(features, 2)):
    model.learn(classifier_features({"value": 10.0 + i, "lines": 2,
                                     "country": f"c{i}"}, None), f"k{i % 12}")
times = []
with tempfile.TemporaryDirectory() as tmp:
    try:
        from basketflow.models.registry import Lineage, Registry
        registry = Registry(Path(tmp))
        def write(n):
            model.learn(classifier_features({"value": 1.0, "lines": 1}, None), "k0")
            return registry.register(model, Lineage.of(model, "flow", clock=n), {}).bytes
    except ImportError:
        from basketflow.models.classifier import save_checkpoint
        def write(n):
            model.learn(classifier_features({"value": 1.0, "lines": 1}, None), "k0")
            save_checkpoint(model, Path(tmp) / "classifier.pkl", event_time=n)
            return (Path(tmp) / "classifier.pkl").stat().st_size
    for n in range(repeat):
        start = time.perf_counter()
        size = write(n)
        times.append(time.perf_counter() - start)
print(json.dumps({"bytes": size, "median": statistics.median(times),
                  "p90": statistics.quantiles(times, n=10)[-1]}))
"""

#: Run in a child: the flow with scoring to the end of the topic on a data directory.
_FLOW = """
import json, sys
from pathlib import Path
from basketflow.config import Settings
from basketflow.flows.live import RunOptions, run_live
from basketflow.reports.segments import scoring_config
data, kafka, redis, prefix = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
stats = run_live(Settings(data, kafka, redis, prefix=prefix), stop_at_end=True,
                 options=RunOptions(recovery_dir=None), scoring=scoring_config(data))
print(json.dumps({"events": stats.events, "seconds": stats.seconds,
                  "scores": stats.scores}))
"""


def child(tree: Path, code: str, *args: str) -> dict[str, float]:
    """Run ``code`` with ``tree``'s basketflow first on the path; its JSON line."""
    env = os.environ | {"PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=tree,
                          capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"child failed in {tree}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def registration(baseline: Path, repeat: int) -> None:
    for features in (300, 6_000):  # about the flow's model's size; under 5 MB
        new = child(HERE, _WRITE, str(features), str(repeat))
        old = child(baseline, _WRITE, str(features), str(repeat))
        print(f"register a {new['bytes'] / 1e6:.2f} MB model: {new['median'] * 1e3:.1f} ms "
              f"p50, {new['p90'] * 1e3:.1f} ms p90 (baseline checkpoint of "
              f"{old['bytes'] / 1e6:.2f} MB: {old['median'] * 1e3:.1f} ms p50, "
              f"{old['p90'] * 1e3:.1f} ms p90; ratio of p50s "
              f"{new['median'] / old['median']:.2f}); load {load()}")


def labelled_data(root: Path, rows: int) -> Path:
    """A data directory with the offline store of ``rows`` synthetic lines and labels."""
    from basketflow.app.model_registry import train
    from basketflow.config import Settings
    from basketflow.flows.backfill import file_events, run_backfill
    from basketflow.flows.live import FeatureOutputs, RunOptions
    from basketflow.producers.synthetic import write_csv
    from basketflow.reports.segments import assign_customers, fit_segments
    source = root / "events.csv"
    write_csv(source, rows=rows, seed=7, start=date(2011, 1, 1), end=date(2011, 9, 30))
    data = root / "labelled"
    run_backfill(file_events(source, [0]), FeatureOutputs(None, "b", data / "offline"),
                 RunOptions(snapshot_seconds=3600))
    fit_segments(data, date(2011, 5, 31), k=8)
    assign_customers(data)
    train(Settings(data, None, None), until=date(2011, 5, 31))
    shutil.rmtree(data / "offline")
    return source


def flow(baseline: Path, rows: int, rounds: int) -> None:
    from basketflow.app.services import embedded_services
    from basketflow.producers.replay import replay
    with tempfile.TemporaryDirectory() as tmp, \
            embedded_services(Path(tmp) / "servers") as (kafka, redis):
        root = Path(tmp)
        source = labelled_data(root, rows)
        replay(source, kafka, "transactions", "transactions.dead")
        rates: dict[str, list[float]] = {"this": [], "baseline": []}
        for n in range(rounds):
            for name, tree in (("baseline", baseline), ("this", HERE)):
                data = root / f"{name}-{n}"
                shutil.copytree(root / "labelled", data)
                got = child(tree, _FLOW, str(data), kafka, redis, f"{name}{n}")
                rate = got["events"] / got["seconds"]
                rates[name].append(rate)
                print(f"flow with scoring, {name}, round {n + 1}: {got['events']:,.0f} "
                      f"events, {got['scores']:,.0f} scores, {rate:,.0f} events/s; "
                      f"load {load()}")
        this, base = statistics.median(rates["this"]), statistics.median(rates["baseline"])
        print(f"flow with scoring: {this:,.0f} events/s (baseline {base:,.0f}; ratio "
              f"{this / base:.2f}), medians of {rounds} rounds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True,
                        help="a tree of main's code (git archive main | tar -x -C DIR)")
    parser.add_argument("--rows", type=int, default=30_000,
                        help="synthetic lines of the flow's run (0: no flow run)")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(f"machine: {describe()}; load {load()}")
    start = time.perf_counter()
    registration(args.baseline, args.repeat)
    if args.rows:
        flow(args.baseline, args.rows, args.rounds)
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
