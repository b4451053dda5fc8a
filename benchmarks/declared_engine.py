"""The generic engine against the hand-written one on the built-in ``customer`` view.

Reads a Kaggle file (default: the real extract), groups its valid events by customer in
event-time order, and computes every customer's feature rows twice in one run: by the
hand-written ``CustomerState`` (baseline: what the flow and the backfill ran before the
engine computed the view, kept in ``tests/features/hand_written_customer.py`` as the
reference) and by the generic engine over the view's declaration
(``features/declared_state.py``, what they run now), at the same
moments (each event time and each hour start where a tile leaves a window; a row where
the values changed), in the same plain loop; with ``--baseline DIR`` (a tree of main:
``git archive main | tar -x -C DIR``) the generic engine of that tree too, in the same
run; and the generic engine through the feature step the flow and the backfill run
(``features/declared_folder.py``: ids, late events, rows), beside the built-in views'
(``CustomerFolder``, which writes the basket view's rows too).
Prints events/s of each, the ratios to the hand-written time, and how many rows are
identical, with the features that differ (and whether every row is the baseline
engine's). Takes turns over ``--rounds``.

    python benchmarks/declared_engine.py [PATH.csv[.gz]] [--limit N] [--rounds N]
                                         [--baseline DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' reference

from machine import REAL_DATA, describe  # noqa: E402

from basketflow.features.declared_folder import NEVER_LATE, feature_rows  # noqa: E402
from basketflow.features.entity_features import CustomerFolder  # noqa: E402
from basketflow.features.declared_state import Engine  # noqa: E402
from basketflow.schemas.declare import View  # noqa: E402
from basketflow.producers.csv_source import read_events  # noqa: E402
from basketflow.schemas.default_repository.customer import customer  # noqa: E402
from basketflow.schemas.events import Transaction  # noqa: E402
from tests.features.hand_written_customer import CustomerState  # noqa: E402

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


def plain_rows(state: Any, spans: tuple[int, ...],
               events: list[Transaction]) -> Iterator[tuple[int, dict[str, Any]]]:
    """A state's rows at the moments of the generic engine (each event time, each hour
    start where a tile leaves a window), where the values changed: its ``update`` and
    ``values``, and its ``evict`` where it has one."""
    evict = getattr(state, "evict", None)
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
        if evict is not None:
            evict(moment)


def hand_written_rows(events: list[Transaction]) -> Iterator[tuple[int, dict[str, Any]]]:
    """The baseline: ``CustomerState`` at the generic engine's moments."""
    return plain_rows(CustomerState(), (24, 168, 720, 2160), events)


def customer_folder_rows(events: list[Transaction]) -> Iterator[tuple[int, dict[str, Any]]]:
    """The built-in views through their feature step (``CustomerFolder``: ids, late
    events, rows up to the clock), with the clock where :func:`feature_rows` puts it: its
    customer rows (it writes the basket view's too, as the flow does)."""
    until = (max(e.ts for e in events) // HOUR + 2160) * HOUR
    update = CustomerFolder().fold("", events, NEVER_LATE, until)
    rows = [] if update is None else update.rows
    return iter([(row.ts, row.values) for row in rows if row.view == "customer"])


def generic_rows(engine: Any) -> Rows:
    """The generic engine (of this tree, or a baseline's ``Engine``) in the same plain
    loop as the hand-written state."""
    return lambda events: plain_rows(engine.state(), engine.spans, events)


def baseline_engine(tree: Path, view: View) -> Any:
    """The ``Engine`` of a baseline tree's ``features/declared_state.py`` over ``view``
    (loaded as a module of its own; it imports this tree's declarations)."""
    spec = importlib.util.spec_from_file_location(
        "baseline_declared_state", tree / "basketflow" / "features" / "declared_state.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Engine(view)


def timed(rows: Rows, by_customer: dict[str, list[Transaction]]
          ) -> tuple[float, dict[str, list[tuple[int, dict[str, Any]]]]]:
    """CPU seconds of this process to compute every customer's rows, and the rows: CPU
    time, not wall time, so other work on a shared machine weighs less."""
    started = time.process_time()
    out = {c: list(rows(events)) for c, events in by_customer.items()}
    return time.process_time() - started, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", type=Path, default=REAL_DATA)
    parser.add_argument("--limit", type=int, default=None, help="only the first N events")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--baseline", type=Path, default=None,
                        help="a tree of main whose generic engine to time too")
    args = parser.parse_args()
    print(describe())
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    by_customer = customers(args.path, args.limit)
    events = sum(map(len, by_customer.values()))
    print(f"{events:,} events of {len(by_customer):,} customers from {args.path.name}")
    engine = Engine(customer)
    contenders: dict[str, Rows] = {"hand-written": hand_written_rows,
                                   "generic": generic_rows(engine)}
    if args.baseline is not None:
        contenders["generic (baseline)"] = generic_rows(baseline_engine(args.baseline,
                                                                        customer))
    contenders["generic, feature step"] = lambda evs: iter(feature_rows(engine, evs))
    contenders["customer folder"] = customer_folder_rows
    times: dict[str, list[float]] = {name: [] for name in contenders}
    results = {}
    for _ in range(args.rounds):
        for name, rows in contenders.items():
            seconds, results[name] = timed(rows, by_customer)
            times[name].append(seconds)
    best = {name: min(t) for name, t in times.items()}
    for name, seconds in best.items():
        print(f"{name:22} {events / seconds:>10,.0f} events/s  ({seconds:.2f} s of CPU, best of "
              f"{args.rounds}; {seconds / best['hand-written']:.2f} x the hand-written "
              "time)")
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
    if "generic (baseline)" in results:
        print("rows identical to the baseline engine's: "
              f"{results['generic'] == results['generic (baseline)']}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
