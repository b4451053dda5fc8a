"""The live flow's Prometheus metrics (flows/flow_metrics.py), scraped from a running
`basketflow run --metrics-port P` (two processes: P and P+1) on the real broker and
Valkey: every metric name is there, and the counts match what was sent, what the run
reports and what it stored.
"""

from __future__ import annotations

import json
import math
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from basketflow.app.dashboard import stream_sample
from basketflow.config import Settings
from basketflow.flows.flow_metrics import (
    ACCURACY_WINDOW,
    FlowMetrics,
    Histogram,
    partition_labels,
)
from basketflow.producers.csv_source import read_events
from basketflow.producers.synthetic import write_csv
from basketflow.reports.segments import load_labels
from basketflow.schemas.events import GUEST_PREFIX, Transaction
from basketflow.sinks.flow_sinks import FlowStats
from basketflow.sinks.online_store import RedisOnlineStore, connect
from tests.flows.test_recovery import cli_env
from tests.test_end_to_end import BAD_LINES, basketflow, with_bad_lines

ROWS = 12_000
#: Messages on the events topic that are not events (the flow makes them dead letters).
GARBAGE = [b"not json", b"{\"half\": ", b"[1, 2, 3]"]
GARBAGE_PARTITION = 1

#: Every family the flow's collector serves (prometheus-client names: counters without
#: their ``_total``), and the Bytewax ones the issue asks for.
FLOW_FAMILIES = {
    "basketflow_flow_info", "basketflow_flow_events", "basketflow_flow_dead_letters",
    "basketflow_flow_late_events", "basketflow_flow_online_writes",
    "basketflow_flow_feature_rows", "basketflow_flow_offline_rows",
    "basketflow_flow_redis_retries", "basketflow_flow_scores",
    "basketflow_flow_model_judged_baskets", "basketflow_flow_model_rolling_accuracy",
    "basketflow_flow_consumer_lag_messages", "basketflow_flow_next_offset",
    "basketflow_flow_end_offset", "basketflow_flow_online_write_latency_seconds",
    "basketflow_flow_newest_event_timestamp_seconds", "basketflow_flow_freshness_seconds",
    "basketflow_flow_clock_timestamp_seconds", "basketflow_flow_clock_freshness_seconds",
    "basketflow_flow_outage", "basketflow_flow_outages",
    "basketflow_flow_outage_duration_seconds",
    "bytewax_snapshot_duration_seconds", "bytewax_partd_write_duration_seconds",
}


def free_port_pair() -> int:
    """A port P such that P and P+1 are both free now."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 65534 and all(_free(p) for p in (port, port + 1)):
            return port
    raise AssertionError("no two consecutive free ports")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def scrape(port: int) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    """The families at ``/metrics`` on ``port``: name -> samples."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    return {f.name: [(s.name, s.labels, s.value) for s in f.samples]
            for f in text_string_to_metric_families(text.decode())}


def by_partition(samples: list[tuple[str, dict[str, str], float]], suffix: str = ""
                 ) -> dict[tuple[str, str], float]:
    return {(labels["topic"], labels["partition"]): value for name, labels, value in samples
            if name.endswith(suffix)}


@pytest.fixture
def labelled(settings: Settings, tmp_path: Path) -> tuple[Settings, list[Transaction]]:
    """A generated file with rejected lines replayed, garbage messages on one partition,
    a first run that stored it, customer categories fitted and assigned, and a model
    trained on the first months (the champion the metered run scores with)."""
    generated, path = tmp_path / "generated.csv", tmp_path / "with_bad.csv"
    write_csv(generated, rows=ROWS, seed=5, start=date(2010, 12, 1), end=date(2011, 6, 30))
    with_bad_lines(generated, path)
    sent = basketflow(settings, "replay", str(path))
    assert (sent["sent"], sent["rejected"]) == (ROWS, len(BAD_LINES))
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    for value in GARBAGE:
        producer.produce(settings.topic, value, partition=GARBAGE_PARTITION)
    assert producer.flush(10) == 0
    basketflow(settings, "run", "--stop-at-end")
    basketflow(settings, "segment", "fit", "--until", "2011-03-31", "--k", "8")
    basketflow(settings, "segment", "assign")
    basketflow(settings, "models", "train", "--until", "2011-03-31")  # what it scores with
    events = [e for e in read_events(path) if isinstance(e, Transaction)]
    return settings, events


