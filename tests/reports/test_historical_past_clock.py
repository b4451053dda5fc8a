"""``historical`` after the flow's clock (issue #14): windowed values moved on to the label's
time, against a plain-Python reference of the window rule over the events.

The store is the one a replay ending at its last event leaves: every event in ``events/``,
the customer rows the feature step writes up to that clock in ``features/customer/``, the
late ones in ``late/``. Label times run from the first event to 60 days after the last.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from basketflow.reports.historical import get_historical_features
from basketflow.schemas.events import Transaction
from basketflow.schemas.features import CUSTOMER, days_since
from basketflow.schemas.records import LateEvent, LogRow
from basketflow.sinks.offline_store import FeatureLog, LateEventLog, ParquetEventStore
from tests.features.test_exact_windows import (
    DAY,
    HOUR,
    LATENESS,
    START,
    chunks,
    deliver,
    event,
    reference,
    streams,
)

#: Every windowed feature of the customer view, the lifetime ones and the request-time one.
WINDOWED = [name for name, kind in CUSTOMER.kinds.items() if kind == "windowed"]
ASKED = [*WINDOWED, "lifetime_orders", "lifetime_spend", "days_since_last_purchase"]
#: Windows of a week at most: only the events of the week before the earliest time count.
SHORT = [f for f in WINDOWED if f.endswith(("_1d", "_7d"))] + ["days_since_last_purchase"]


def store(root: Path, events: list[Transaction], rows: dict[str, list[LogRow]],
          late: list[LateEvent] = ()) -> None:
    """An offline store as the flow leaves it: events, customer rows and late events."""
    ParquetEventStore(root).append(events)
    FeatureLog(root, "customer").append([r for rs in rows.values() for r in rs])
    LateEventLog(root).append(late)


def expected(events: list[Transaction], t: int) -> dict[str, object] | None:
    """The reference at ``t`` of one customer's folded events: None before its first."""
    if t < min(e.ts for e in events):
        return None
    out = reference(events, t)
    bought = [e.ts for e in events if e.ts <= t and not e.is_cancellation]
    out["days_since_last_purchase"] = days_since(t, max(bought)) if bought else None
    return out


def training_set(root: Path, pairs: list[tuple[str, int]],
                 asked: list[str] = ASKED) -> list[dict[str, object]]:
    """``historical`` of the ``asked`` customer features at each (customer, epoch second),
    as dicts with nulls as None (the ids Arrow text in two chunks, as a large Parquet
    file read by pandas gives them)."""
    frame = get_historical_features(root, pd.DataFrame({
        "customer_id": pd.arrays.ArrowExtensionArray(pa.chunked_array(
            [[c for c, _ in pairs[:1]], [c for c, _ in pairs[1:]]], pa.string())),
        "timestamp": pd.to_datetime([t for _, t in pairs], unit="s", utc=True)}),
        [f"customer:{f}" for f in asked])
    return [{f: (None if pd.isna(v) else v) for f, v in zip(asked, row)}
            for row in frame[[f"customer__{f}" for f in asked]].itertuples(index=False)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams(), sizes=st.lists(st.integers(1, 8), min_size=1, max_size=6),
       probes=st.lists(st.floats(0, 1), min_size=3, max_size=12), on_hour=st.booleans(),
       asked=st.sampled_from([ASKED, SHORT]))
def test_windows_after_the_clock_equal_the_window_rule(
        stream: dict[str, list[Transaction]], sizes: list[int], probes: list[float],
        on_hour: bool, asked: list[str]) -> None:
    """Random streams of three customers, replayed to their last event; random label
    times (on hour starts, where windows move on, or anywhere) up to 60 days after it:
    every asked windowed, lifetime and request-time value equals the reference's (every
    feature, or windows of a week at most, which read fewer events)."""
    everything = sorted((e for lines in stream.values() for e in lines), key=lambda e: e.ts)
    clock = everything[-1].ts
    first, end = everything[0].ts, clock + 60 * DAY
    times = [int(first + p * (end - first)) for p in probes]
    times = [t // HOUR * HOUR for t in times] if on_hour else times
    pairs = [(c, t) for c in stream for t in times]
    with tempfile.TemporaryDirectory() as tmp:
        store(Path(tmp), everything, deliver(chunks(everything, sizes), clock, [False]))
        got = training_set(Path(tmp), pairs, asked)
    for (c, t), values in zip(pairs, got):
        want = expected(stream[c], t)
        assert values == (dict.fromkeys(asked) if want is None
                          else {f: want[f] for f in asked}), (c, t, t - clock)


def test_a_silent_customer_reads_zero_weeks_after_the_clock_and_late_lines_stay_out() -> None:
    """Customer c1 buys at START and START+5h; a line of START+1h arrives after them,
    later than the allowed lateness, so the flow left it out (``late/``); c2 buys a day
    later, which ends the stream. A week after c1's last line its 7-day window is empty
    past the clock; its 30-day window still holds its two folded lines, not the late one;
    100 days after, every window is empty."""
    c1 = [event("c1", 0, START, "a", 2, 500, "buy"), event("c1", 1, START + 5 * HOUR, "b", 1,
                                                            2000, "buy")]
    behind = event("c1", 2, START + HOUR, "c", 1, 999, "buy")
    c2 = [event("c2", 0, START + DAY, "d", 1, 100, "buy")]
    folded = c1 + c2
    assert START + 5 * HOUR - behind.ts > LATENESS
    with tempfile.TemporaryDirectory() as tmp:
        store(Path(tmp), [*folded, behind], deliver(chunks(folded, [1]), c2[0].ts, [False]),
              [LateEvent(behind.event_id, "c1", behind.ts, START + 5 * HOUR)])
        week, hundred = START + 5 * HOUR + 7 * DAY, START + 100 * DAY
        got = training_set(Path(tmp), [("c1", week), ("c1", hundred), ("c2", week)])
    assert (got[0]["spend_7d"], got[0]["orders_7d"], got[0]["spend_30d"]) == (0, 0, 30.0)
    assert got[0]["avg_basket_value_30d"] == 15.0 and got[0]["spend_1d"] == 0
    assert all(got[1][f] in (0, None) for f in WINDOWED)
    assert got[1]["days_since_last_purchase"] == days_since(hundred, START + 5 * HOUR)
    assert got[2]["spend_7d"] == 1.0 and got[2]["lifetime_spend"] == 1.0
    for (c, t), values in zip([("c1", week), ("c1", hundred), ("c2", week)], got):
        want = expected(c1 if c == "c1" else c2, t)
        assert values == {f: want[f] for f in ASKED}
