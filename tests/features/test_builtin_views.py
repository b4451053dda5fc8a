"""The built-in ``customer`` view computed by the generic engine from its declaration
(``schemas/default_repository/customer.py``) equals, to the last bit, what the
hand-written ``CustomerState`` computes: every feature at every moment its values may
change (each event time, each hour start at which a tile leaves a window), for random
streams of one customer's lines with prices in cents, where float sums and their
rounding differ when they are added in another order, or a ratio divides unrounded
parts; and every customer row the flow's feature step writes for the real file (the
store digests of ``tools/store_digest.py`` before and after the switch are the same)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from basketflow.features.declared_state import Engine
from basketflow.features.entity_features import CustomerFolder, _customer_state
from basketflow.producers.csv_source import read_events
from basketflow.schemas.default_repository.customer import customer
from basketflow.schemas.events import Transaction
from tests.features.hand_written_customer import CustomerState

HOUR, DAY = 3600, 86_400
START = 1_291_161_600  # 2010-12-01 00:00 UTC
ENGINE = Engine(customer)

lines = st.tuples(
    st.one_of(st.integers(0, 90), st.integers(0, 60 * 24 * 40)),  # minutes after the last
    st.booleans(),                                                 # same invoice as last
    st.integers(1, 48), st.integers(1, 2_000),                     # quantity, cents
    st.sampled_from(["buy", "buy", "buy", "cancel", "postage"]),
    st.sampled_from(["A1", "B2", "C3", "D4"]))


@st.composite
def streams(draw: st.DrawFn) -> list[Transaction]:
    """One customer's lines in event-time order, a few sharing each invoice."""
    ts, invoice, out = START, 0, []
    for n, (gap, same, quantity, cents, kind, code) in enumerate(
            draw(st.lists(lines, min_size=1, max_size=40))):
        if not (same and out):
            ts += gap * 60
            invoice += 1
        cancel = kind == "cancel"
        out.append(Transaction(
            event_id=f"e{n}", invoice=("C" if cancel else "") + str(536_000 + invoice),
            stock_code="POST" if kind == "postage" else code, description="MUG",
            quantity=-quantity if cancel else quantity, unit_price=cents / 100, ts=ts,
            customer_id="12345", country="UK", is_cancellation=cancel,
            is_adjustment=False, is_product=kind != "postage"))
    return out


def moments(events: list[Transaction]) -> list[int]:
    """Each event time and each hour start at which one of its tiles leaves a window."""
    spans = (24, 168, 720, 2160)
    return sorted({e.ts for e in events}
                  | {(e.ts // HOUR + h) * HOUR for e in events for h in spans})


@hypothesis_settings(max_examples=300, deadline=None)
@given(events=streams())
def test_the_engine_s_customer_rows_are_the_hand_written_ones_to_the_bit(
        events: list[Transaction]) -> None:
    hand_written, engine = CustomerState(), ENGINE.state()
    i = 0
    for moment in moments(events):
        while i < len(events) and events[i].ts <= moment:
            hand_written.update(events[i])
            engine.update(events[i])
            i += 1
        theirs, ours = hand_written.values(moment), engine.values(moment)
        assert [(k, type(v), v) for k, v in ours.items()] == \
            [(k, type(v), v) for k, v in theirs.items()], moment  # stored alike: 0 is not 0.0


def test_the_average_basket_keeps_no_partial_of_its_own() -> None:
    """``avg_basket_value`` divides ``spend`` by ``orders``: its parts are stored once, in
    those features' partials, not again as a pair in every tile."""
    assert [(f.name, (top.name, bottom.name)) for f, (top, bottom) in ENGINE.ratios] == [
        ("avg_basket_value", ("spend", "orders"))]
    assert [f.name for f, _ in ENGINE.windowed] == [
        "spend", "orders", "items", "distinct_products", "cancelled_lines"]
    assert len(ENGINE.new_tile()) == 5


@hypothesis_settings(max_examples=150, deadline=None)
@given(events=streams(), cut=st.integers(0, 40))
def test_a_snapshot_of_the_hand_written_state_resumes_on_the_engine(
        events: list[Transaction], cut: int) -> None:
    """A recovery snapshot holds a ``CustomerState``'s slots: restored, the engine goes on
    from them with the values the hand-written state would have had."""
    before, after = events[:cut], events[cut:]
    hand_written = CustomerState()
    for e in before:
        hand_written.update(e)
    names = CustomerState.__slots__
    engine = _customer_state((names, tuple(getattr(hand_written, n) for n in names)))
    for e in after:
        hand_written.update(e)
        engine.update(e)
    for moment in moments(events):
        if moment >= events[-1].ts:
            assert engine.values(moment) == hand_written.values(moment), moment


def test_every_customer_row_of_the_real_file_is_the_hand_written_one(real_data: Path) -> None:
    """The flow's feature step (``CustomerFolder``, the engine inside) over each customer's
    lines in file order, its clock past every window: each row's values, types
    included, are those of ``CustomerState`` folded up to the row's time."""
    by_customer: dict[str, list[Transaction]] = {}
    for e in read_events(real_data, [0]):
        if isinstance(e, Transaction):
            by_customer.setdefault(e.entity_id, []).append(e)
    rows = 0
    for customer, events in by_customer.items():
        until = (max(e.ts for e in events) // HOUR + 2160) * HOUR
        update = CustomerFolder().fold(customer, events, 1 << 40, until)
        assert update is not None
        hand_written, i = CustomerState(), 0
        for row in update.rows:
            if row.view != "customer":
                continue
            while i < len(events) and events[i].ts <= row.ts:
                hand_written.update(events[i])
                i += 1
            theirs = hand_written.values(row.ts)
            assert [(k, type(v), v) for k, v in row.values.items()] == \
                [(k, type(v), v) for k, v in theirs.items()], (customer, row.ts)
            rows += 1
    assert rows > 80_000