def settled(proc: subprocess.Popen[bytes], ports: tuple[int, int], want_events: int,
            newest: int, timeout: float = 180.0
            ) -> dict[int, dict[str, list[tuple[str, dict[str, str], float]]]]:
    """Scrape both parts until each has counted every event, has no lag, has its clock
    at the ``newest`` event time (its partitions idle: the windows then moved on, which
    writes rows again), shows every family (the metrics relay's copy of Bytewax's server
    is up to a second old) and its counts stopped moving; the last scrapes."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
        try:
            got = {port: scrape(port) for port in ports}
        except OSError:
            time.sleep(0.2)
            continue
        done = all(sum(by_partition(m["basketflow_flow_events"]).values()) == want_events
                   and not any(by_partition(m["basketflow_flow_consumer_lag_messages"]).values())
                   and FLOW_FAMILIES <= set(m)
                   and m["basketflow_flow_clock_timestamp_seconds"][0][2] >= newest
                   for m in got.values())
        counts = {p: (m["basketflow_flow_online_writes"], m["basketflow_flow_scores"],
                      m["basketflow_flow_clock_timestamp_seconds"]) for p, m in got.items()}
        if done and counts == last:
            return got
        last = counts if done else None
        time.sleep(1.5)
    raise AssertionError(f"the flow did not settle within {timeout} s")


@pytest.mark.slow
def test_metrics_of_a_running_flow_match_the_run(
        labelled: tuple[Settings, list[Transaction]]) -> None:
    settings, events = labelled
    port = free_port_pair()
    proc = subprocess.Popen(
        [sys.executable, "-m", "basketflow.cli", "run", "--from-start", "--json",
         "--metrics-port", str(port), "--snapshot-interval", "0.5"],
        env=cli_env(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        cwd=settings.data_dir.parent)
    try:
        got = settled(proc, (port, port + 1), len(events), max(e.ts for e in events))
        status = subprocess.run(
            [sys.executable, "-m", "basketflow.cli", "status", "--json", "--metrics-port",
             str(port)], env=cli_env(settings), capture_output=True, text=True, timeout=120)
        sampled, unmetered = stream_sample(settings, port), stream_sample(settings)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-3000:]
    figures = json.loads(out)
    serve, store = got[port], got[port + 1]

    for metrics in (serve, store):
        assert FLOW_FAMILIES <= set(metrics), FLOW_FAMILIES - set(metrics)
    for part in ("serve", "store"):  # the graph Bytewax's server gives at /dataflow
        graph = json.loads((settings.data_dir / "dataflow" / part / "dataflow.json").read_text())
        assert graph["flow_id"] == "basketflow-live"
    assert not (settings.data_dir.parent / "dataflow.json").exists()  # not where it ran
    assert serve["basketflow_flow_info"][0][1] == {"part": "serve"}
    assert store["basketflow_flow_info"][0][1] == {"part": "store"}

    # Events per partition: what the topic holds (the fetch's end offsets), minus the
    # garbage; the same in both parts, and what the run and its progress report.
    sent_per_partition = Counter[tuple[str, str]]()
    for metrics in (serve, store):
        ends = by_partition(metrics["basketflow_flow_end_offset"])
        nexts = by_partition(metrics["basketflow_flow_next_offset"])
        counted = by_partition(metrics["basketflow_flow_events"])
        dead = by_partition(metrics["basketflow_flow_dead_letters"])
        topic_ends = {k: v for k, v in ends.items() if k[0] == settings.topic}
        assert sum(topic_ends.values()) == len(events) + len(GARBAGE)
        assert nexts == ends
        for key, end in topic_ends.items():
            assert counted[key] + dead.get(key, 0) == end
        sent_per_partition = Counter(counted)
        assert dead.get((settings.topic, str(GARBAGE_PARTITION))) == len(GARBAGE)
    assert by_partition(serve["basketflow_flow_events"]) == sent_per_partition
    assert sum(sent_per_partition.values()) == figures["events"] == len(events)
    store_dead = by_partition(store["basketflow_flow_dead_letters"])
    assert store_dead[(settings.dead_topic, "0")] == len(BAD_LINES)  # the producer's
    assert sum(store_dead.values()) == figures["dead_letters"] == len(BAD_LINES) + len(GARBAGE)
    progress = RedisOnlineStore(connect(settings.redis_url or ""), settings.prefix)
    assert int(progress.read_progress("")["events"]) == len(events)
    assert int(progress.read_progress("")["dead_letters"]) == len(GARBAGE)

    # Rows written: the run's own figures per part.
    for part, metrics in (("serve", serve), ("store", store)):
        assert metrics["basketflow_flow_online_writes"][0][2] == \
            figures["parts"][part]["online_writes"]
        assert metrics["basketflow_flow_late_events"][0][2] == 0

    # Scores: one version, as many as the score log holds (the first run made none).
    versions = {labels["model_version"]: value
                for _n, labels, value in serve["basketflow_flow_scores"]}
    score_rows = ds.dataset(settings.offline_dir / "scores", format="parquet").count_rows()
    assert len(versions) == 1 and sum(versions.values()) == score_rows > 0
    assert not store["basketflow_flow_scores"]

    # Rolling accuracy: each labelled customer's baskets in the order scored (seq), a
    # basket judged by its last score when the customer's next one is scored.
    labels = load_labels(settings.data_dir)
    log = ds.dataset(settings.offline_dir / "scores", format="parquet",
                     partitioning="hive").to_table().to_pylist()
    hits = judged = 0
    for customer in {r["entity_id"] for r in log} & set(labels):
        rows = sorted((r for r in log if r["entity_id"] == customer), key=lambda r: r["seq"])
        for before, after in zip(rows, rows[1:]):
            if before["invoice"] != after["invoice"]:
                judged += 1
                hits += before["category"] == labels[customer]
    assert serve["basketflow_flow_model_judged_baskets"][0][2] == judged > 0
    assert judged <= ACCURACY_WINDOW  # so the rolling window holds them all
    assert serve["basketflow_flow_model_rolling_accuracy"][0][2] == pytest.approx(
        hits / judged)

    # Latency: an observation per customer (guests: invoice) at least, at most one per
    # entity written; buckets cumulative, sub-millisecond ones first.
    hist = {name.rsplit("_", 1)[-1]: value for name, labels, value in
            serve["basketflow_flow_online_write_latency_seconds"]
            if labels.get("kind") == "customer" and name.endswith(("_count", "_sum"))}
    customers = {e.entity_id for e in events}
    assert len(customers) <= hist["count"] <= figures["parts"]["serve"]["online_writes"]
    buckets = [(float(labels["le"]), value) for name, labels, value in
               serve["basketflow_flow_online_write_latency_seconds"]
               if name.endswith("_bucket") and labels["kind"] == "customer"]
    assert buckets[0][0] < 0.001 and buckets[-1] == (float("inf"), hist["count"])
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:]))

    # Freshness: the newest event time written is the newest event's; the clock is the
    # one each part recorded in its progress hash.
    newest = {labels["view"]: value for _n, labels, value in
              serve["basketflow_flow_newest_event_timestamp_seconds"]}
    assert newest["customer"] == max(e.ts for e in events)
    assert serve["basketflow_flow_clock_timestamp_seconds"][0][2] == \
        int(progress.read_progress("serve")["clock"])
    assert store["basketflow_flow_clock_timestamp_seconds"][0][2] == \
        int(progress.read_progress("")["clock"])
    for metrics in (serve, store):
        assert {labels["server"]: value for _n, labels, value in
                metrics["basketflow_flow_outage"]} == {"redis": 0, "broker": 0}

    # `status --metrics-port` sums the same up per process.
    assert status.returncode == 0, status.stderr
    parts = json.loads(status.stdout)["metrics"]
    assert [(p["part"], p["port"], p["events"], p["lag"], p["down"], p["error"])
            for p in parts] == [("serve", port, len(events), 0, [], None),
                                ("store", port + 1, len(events), 0, [], None)]
    for q, key in ((0.5, "latency_p50"), (0.99, "latency_p99")):
        assert parts[0][key] == pytest.approx(plain_quantile(q, buckets))
    # The dashboard's sample takes the lag from the metrics; from Tansu it has none.
    assert (sampled.events, sampled.lag) == (len(events), 0)
    assert unmetered.lag is None


def plain_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus's histogram_quantile over cumulative buckets, written out plainly."""
    rank = q * buckets[-1][1]
    for i, (bound, count) in enumerate(buckets):
        if count >= rank:
            lower, below = buckets[i - 1] if i else (0.0, 0.0)
            return lower if math.isinf(bound) else \
                lower + (bound - lower) * (rank - below) / (count - below)
    raise AssertionError("no bucket holds the rank")


