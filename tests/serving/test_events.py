"""``POST /events`` against a real server and broker: valid lines on the topic with their
content ids, bad ones on the dead topic and a 422 with each reason; pushed, then run by
the flow, then read back through the server; 503 without a broker."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from basketflow.config import Settings
from basketflow.features.entity_features import CustomerFolder
from basketflow.flows.live import RunOptions, run_live
from basketflow.kafka import DEFAULT_PARTITIONS
from basketflow.schemas.events import decode_event, event_id, row_content
from tests.serving.conftest import LINES, Server, events, server_env, start_server


def as_posted(row: list[str]) -> dict[str, Any]:
    """A CSV record as the shop posts it (JSON numbers where the file has numbers)."""
    invoice, code, text, qty, date, price, customer, country = row
    return {"invoice": invoice, "stock_code": code, "description": text,
            "quantity": int(qty), "invoice_date": date, "unit_price": float(price),
            "customer_id": int(customer), "country": country}


def read_topic(settings: Settings, topic: str, partitions: int) -> list[bytes]:
    """Every message of ``topic``, read to the end of each partition."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "t",
                         "enable.partition.eof": True, "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    values, ended = [], 0
    try:
        while ended < partitions:
            msg = consumer.poll(10)
            assert msg is not None, f"{topic}: no end of partition within 10 s"
            if msg.error():
                assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                ended += 1
            else:
                values.append(msg.value())
    finally:
        consumer.close()
    return values


def test_pushed_lines_reach_the_topic_and_bad_ones_the_dead_topic(
        server: Server, settings: Settings) -> None:
    lines = [as_posted(row) for row in LINES] + [
        as_posted(LINES[0]) | {"quantity": "lots"}, as_posted(LINES[0])]
    got = server.client.post("/events", json={"lines": lines})
    assert got.status_code == 422, got.text
    assert got.json()["accepted"] == 4
    assert got.json()["rejected"] == [{"line": 4, "reason": "Quantity 'lots' is not a whole number"}]
    sent = [decode_event(v) for v in read_topic(settings, settings.topic, DEFAULT_PARTITIONS)]
    expected = events(LINES)
    # the first line again, after another invoice: not a duplicate within its invoice,
    # so it has the first line's content id (the flow keeps it once)
    assert sorted(t.event_id for t in sent) == sorted(
        [t.event_id for t in expected] + [expected[0].event_id])
    assert {t.event_id for t in expected} == {event_id(*row_content(t)) for t in expected}
    (dead,) = [json.loads(v) for v in read_topic(settings, settings.dead_topic, 1)]
    assert dead["reason"] == "Quantity 'lots' is not a whole number"
    assert dead["event_id"] == "api:4"  # the place of the line: a bad line has no content id
    assert dead["raw"] == ",".join([*LINES[0][:3], "lots", *LINES[0][4:]])  # as a file's
    ok = server.client.post("/events", json={"lines": [as_posted(LINES[2])]})
    assert ok.status_code == 200 and ok.json() == {"accepted": 1}


def test_push_then_run_then_read(server: Server, settings: Settings) -> None:
    got = server.client.post("/events", json={"lines": [as_posted(row) for row in LINES]})
    assert got.status_code == 200, got.text
    run_live(settings, stop_at_end=True, options=RunOptions())
    update = CustomerFolder().fold("17850", events(LINES), 3600)
    assert update is not None
    read = server.client.get("/customers/17850/features")
    assert read.status_code == 200, read.text
    views = read.json()["views"]
    for view in ("customer", "basket"):
        stored = {k: v for k, v in views[view].items()
                  if k in update.values[view]}
        assert stored == update.values[view], view


def test_without_a_broker_events_are_503(settings: Settings) -> None:
    alone = replace(settings, kafka_bootstrap=None)
    server = start_server(alone, env=server_env(alone))
    try:
        got = server.client.post("/events", json={"lines": [as_posted(LINES[0])]})
        assert got.status_code == 503 and got.json()["error"] == "broker_unavailable"
        health = server.client.get("/health").json()
        assert health["broker"] == "not configured" and health["status"] == "ok"
    finally:
        server.stop()
