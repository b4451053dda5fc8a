"""The generic engine against the declarations' plain-Python reference: for random event
streams and a view using every aggregation (sum, count, count distinct, mean, min, max,
first, last, ratio, share; filters; windows in hours and days; lifetime), the rows it gives are,
at any time after the first event (up to 100 days after the last), the reference's values
at that time, and so where values may be null (:data:`NULLS`); and ``backfill --views``
then ``historical`` return them exact from the offline store at random times."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import msgspec
import pandas as pd
import pytest
from hypothesis import Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from basketflow.app.backfill import historical
from basketflow.app.project import init_project
from basketflow.app.registry import apply
from basketflow.app.view_backfill import NotADeclaredView, backfill_views
from basketflow.config import ENV_OF_KEY, Settings, load_settings
from basketflow.features.declared_folder import feature_rows
from basketflow.features.declared_state import Engine
from basketflow.schemas.declare import (
    E,
    Feature,
    View,
    agg,
    days,
    hours,
)
from basketflow.schemas.events import Transaction
from basketflow.schemas.repository import load_repository
from basketflow.sinks.offline_store import ParquetEventStore

HOUR, DAY = 3600, 86_400
START = 1_298_937_600  # 2011-03-01 00:00 UTC
VIEW_SOURCE = '''\
from basketflow.schemas.declare import (E, LATEST_INVOICE, DaysSince, Feature, View, agg,
                                       days, hours)

PURCHASE = ~E.is_cancellation & ~E.is_adjustment
everything = View(
    name="everything",
    entity="customer_id",
    description="every aggregation",
    where=E.quantity != 0,
    features=[
        Feature("spend", agg.sum(E.value), windows=days(1, 7) + hours(6), decimals=2),
        Feature("exact_spend", agg.sum(E.value, exact=3), windows=days(1, 7), decimals=2),
        Feature("lines", agg.count(where=E.is_product), windows=hours(3, 48)),
        Feature("products", agg.count_distinct(E.stock_code, where=PURCHASE),
                windows=days(7, 30)),
        Feature("mean_price", agg.mean(E.unit_price), windows=days(7)),
        Feature("cheapest", agg.min(E.unit_price), windows=days(2)),
        Feature("biggest", agg.max(E.quantity), windows=hours(12)),
        Feature("first_country", agg.first(E.country), windows=days(3)),
        Feature("last_hour", agg.last(E.hour), windows=days(3)),
        Feature("cancel_share",
                agg.ratio(agg.count(where=E.is_cancellation), agg.count()),
                windows=days(14), decimals=4),
        Feature("xmas_share",
                agg.ratio(agg.sum(E.value, where=E.product_category == "christmas_seasonal"),
                          agg.sum(E.value), if_zero=0.0),
                windows=days(30), decimals=4),
        Feature("spend_per_product",  # a ratio of two features: of their stored values
                agg.ratio(agg.sum(E.value),
                          agg.count_distinct(E.stock_code, where=PURCHASE)),
                windows=days(7), decimals=2),
        Feature("lifetime_spend", agg.sum(E.value), decimals=2),
        Feature("uk_share", agg.share(E.value, by=E.country, equals="UK"), decimals=4),
        Feature("uk_product_share", agg.share(E.value, by=E.country, equals="UK",
                                              where=E.is_product), decimals=4),
        Feature("france_product_share", agg.share(E.value, by=E.country, equals="France",
                                                  where=E.is_product), decimals=4),
        Feature("weekdays", agg.count_distinct(E.weekday)),
        Feature("last_purchase", agg.max(E.time, where=PURCHASE)),
        Feature("basket_value", agg.sum(E.value), windows=LATEST_INVOICE, decimals=2),
        Feature("basket_products", agg.count_distinct(E.stock_code, where=E.is_product),
                windows=LATEST_INVOICE),
        Feature("basket_country", agg.first(E.country), windows=LATEST_INVOICE),
        Feature("basket_share", agg.ratio(agg.count(where=E.is_product), agg.count()),
                windows=LATEST_INVOICE, decimals=4),
        DaysSince("days_since_last_purchase", source="last_purchase"),
    ],
)
'''


def everything(tmp_path: Path) -> View:
    """The view of :data:`VIEW_SOURCE`, declared from a repository file."""
    (tmp_path / "everything.py").write_text(VIEW_SOURCE)
    return load_repository(tmp_path).declarations["everything"]


def line(customer: str, n: int, ts: int, invoice: str, quantity: int, cents: int,
         kind: str, code: str) -> Transaction:
    """One line: a product purchase, a cancellation or a non-product (postage) line."""
    cancel = kind == "cancel"
    return Transaction(
        event_id=f"{customer}-{n}", invoice=("C" if cancel else "") + invoice,
        stock_code="POST" if kind == "postage" else code,
        description="CHRISTMAS TREE DECORATION" if code == "P1" else "WHITE MUG",
        quantity=-quantity if cancel else quantity, unit_price=cents / 100, ts=ts,
        customer_id=customer, country="UK" if n % 3 else "France",
        is_cancellation=cancel, is_adjustment=False, is_product=kind != "postage")


spec = st.tuples(
    st.one_of(st.integers(0, 90), st.integers(0, 60 * 24 * 20)),  # minutes after the last
    st.booleans(),                                                # same invoice as last
    st.integers(0, 5), st.integers(1, 5000),
    st.sampled_from(["buy", "buy", "buy", "cancel", "postage"]),
    st.sampled_from(["P0", "P1", "P2"]))


@st.composite
def streams(draw: st.DrawFn, customer: str = "c1") -> list[Transaction]:
    """One customer's lines in event-time order."""
    ts, invoice, lines = START + draw(st.integers(0, 3 * DAY)), 0, []
    for n, (gap, same, quantity, cents, kind, code) in enumerate(
            draw(st.lists(spec, min_size=1, max_size=25))):
        if not (same and lines):
            ts += gap * 60
            invoice += 1
        lines.append(line(customer, n, ts, f"{customer}{invoice}", quantity, cents, kind, code))
    return lines


