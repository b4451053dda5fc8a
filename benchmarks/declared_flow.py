"""The live flow with views the team declares against the flow with the built-in views
alone, in one run, over the same topic.

Replays a Kaggle file (default: the real extract) into an embedded broker, then runs
the flow to the end in one process (both parts, as ``run --one-process``; no recovery
snapshots), in turns: with no feature repository (baseline: the built-in views alone),
and with a repository declaring views of its own (``--views``: ``christmas``, the
README's Christmas view; ``customer``, a copy of the built-in customer view under
another name; or both), each on a fresh data directory and key prefix. Prints events/s
end to end (first message consumed to last row written) and with start-up, the feature
rows and online writes of each, and the ratio of the times. Starts its own embedded
broker and Redis-protocol server.

    python benchmarks/declared_flow.py [PATH.csv[.gz]] [--views christmas,customer]
                                       [--rounds N] [--limit N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import REAL_DATA, describe  # noqa: E402

from basketflow.app.services import embedded_services  # noqa: E402
from basketflow.config import Settings  # noqa: E402
from basketflow.flows.live import RunOptions, run_live  # noqa: E402
from basketflow.producers.replay import replay  # noqa: E402
from basketflow.schemas.default_repository import FILES  # noqa: E402

README = Path(__file__).resolve().parents[1] / "README.md"


def view_sources() -> dict[str, str]:
    """The declared views this benchmark can add, by name: their files' text."""
    text = README.read_text()
    start = text.index("```python\n", text.index("say `features/christmas.py`")) + 10
    customer = FILES[0].read_text().replace('name="customer"', 'name="customer_declared"')
    return {"christmas": text[start:text.index("```", start)],
            "customer": customer.replace("customer = View(", "customer_declared = View(")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", type=Path, default=REAL_DATA)
    parser.add_argument("--views", default="christmas,customer")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="only the first N lines")
    args = parser.parse_args()
    sources = view_sources()
    print(describe())
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp, embedded_services(Path(tmp)) as (kafka, redis):
        sent = replay(args.path, kafka, "transactions", "transactions.dead", limit=args.limit)
        print(f"{sent.sent:,} events replayed from {args.path.name}")
        repository = Path(tmp) / "features"
        repository.mkdir()
        for name in args.views.split(","):
            (repository / f"{name}.py").write_text(sources[name])
        variants = {"built-in views": None, f"+ declared ({args.views})": repository}
        best: dict[str, tuple[float, float, int, int]] = {}
        for turn in range(args.rounds):
            for n, (name, folder) in enumerate(variants.items()):
                settings = Settings(Path(tmp) / f"r{turn}v{n}", kafka, redis,
                                    prefix=f"bench{turn}v{n}", feature_repository=folder)
                wall = time.perf_counter()
                stats = run_live(settings, stop_at_end=True, options=RunOptions())
                wall = time.perf_counter() - wall
                if name not in best or stats.seconds < best[name][0]:
                    best[name] = (stats.seconds, wall, stats.feature_rows,
                                  stats.online_writes)
        for name, (seconds, wall, rows, writes) in best.items():
            print(f"{name:34} {sent.sent / seconds:>9,.0f} events/s end to end "
                  f"({seconds:.1f} s; {wall:.1f} s with start-up; best of {args.rounds}), "
                  f"{rows:,} feature rows, {writes:,} online writes")
        base, declared = (best[name][0] for name in variants)
        print(f"time with declared views / without: {declared / base:.2f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
