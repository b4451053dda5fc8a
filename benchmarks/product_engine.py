"""The generic engine against the hand-written ``ProductState`` on the built-in ``product``
view.

Reads a Kaggle file (default: the real extract), groups its valid events by event hour and
product in file order, and folds every product's lines hour by hour, the clock at each
hour's start (as the flow's feature step does), through the ``ProductFolder``: once over
the hand-written state (baseline: what the flow and the backfill ran before the engine
computed the view, kept in ``tests/features/hand_written_product.py`` as the reference)
and once over the generic engine's state of the view's declaration (what they run now),
in turns over ``--rounds``, in one process. Also times the states alone: every line
folded in (``update``), then the values as of the last change up to the hour end of
each product's latest line, a day and a week later. Prints
events/s of each (CPU time), the ratios to the hand-written time, and whether every row,
online value and late line of the two folders is the same.

    python benchmarks/product_engine.py [PATH.csv[.gz]] [--limit N] [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' reference

from machine import REAL_DATA, describe  # noqa: E402

from basketflow.features.entity_features import PRODUCT_ENGINE, ProductFolder  # noqa: E402
from basketflow.producers.csv_source import read_events  # noqa: E402
from basketflow.schemas.events import Transaction  # noqa: E402
from tests.features.hand_written_product import (  # noqa: E402
    HandWrittenProductFolder,
    ProductState,
)

HOUR = 3600
#: The live flow's lateness for products (``flows/live.py``).
LATENESS = 10 * 365 * 86_400
Hours = dict[int, dict[str, list[Transaction]]]


def by_hour(path: Path, limit: int | None) -> Hours:
    """The file's valid events by event hour, then product, in file order."""
    out: Hours = {}
    for n, e in enumerate(e for e in read_events(path, [0]) if isinstance(e, Transaction)):
        if limit is not None and n >= limit:
            break
        out.setdefault(e.ts // HOUR, {}).setdefault(e.stock_code, []).append(e)
    return out


def folded(folder: Callable[[], ProductFolder], hours: Hours) -> list[Any]:
    """Every product's updates (rows, values, late lines), hour by hour, then with the
    clock past every window."""
    folders: dict[str, ProductFolder] = {}
    out: list[Any] = []
    since = 0
    for hour in sorted(hours):
        clock = hour * HOUR
        for product, events in hours[hour].items():
            state = folders.get(product)
            if state is None:
                state = folders[product] = folder()
            out.append(state.fold(product, events, LATENESS, clock, since))
        since = clock
    end = (max(hours) + 800) * HOUR
    out += [state.fold(product, [], LATENESS, end, since) for product, state in folders.items()]
    return out


def states_alone(state: Callable[[], Any], hours: Hours) -> list[Any]:
    """Every product's lines folded into a state, then its values as of the hour end of
    its latest line, and of a day and a week later (what the flow reads of it)."""
    states: dict[str, Any] = {}
    for hour in sorted(hours):
        for product, events in hours[hour].items():
            s = states.get(product)
            if s is None:
                s = states[product] = state()
            for e in events:
                s.update(e)
    out = []
    for s in states.values():
        last = max(s.tiles)
        for after in (0, 24, 168):
            moment = s.last_change((last + after) * HOUR + HOUR - 1)
            out.append((moment, s.values(moment)))
    return out


def timed(run: Callable[[], list[Any]]) -> tuple[float, list[Any]]:
    """CPU seconds of this process to run, and what it returned: CPU time, not wall time,
    so other work on a shared machine weighs less."""
    started = time.process_time()
    out = run()
    return time.process_time() - started, out


def comparable(updates: list[Any]) -> list[Any]:
    """Updates as plain values, types included (0 is not 0.0)."""
    return [None if u is None else (
        u.rows, {k: [(n, type(v), v) for n, v in vs.items()] for k, vs in u.values.items()},
        u.times, u.late, u.ts) for u in updates]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", type=Path, default=REAL_DATA)
    parser.add_argument("--limit", type=int, default=None, help="only the first N events")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(describe())
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    hours = by_hour(args.path, args.limit)
    events = sum(len(evs) for products in hours.values() for evs in products.values())
    products = len({p for ps in hours.values() for p in ps})
    print(f"{events:,} events of {products:,} products in {len(hours):,} hours "
          f"from {args.path.name}")
    contenders: dict[str, Callable[[], list[Any]]] = {
        "hand-written folder": lambda: folded(HandWrittenProductFolder, hours),
        "engine folder": lambda: folded(ProductFolder, hours),
        "hand-written state": lambda: states_alone(ProductState, hours),
        "engine state": lambda: states_alone(PRODUCT_ENGINE.state, hours),
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    results: dict[str, list[Any]] = {}
    for _ in range(args.rounds):
        for name, run in contenders.items():
            seconds, results[name] = timed(run)
            times[name].append(seconds)
    best = {name: min(t) for name, t in times.items()}
    for name, seconds in best.items():
        baseline = best["hand-written " + name.split(" ", 1)[1]]
        print(f"{name:20} {events / seconds:>10,.0f} events/s  ({seconds:.2f} s of CPU, best "
              f"of {args.rounds}; {seconds / baseline:.2f} x the hand-written time)")
    same_folders = comparable(results["engine folder"]) == \
        comparable(results["hand-written folder"])
    rows = sum(len(u.rows) for u in results["engine folder"] if u is not None)
    print(f"folders' updates identical (rows, values with types, late lines): {same_folders}; "
          f"{rows:,} rows")
    print("states' values identical: "
          f"{results['engine state'] == results['hand-written state']}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
