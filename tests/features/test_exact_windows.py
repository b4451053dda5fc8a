"""Windowed values exact at any moment: the feature step's rows against a plain-Python
reference of the window rule, for random event streams delivered as a live flow would
(partitions lagging the clock, random batches, clock ticks) and as a backfill would (one
ordered stream): the row in effect at any moment the clock has reached is the window at
that moment, and both deliveries leave the same rows in effect."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from basketflow.features.entity_features import CustomerFolder, ProductFolder
from basketflow.flows.event_clock import PartitionClock
from basketflow.config import Settings
from basketflow.flows.live import RunOptions, run_live
from basketflow.producers.replay import replay
from basketflow.reports.historical import get_historical_features
from basketflow.schemas.events import HEADER, Transaction
from basketflow.schemas.features import CUSTOMER, PRODUCT
from basketflow.schemas.records import LogRow
from basketflow.sinks.offline_store import FeatureLog
from basketflow.sinks.online_store import RedisOnlineStore, connect

HOUR, DAY = 3600, 86_400
START = 1_298_937_600  # 2011-03-01 00:00 UTC
LATENESS = 3600


def event(customer: str, n: int, ts: int, invoice: str, quantity: int, cents: int,
          kind: str) -> Transaction:
    """One line: a product purchase, a cancellation or a non-product (postage) line."""
    cancel = kind == "cancel"
    return Transaction(
        event_id=f"{customer}:{n}", invoice=("C" if cancel else "") + invoice,
        stock_code="POST" if kind == "postage" else f"P{n % 4}", description="thing",
        quantity=-quantity if cancel else quantity, unit_price=cents / 100, ts=ts,
        customer_id=customer, country="UK", is_cancellation=cancel, is_adjustment=False,
        is_product=kind != "postage")


line_spec = st.tuples(
    st.one_of(st.integers(0, 120), st.integers(0, 60 * 24 * 45)),  # minutes after the last
    st.booleans(),                                                 # same invoice as last
    st.integers(1, 5), st.integers(1, 5000),
    st.sampled_from(["buy", "buy", "buy", "cancel", "postage"]))


@st.composite
def streams(draw: st.DrawFn) -> dict[str, list[Transaction]]:
    """Each customer's events in event-time order."""
    out: dict[str, list[Transaction]] = {}
    for c in ("c1", "c2", "c3"):
        ts, invoice, lines = START + draw(st.integers(0, 20 * DAY)), 0, []
        for n, (gap, same, quantity, cents, kind) in enumerate(
                draw(st.lists(line_spec, min_size=1, max_size=25))):
            if not (same and lines):
                ts += gap * 60
                invoice += 1
            lines.append(event(c, n, ts, f"{c}-{invoice}", quantity, cents, kind))
        out[c] = lines
    return out


