"""The generic engine against the hand-written ``ProductState`` on the built-in ``product``
view.

Reads a Kaggle file (default: the real extract), groups its valid events by event hour and
product in file order, and folds every product's lines hour by hour, the clock at each
hour's start (as the flow's feature step does), through the ``ProductFolder``: once over
the hand-written state (baseline: what the flow and the backfill ran before the engine
computed the view, kept in ``tests/features/hand_written_product.py`` as the reference)
and once over the generic engine's state of the view's declaration (what they run now),
in turns over ``--rounds``, in one process. Also times the states alone: every line
folded in (``update``), in event-time order and interleaved as from ``--partitions``
partitions (the order the flow's product step gets them in), then the values as of
the last change up to the hour end of each product's latest line, a day and a week
later. Prints
events/s of each (CPU time), the ratios to the hand-written time, and whether every row,
online value and late line of the two folders is the same.

    python benchmarks/product_engine.py [PATH.csv[.gz]] [--limit N] [--rounds N]
                                        [--partitions N]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

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
#: The live flow's lateness for products (``flows/live.py``); for customers here too, none
#: is late (the clock is each hour's start, the file in order).
LATENESS = 10 * 365 * 86_400
Hours = dict[int, dict[str, list[Transaction]]]
#: A folder of one entity (a product's, a customer's).
F = TypeVar("F", bound=Any)


def by_hour(path: Path, limit: int | None) -> Hours:
    """The file's valid events by event hour, then product, in file order."""
    out: Hours = {}
    for n, e in enumerate(e for e in read_events(path, [0]) if isinstance(e, Transaction)):
        if limit is not None and n >= limit:
            break
        out.setdefault(e.ts // HOUR, {}).setdefault(e.stock_code, []).append(e)
    return out


def fold_by_hour(folder: Callable[[], F], hours: Hours,
                 ) -> tuple[list[Any], dict[str, F], int]:
    """Every entity's updates, hour by hour, the clock at each hour's start, with a
    folder per entity (``folder()``); the folders, and the clock of the last hour."""
    folders: dict[str, F] = {}
    out: list[Any] = []
    since = 0
    for hour in sorted(hours):
        clock = hour * HOUR
        for entity, events in hours[hour].items():
            state = folders.get(entity)
            if state is None:
                state = folders[entity] = folder()
            out.append(state.fold(entity, events, LATENESS, clock, since))
        since = clock
    return out, folders, since


def folded(folder: Callable[[], ProductFolder], hours: Hours) -> list[Any]:
    """Every product's updates (rows, values, late lines), hour by hour, then with the
    clock past every window."""
    out, folders, since = fold_by_hour(folder, hours)
    end = (max(hours) + 800) * HOUR
    out += [state.fold(product, [], LATENESS, end, since) for product, state in folders.items()]
    return out


def interleaved(hours: Hours, partitions: int, seed: int = 1) -> list[Transaction]:
    """The lines as the flow's product step gets them: split by customer over
    ``partitions`` (as the topic is), each in file order, read in turns of 100 to 1,000
    lines from a partition picked at random, so one product's lines arrive out of order."""
    parts: list[list[Transaction]] = [[] for _ in range(partitions)]
    for hour in sorted(hours):
        for events in hours[hour].values():
            for e in events:
                parts[zlib.crc32(e.entity_id.encode()) % partitions].append(e)
    for part in parts:
        part.sort(key=lambda e: e.ts)
    rng, at, out = random.Random(seed), [0] * partitions, []
    while any(at[p] < len(parts[p]) for p in range(partitions)):
        p, n = rng.randrange(partitions), rng.randint(100, 1_000)
        out += parts[p][at[p]:at[p] + n]
        at[p] += n
    return out


def states_alone(state: Callable[[], Any], lines: list[Transaction]) -> list[Any]:
    """Every product's lines folded into a state in the order given, then its values as
    of the hour end of its latest line, and of a day and a week later (what the flow
    reads of it)."""
    states: dict[str, Any] = {}
    for e in lines:
        s = states.get(e.stock_code)
        if s is None:
            s = states[e.stock_code] = state()
        s.update(e)
    out = []
    for _, s in sorted(states.items()):
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


def contest(contenders: dict[str, Callable[[], list[Any]]], rounds: int,
            events: int) -> dict[str, list[Any]]:
    """Run every contender ``rounds`` times in turns; print each one's best events/s beside
    its hand-written twin's (``engine X`` against ``hand-written X``); each one's result."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    results: dict[str, list[Any]] = {}
    for _ in range(rounds):
        for name, run in contenders.items():
            seconds, results[name] = timed(run)
            times[name].append(seconds)
    best = {name: min(t) for name, t in times.items()}
    width = max(map(len, contenders))
    for name, seconds in best.items():
        baseline = best["hand-written " + name.split(" ", 1)[1]]
        print(f"{name:{width}} {events / seconds:>10,.0f} events/s  ({seconds:.2f} s of CPU, "
              f"best of {rounds}; {seconds / baseline:.2f} x the hand-written time)")
    return results


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
    parser.add_argument("--partitions", type=int, default=4,
                        help="partitions the interleaved lines come from [4]")
    args = parser.parse_args()
    print(describe())
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    hours = by_hour(args.path, args.limit)
    events = sum(len(evs) for products in hours.values() for evs in products.values())
    products = len({p for ps in hours.values() for p in ps})
    print(f"{events:,} events of {products:,} products in {len(hours):,} hours "
          f"from {args.path.name}")
    in_order = interleaved(hours, 1)
    mixed = interleaved(hours, args.partitions)
    contenders: dict[str, Callable[[], list[Any]]] = {
        "hand-written folder": lambda: folded(HandWrittenProductFolder, hours),
        "engine folder": lambda: folded(ProductFolder, hours),
        "hand-written state": lambda: states_alone(ProductState, in_order),
        "engine state": lambda: states_alone(PRODUCT_ENGINE.state, in_order),
        "hand-written state, interleaved": lambda: states_alone(ProductState, mixed),
        "engine state, interleaved": lambda: states_alone(PRODUCT_ENGINE.state, mixed),
    }
    results = contest(contenders, args.rounds, events)
    same_folders = comparable(results["engine folder"]) == \
        comparable(results["hand-written folder"])
    rows = sum(len(u.rows) for u in results["engine folder"] if u is not None)
    print(f"folders' updates identical (rows, values with types, late lines): {same_folders}; "
          f"{rows:,} rows")
    for way in ("state", "state, interleaved"):
        print(f"{way}: values identical: "
              f"{results['engine ' + way] == results['hand-written ' + way]}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
