"""``historical`` of the feature repository's own views after the flow's clock (issue #21):
windowed values moved on to the label's time, against the declarations' plain-Python
reference (:meth:`View.reference`) at random times.

The store is the one a replay ending at its newest event leaves: every event in
``events/``, and each entity's rows of the declared view as the flow's feature step
(:class:`DeclaredFolder`) writes them up to that clock in ``features/<view>/``. Label
times run from the first event to 60 days after the clock.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from basketflow.features.declared_folder import NEVER_LATE, DeclaredFolder
from basketflow.features.declared_state import Engine
from basketflow.reports.historical import get_historical_features
from basketflow.schemas.declare import ENTITIES, View
from basketflow.schemas.events import Transaction
from basketflow.schemas.features import days_since
from basketflow.sinks.offline_store import FeatureLog, ParquetEventStore
from tests.features.test_declared_state import (
    DAY,
    HOUR,
    NULLS,
    START,
    everything,
    line,
    streams,
)


@pytest.fixture(scope="module")
def view(tmp_path_factory: pytest.TempPathFactory) -> View:
    return everything(tmp_path_factory.mktemp("repository"))


def by_entity(view: View, events: list[Transaction]) -> dict[str, list[Transaction]]:
    """The events of each of ``view``'s entities, in event-time order."""
    grouped: dict[str, list[Transaction]] = {}
    for e in sorted(events, key=lambda e: e.ts):
        grouped.setdefault(ENTITIES[view.entity](e), []).append(e)
    return grouped


def store(root: Path, view: View, events: list[Transaction], clock: int) -> None:
    """The events and the view's log rows up to ``clock``, as the flow leaves them."""
    ParquetEventStore(root).append(events)
    engine, log = Engine(view), FeatureLog(root, view.compile())
    for entity, lines in by_entity(view, events).items():
        update = DeclaredFolder(engine).fold(entity, lines, NEVER_LATE, clock)
        assert update is not None
        log.append(update.rows)


def training_set(root: Path, view: View, pairs: list[tuple[str, int]], asked: list[str],
                 declared: bool = True) -> pd.DataFrame:
    """``historical`` of the ``asked`` features at each (entity, epoch second), with the
    view's declaration (``declared``) or its compiled view alone."""
    return get_historical_features(
        root, pd.DataFrame({view.entity: [e for e, _ in pairs],
                            "timestamp": pd.to_datetime([t for _, t in pairs], unit="s")}),
        [f"{view.name}:{f}" for f in asked], views={view.name: view.compile()},
        declarations={view.name: view} if declared else None)


def expected(view: View, events: list[Transaction], t: int) -> dict[str, object] | None:
    """The reference at ``t`` of one entity's events (None before its first), with the
    request-time feature of the ``everything`` view computed at ``t``."""
    if t < events[0].ts:
        return None
    out = view.reference(events, t)
    if "last_purchase" in out:
        last = out["last_purchase"]
        out["days_since_last_purchase"] = None if last is None else days_since(t, last)
    return out


def assert_reference(view: View, grouped: dict[str, list[Transaction]],
                     pairs: list[tuple[str, int]], frame: pd.DataFrame,
                     asked: list[str]) -> None:
    """Every asked value of ``frame`` is the reference's at its pair's time."""
    for i, (entity, t) in enumerate(pairs):
        want = expected(view, grouped[entity], t)
        for name in asked:
            got = frame[f"{view.name}__{name}"].iloc[i]
            got = None if pd.isna(got) else got
            value = None if want is None else want[name]
            if value is None or isinstance(value, str):
                assert got == value, (name, entity, t)
            else:
                assert got == pytest.approx(value, abs=1e-9), (name, entity, t)


def label_times(first: int, clock: int, probes: list[float], on_hour: bool) -> list[int]:
    """Times from ``first`` to 60 days after ``clock`` (on hour starts, where windows
    move on, or anywhere)."""
    end = clock + 60 * DAY
    times = [int(first + p * (end - first)) for p in probes]
    return [t // HOUR * HOUR for t in times] if on_hour else times


@settings(max_examples=40, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(c1=streams("c1"), c2=streams("c2"), c3=streams("c3"),
       probes=st.lists(st.floats(0, 1), min_size=3, max_size=10), on_hour=st.booleans())
def test_a_declared_view_after_the_clock_is_the_reference(
        view: View, c1: list[Transaction], c2: list[Transaction], c3: list[Transaction],
        probes: list[float], on_hour: bool) -> None:
    """Three customers' random streams replayed to the newest event; every stored and
    request-time feature of a view using every aggregation (windows in hours and days,
    lifetime, latest invoice), at random times up to 60 days after the clock, equals
    the reference at that time (main kept the values as of the clock)."""
    events = c1 + c2 + c3
    clock = max(e.ts for e in events)
    grouped = by_entity(view, events)
    times = label_times(min(e.ts for e in events), clock, probes, on_hour)
    pairs = [(c, t) for c in grouped for t in times]
    asked = [*view.reference([], 0), "days_since_last_purchase"]
    with tempfile.TemporaryDirectory() as tmp:
        store(Path(tmp), view, events, clock)
        frame = training_set(Path(tmp), view, pairs, asked)
    assert_reference(view, grouped, pairs, frame, asked)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(c1=streams("c1"), c2=streams("c2"),
       probes=st.lists(st.floats(0, 1), min_size=3, max_size=10), on_hour=st.booleans())
def test_a_declared_product_view_with_nulls_after_the_clock_is_the_reference(
        c1: list[Transaction], c2: list[Transaction], probes: list[float],
        on_hour: bool) -> None:
    """A view keyed by product, whose values may be null (a quantity of 0), over two
    customers' lines: its windowed features after the clock are the reference's."""
    events = c1 + c2
    clock = max(e.ts for e in events)
    grouped = by_entity(NULLS, events)
    times = label_times(min(e.ts for e in events), clock, probes, on_hour)
    pairs = [(p, t) for p in grouped for t in times]
    asked = list(NULLS.reference([], 0))
    with tempfile.TemporaryDirectory() as tmp:
        store(Path(tmp), NULLS, events, clock)
        frame = training_set(Path(tmp), NULLS, pairs, asked)
    assert_reference(NULLS, grouped, pairs, frame, asked)


def test_a_week_after_the_clock_a_silent_customer_s_windows_are_empty(view: View) -> None:
    """One purchase, then the clock: a week later the 1-day and 7-day spend are 0 and
    the 30-day count of products still holds it; without the declaration, the values
    stay those of the clock (what the compiled view alone can give)."""
    bought = line("c1", 0, START + 5 * HOUR, "c11", 2, 500, "buy", "P1")
    week = bought.ts + 7 * DAY + HOUR
    asked = ["spend_1d", "spend_7d", "products_30d"]
    with tempfile.TemporaryDirectory() as tmp:
        store(Path(tmp), view, [bought], bought.ts)
        moved = training_set(Path(tmp), view, [("c1", week)], asked)
        stuck = training_set(Path(tmp), view, [("c1", week)], asked, declared=False)
    want = view.reference([bought], week)
    assert [moved[f"everything__{f}"].iloc[0] for f in asked] == [want[f] for f in asked]
    assert moved["everything__spend_7d"].iloc[0] == 0
    assert stuck["everything__spend_7d"].iloc[0] == view.reference([bought], bought.ts)["spend_7d"]
