"""The built-in ``basket`` view on the generic engine against the hand-written
``BasketState`` it replaced (kept in ``tests/features/hand_written_basket.py``).

Reads a Kaggle file (default: the real extract) and, in one run, in turns over
``--rounds``: folds it hour by hour, per customer, with the clock at each hour's start
(as the flow's feature step does) through the customer folder (``CustomerFolder``: the
``customer`` and ``basket`` views) with the engine's basket and with the hand-written
one; and folds its lines in file order into the basket states alone, reading the values
after each purchase line. Prints CPU events/s of each, the ratio to the hand-written
time, and whether every update (rows, values with their types) is identical.

    python benchmarks/basket_engine.py [PATH.csv[.gz]] [--limit N] [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' reference

from machine import REAL_DATA, describe  # noqa: E402

from product_engine import HOUR, Hours, comparable, contest, fold_by_hour  # noqa: E402

from basketflow.features.entity_features import (  # noqa: E402
    BASKET_ENGINE,
    CustomerFolder,
)
from basketflow.producers.csv_source import read_events  # noqa: E402
from basketflow.schemas.events import Transaction  # noqa: E402
from tests.features.hand_written_basket import (  # noqa: E402
    BasketState,
    HandWrittenBasketFolder,
)


def by_hour(lines: list[Transaction]) -> Hours:
    """The lines by event hour, then customer, in file order."""
    out: Hours = {}
    for e in lines:
        out.setdefault(e.ts // HOUR, {}).setdefault(str(e.customer_id), []).append(e)
    return out


def folded(folder: Callable[[], CustomerFolder], hours: Hours) -> list[Any]:
    """Every customer's updates, hour by hour, the clock at each hour's start."""
    return fold_by_hour(folder, hours)[0]


def basket_values(lines: list[Transaction], new: Callable[[], Any],
                  values: Callable[[Any, Transaction], dict[str, Any] | None],
                  ) -> list[dict[str, Any]]:
    """Each customer's basket values after each purchase line (``values(state, line)``
    folds the line into the state and reads them, or None), a state per customer
    (``new()``)."""
    states: dict[str | None, Any] = {}
    out = []
    for e in lines:
        state = states.get(e.customer_id)
        if state is None:
            state = states[e.customer_id] = new()
        if (read := values(state, e)) is not None:
            out.append(read)
    return out


def engine_read(state: Any, e: Transaction) -> dict[str, Any] | None:
    """The engine's state folds ``e`` in; its values if ``e`` is a purchase line."""
    state.update(e)
    return None if e.is_cancellation or e.is_adjustment else state.values(e.ts)


def hand_written_read(state: BasketState, e: Transaction) -> dict[str, Any] | None:
    """``BasketState`` folds ``e`` in; its values if ``e`` joined the basket."""
    return state.values() if state.update(e) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", type=Path, default=REAL_DATA)
    parser.add_argument("--limit", type=int, default=None, help="only the first N events")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(describe())
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    lines = [e for e in read_events(args.path, [0]) if isinstance(e, Transaction)]
    lines = lines[:args.limit] if args.limit is not None else lines
    hours = by_hour(lines)
    print(f"{len(lines):,} events in {len(hours):,} hours from {args.path.name}")
    contenders: dict[str, Callable[[], list[Any]]] = {
        "hand-written folder": lambda: folded(HandWrittenBasketFolder, hours),
        "engine folder": lambda: folded(CustomerFolder, hours),
        "hand-written state": lambda: basket_values(lines, BasketState, hand_written_read),
        "engine state": lambda: basket_values(lines, BASKET_ENGINE.state, engine_read),
    }
    results = contest(contenders, args.rounds, len(lines))
    same = comparable(results["engine folder"]) == comparable(results["hand-written folder"])
    rows = sum(len(u.rows) for u in results["engine folder"] if u is not None)
    print(f"folders' updates identical (rows, values with types): {same}; {rows:,} rows")
    typed = [[(k, type(v), v) for k, v in vs.items()] for vs in results["engine state"]]
    theirs = [[(k, type(v), v) for k, v in vs.items()] for vs in results["hand-written state"]]
    print(f"states' values identical: {typed == theirs}; {len(typed):,} basket updates")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
