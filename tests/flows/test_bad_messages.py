"""Bad messages on the topic: every good one processed, every bad one dead-lettered with
its reason, on the dead topic and in the offline dead store; the flow keeps going.

The messages are published straight to the topic (not through the producer, which would
reject bad lines itself), as anything can be written to a topic.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pyarrow.dataset as ds
from confluent_kafka import Producer
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from tests.test_end_to_end import basketflow, dead_letters, offline_events

from basketflow.config import Settings
from basketflow.flows.dead_letters import MAX_RAW_CHARS
from basketflow.flows.kafka_batches import RawMessage
from basketflow.flows.live import decode_batch
from basketflow.kafka import ensure_topics
from basketflow.producers.csv_source import read_events
from basketflow.producers.synthetic import write_csv
from basketflow.schemas.events import Transaction, encode_event

GOOD = {"event_id": "f:1", "invoice": "536365", "stock_code": "85123A",
        "description": "HEART", "quantity": 6, "unit_price": 2.55, "ts": 1291191960,
        "customer_id": "17850", "country": "United Kingdom", "is_cancellation": False,
        "is_adjustment": False, "is_product": True}


def bad(**changes: object) -> bytes:
    """The good event as JSON with fields changed (a value of ... removes the field)."""
    obj = {k: v for k, v in (GOOD | changes).items() if v is not ...}
    return json.dumps(obj).encode()


BAD_MESSAGES: dict[str, bytes] = {
    "not json": b"this is not json",
    "empty": b"",
    "binary": bytes(range(256)),
    "json list": b"[1, 2, 3]",
    "missing field": bad(quantity=...),
    "wrong type": bad(quantity="six"),
    "float quantity": b'{"quantity": 1e12}',
    "huge quantity": bad(quantity=10**12),
    "year 1900": bad(ts=-2208988800),
    "year 2100": bad(ts=4102444800),
    "nan price": bad(unit_price=float("nan")),
    "inf price": bad(unit_price=float("inf")),
    "huge description": bad(description="x" * 200_000),
    "empty invoice": bad(invoice=""),
    "zero quantity": bad(quantity=0),
    "id of an older replay": bad(),  # "f:1": not made from the content
}


def good_events(tmp_path: Path, rows: int) -> list[Transaction]:
    """Valid events from the generator, each with its own event id."""
    path = tmp_path / "good.csv"
    write_csv(path, rows=rows, seed=5, start=date(2011, 1, 1), end=date(2011, 1, 31))
    events = [e for e in read_events(path) if isinstance(e, Transaction)]
    assert len(events) == rows
    return events


def test_bad_messages_are_dead_lettered_and_good_ones_processed(settings: Settings,
                                                                tmp_path: Path) -> None:
    events = good_events(tmp_path, 600)
    ensure_topics(settings.kafka_bootstrap or "", {settings.topic: 3, settings.dead_topic: 1})
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap,
                         "message.max.bytes": 2_000_000})
    bad_values = list(BAD_MESSAGES.values())
    for i, event in enumerate(events):
        producer.produce(settings.topic, encode_event(event), key=event.entity_id)
        if i % 40 == 0 and bad_values:
            producer.produce(settings.topic, bad_values.pop(), key=event.entity_id)
    for value in bad_values:
        producer.produce(settings.topic, value, key=b"bad")
    assert producer.flush(30) == 0

    ran = basketflow(settings, "run", "--stop-at-end")
    assert ran["events"] == len(events)
    assert sorted(r["event_id"] for r in offline_events(settings)) == sorted(
        e.event_id for e in events)

    letters = dead_letters(settings)
    assert len(letters) == len(BAD_MESSAGES)
    assert all(d["reason"] and d["source"] == "flow" for d in letters)
    assert all(len(d["raw"]) < MAX_RAW_CHARS + 100 for d in letters)
    stored = ds.dataset(settings.offline_dir / "dead", format="parquet",
                        partitioning="hive").to_table().to_pylist()
    assert sorted(d["reason"] for d in stored) == sorted(d["reason"] for d in letters)
    reasons = " | ".join(d["reason"] for d in letters)
    # NaN and inf are not JSON: msgspec rejects them as such.
    for expected in ("not JSON", "beyond", "outside 2000-2099",
                     "more than", "must not be empty", "Quantity is 0", "wrong schema",
                     "replay its file again"):
        assert expected in reasons, expected


messages = st.lists(st.one_of(
    st.binary(max_size=300),
    st.builds(lambda changes: bad(**changes), st.dictionaries(
        st.sampled_from(sorted(GOOD)),
        st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=50), st.booleans(),
                  st.just(...)), max_size=4)),
), max_size=20)


@hsettings(max_examples=300, deadline=None)
@given(messages)
def test_decode_batch_never_raises_and_accounts_for_every_message(values: list[bytes]) -> None:
    batch = [RawMessage("tx", 0, i, v, 1_300_000_000_000) for i, v in enumerate(values)]
    decoded = decode_batch(batch)
    assert len(decoded.events) + len(decoded.dead) == len(values)
    for event in decoded.events:
        assert 0 < abs(event.quantity) <= 1_000_000 and event.unit_price == event.unit_price
    assert all(rejection.reason for _id, _ts, rejection in decoded.dead)
    if values:
        assert decoded.offsets == {"offset:tx:0": len(values)}
