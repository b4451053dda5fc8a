"""End to end through the real broker and Redis-protocol server, with the real command.

replay -> run --stop-at-end -> the offline store holds every valid line once, Redis holds
what the test computes itself from the CSV, and the dead topic every rejected line with
its reason. The expected values are computed here from the raw CSV with plain Python,
independently of the feature code under test.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import subprocess
import sys
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

from basketflow.config import (
    ENV_DATA_DIR,
    ENV_DEAD_TOPIC,
    ENV_KAFKA,
    ENV_PREFIX,
    ENV_REDIS,
    ENV_TOPIC,
    Settings,
)
from basketflow.producers.synthetic import write_csv
from basketflow.sinks.online_store import RedisOnlineStore, connect

BAD_LINES = [
    "536999,85123A,BAD QUANTITY,six,12/1/2010 9:00,2.55,17850,United Kingdom",
    "537000,85123A,BAD DATE,1,2010-12-01 09:00,2.55,17850,United Kingdom",
    "537001,85123A,TOO FEW FIELDS,1,12/1/2010 9:00,2.55",
    "537002,85123A,NEGATIVE PRICE,1,12/1/2010 9:00,-2.55,17850,United Kingdom",
]


def basketflow(settings: Settings, *args: str) -> dict[str, Any]:
    """Run the real `basketflow` command with the test's servers; return its --json output."""
    env = os.environ | {
        ENV_KAFKA: settings.kafka_bootstrap or "", ENV_REDIS: settings.redis_url or "",
        ENV_DATA_DIR: str(settings.data_dir), ENV_TOPIC: settings.topic,
        ENV_DEAD_TOPIC: settings.dead_topic, ENV_PREFIX: settings.prefix,
    }
    done = subprocess.run([sys.executable, "-m", "basketflow.cli", *args, "--json"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def with_bad_lines(source: Path, target: Path) -> None:
    """Copy a generated CSV and put rejected lines into it."""
    data = source.read_bytes()
    bad = "".join(line + "\r\n" for line in BAD_LINES).encode("latin-1")
    target.write_bytes(data + bad)


def expected_from_csv(path: Path) -> tuple[int, dict[str, dict[str, Any]]]:
    """Valid line count and each customer's totals, computed plainly from the raw CSV."""
    opener = gzip.open if path.name.endswith(".gz") else open
    totals: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"spend": 0.0, "items": 0, "cancelled_lines": 0, "invoices": set()})
    valid = 0
    non_products = {"POST", "DOT", "M", "C2", "D", "S", "B", "BANK CHARGES", "AMAZONFEE",
                    "CRUK"}
    with opener(path, "rt", encoding="ISO-8859-1", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        for row in reader:
            if row in [next(csv.reader([b])) for b in BAD_LINES]:
                continue
            valid += 1
            invoice, code, _d, qty, _date, price, customer, _c = row
            if not customer:
                continue
            t = totals[customer]
            t["spend"] += int(qty) * float(price)
            product = code.upper() not in non_products and not code.upper().startswith("GIFT_")
            if product:
                t["items"] += int(qty)
            if invoice.startswith("C"):
                t["cancelled_lines"] += 1
            else:
                t["invoices"].add(invoice)
    return valid, totals


def dead_letters(settings: Settings) -> list[dict[str, Any]]:
    """Every message on the dead topic, read to its end."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "test",
                         "enable.partition.eof": True, "enable.auto.commit": False})
    consumer.assign([TopicPartition(settings.dead_topic, 0, 0)])
    letters = []
    try:
        while True:
            msg = consumer.poll(10)
            assert msg is not None, "dead topic: no end of partition within 10 s"
            if msg.error():
                assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                return letters
            letters.append(json.loads(msg.value()))
    finally:
        consumer.close()


def offline_events(settings: Settings) -> list[dict[str, Any]]:
    """Every row of the offline event store."""
    table = ds.dataset(settings.offline_dir / "events", format="parquet",
                       partitioning="hive").to_table(columns=["event_id", "customer_id"])
    return table.to_pylist()


def check_online(settings: Settings, totals: dict[str, dict[str, Any]], sample: int) -> None:
    """The Redis values of the busiest customers equal the test's own computation, and
    their vectors (one call for all) equal their views' own hashes."""
    store = RedisOnlineStore(connect(settings.redis_url), settings.prefix)
    busiest = sorted(totals, key=lambda c: -len(totals[c]["invoices"]))[:sample]
    for customer in busiest:
        got = store.read("customer", customer)
        want = totals[customer]
        assert got is not None, customer
        assert got["lifetime_spend"] == pytest.approx(want["spend"], abs=0.01), customer
        assert got["lifetime_orders"] == len(want["invoices"]), customer
        # The data spans less than 90 days, so the 90-day window holds every line.
        assert got["spend_90d"] == pytest.approx(want["spend"], abs=0.01), customer
        assert got["items_90d"] == want["items"], customer
        assert got["orders_90d"] == len(want["invoices"]), customer
        assert got["cancelled_lines_90d"] == want["cancelled_lines"], customer
        assert isinstance(got["_ts"], int) and got["_version"]
    views = ["customer", "basket", "score"]
    vectors = store.read_vectors(views, busiest)
    assert vectors == [{v: store.read(v, c) for v in views} for c in busiest]


@pytest.mark.slow
def test_generated_data_end_to_end(settings: Settings, tmp_path: Path) -> None:
    generated = tmp_path / "generated.csv"
    write_csv(generated, rows=6000, seed=11, start=date(2010, 12, 1), end=date(2011, 2, 15))
    path = tmp_path / "with_bad.csv"
    with_bad_lines(generated, path)
    valid, totals = expected_from_csv(path)

    replayed = basketflow(settings, "replay", str(path))
    assert (replayed["sent"], replayed["rejected"]) == (valid, len(BAD_LINES))
    ran = basketflow(settings, "run", "--stop-at-end")
    assert ran["events"] == valid

    rows = offline_events(settings)
    assert len(rows) == valid
    assert len({r["event_id"] for r in rows}) == valid
    check_online(settings, totals, sample=8)

    letters = dead_letters(settings)
    assert sorted(d["raw"] for d in letters) == sorted(BAD_LINES)
    assert all(d["reason"] and d["event_id"].startswith("with_bad.csv:") for d in letters)
    dead_table = ds.dataset(settings.offline_dir / "dead", format="parquet",
                            partitioning="hive").to_table().to_pylist()
    assert sorted(d["reason"] for d in dead_table) == sorted(d["reason"] for d in letters)

    # The same file again: the topic now holds every line twice, the stores do not.
    basketflow(settings, "replay", str(path))
    basketflow(settings, "run", "--stop-at-end")
    assert len(offline_events(settings)) == valid
    check_online(settings, totals, sample=8)


@pytest.mark.slow
def test_real_file_first_20000_lines(settings: Settings, tmp_path: Path,
                                     real_data: Path) -> None:
    path = tmp_path / "real_head.csv"
    with gzip.open(real_data, "rb") as src, open(path, "wb") as dst:
        for i, line in enumerate(src):
            if i > 20_000:
                break
            dst.write(line)
    valid, totals = expected_from_csv(path)
    assert valid == 20_000
    assert basketflow(settings, "replay", str(path))["sent"] == valid
    assert basketflow(settings, "run", "--stop-at-end", "--workers", "2")["events"] == valid
    rows = offline_events(settings)
    assert len(rows) == valid == len({r["event_id"] for r in rows})
    check_online(settings, totals, sample=20)
