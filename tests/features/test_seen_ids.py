"""An entity's memory of the ids it folded in follows its windows, not its history, and a
copy of an event is never folded in twice, however old it is."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta

from basketflow.features.entity_features import (
    PRODUCT_REWRITE_S,
    SEEN_IDS_KEPT_S,
    CustomerFolder,
    ProductFolder,
)
from basketflow.features.seen_ids import DAY
from basketflow.schemas.events import Transaction, parse_row

START = datetime(2011, 1, 3, 12, 0)
DAYS = 200


def purchase(day: int) -> Transaction:
    """Customer 17850 buys product 85123A at noon on ``day`` (one invoice a day)."""
    when = START + timedelta(days=day)
    stamp = f"{when.month}/{when.day}/{when.year} {when.hour}:{when.minute:02d}"
    event = parse_row([str(540_000 + day), "85123A", "HEART", "2", stamp, "2.55", "17850",
                       "United Kingdom"], f"test:{day}")
    assert isinstance(event, Transaction)
    return event


def test_a_customer_remembers_its_longest_window_and_takes_older_copies_as_late() -> None:
    folder, history = CustomerFolder(), [purchase(d) for d in range(DAYS)]
    for event in history:
        folder.fold("17850", [event], 3600, clock=event.ts)
    assert len(folder.seen) <= SEEN_IDS_KEPT_S // DAY + 1 < DAYS
    values = folder.customer.values(folder.max_ts)
    recent = folder.fold("17850", [history[DAYS - 30]], 3600, clock=folder.max_ts)
    assert recent is None  # a copy inside the window: skipped, nothing moves
    old = folder.fold("17850", [history[5]], 3600, clock=folder.max_ts)
    assert old is not None and [e.event_id for e in old.late] == [history[5].event_id]
    assert folder.customer.values(folder.max_ts) == values  # never folded in twice
    assert folder.seq == DAYS


def test_a_product_forgets_what_its_rewrite_rule_makes_late() -> None:
    folder, history = ProductFolder(), [purchase(d) for d in range(DAYS)]
    for event in history:
        folder.fold("85123A", [event], 10 * 365 * DAY, clock=event.ts)
    kept = {day for day in folder.seen.days}
    assert min(kept) * DAY >= folder.max_ts - SEEN_IDS_KEPT_S - DAY
    assert folder.fold("85123A", [history[DAYS - 2]], 10 * 365 * DAY,
                       clock=folder.max_ts) is None
    old = folder.fold("85123A", [history[3]], 10 * 365 * DAY, clock=folder.max_ts)
    assert old is not None and len(old.late) == 1
    assert history[3].ts < folder.rows_through - PRODUCT_REWRITE_S
    assert folder.seq == DAYS


def test_the_ids_kept_by_day_survive_a_snapshot() -> None:
    folder = CustomerFolder()
    for event in (purchase(d) for d in range(DAYS)):
        folder.fold("17850", [event], 3600, clock=event.ts)
    copy = pickle.loads(pickle.dumps(folder))
    assert copy.seen.days == folder.seen.days and copy.seen.oldest == folder.seen.oldest
    assert copy.fold("17850", [purchase(DAYS - 1)], 3600) is None
