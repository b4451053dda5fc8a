"""The feature step of a declared view as the live flow runs it: an entity's events in
batches, with the flow's clock after each and the state pickled and restored between
them (a recovery snapshot), give the same rows (time, ``seq``, values) as the whole
stream folded at once (where no event time is split over two batches), as ``backfill
--views`` folds it; an event behind the rows written has every row after it written
again, each the reference's (the tiles the clock passed kept; a late line of an earlier
invoice of the latest time making it the latest again); a changed view starts afresh; a
guest's state is dropped once its longest window and the allowed lateness have passed,
its rows all written, and a line of it behind that is late."""

from __future__ import annotations

import pickle
from dataclasses import replace

import msgspec
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from basketflow.features.declared_folder import NEVER_LATE, DeclaredFolder, declared_step
from basketflow.features.declared_state import Engine
from basketflow.schemas.declare import E, Feature, View, agg, hours
from basketflow.schemas.events import Transaction
from basketflow.schemas.records import FeatureUpdate, LogRow, Work
from tests.features.test_declared_state import DAY, START, everything, line, streams


@pytest.fixture(scope="module")
def view(tmp_path_factory: pytest.TempPathFactory) -> View:
    return everything(tmp_path_factory.mktemp("repository"))


def rows_at_once(engine: Engine, events: list[Transaction], clock: int) -> list[LogRow]:
    update = DeclaredFolder(engine).fold("c1", events, NEVER_LATE, clock)
    return [] if update is None else update.rows


@hypothesis_settings(max_examples=150, deadline=None)
@given(events=streams(), cuts=st.lists(st.integers(1, 24), max_size=5),
       waits=st.lists(st.floats(0, 1), min_size=6, max_size=6))
def test_batches_clocks_and_snapshots_give_the_rows_of_one_fold(
        view: View, events: list[Transaction], cuts: list[int], waits: list[float]) -> None:
    engine = Engine(view)
    step = declared_step(engine, NEVER_LATE)
    # batches end between event times (lines of one time split over two batches give a
    # row after each part: the same values in effect, more rows)
    bounds = sorted({0, len(events), *(c for c in cuts if c < len(events)
                                       and events[c - 1].ts != events[c].ts)})
    state, rows = None, []
    for n, (start, end) in enumerate(zip(bounds, bounds[1:])):
        batch = events[start:end]
        # the clock after a batch: up to the entity's next event (a watermark), or at the
        # end of the input the newest event time
        following = events[end].ts if end < len(events) else batch[-1].ts + 1
        clock = batch[-1].ts + int(waits[n] * (following - 1 - batch[-1].ts))
        state, updates = step(state, Work("c1", batch, clock))
        rows += [row for update in updates for row in update.rows]
        state = pickle.loads(pickle.dumps(state))  # a snapshot, restored
    state, updates = step(state, Work("c1", [], events[-1].ts))  # the end: a no-op clock
    rows += [row for update in updates for row in update.rows]
    assert rows == rows_at_once(engine, events, events[-1].ts)


def behind(event: Transaction, n: int, quantity: int, code: str) -> Transaction:
    """A purchase line at ``event``'s time and of its invoice (an invoice's lines share
    their time, as in the data), arriving after the rows past it were written."""
    return msgspec.structs.replace(event, event_id=f"late-{n}", quantity=quantity,
                                   unit_price=2.0, is_cancellation=False, is_product=True,
                                   stock_code=code)


def assert_rows_written_again(view: View, folder: DeclaredFolder, folded: list[Transaction],
                              again: FeatureUpdate | None, clock: int) -> None:
    """``again``, the update of the line folded in last, has a row at the latest event time
    and one at every later moment up to ``clock`` at which a tile leaves a window, changed
    or not, each with every event's ``seq`` and the reference's values."""
    assert again is not None
    latest = max(e.ts for e in folded)
    moments = [latest, *folder.state.changes(latest, clock)]
    assert [row.ts for row in again.rows] == moments
    for row in again.rows:
        assert row.seq == len(folded)
        expected = view.reference(folded, row.ts)
        assert row.values.keys() == expected.keys()
        for name, value in expected.items():
            assert row.values[name] == pytest.approx(value, abs=1e-9), (name, row.ts)


@hypothesis_settings(max_examples=60, deadline=None)
@given(events=streams(), lead=st.integers(0, 40 * DAY),
       lines=st.lists(st.tuples(st.integers(0, 24), st.integers(1, 5),
                                st.sampled_from(["P0", "P9"])), min_size=1, max_size=3))
def test_an_event_behind_the_rows_has_the_rows_after_it_written_again(
        view: View, events: list[Transaction], lead: int,
        lines: list[tuple[int, int, str]]) -> None:
    # the clock up to 40 days past the last event: past the longest window (30 days) of
    # the tiles of the first events, which the rows written again still need
    engine = Engine(view)
    folder = DeclaredFolder(engine)
    clock = events[-1].ts + lead
    folder.fold("c1", events, NEVER_LATE, clock)
    folded = list(events)
    for n, (pick, quantity, code) in enumerate(lines):
        late = behind(events[pick % len(events)], n, quantity, code)
        folded.append(late)
        again = folder.fold("c1", [late], NEVER_LATE)
        assert_rows_written_again(view, folder, folded, again, max(clock, late.ts))