def reference(events: list[Transaction], t: int) -> dict[str, object]:
    """The window rule, by hand: the W-day window at ``t`` holds the events of the
    ``W*24`` hourly tiles ending with the hour of ``t``, up to ``t``."""
    seen = [e for e in events if e.ts <= t]
    out: dict[str, object] = {}
    for days in CUSTOMER.windows_days:
        cut = t // HOUR + 1 - days * 24
        inside = [e for e in seen if e.ts // HOUR >= cut]
        purchases = [e for e in inside if not e.is_cancellation and not e.is_adjustment]
        out[f"spend_{days}d"] = round(sum(e.quantity * e.unit_price for e in inside), 2)
        out[f"orders_{days}d"] = len({e.invoice for e in purchases})
        out[f"items_{days}d"] = sum(e.quantity for e in inside if e.is_product)
        out[f"distinct_products_{days}d"] = len({e.stock_code for e in purchases
                                                 if e.is_product})
        out[f"cancelled_lines_{days}d"] = sum(e.is_cancellation for e in inside)
    orders = out["orders_30d"]
    out["avg_basket_value_30d"] = round(out["spend_30d"] / orders, 2) if orders else None
    out["lifetime_orders"] = len({e.invoice for e in seen if not e.is_cancellation})
    out["lifetime_spend"] = round(sum(e.quantity * e.unit_price for e in seen), 2)
    return out


def in_effect(rows: list[LogRow]) -> dict[int, dict[str, object]]:
    """Moment -> values of the row in effect there (the highest ``seq`` at a ``ts``)."""
    best: dict[int, LogRow] = {}
    for row in rows:
        if row.ts not in best or row.seq >= best[row.ts].seq:
            best[row.ts] = row
    return {ts: best[ts].values for ts in sorted(best)}


def value_at(rows: dict[int, dict[str, object]], t: int) -> dict[str, object] | None:
    """The values in effect at ``t``: those of the latest row at or before it."""
    before = [ts for ts in rows if ts <= t]
    return rows[max(before)] if before else None


def deliver(batches: Iterator[list[Transaction]], end: int,
            ticks: list[bool]) -> dict[str, list[LogRow]]:
    """Fold batches as the flow does: each customer's events of a batch with the clock
    after the batch, some customers woken by the clock alone, and every one at ``end``."""
    folders = {c: CustomerFolder() for c in ("c1", "c2", "c3")}
    rows: dict[str, list[LogRow]] = {c: [] for c in folders}
    clock = 0
    for i, batch in enumerate(batches):
        clock = max([clock] + [e.ts for e in batch])
        for c, folder in folders.items():
            mine = [e for e in batch if e.customer_id == c]
            if mine or ticks[i % len(ticks)]:
                update = folder.fold(c, mine, LATENESS, clock)
                rows[c] += update.rows if update else []
    for c, folder in folders.items():
        update = folder.fold(c, [], LATENESS, end)
        rows[c] += update.rows if update else []
    return {c: [r for r in rs if r.view == "customer"] for c, rs in rows.items()}


def chunks(events: list[Transaction], sizes: list[int]) -> Iterator[list[Transaction]]:
    """``events`` in batches of the given sizes, in turn."""
    i = k = 0
    while i < len(events):
        size = sizes[k % len(sizes)]
        yield events[i:i + size]
        i, k = i + size, k + 1


def lagging(stream: dict[str, list[Transaction]], picks: list[int],
            sizes: list[int]) -> Iterator[list[Transaction]]:
    """Two partitions (c1 and c3 on one, c2 on the other), each in order, read in
    batches in an order drawn by ``picks``: one partition may run days ahead."""
    parts = [sorted(stream["c1"] + stream["c3"], key=lambda e: e.ts), list(stream["c2"])]
    k = 0
    while any(parts):
        p = picks[k % len(picks)] if all(parts) else (0 if parts[0] else 1)
        size = sizes[k % len(sizes)]
        yield parts[p][:size]
        parts[p] = parts[p][size:]
        k += 1


@hypothesis_settings(max_examples=200, deadline=None)
@given(stream=streams(), picks=st.lists(st.integers(0, 1), min_size=1, max_size=12),
       sizes=st.lists(st.integers(1, 8), min_size=1, max_size=6),
       ticks=st.lists(st.booleans(), min_size=1, max_size=5),
       after_days=st.integers(0, 100), probes=st.lists(st.floats(0, 1), min_size=5,
                                                        max_size=30))
def test_rows_in_effect_equal_the_window_rule_at_every_moment(
        stream: dict[str, list[Transaction]], picks: list[int], sizes: list[int],
        ticks: list[bool], after_days: int, probes: list[float]) -> None:
    """Live delivery (lagging partitions, random batches and ticks) against the
    reference at random moments up to 100 days after the last event; and the backfill's
    delivery (one ordered stream, other batches) leaves the same rows in effect."""
    everything = sorted((e for lines in stream.values() for e in lines), key=lambda e: e.ts)
    end = everything[-1].ts + after_days * DAY
    live = deliver(lagging(stream, picks, sizes), end, ticks)
    backfill = deliver(chunks(everything, sizes[::-1] or [3]), end, [False])
    first = everything[0].ts
    for c, events in stream.items():
        rows = in_effect(live[c])
        assert rows == in_effect(backfill[c]), c
        for p in probes:
            t = int(first + p * (end - first))
            got = value_at(rows, t)
            want = reference(events, t)
            if got is None:
                assert t < events[0].ts, (c, t)
                continue
            assert {k: got[k] for k in want} == want, (c, t)


def product_reference(lines: list[Transaction], t: int) -> dict[str, object]:
    """The product's window rule by hand at ``t`` (revenue summed in thousandths)."""
    seen = [e for e in lines if e.ts <= t]
    out: dict[str, object] = {}
    for days in PRODUCT.windows_days:
        cut = t // HOUR + 1 - days * 24
        inside = [e for e in seen if e.ts // HOUR >= cut]
        if days in (1, 7):
            out[f"units_{days}d"] = sum(e.quantity for e in inside)
            milli = sum(e.quantity * round(e.unit_price * 1000) for e in inside)
            cents, rest = divmod(milli, 10)  # half to even, in whole numbers
            out[f"revenue_{days}d"] = (cents + (rest > 5 or (rest == 5 and cents % 2))) / 100
        if days == 7:
            out["distinct_buyers_7d"] = len({e.customer_id for e in inside
                                             if not e.is_cancellation and e.customer_id})
        if days == 30:
            cancelled = sum(e.is_cancellation for e in inside)
            out["cancelled_share_30d"] = round(cancelled / len(inside), 4) if inside else None
    return out


@st.composite
def product_lines(draw: st.DrawFn) -> list[Transaction]:
    """One product's lines over up to 60 days, by several customers, in event-time order."""
    ts, out = START, []
    for n, (gap, _same, quantity, cents, kind) in enumerate(
            draw(st.lists(line_spec, min_size=1, max_size=30))):
        ts += gap * 60
        buyer = draw(st.sampled_from(["b1", "b2", "b3", None]))
        e = event(buyer or "guest", n, ts, f"i{n}", quantity, cents,
                  "cancel" if kind == "cancel" else "buy")
        out.append(Transaction(**{**{f: getattr(e, f) for f in e.__struct_fields__},
                                  "customer_id": buyer, "stock_code": "85123A",
                                  "unit_price": cents / 1000}))
    return out


def partitioned(lines: list[Transaction], owners: list[int], picks: list[int],
                sizes: list[int]) -> Iterator[tuple[str, list[Transaction]]]:
    """Lines spread over three partitions (by ``owners``), each in order, read in batches
    in an order drawn by ``picks``: as the flow reads a topic's partitions."""
    parts = {p: [e for i, e in enumerate(lines) if owners[i % len(owners)] == p]
             for p in range(3)}
    k = 0
    while any(parts.values()):
        ready = [p for p, rest in parts.items() if rest]
        p = ready[picks[k % len(picks)] % len(ready)]
        size = sizes[k % len(sizes)]
        yield f"p{p}", parts[p][:size]
        parts[p] = parts[p][size:]
        k += 1


def product_tile(lines: list[Transaction], hour: int) -> dict[str, object]:
    """What the product's log keeps of one hour, by hand."""
    inside = [e for e in lines if e.ts // HOUR == hour]
    return {"units": sum(e.quantity for e in inside),
            "revenue_milli": sum(e.quantity * round(e.unit_price * 1000) for e in inside),
            "lines": len(inside), "cancelled_lines": sum(e.is_cancellation for e in inside),
            "buyers": sorted({e.customer_id for e in inside
                              if e.customer_id and not e.is_cancellation})}


@hypothesis_settings(max_examples=100, deadline=None)
@given(lines=product_lines(), owners=st.lists(st.integers(0, 2), min_size=1, max_size=9),
       picks=st.lists(st.integers(0, 2), min_size=1, max_size=12),
       sizes=st.lists(st.integers(1, 8), min_size=1, max_size=6),
       after_days=st.integers(0, 100), probes=st.lists(st.floats(0, 1), min_size=5,
                                                        max_size=30))
def test_product_values_at_hour_ends_equal_the_window_rule_whatever_the_order(
        tmp_path_factory: pytest.TempPathFactory, lines: list[Transaction], owners: list[int],
        picks: list[int], sizes: list[int], after_days: int, probes: list[float]) -> None:
    """A product's lines come from three partitions read in random batches, the clock
    being the flow's (:class:`PartitionClock`): every online value is the window rule at
    its hour end; the logged tiles in effect are each hour's lines, the same as one ordered
    stream gives; and ``historical`` at any moment up to 100 days after the last line is
    the window rule at the last hour end before it."""
    end = lines[-1].ts + after_days * DAY
    lateness = 10 * 365 * DAY
    effect = []
    for delivery in (list(partitioned(lines, owners, picks, sizes)),
                     [("all", batch) for batch in chunks(lines, sizes)]):
        partitions = tuple(sorted({p for p, _ in delivery}))
        clock, folder, rows = PartitionClock(partitions), ProductFolder(), []
        steps = [(p, batch, clock.add(p, max(e.ts for e in batch))) for p, batch in delivery]
        for _partition, batch, now in steps + [("", [], max(clock.end(), end))]:
            update = folder.fold("85123A", batch, lateness, now)
            if update is None:
                continue
            assert not update.late
            rows += update.rows
            if "product" in update.values:
                moment = update.times["product"]
                assert moment % HOUR == HOUR - 1
                assert update.values["product"] == product_reference(lines, moment), moment
        effect.append(in_effect(rows))
    assert effect[0] == effect[1]
    tiles = effect[0]
    assert tiles == {h * HOUR + HOUR - 1: product_tile(lines, h)
                     for h in {e.ts // HOUR for e in lines} if h * HOUR + HOUR - 1 <= end}
    root = tmp_path_factory.mktemp("log")
    FeatureLog(root, "product").append(
        LogRow("product", "85123A", ts, 1, values) for ts, values in tiles.items())
    first = lines[0].ts
    times = [int(first + p * (end - first)) for p in probes]
    frame = get_historical_features(root, pd.DataFrame(
        {"stock_code": ["85123A"] * len(times),
         "timestamp": pd.to_datetime(times, unit="s", utc=True)}),
        [f"product:{name}" for name in PRODUCT.feature_names])
    for i, t in enumerate(times):
        want = product_reference(lines, (t + 1) // HOUR * HOUR - 1)
        got = {name: frame[f"product__{name}"][i] for name in want}
        if pd.isna(got["units_7d"]):  # no hour end logged with lines before t
            assert t < min(tiles, default=t + 1)
            continue
        got = {k: (None if pd.isna(v) else v) for k, v in got.items()}
        assert got == want, t


def test_a_silent_customer_reads_zero_online_and_in_historical(
        settings: Settings, tmp_path: Path) -> None:
    """Through the real flow, broker and Valkey: a customer silent for more than 30 days
    reads 0 in every 1/7/30-day window online once the flow has consumed later events of
    other customers, and ``historical`` returns the same at that time; its 90-day window
    and its products' hour-end rows still hold what they should."""
    assert settings.kafka_bootstrap and settings.redis_url
    path = tmp_path / "two.csv"
    lines = [["536365", "85123A", "HEART", "6", "3/1/2011 10:05", "2.55", "17850", "UK"],
             ["536366", "71053", "LANTERN", "2", "3/1/2011 10:20", "3.39", "12346", "UK"],
             ["536367", "71053", "LANTERN", "1", "4/20/2011 9:00", "3.39", "12346", "UK"]]
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([list(HEADER), *lines])
    replay(path, settings.kafka_bootstrap, settings.topic, settings.dead_topic)
    run_live(settings, stop_at_end=True, options=RunOptions())
    clock = 1_303_290_000  # 2011-04-20 09:00 UTC, the newest event
    store = RedisOnlineStore(connect(settings.redis_url), settings.prefix)
    assert int(store.read_progress()["clock"]) == clock
    online = store.read("customer", "17850")
    assert online is not None
    windows = {f"{stem}_{d}d" for stem in ("spend", "orders", "items") for d in (1, 7, 30)}
    assert {name: online[name] for name in windows} == dict.fromkeys(windows, 0)
    assert online["spend_90d"] == 15.3 and online["lifetime_orders"] == 1
    at = pd.Timestamp(clock, unit="s", tz="UTC")
    frame = get_historical_features(settings.offline_dir, pd.DataFrame(
        {"customer_id": ["17850"], "timestamp": [at]}),
        [f"customer:{name}" for name in sorted(windows | {"spend_90d"})])
    assert {name: frame[f"customer__{name}"][0] for name in windows} == \
        dict.fromkeys(windows, 0)
    assert frame["customer__spend_90d"][0] == 15.3
    later = pd.DataFrame({"customer_id": ["17850", "12346", "12346"],  # after the clock
                          "timestamp": [at + pd.Timedelta(days=60), at + pd.Timedelta(days=1),
                                        at + pd.Timedelta(days=1, seconds=-1)]})
    after = get_historical_features(settings.offline_dir, later, [
        "customer:spend_90d", "customer:spend_1d", "customer:spend_7d",
        "customer:days_since_last_purchase"])
    assert after["customer__spend_90d"].tolist() == [0, 3.39 + 6.78, 3.39 + 6.78]
    assert after["customer__spend_1d"].tolist() == [0, 0, 3.39]
    assert after["customer__spend_7d"].tolist() == [0, 3.39, 3.39]
    assert after["customer__days_since_last_purchase"].tolist() == [
        round((clock + 60 * 86_400 - 1_298_973_900) / 86_400, 4), 1.0, 1.0]
    product = store.read("product", "85123A")  # as of its last change: it left 30 days
    assert product is not None
    assert product["_ts"] == (1_298_973_600 + 30 * 86_400) // 3600 * 3600 + 3599
    assert (product["units_7d"], product["cancelled_share_30d"]) == (0, None)
