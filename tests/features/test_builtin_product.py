"""The built-in ``product`` view computed by the generic engine from its declaration
(``schemas/default_repository/product.py``: read as of hour ends, its revenue an exact
sum in thousandths) equals, to the last bit, what the hand-written ``ProductState``
computed: its values at every hour end, the hour ends at which they change and the tiles
its feature log keeps, for random lines of one product arriving in any order with prices
of up to three decimals; the feature step's rows and online values for random batches
and clocks, and for the real file hour by hour; and a recovery snapshot of the
hand-written state (either of its forms) goes on with the values it would have had."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from basketflow.features.entity_features import (
    PRODUCT_ENGINE,
    ProductFolder,
    _product_state,
    product_tile_row,
)
from basketflow.features.feature_state import MILLI
from basketflow.producers.csv_source import read_events
from basketflow.schemas.events import Transaction
from basketflow.schemas.records import FeatureUpdate
from tests.features.hand_written_product import HandWrittenProductFolder, ProductState

HOUR = 3600
START = 1_291_161_600  # 2010-12-01 00:00 UTC
#: The live flow's lateness for products (``flows/live.py``): only the rewrite limit counts.
LATENESS = 10 * 365 * 86_400

lines = st.tuples(
    st.integers(0, 60 * 24 * 40),                      # minutes after the start
    st.integers(1, 480), st.integers(1, 200_000),      # quantity, price in thousandths
    st.sampled_from(["buy", "buy", "buy", "cancel", "adjust"]),
    st.sampled_from(["12345", "23456", "34567", None]))


@st.composite
def arrivals(draw: st.DrawFn) -> list[Transaction]:
    """One product's lines, in the order they arrive (any event-time order)."""
    out = []
    for n, (minutes, quantity, milli, kind, customer) in enumerate(
            draw(st.lists(lines, min_size=1, max_size=50))):
        cancel = kind == "cancel"
        out.append(Transaction(
            event_id=f"e{n}", invoice={"buy": "", "cancel": "C", "adjust": "A"}[kind]
            + str(536_000 + n), stock_code="85123A", description="MUG",
            quantity=-quantity if cancel else quantity, unit_price=milli / MILLI,
            ts=START + minutes * 60 + n % 60, customer_id=customer, country="UK",
            is_cancellation=cancel, is_adjustment=kind == "adjust", is_product=True))
    return out


def typed(values: dict[str, Any]) -> list[tuple[str, type, Any]]:
    """Values with their types: stored alike, 0 is not 0.0."""
    return [(k, type(v), v) for k, v in values.items()]


@hypothesis_settings(max_examples=300, deadline=None)
@given(events=arrivals())
def test_the_engine_s_product_values_and_tiles_are_the_hand_written_ones_to_the_bit(
        events: list[Transaction]) -> None:
    hand_written, engine = ProductState(), PRODUCT_ENGINE.state()
    for e in events:
        hand_written.update(e)
        engine.update(e)
    assert list(engine.in_order()) == sorted(hand_written.tiles)
    for hour in hand_written.tiles:
        assert product_tile_row(engine.tiles[hour]) == hand_written.tile_row(hour)
    for hour in {h + after for h in hand_written.tiles for after in (-1, 0, 23, 24, 167, 168,
                                                                    719, 720)}:
        moment = hour * HOUR + HOUR - 1
        assert typed(engine.values(moment)) == typed(hand_written.values(moment)), moment
        assert engine.last_change(moment) == hand_written.last_change(moment)
        assert engine.values(moment - 1_800) == hand_written.values(moment - HOUR), moment


def same_updates(ours: FeatureUpdate | None, theirs: FeatureUpdate | None) -> None:
    """Two folders' updates are the same rows, values (types included) and late lines."""
    assert (ours is None) == (theirs is None)
    if ours is None or theirs is None:
        return
    assert ours.rows == theirs.rows
    assert {k: typed(v) for k, v in ours.values.items()} == \
        {k: typed(v) for k, v in theirs.values.items()}
    assert ours.times == theirs.times and ours.late == theirs.late and ours.ts == theirs.ts


