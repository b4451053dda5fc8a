"""The generic engine against the hand-written one on the built-in ``customer`` view.

Reads a Kaggle file (default: the real extract), groups its valid events by customer in
event-time order, and computes every customer's feature rows twice in one run: by the
hand-written ``CustomerState`` (baseline, what the flow and the backfill run) and by the
generic engine over the view's declaration (``features/declared_state.py``), at the same
moments (each event time and each hour start where a tile leaves a window; a row where
the values changed). Prints events/s of each, their ratio, and how many rows are
identical, with the features that differ. Takes turns over ``--rounds``.

    python benchmarks/declared_engine.py [PATH.csv[.gz]] [--limit N] [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import REAL_DATA, describe  # noqa: E402

from basketflow.features.declared_folder import feature_rows
from basketflow.features.declared_state import Engine  # noqa: E402
from basketflow.features.feature_state import CustomerState  # noqa: E402
from basketflow.producers.csv_source import read_events  # noqa: E402
from basketflow.schemas.default_repository.customer import customer  # noqa: E402
from basketflow.schemas.events import Transaction  # noqa: E402

HOUR = 3600
Rows = Callable[[list[Transaction]], Iterator[tuple[int, dict[str, Any]]]]


def customers(path: Path, limit: int | None) -> dict[str, list[Transaction]]:
    """The file's valid events by customer, each customer's in event-time order."""
    out: dict[str, list[Transaction]] = {}
    for n, e in enumerate(e for e in read_events(path, [0]) if isinstance(e, Transaction)):
        if limit is not None and n >= limit:
            break
        out.setdefault(e.entity_id, []).append(e)
    for events in out.values():
        events.sort(key=lambda e: e.ts)
    return out


def hand_written_rows(events: list[Transaction]) -> Iterator[tuple[int, dict[str, Any]]]:
    """The baseline: ``CustomerState`` at the generic engine's moments."""
    spans = (24, 168, 720, 2160)
    state = CustomerState()
    moments = {e.ts for e in events} | {(e.ts // HOUR + h) * HOUR for e in events for h in spans}
    previous = None
    i = 0
    for moment in sorted(moments):
        while i < len(events) and events[i].ts <= moment:
            state.update(events[i])
            i += 1
        values = state.values(moment)
        if values != previous:
            yield moment, values
            previous = values


def timed(rows: Rows, by_customer: dict[str, list[Transaction]]
          ) -> tuple[float, dict[str, list[tuple[int, dict[str, Any]]]]]:
    """Seconds to compute every customer's rows, and the rows."""
    started = time.perf_counter()
    out = {c: list(rows(events)) for c, events in by_customer.items()}
    return time.perf_counter() - started, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", type=Path, default=REAL_DATA)
    parser.add_argument("--limit", type=int, default=None, help="only the first N events")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    print(describe())
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    by_customer = customers(args.path, args.limit)
    events = sum(map(len, by_customer.values()))
    print(f"{events:,} events of {len(by_customer):,} customers from {args.path.name}")
    engine = Engine(customer)
    generic: Rows = lambda evs: feature_rows(engine, evs)  # noqa: E731
    times: dict[str, list[float]] = {"hand-written": [], "generic": []}
    results = {}
    for _ in range(args.rounds):
        for name, rows in (("hand-written", hand_written_rows), ("generic", generic)):
            seconds, results[name] = timed(rows, by_customer)
            times[name].append(seconds)
    best = {name: min(t) for name, t in times.items()}
    for name, seconds in best.items():
        print(f"{name:13} {events / seconds:>10,.0f} events/s  ({seconds:.2f} s, best of "
              f"{args.rounds})")
    print(f"generic / hand-written time: {best['generic'] / best['hand-written']:.2f}")
    same = total = 0
    differing: Counter[str] = Counter()
    for c, rows in results["hand-written"].items():
        theirs = results["generic"][c]
        total += len(rows)
        if [ts for ts, _ in rows] != [ts for ts, _ in theirs]:
            differing["(row times)"] += 1
            continue
        for (_, a), (_, b) in zip(rows, theirs, strict=True):
            if a == b:
                same += 1
            else:
                differing.update(k for k in a if a[k] != b.get(k))
    print(f"rows identical: {same:,} of {total:,}; differing features: "
          f"{dict(differing.most_common()) or 'none'}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