def at(rows: list[tuple[int, dict[str, object]]], t: int) -> dict[str, object]:
    """The row in effect at ``t``: the latest at or before it."""
    return [values for ts, values in rows if ts <= t][-1]


@pytest.fixture(scope="module")
def view(tmp_path_factory: pytest.TempPathFactory) -> View:
    return everything(tmp_path_factory.mktemp("repository"))


@hypothesis_settings(max_examples=200, deadline=None)
@given(events=streams(), offsets=st.lists(st.integers(0, 100 * DAY), min_size=1, max_size=8))
def test_the_engine_s_rows_are_the_reference_at_any_time(view: View, events: list[Transaction],
                                                         offsets: list[int]) -> None:
    rows = list(feature_rows(Engine(view), events))
    first, last = events[0].ts, events[-1].ts
    for offset in offsets:
        t = min(first + offset, last + 100 * DAY)
        expected = view.reference(events, t)
        got = at(rows, t)
        assert got.keys() == expected.keys()
        for name, value in expected.items():
            assert got[name] == pytest.approx(value, abs=1e-9), (name, t)


#: Values that may be null (a division by a quantity of 0, a guest's customer id), which
#: the generated code must test for, where :data:`VIEW_SOURCE`'s never are.
NULLS = View("nulls", entity="stock_code", features=[
    Feature("unit", agg.mean(E.value / E.quantity), windows=hours(6) + days(2)),
    Feature("top_unit", agg.max(E.value / E.quantity), windows=days(1)),
    Feature("low_unit", agg.min(E.value / E.quantity), windows=days(1)),
    Feature("unit_sum", agg.sum(E.value / E.quantity), windows=days(1), decimals=2),
    Feature("customers", agg.count_distinct(E.customer_id), windows=days(7)),
    Feature("first_customer", agg.first(E.customer_id), windows=days(7)),
    Feature("c1_share", agg.ratio(agg.count(where=E.customer_id == "c1"), agg.count()),
            windows=days(3), decimals=4),
    Feature("top_unit_ever", agg.max(E.value / E.quantity))])


@hypothesis_settings(max_examples=100, deadline=None)
@given(events=streams(), guests=st.lists(st.booleans(), min_size=25, max_size=25),
       offsets=st.lists(st.integers(0, 10 * DAY), min_size=1, max_size=8))