@hypothesis_settings(max_examples=200, deadline=None)
@given(events=arrivals(), seed=st.integers(0, 2**32 - 1))
def test_the_product_folder_writes_the_hand_written_rows_whatever_the_batches_and_clock(
        events: list[Transaction], seed: int) -> None:
    """Random batches of the lines in arrival order, each with a clock that only moves
    on (some lines behind it: rewritten hours, or late past the rewrite limit)."""
    rng = random.Random(seed)
    ours, theirs = ProductFolder(), HandWrittenProductFolder()
    clock, i = START, 0
    while i < len(events):
        batch = events[i:i + rng.randint(1, 8)]
        i += len(batch)
        since, clock = clock, max(clock, max(e.ts for e in batch) + rng.randint(-30, 30) * HOUR)
        same_updates(ours.fold("85123A", batch, LATENESS, clock, since),
                     theirs.fold("85123A", batch, LATENESS, clock, since))
    end = clock + 800 * HOUR
    same_updates(ours.fold("85123A", [], LATENESS, end, clock),
                 theirs.fold("85123A", [], LATENESS, end, clock))


@hypothesis_settings(max_examples=150, deadline=None)
@given(events=arrivals(), cut=st.integers(0, 50), old_form=st.booleans())
def test_a_snapshot_of_the_hand_written_state_resumes_on_the_engine(
        events: list[Transaction], cut: int, old_form: bool) -> None:
    """A recovery snapshot holds a ``ProductState``'s slots (or, from before hour-end
    rows, its revenue in currency and each buyer's latest hour): restored, the engine
    goes on from them with the values the hand-written state would have had."""
    hand_written = ProductState()
    for e in events[:cut]:
        hand_written.update(e)
    names = ProductState.__slots__
    slots: tuple[Any, ...] = tuple(getattr(hand_written, n) for n in names)
    if old_form:  # its tiles' revenue in currency, each buyer by its latest hour
        tiles = {h: [u, r / MILLI, n, c] for h, (u, r, n, c) in hand_written.tiles.items()}
        latest = {b: h for h, bs in sorted(hand_written.buyers.items()) for b in bs}
        slots = (tiles, latest, hand_written.max_ts)
        hand_written.buyers = {}
        for buyer, hour in latest.items():
            hand_written.buyers.setdefault(hour, set()).add(buyer)
    engine = _product_state((names, slots), upgrade=old_form)
    for e in events[cut:]:
        hand_written.update(e)
        engine.update(e)
    for hour in hand_written.tiles:
        for after in (0, 24, 168, 720):
            moment = (hour + after) * HOUR + HOUR - 1
            assert typed(engine.values(moment)) == typed(hand_written.values(moment))


def test_the_real_file_hour_by_hour_gives_the_hand_written_product_rows(
        real_data: Path) -> None:
    """Each hour of the real file, in file order, folded per product with the clock at
    the hour's start, as the flow's feature step does: every row and online value of
    every product is the hand-written folder's, types included (so the stores are)."""
    hours: dict[int, dict[str, list[Transaction]]] = {}
    for e in read_events(real_data, [0]):
        if isinstance(e, Transaction):
            hours.setdefault(e.ts // HOUR, {}).setdefault(e.stock_code, []).append(e)
    ours: dict[str, ProductFolder] = {}
    theirs: dict[str, ProductFolder] = {}
    rows, since = 0, 0
    for hour in sorted(hours):
        clock = hour * HOUR
        for product, events in hours[hour].items():
            mine = ours.setdefault(product, ProductFolder())
            old = theirs.setdefault(product, HandWrittenProductFolder())
            update = mine.fold(product, events, LATENESS, clock, since)
            same_updates(update, old.fold(product, events, LATENESS, clock, since))
            rows += len(update.rows) if update is not None else 0
        since = clock
    end = (max(hours) + 800) * HOUR
    for product, mine in ours.items():
        same_updates(mine.fold(product, [], LATENESS, end, since),
                     theirs[product].fold(product, [], LATENESS, end, since))
    assert rows > 100_000
