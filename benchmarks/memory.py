"""Does a flow's memory stay bounded? ``basketflow run`` over N synthetic events at full
speed, resident memory of each flow process printed every ``--every`` events.

Generates N seeded synthetic events (a year of the shop: the 90-day windows fill in the
first quarter), replays them into the embedded broker, then runs ``basketflow run
--stop-at-end`` (both parts, recovery on, as a user runs it) with this tree's code and,
with ``--baseline DIR``, with another tree's (``git archive REV | tar -x -C DIR``), one
after the other on fresh data directories. Prints, per run, a row at every ``--every``
events each part has consumed (its RSS in MB), then each part's growth over the second
half of the stream, in MB per 100,000 events: about 0 when memory is bounded by windows
and entities.

    python benchmarks/memory.py [--events 2000000] [--every 100000] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from flow_watch import PARTS, sample, start_run  # noqa: E402
from machine import describe  # noqa: E402

from basketflow.app.services import embedded_services  # noqa: E402
from basketflow.config import Settings  # noqa: E402
from basketflow.producers.replay import replay  # noqa: E402
from basketflow.producers.synthetic import write_csv  # noqa: E402


def watch(tree: Path | None, settings: Settings, total: int, every: int
          ) -> dict[str, list[tuple[int, float]]]:
    """Run the flow to the end; per part, (events consumed, RSS MB) at each mark."""
    marks: dict[str, list[tuple[int, float]]] = {part: [] for part in PARTS}
    run = start_run(settings, "--stop-at-end", "--json", tree=tree)
    start = time.perf_counter()
    print(f"  {'events':>10} " + " ".join(f"{part + ' MB':>10}" for part in PARTS))
    while run.poll() is None:
        now = sample(run, settings)
        for part in PARTS:
            done = marks[part]
            next_mark = (len(done) + 1) * every
            if now.events[part] >= next_mark and now.rss.get(part):
                done.append((next_mark, now.rss[part]))
        row = min(len(m) for m in marks.values())
        if row and row > getattr(watch, "_printed", 0):
            watch._printed = row  # type: ignore[attr-defined]
            print(f"  {row * every:>10,} " + " ".join(
                f"{marks[part][row - 1][1]:>10.0f}" for part in PARTS), flush=True)
        time.sleep(0.05)
    watch._printed = 0  # type: ignore[attr-defined]
    if run.returncode:
        sys.exit(f"Error: the run failed with exit status {run.returncode}")
    seconds = time.perf_counter() - start
    print(f"  {total:,} events in {seconds:.1f} s ({total / seconds:,.0f} events/s with start-up)")
    return marks


def growth(marks: list[tuple[int, float]]) -> float:
    """MB per 100,000 events over the second half of the marks: the least-squares slope
    (a single reading moves with the garbage collector and the consumer's prefetch)."""
    half = marks[len(marks) // 2:]
    if len(half) < 2:
        return float("nan")
    xs, ys = [e for e, _ in half], [m for _, m in half]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return slope * 100_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--every", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--baseline", type=Path, help="a source tree to compare with")
    args = parser.parse_args()
    print(f"machine: {describe()}")
    trees: list[tuple[str, Path | None]] = [("this tree", None)]
    if args.baseline:
        trees.append((f"baseline {args.baseline}", args.baseline.resolve()))
    summary: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, embedded_services(Path(tmp)) as (kafka, redis):
        data = Path(tmp) / "synthetic.csv"
        write_csv(data, args.events, args.seed)
        sent = replay(data, kafka, "transactions", "transactions.dead").sent
        print(f"{sent:,} synthetic events (seed {args.seed}) in the topic")
        for i, (name, tree) in enumerate(trees):
            print(f"{name}:")
            settings = Settings(Path(tmp) / f"t{i}", kafka, redis, prefix=f"m{i}")
            marks = watch(tree, settings, sent, args.every)
            summary[name] = {part: growth(m) for part, m in marks.items()}
    print("growth over the second half, MB per 100,000 events:")
    for name, parts in summary.items():
        print(f"  {name}: " + ", ".join(f"{p} {g:+.1f}" for p, g in parts.items()))
    print(f"load average: {' '.join(f'{x:.1f}' for x in __import__('os').getloadavg())}")


if __name__ == "__main__":
    main()
