"""The ``basket`` declaration (``CURRENT_INVOICE``, the window over the invoice being
filled as lines arrive; ``agg.share``, each category's share of the product value) on
the generic engine: for random lines of one customer in any arrival order (several
invoices, late lines of older ones, cancellations, adjustments, postage, negative
quantities, prices in thousandths), its values after each line are the plain-Python
reference's and what the hand-written ``BasketState`` computes, to the bit and with
their types; so on every line of the real file; and a recovery snapshot of the
hand-written state goes on with the values it would have had."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from basketflow.features.declared_state import DeclaredState
from basketflow.features.entity_features import BASKET_ENGINE, _basket_state
from basketflow.producers.csv_source import read_events
from basketflow.schemas.default_repository.basket import basket
from basketflow.schemas.events import Transaction
from tests.features.hand_written_basket import BasketState

START = 1_298_937_600  # 2011-03-01 00:00 UTC

line_spec = st.tuples(
    st.integers(0, 3),                     # invoice
    st.integers(-2, 6), st.integers(0, 999),  # quantity, price in thousandths
    st.sampled_from(["buy", "buy", "buy", "cancel", "adjust", "postage"]),
    st.sampled_from(["P0", "P1", "P2", "P3", "P4"]))


#: Products of several categories.
DESCRIPTIONS = {"P0": "WHITE MUG", "P1": "CHRISTMAS TREE DECORATION", "P2": "RED CANDLE",
                "P3": "JUMBO BAG", "P4": "WHITE MUG"}


def line(n: int, invoice: int, quantity: int, milli: int, kind: str,
         code: str) -> Transaction:
    """One line of customer c1; an invoice's lines share its time and country."""
    return Transaction(
        event_id=f"c1-{n}", invoice=("C" if kind == "cancel" else "") + f"5{invoice}",
        stock_code="POST" if kind == "postage" else code,
        description=DESCRIPTIONS[code],
        quantity=quantity, unit_price=milli / 1000, ts=START + invoice * 4000 + 7,
        customer_id="c1", country=("UK", "France")[invoice % 2],
        is_cancellation=kind == "cancel", is_adjustment=kind == "adjust",
        is_product=kind not in ("postage", "adjust"))


def typed(values: dict[str, Any]) -> list[tuple[str, type, Any]]:
    """Values with their types: 1 and 1.0 differ in a store."""
    return [(name, type(value), value) for name, value in values.items()]


@hypothesis_settings(max_examples=300, deadline=None)
@given(specs=st.lists(line_spec, min_size=1, max_size=30))
def test_the_current_invoice_is_the_reference_and_basket_state(
        specs: list[tuple[int, int, int, str, str]]) -> None:
    state, hand_written, seen = BASKET_ENGINE.state(), BasketState(), []
    for n, spec in enumerate(specs):
        e = line(n, *spec)
        seen.append(e)
        state.update(e)
        latest = max(x.ts for x in seen)  # every line so far read: a late one too
        values = state.values(latest)
        assert typed(values) == typed(basket.reference(seen, latest))
        if hand_written.update(e):
            assert typed(values) == typed(hand_written.values())


@hypothesis_settings(max_examples=200, deadline=None)
@given(before=st.lists(line_spec, max_size=15), after=st.lists(line_spec, max_size=15))
def test_a_snapshot_of_basket_state_goes_on_on_the_engine(
        before: list[tuple[int, int, int, str, str]],
        after: list[tuple[int, int, int, str, str]]) -> None:
    """A recovery snapshot's hand-written state (its slots) resumes on the engine with
    the values it would have had."""
    hand_written = BasketState()
    for n, spec in enumerate(before):
        hand_written.update(line(n, *spec))
    slots = (BasketState.__slots__,
             tuple(getattr(hand_written, name) for name in BasketState.__slots__))
    state = _basket_state(slots)
    assert state.engine is BASKET_ENGINE
    for n, spec in enumerate(after, len(before)):
        e = line(n, *spec)
        state.update(e)
        if hand_written.update(e):
            assert typed(state.values(e.ts)) == typed(hand_written.values())


def test_the_real_file_gives_the_hand_written_baskets(real_data: Path) -> None:
    """Every line of the real file, in file order, folded per customer: after each
    purchase line the engine's basket is the hand-written one, types included."""
    ours: dict[str, DeclaredState] = {}
    theirs: dict[str, BasketState] = {}
    updates = 0
    for e in read_events(real_data, [0]):
        if not isinstance(e, Transaction):
            continue
        entity = str(e.customer_id)
        mine = ours.setdefault(entity, BASKET_ENGINE.state())
        old = theirs.setdefault(entity, BasketState())
        mine.update(e)
        if old.update(e):
            updates += 1
            assert typed(mine.values(e.ts)) == typed(old.values()), e.event_id
    assert updates > 300_000
