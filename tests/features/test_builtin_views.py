"""The built-in ``customer`` view computed by the generic engine from its declaration
(``schemas/default_repository/customer.py``) equals, to the last bit, what the
hand-written ``CustomerState`` computes: every feature at every moment its values may
change (each event time, each hour start at which a tile leaves a window), for random
streams of one customer's lines with prices in cents, where float sums and their
rounding differ when they are added in another order, or a ratio divides unrounded
parts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from basketflow.features.declared_state import Engine
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