def test_a_line_of_an_earlier_invoice_of_the_same_moment_makes_it_the_latest_again(
        view: View) -> None:
    # every line at one moment (--hypothesis-seed=4): invoice 1, then invoice 2, then a
    # late line of invoice 1, whose lines (the first included) are the latest basket
    events = [line("c1", 0, START, "c11", 1, 100, "buy", "P0"),
              line("c1", 1, START, "c12", 1, 100, "buy", "P2")]
    folder = DeclaredFolder(Engine(view))
    folder.fold("c1", events, NEVER_LATE, START + 2 * DAY)
    late = behind(events[0], 0, 3, "P9")
    again = folder.fold("c1", [late], NEVER_LATE)
    assert_rows_written_again(view, folder, [*events, late], again, START + 2 * DAY)
    assert again is not None
    assert again.rows[0].values["basket_products"] == 2  # P0 and P9 (was 1: P9 alone)
    assert again.rows[0].values["basket_value"] == 7.0


def test_the_rows_written_again_keep_the_tiles_the_clock_has_passed(view: View) -> None:
    # lines 29 days apart, rows written 2 days on: the first line's tile has left every
    # window at the clock but not at the last line, whose row a late line writes again
    events = [line("c1", 0, START, "c11", 1, 100, "buy", "P0"),
              line("c1", 1, START + 29 * DAY, "c12", 1, 100, "buy", "P2")]
    folder = DeclaredFolder(Engine(view))
    clock = START + 31 * DAY
    folder.fold("c1", events, NEVER_LATE, clock)
    late = behind(events[0], 0, 3, "P9")
    again = folder.fold("c1", [late], NEVER_LATE)
    assert_rows_written_again(view, folder, [*events, late], again, clock)
    assert again is not None
    assert again.rows[0].values["products_30d"] == 3  # P0, P2 and P9 (was 2: P0 evicted)


def test_a_snapshot_from_before_several_latest_invoices_were_kept_restores(
        view: View) -> None:
    events = [line("c1", 0, START, "c11", 1, 100, "buy", "P0")]
    folder = DeclaredFolder(Engine(view))
    folder.fold("c1", events, NEVER_LATE, START)
    invoice, latest, open_invoices = folder.state.basket
    old_form = (invoice, (latest, 0), open_invoices[invoice], 1)
    folder.state.basket = old_form  # type: ignore[assignment]
    restored = pickle.loads(pickle.dumps(folder))
    restored.attach(Engine(view), NEVER_LATE)
    assert restored.state.basket == (invoice, latest, open_invoices)
    assert restored.state.values(START) == view.reference(events, START)


@hypothesis_settings(max_examples=5, deadline=None)
@given(events=streams())
def test_a_changed_view_starts_its_entities_afresh(view: View,
                                                    events: list[Transaction]) -> None:
    old = DeclaredFolder(Engine(view))
    old.fold("c1", events, NEVER_LATE, events[-1].ts)
    changed = replace(view, description="another")  # a new version
    step = declared_step(Engine(changed), NEVER_LATE)
    state, _ = step(pickle.loads(pickle.dumps(old)), Work("c1", [], events[-1].ts))
    assert state.seq == 0 and state.version == Engine(changed).version != old.version


#: A view whose longest window (6 hours) is shorter than a day's lateness.
SHORT = View("short", entity="customer_id", features=[
    Feature("spend", agg.sum(E.value), windows=hours(6), decimals=2),
    Feature("lines_ever", agg.count())])
HOUR = 3600


@pytest.mark.parametrize("lateness_hours", [2, 10])
def test_a_guest_s_state_is_dropped_once_its_window_and_the_lateness_have_passed(
        lateness_hours: int) -> None:
    step = declared_step(Engine(SHORT), lateness_hours * HOUR)
    kept = max(6, lateness_hours) * HOUR
    guest, tile = "guest-536365", START // HOUR * HOUR
    first = line(guest, 0, START + 60, "536365", 2, 150, "buy", "P0")
    for entity in (guest, "c1"):
        state, _ = step(None, Work(entity, [first], first.ts))
        state, _ = step(state, Work(entity, [], tile + kept - 1, first.ts))
        assert state is not None  # not yet
        state, updates = step(state, Work(entity, [], tile + kept, tile + kept - 1))
        rows = [(row.ts, row.values["spend_6h"]) for u in updates for row in u.rows]
        if entity == "c1":
            assert state is not None  # a customer may come back: never dropped
            continue
        assert state is None
        if lateness_hours < 6:  # its last row, the window empty, written before it went
            assert rows == [(tile + 6 * HOUR, 0)]
    # a line of the dropped guest arriving after is late, not the first of a new state
    copy = msgspec.structs.replace(first, event_id="copy")
    state, updates = step(None, Work(guest, [copy], tile + kept + HOUR, tile + kept))
    assert [late.event_id for u in updates for late in u.late] == ["copy"]
    assert not [row for u in updates for row in u.rows]