def test_null_values_are_the_reference_s(events: list[Transaction], guests: list[bool],
                                          offsets: list[int]) -> None:
    events = [msgspec.structs.replace(e, customer_id=None) if guest else e
              for e, guest in zip(events, guests)]
    rows = list(feature_rows(Engine(NULLS), events))
    for offset in offsets:
        t = events[0].ts + offset
        expected = NULLS.reference(events, t)
        got = at(rows, t)
        assert got.keys() == expected.keys()
        for name, value in expected.items():
            assert got[name] == pytest.approx(value, abs=1e-9), (name, t)


def test_a_view_read_at_hour_ends_is_not_run_by_the_declared_views_step() -> None:
    """The engine reads it (the built-in ``product`` view's folder), but the declared
    views' feature step writes rows at event times, so it does not run one."""
    hourly = View("h", entity="stock_code", values_at="hour_end", features=[
        Feature("n", agg.count(), windows=days(1))])
    state = Engine(hourly).state()
    state.tiles = {10: [2]}
    assert state.values(11 * HOUR - 1) == {"n_1d": 2}
    assert state.values(10 * HOUR + 1_800) == {"n_1d": 0}  # as of the hour end before
    assert not Engine.computes(hourly)


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A project with the view of :data:`VIEW_SOURCE` declared and applied."""
    for name in ENV_OF_KEY.values():
        monkeypatch.delenv(name, raising=False)
    init_project(tmp_path / "shop")
    (tmp_path / "shop" / "features" / "everything.py").write_text(VIEW_SOURCE)
    settings = load_settings(cwd=tmp_path / "shop")
    apply(settings)
    return settings


@pytest.mark.slow
@hypothesis_settings(max_examples=6, deadline=None,  # a backfill flow each: no shrinking
                     phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(data=st.data())
def test_backfill_then_historical_is_the_reference_at_random_times(
        tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    """Events stored offline for three customers; ``backfill --views`` computes the
    view's log up to the clock at the end of the events (the newest event time, as the
    live flow's); ``historical`` at random (customer, time) pairs, up to 100 days after
    the customer's first event, as ``basketflow historical`` writes it, equals the
    reference at that time, past the clock too (request-time features at the time
    asked)."""
    root = tmp_path_factory.mktemp("shop")
    init_project(root)
    (root / "features" / "everything.py").write_text(VIEW_SOURCE)
    settings = load_settings(cwd=root)
    settings = replace(settings, data_dir=root / "data", offline_store=root / "data" / "offline")
    apply(settings)
    view = load_repository(root / "features").declarations["everything"]
    by_customer = {c: data.draw(streams(c)) for c in ("c1", "c2", "c3")}
    ParquetEventStore(settings.offline_dir).append(
        [e for events in by_customer.values() for e in events])
    figures = backfill_views(settings, ["everything"])
    assert figures.events == sum(map(len, by_customer.values()))
    asked = data.draw(st.lists(st.tuples(st.sampled_from(sorted(by_customer)),
                                         st.integers(0, 100 * DAY)), min_size=1, max_size=20))
    times = [by_customer[c][0].ts + offset for c, offset in asked]
    labels = pd.DataFrame({"customer_id": [c for c, _ in asked],
                           "timestamp": pd.to_datetime(times, unit="s")})
    names = [n for n in view.reference([], 0)] + ["days_since_last_purchase"]
    labels.to_parquet(root / "labels.parquet")
    historical(settings, root / "labels.parquet", [f"everything:{n}" for n in names],
               root / "training.parquet")  # the command's path: the repository's views
    frame = pd.read_parquet(root / "training.parquet")
    for i, ((customer, _), t) in enumerate(zip(asked, times, strict=True)):
        expected = view.reference(by_customer[customer], t)
        last = expected["last_purchase"]
        expected["days_since_last_purchase"] = (None if last is None
                                                else round((t - last) / DAY, 4))
        for name, value in expected.items():
            got = frame[f"everything__{name}"].iloc[i]
            got = None if pd.isna(got) else got
            if value is None:
                assert got is None, (name, customer, t)
            elif isinstance(value, str):
                assert got == value, (name, customer, t)
            else:
                assert got == pytest.approx(value, abs=1e-9), (name, customer, t)


def test_views_must_be_the_repository_s_own(shop: Settings) -> None:
    with pytest.raises(NotADeclaredView, match=r"--views customer, nope: not a view of the "
                                               r"repository's own \(its own: everything\)"):
        backfill_views(shop, ["customer", "nope"])
