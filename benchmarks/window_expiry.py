"""What exact windows would cost: the two ways of issue #14, counted on a real file.

A W-day window at t holds the W*24 hourly tiles ending with t's hour, so between an
entity's events its windowed values change only when the flow's clock crosses the hour
in which one of its tiles (or the latest hour of one of its invoices, products or buyers)
leaves a window: ``h + W*24`` for a tile of hour ``h``. This prints, for the customer and
product views over the whole file:

- **rows at events**: the feature-log rows written at events: one per entity and event
  time for customers, one per entity and event hour for products (the finest the window
  rule needs; the product log now keeps one tile per product and event hour);
- **re-emit on expiry**: the extra rows (and Redis writes) if every entity whose values
  change at an hour boundary without an event gets a new row then, up to the file's last
  hour; per day (mean, max) and per event;
- **tiles at read time**: what a read would have to fetch and sum instead: live tiles
  per entity at the file's end (mean, p99, max) and the distinct-count members (products
  per customer, buyers per product) it would need too.

    python benchmarks/window_expiry.py [PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import REAL_DATA, describe  # noqa: E402

from basketflow.producers.csv_source import read_events  # noqa: E402
from basketflow.schemas.events import Transaction  # noqa: E402
from basketflow.schemas.features import CUSTOMER, PRODUCT  # noqa: E402

HOUR = 3600


def _pctl(values: list[int], q: float) -> int:
    """The q-quantile of values (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0


def expiry_hours(hours: set[int], windows_days: tuple[int, ...], last_hour: int) -> set[int]:
    """Hours after which an entity's windowed values change with no event of its own:
    ``h + W*24`` for every event hour ``h`` and window ``W``, up to ``last_hour``, less the
    hours in which it has an event anyway (that row is written today).

    >>> sorted(expiry_hours({0, 24}, (1,), 100))
    [48]
    """
    out = {h + w * 24 for h in hours for w in windows_days}
    return {h for h in out if h <= last_hour} - hours


def report(name: str, hours_by_entity: dict[str, set[int]], rows_at_events: int,
           windows_days: tuple[int, ...], last_hour: int, first_hour: int, events: int,
           members: dict[str, dict[str, int]]) -> None:
    """Print one view's figures."""
    extra_by_day: dict[int, int] = defaultdict(int)
    live_tiles: list[int] = []
    live_members: list[int] = []
    horizon = last_hour - max(windows_days) * 24
    for entity, hours in hours_by_entity.items():
        for h in expiry_hours(hours, windows_days, last_hour):
            extra_by_day[h // 24] += 1
        live_tiles.append(sum(1 for h in hours if h > horizon))
        live_members.append(sum(1 for h in members[entity].values() if h > horizon))
    days = (last_hour - first_hour) // 24 + 1
    extra = sum(extra_by_day.values())
    per_day = [extra_by_day.get(first_hour // 24 + d, 0) for d in range(days)]
    print(f"\n{name} view ({len(hours_by_entity):,} entities, windows {windows_days} days)")
    print(f"  rows at events:     {rows_at_events:>10,} log rows, {rows_at_events / days:>8,.0f} a day")
    print(f"  re-emit on expiry: +{extra:>10,} rows/writes, {extra / days:>8,.0f} a day "
          f"(max {max(per_day):,}), {extra / events:.3f} per event, "
          f"{(rows_at_events + extra) / rows_at_events:.2f}x the rows at events")
    print(f"  tiles at read time: live tiles per entity at the end mean "
          f"{statistics.fmean(live_tiles):.1f}, p99 {_pctl(live_tiles, 0.99)}, "
          f"max {max(live_tiles)}; distinct-count members mean "
          f"{statistics.fmean(live_members):.1f}, p99 {_pctl(live_members, 0.99)}, "
          f"max {max(live_members)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", type=Path, default=REAL_DATA)
    args = parser.parse_args()
    print(describe())
    started = time.perf_counter()
    customer_hours: dict[str, set[int]] = defaultdict(set)
    customer_times: dict[str, set[int]] = defaultdict(set)
    product_hours: dict[str, set[int]] = defaultdict(set)
    products_of: dict[str, dict[str, int]] = defaultdict(dict)
    buyers_of: dict[str, dict[str, int]] = defaultdict(dict)
    events = 0
    first = last = None
    for e in read_events(args.path):
        if not isinstance(e, Transaction):
            continue
        events += 1
        hour = e.ts // HOUR
        first = hour if first is None else min(first, hour)
        last = hour if last is None else max(last, hour)
        customer_hours[e.entity_id].add(hour)
        customer_times[e.entity_id].add(e.ts)
        product_hours[e.stock_code].add(hour)
        if e.is_product and not e.is_cancellation:
            products_of[e.entity_id][e.stock_code] = hour
            if e.customer_id:
                buyers_of[e.stock_code][e.customer_id] = hour
    assert first is not None and last is not None, "no valid events"
    print(f"{args.path.name}: {events:,} events, {(last - first) // 24 + 1} days, "
          f"read in {time.perf_counter() - started:.1f} s")
    report("customer", customer_hours, sum(map(len, customer_times.values())),
           CUSTOMER.windows_days, last, first, events, products_of)
    report("product", product_hours, sum(map(len, product_hours.values())),
           PRODUCT.windows_days, last, first, events, buyers_of)


if __name__ == "__main__":
    main()