def test_a_taken_metrics_port_is_one_error_line(settings: Settings) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "basketflow.cli", "run", "--one-process", "--stop-at-end",
             "--metrics-port", str(port)],
            env=cli_env(settings), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"Error: metrics port {port} is in use; give another with --metrics-port (a run "
        "in two processes uses it and the next one)")


def test_histogram_against_a_plain_count() -> None:
    """Bucket counts equal counting each bound's observations at or below it, however
    the observations are split into batches (one empty)."""
    values = [i / 7919 for i in range(0, 4000, 7)] + [0.001, 0.0001, 400.0]
    h = Histogram()
    for batch in (values[:100], [], values[100:]):
        h.observe_many(np.array(batch))
    want = [(str(b), sum(1 for v in values if v <= b)) for b in h.buckets]
    assert h.cumulative() == [*want, ("+Inf", len(values))]
    assert h.count == len(values) and h.sum == pytest.approx(sum(values))


def test_pending_arrivals_against_a_plain_loop(tmp_path: Path) -> None:
    """Each entity's oldest arrival not yet written, and one latency per entity written
    that had one, as a plain per-event loop keeps them, batch after batch."""
    path = tmp_path / "generated.csv"
    write_csv(path, rows=6000, seed=3, start=date(2011, 1, 1), end=date(2011, 2, 1))
    events = [e for e in read_events(path) if isinstance(e, Transaction)]
    assert any(e.entity_id.startswith(GUEST_PREFIX) for e in events)
    assert not all(e.is_product for e in events)
    metrics = FlowMetrics("serve+store", FlowStats(), frozenset({"customer", "product"}))
    plain: dict[str, dict[str, int]] = {"customer": {}, "product": {}}
    observed: dict[str, int] = {"customer": 0, "product": 0}
    for start in range(0, len(events), 700):
        batch = events[start:start + 700]
        arrivals = [1_700_000_000_000 + start + i for i in range(len(batch))]
        metrics.batch({"offset:t:0": list(range(len(batch)))}, {}, batch, arrivals)
        for e, ms in zip(batch, arrivals):
            plain["customer"].setdefault(e.entity_id, ms)
            if e.is_product:
                plain["product"].setdefault(e.stock_code, ms)
        assert metrics.pending == plain
        half = batch[: len(batch) // 2]  # written: the first half's entities
        rows = {"customer": {e.entity_id: (e.ts, {}) for e in half},
                "basket": {e.entity_id: (e.ts, {}) for e in half},
                "product": {e.stock_code: (e.ts, {}) for e in half if e.is_product}}
        metrics.online_written(rows)
        for view, kind in (("customer", "customer"), ("basket", "customer"),
                           ("product", "product")):
            for entity in rows[view]:
                observed[kind] += plain[kind].pop(entity, None) is not None
        assert metrics.pending == plain
    assert {k: h.count for k, h in metrics.latency.items()} == observed
    assert metrics.events == {"offset:t:0": len(events)}

