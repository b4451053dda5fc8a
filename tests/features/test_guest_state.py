"""A guest's state is dropped once its windows have passed, with every row it would have
written written, and a copy of its lines arriving after that is late, never a new guest."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from basketflow.features.entity_features import SEEN_IDS_KEPT_S, CustomerFolder, folder_step
from basketflow.features.seen_ids import DAY
from basketflow.flows.event_clock import CUSTOMER_WAKE_HOURS, ShardBatch, timer_step
from basketflow.schemas.events import GUEST_PREFIX, Transaction, parse_row
from basketflow.schemas.records import FeatureUpdate, LogRow, Work

START = datetime(2011, 1, 3, 12, 0)
LATENESS = 3600


def line(invoice: int, customer: str, minutes: int, n: int) -> Transaction:
    """Line ``n`` of ``invoice``, bought by ``customer`` ('' for a guest), ``minutes``
    after the start."""
    when = START + timedelta(minutes=minutes)
    stamp = f"{when.month}/{when.day}/{when.year} {when.hour}:{when.minute:02d}"
    event = parse_row([str(invoice), f"2{n:04d}", "ITEM", "2", stamp, "2.55", customer,
                       "United Kingdom"], f"test:{invoice}:{n}")
    assert isinstance(event, Transaction)
    return event


def stream(seed: int) -> list[Transaction]:
    """A shop over 200 days: one customer buying now and then, guests every few hours,
    some invoices of several lines, in event-time order."""
    rng = random.Random(seed)
    events, minutes, invoice = [], 0, 550_000
    while minutes < 200 * 24 * 60:
        minutes += rng.randint(30, 600)
        invoice += 1
        customer = "17850" if rng.random() < 0.2 else ""
        events.extend(line(invoice, customer, minutes, n) for n in range(rng.randint(1, 3)))
    return events


class KeptFolder(CustomerFolder):
    """A customer folder that is never dropped: the rule off."""

    __slots__ = ()

    def done(self, entity: str, clock: int | None) -> bool:
        return False


def run_steps(events: list[Transaction], batch: int, drop: bool
              ) -> tuple[list[LogRow], dict[str, dict], dict[str, CustomerFolder], int]:
    """The timer and feature steps over ``events`` in batches, as the flow chains them:
    the log rows, the latest values per entity, the folders kept at the end, and the
    timer wheel's scheduled entities. ``drop=False`` keeps every folder (the rule off)."""
    timers = timer_step(CUSTOMER_WAKE_HOURS)
    fold = folder_step(CustomerFolder if drop else KeptFolder, LATENESS)
    wheel, folders = None, {}
    rows: list[LogRow] = []
    latest: dict[str, dict] = {}
    for i in range(0, len(events) + batch, batch):
        chunk = events[i:i + batch]
        clock = chunk[-1].ts if chunk else events[-1].ts + 120 * DAY
        groups: dict[str, list[Transaction]] = {}
        for e in chunk:
            groups.setdefault(e.entity_id, []).append(e)
        wheel, works = timers(wheel, ShardBatch(list(groups.items()), clock))
        for entity, work in works:
            state, updates = fold(folders.get(entity), work)
            if state is None:
                folders.pop(entity, None)
            else:
                folders[entity] = state
            for update in updates:
                rows.extend(update.rows)
                for view, values in update.values.items():
                    latest.setdefault(entity, {})[view] = values
    assert wheel is not None
    return rows, latest, folders, len(wheel.scheduled)


def test_guests_are_dropped_once_their_windows_pass_and_nothing_written_changes() -> None:
    events = stream(7)
    kept_rows, kept_values, kept, _ = run_steps(events, 40, drop=False)
    rows, values, folders, scheduled = run_steps(events, 40, drop=True)
    assert rows == kept_rows and values == kept_values
    guests = [entity for entity in kept if entity.startswith(GUEST_PREFIX)]
    assert len(guests) > 300
    assert list(folders) == ["17850"]  # the customer stays; every guest is gone
    assert scheduled <= 1  # the wheel forgets them too


def in_effect(rows: list[LogRow]) -> dict[tuple[str, str, int], LogRow]:
    """The row in effect per view, entity and event time: the one with the highest
    ``seq`` (where a batch ends inside one event time, a lower one is written too)."""
    out: dict[tuple[str, str, int], LogRow] = {}
    for row in rows:
        key = (row.view, row.entity, row.ts)
        if key not in out or out[key].seq < row.seq:
            out[key] = row
    return out


def test_the_rule_does_not_depend_on_the_batches() -> None:
    events = stream(11)
    small, big = run_steps(events, 7, drop=True), run_steps(events, 300, drop=True)
    assert in_effect(small[0]) == in_effect(big[0]) and small[1] == big[1]
    assert list(small[2]) == list(big[2]) == ["17850"]


def test_a_copy_of_a_dropped_guests_line_is_late_not_a_new_guest() -> None:
    first = line(560_001, "", 0, 0)
    guest = first.entity_id
    fold = folder_step(CustomerFolder, LATENESS)
    state, _ = fold(None, Work(guest, [first], first.ts))
    assert state is not None
    tile_leaves = first.ts // 3600 * 3600 + SEEN_IDS_KEPT_S
    state, _ = fold(state, Work(guest, [], tile_leaves - 1))
    assert state is not None  # its 90-day window has not passed yet
    state, _ = fold(state, Work(guest, [], tile_leaves))
    assert state is None
    clock = first.ts + SEEN_IDS_KEPT_S + DAY
    state, updates = fold(None, Work(guest, [first], clock + DAY, since=clock))
    assert state is None  # nothing folded in, nothing kept
    _, [update] = fold(None, Work(guest, [first], clock))  # the first batch of a run,
    assert update.values and not update.late  # or one spanning the windows: folded in
    assert updates == [FeatureUpdate(guest, 0, {}, late=updates[0].late)]
    [late] = updates[0].late
    assert (late.event_id, late.ts, late.entity_ts) == (first.event_id, first.ts, clock)


def test_a_registered_customer_is_never_dropped() -> None:
    first = line(560_002, "17850", 0, 0)
    fold = folder_step(CustomerFolder, LATENESS)
    state, _ = fold(None, Work("17850", [first], first.ts))
    state, _ = fold(state, Work("17850", [], first.ts + 400 * DAY))
    assert state is not None and state.customer.values(first.ts + 400 * DAY)[
        "lifetime_orders"] == 1
    copy, updates = fold(state, Work("17850", [first], first.ts + 400 * DAY))
    assert copy is state and updates == []  # it remembers its own events: a copy is skipped
