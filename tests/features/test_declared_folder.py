"""The feature step of a declared view as the live flow runs it: an entity's events in
batches, with the flow's clock after each and the state pickled and restored between
them (a recovery snapshot), give the same rows (time, ``seq``, values) as the whole
stream folded at once (where no event time is split over two batches), as ``backfill --views`` folds it; an event behind the rows
written has every row after it written again; a changed view starts afresh."""

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
from basketflow.schemas.declare import View
from basketflow.schemas.events import Transaction
from basketflow.schemas.records import LogRow, Work
from tests.features.test_declared_state import everything, streams


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


@pytest.mark.xfail(strict=False, reason=(
    "known bug (docs/DESIGN.md, Known not to work yet): the rows written again after an "
    "event behind them can differ from the reference: a count_distinct missed a product "
    "first seen in that event (CI, 2026-12-05: products_30d 1 where the reference says "
    "2), and with every event at one moment a value differs too (--hypothesis-seed=4)"))
@hypothesis_settings(max_examples=40, deadline=None)
@given(events=streams())
def test_an_event_behind_the_rows_has_the_rows_after_it_written_again(
        view: View, events: list[Transaction]) -> None:
    engine = Engine(view)
    folder = DeclaredFolder(engine)
    clock = events[-1].ts + 2 * 86_400
    folder.fold("c1", events, NEVER_LATE, clock)  # rows written up to the clock
    late = msgspec.structs.replace(events[0], event_id="late", quantity=3, unit_price=2.0,
                                   is_cancellation=False, is_product=True, stock_code="P9")
    again = folder.fold("c1", [late], NEVER_LATE)
    assert again is not None
    moments = [events[-1].ts, *folder.state.changes(events[-1].ts, clock)]
    assert [row.ts for row in again.rows] == moments  # every one, changed or not
    for row in again.rows:
        assert row.seq == len(events) + 1
        expected = view.reference([*events, late], row.ts)
        assert row.values == pytest.approx(expected), row.ts


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
