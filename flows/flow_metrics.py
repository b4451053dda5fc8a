"""The live flow's Prometheus metrics, from Bytewax's own API server through a relay.

``basketflow run --metrics-port P`` turns on Bytewax's dataflow API server
(``BYTEWAX_DATAFLOW_API_ENABLED``) on a free port of its own in each flow process, and
starts a relay process (:mod:`basketflow.flows.metrics_relay`) that answers on P: its
``/metrics`` is a copy of Bytewax's, refreshed every second: Bytewax's own metrics (items
and durations per step, ``bytewax_snapshot_duration_seconds`` per input partition and
``bytewax_partd_write_duration_seconds``, the recovery writes of each epoch's snapshot)
followed by prometheus-client's default registry, where :func:`install` puts this
module's collector; ``/dataflow`` (the flow's graph as JSON) is passed through. One port
serves everything a process knows. The relay exists because Bytewax renders the Python
part holding the interpreter lock: on a busy flow a scrape of Bytewax's server waits for
the flow's thread, tens of ms; the relay's copy waits instead, and nobody waits for it.

What the flow counts (names in base units, counters end in ``_total``, labels bounded by
the topic's partitions, the views, the servers and the model versions):

- ``basketflow_flow_events_total`` and ``basketflow_flow_dead_letters_total`` per topic
  and partition: messages decoded into events, and messages that became dead letters (on
  the dead topic: the producer's dead letters read back);
- ``basketflow_flow_late_events_total``: events beyond the allowed lateness;
- ``basketflow_flow_consumer_lag_messages``, ``basketflow_flow_next_offset`` and
  ``basketflow_flow_end_offset`` per topic and partition: from the fetch responses'
  high watermark (:func:`~basketflow.flows.kafka_batches.partition_positions`), right on
  the embedded broker too;
- ``basketflow_flow_online_write_latency_seconds`` per entity kind (``customer``: its
  customer and basket views; ``product``): from the Kafka timestamp of an entity's oldest
  event not written yet (the producer's send time) to the return of the online write
  that carries it, one observation per entity written;
- ``basketflow_flow_newest_event_timestamp_seconds`` and ``basketflow_flow_freshness_seconds``
  per view (now minus the newest event time written), ``basketflow_flow_clock_timestamp_seconds``
  and ``basketflow_flow_clock_freshness_seconds`` (the event-time clock);
- ``basketflow_flow_redis_retries_total``, and per server (``redis``, ``broker``)
  ``basketflow_flow_outage`` (1 while it is down), ``basketflow_flow_outages_total`` and
  ``basketflow_flow_outage_duration_seconds`` (of the current outage);
- ``basketflow_flow_scores_total`` per model version; the model's rolling accuracy
  (``basketflow_flow_model_rolling_accuracy``: of the last :data:`ACCURACY_WINDOW`
  labelled baskets judged, the share whose last live score named the customer's label;
  a basket is judged when the customer's next basket is scored, the scoring step's own
  closing rule, and ``basketflow_flow_model_judged_baskets_total`` counts them); the rows
  written
  (``basketflow_flow_online_writes_total``, ``basketflow_flow_feature_rows_total``,
  ``basketflow_flow_offline_rows_total``).

Counters are of this process since it started, as Prometheus expects (a restart starts
from zero; ``rate()`` copes); ``basketflow status`` shows the totals kept in the
recovery state. Counting costs a few dictionary operations per batch and one per event
(its arrival time: the key is the event's entity, computed per event whatever the
bookkeeping), done by ``inspect`` steps added only when metrics are on; the latencies
of an online write are bucketed together with numpy (:class:`Histogram`).
"""

from __future__ import annotations

import errno
import math
import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import REGISTRY
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from basketflow.errors import BasketflowError
from basketflow.flows.kafka_batches import partition_positions
from basketflow.schemas.events import Transaction
from basketflow.schemas.records import ScoreRow
from basketflow.sinks.flow_health import Outage
from basketflow.sinks.flow_sinks import FlowStats, WrittenRows

ENV_API_ENABLED = "BYTEWAX_DATAFLOW_API_ENABLED"
ENV_API_PORT = "BYTEWAX_DATAFLOW_API_PORT"
#: The folder where Bytewax's API server writes the flow's graph (``/dataflow``) as
#: ``dataflow.json``; by default the working directory.
ENV_API_CACHE = "BYTEWAX_DATAFLOW_API_CACHE_PATH"
#: Seconds: sub-millisecond buckets first (a tailing flow writes within a few ms), up to
#: the minutes a backlog waits.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.01, 0.025,
                   0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
CUSTOMER, PRODUCT = "customer", "product"
#: Labelled baskets the rolling accuracy is taken over.
ACCURACY_WINDOW = 1000
_TS = itemgetter(0)


class MetricsPortTaken(BasketflowError):
    """The metrics port cannot be bound; the message says which and what to do."""


class Histogram:
    """Bucket counts of observations, added a batch at a time and cumulated only when
    collected: a write of n entities costs one ``searchsorted`` and one ``bincount``, not
    n bisects (an observation lands in the first bucket whose bound it does not exceed,
    as Prometheus's ``le`` says).

    >>> h = Histogram((0.001, 0.01))
    >>> h.observe_many(np.array([0.0005, 0.002, 0.01, 5.0]))
    >>> h.cumulative(), h.count, h.sum
    ([('0.001', 1), ('0.01', 3), ('+Inf', 4)], 4, 5.0125)
    """

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self.bounds = np.array(buckets)
        self.counts = np.zeros(len(buckets) + 1, dtype=np.int64)
        self.sum = 0.0
        self.count = 0

    def observe_many(self, seconds: np.ndarray) -> None:
        """Add one observation per value of ``seconds``."""
        if not len(seconds):
            return
        self.counts += np.bincount(np.searchsorted(self.bounds, seconds, side="left"),
                                   minlength=len(self.counts))
        self.sum += float(seconds.sum())
        self.count += len(seconds)

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count at or below)`` per bucket, ``+Inf`` last, as Prometheus has them."""
        totals = np.cumsum(self.counts).tolist()
        return list(zip([*map(str, self.buckets), "+Inf"], totals))


def partition_labels(name: str) -> tuple[str, str]:
    """``(topic, partition)`` of a partition as the flow names it (``offset:T:P``).

    >>> partition_labels("offset:transactions:3")
    ('transactions', '3')
    """
    _, topic, partition = name.rsplit(":", 2)
    return topic, partition


class FlowMetrics:
    """What one flow process counts for its metrics (see the module docstring): told by
    the flow's ``inspect`` steps (:meth:`batch`, :meth:`clocked`, :meth:`dead_read`) and,
    through :attr:`FlowStats.observer`, by the online sink (:meth:`online_written`) and
    the scoring step (:meth:`scored`); read by :meth:`collect` at each scrape."""

    def __init__(self, part: str, stats: FlowStats, kinds: frozenset[str],
                 redis: Outage | None = None, broker: Outage | None = None,
                 labels: Mapping[str, str] | None = None) -> None:
        self.part = part
        self.stats = stats
        self.kinds = kinds
        self.redis = redis
        self.broker = broker
        self.events: dict[str, int] = {}
        self.dead: dict[str, int] = {}
        #: Per entity kind, each entity's oldest arrival (ms) not written online yet.
        self.pending: dict[str, dict[str, int]] = {kind: {} for kind in kinds}
        self.latency = {kind: Histogram() for kind in kinds}
        self.newest: dict[str, int] = {}
        self.clock = 0
        self.scores: dict[str, int] = {}
        #: Customer labels, each customer's open basket and its last predicted category,
        #: and the judged baskets (1: the prediction named the label).
        self.labels = labels or {}
        self.open: dict[str, tuple[str, str]] = {}
        self.judged: deque[int] = deque(maxlen=ACCURACY_WINDOW)
        self.judged_total = 0
        self.lock = threading.Lock()
        stats.observer = self

    def batch(self, event_offsets: dict[str, list[int]], dead_offsets: dict[str, list[int]],
              events: list[Transaction], arrivals: list[int]) -> None:
        """Count a decoded batch per partition, and note when each entity's events
        arrived (``arrivals``: each event's Kafka timestamp in ms)."""
        for name, offsets in event_offsets.items():
            self.events[name] = self.events.get(name, 0) + len(offsets)
        for name, offsets in dead_offsets.items():
            self.dead[name] = self.dead.get(name, 0) + len(offsets)
        customers, products = self.pending.get(CUSTOMER), self.pending.get(PRODUCT)
        with self.lock:  # the writer thread pops what it wrote
            if customers is not None:
                note = customers.setdefault
                for e, ms in zip(events, arrivals):
                    note(e.entity_id, ms)
            if products is not None:
                note = products.setdefault
                for e, ms in zip(events, arrivals):
                    if e.is_product:
                        note(e.stock_code, ms)

    def dead_read(self, name: str, count: int) -> None:
        """Count dead letters read back from the dead topic's partition ``name``."""
        self.dead[name] = self.dead.get(name, 0) + count

    def clocked(self, clock: int) -> None:
        """Note the flow's event-time clock after a batch."""
        self.clock = max(self.clock, clock)

    def online_written(self, latest: WrittenRows) -> None:
        """An online write returned: time each entity's oldest unwritten event, note the
        newest event time per view (called on the sink's writer thread)."""
        now_ms = time.time() * 1000
        with self.lock:
            for view, rows in latest.items():
                newest = max(map(_TS, rows.values()))
                self.newest[view] = max(self.newest.get(view, 0), newest)
                kind = PRODUCT if view == PRODUCT else CUSTOMER
                pending, histogram = self.pending.get(kind), self.latency.get(kind)
                if pending is None or histogram is None:
                    continue
                arrived = np.fromiter(map(pending.pop, rows, repeat(math.nan, len(rows))),
                                      dtype=np.float64, count=len(rows))
                arrived = arrived[~np.isnan(arrived)]  # NaN: nothing pending for it
                histogram.observe_many(np.maximum(now_ms - arrived, 0.0) / 1000)

    def scored(self, row: ScoreRow) -> None:
        """Count one score by the model version that made it; judge the customer's
        previous basket when this one is a new one."""
        version = row.score.model_version
        self.scores[version] = self.scores.get(version, 0) + 1
        label = self.labels.get(row.entity)
        if label is None:
            return
        previous = self.open.get(row.entity)
        if previous is not None and previous[0] != row.invoice:
            self.judged.append(int(previous[1] == label))
            self.judged_total += 1
        self.open[row.entity] = (row.invoice, row.score.category)

    def collect(self) -> Iterator[Metric]:
        """The metric families, as prometheus-client's registry asks for them."""
        now = time.time()
        info = GaugeMetricFamily("basketflow_flow_info", "The flow part this process runs",
                                 labels=["part"])
        info.add_metric([self.part], 1)
        yield info
        yield from self._counts()
        yield from self._positions()
        yield from self._latency()
        yield from self._freshness(now)
        yield from self._outages(now)

    def _counts(self) -> Iterator[Metric]:
        for name, doc, counts in (
                ("basketflow_flow_events", "Messages decoded into events", self.events),
                ("basketflow_flow_dead_letters", "Messages that became dead letters (on "
                 "the dead topic: the producer's, read back)", self.dead)):
            family = CounterMetricFamily(name, doc, labels=["topic", "partition"])
            for partition, n in sorted(counts.items()):
                family.add_metric(partition_labels(partition), n)
            yield family
        stats = self.stats
        for name, doc, value in (
                ("basketflow_flow_late_events", "Events beyond the allowed lateness, left "
                 "out of online values", stats.late_events),
                ("basketflow_flow_online_writes", "Entity views written online",
                 stats.online_writes),
                ("basketflow_flow_feature_rows", "Feature-log rows written", stats.feature_rows),
                ("basketflow_flow_offline_rows", "Events newly stored offline",
                 stats.offline_rows),
                ("basketflow_flow_redis_retries", "Redis writes retried during an outage",
                 self.redis.failures if self.redis else 0)):
            yield CounterMetricFamily(name, doc, value=value)
        scores = CounterMetricFamily("basketflow_flow_scores", "Live scores made",
                                     labels=["model_version"])
        for version, n in sorted(self.scores.items()):
            scores.add_metric([version], n)
        yield scores
        yield CounterMetricFamily("basketflow_flow_model_judged_baskets", "Labelled baskets "
                                  "whose last live score was judged", value=self.judged_total)
        judged = list(self.judged)
        accuracy = GaugeMetricFamily("basketflow_flow_model_rolling_accuracy", "Share of the "
                                     f"last {ACCURACY_WINDOW} judged baskets whose last "
                                     "score named the customer's label")
        if judged:
            accuracy.add_metric([], sum(judged) / len(judged))
        yield accuracy

    def _positions(self) -> Iterator[Metric]:
        labels = ["topic", "partition"]
        lag = GaugeMetricFamily("basketflow_flow_consumer_lag_messages",
                                "Messages on the partition not read yet", labels=labels)
        nxt = GaugeMetricFamily("basketflow_flow_next_offset",
                                "The next offset the flow reads", labels=labels)
        end = GaugeMetricFamily("basketflow_flow_end_offset", "The partition's end (high "
                                "watermark) as the last fetch gave it", labels=labels)
        for p in sorted(partition_positions(), key=lambda p: (p.topic, p.partition)):
            names = [p.topic, str(p.partition)]
            lag.add_metric(names, max(p.end_offset - p.next_offset, 0))
            nxt.add_metric(names, p.next_offset)
            end.add_metric(names, p.end_offset)
        yield from (lag, nxt, end)

    def _latency(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            "basketflow_flow_online_write_latency_seconds", "From an event's Kafka "
            "timestamp to the return of the online write carrying it", labels=["kind"])
        with self.lock:
            for kind, h in sorted(self.latency.items()):
                family.add_metric([kind], h.cumulative(), h.sum)
        yield family

    def _freshness(self, now: float) -> Iterator[Metric]:
        newest = GaugeMetricFamily("basketflow_flow_newest_event_timestamp_seconds",
                                   "The newest event time written online, per view",
                                   labels=["view"])
        fresh = GaugeMetricFamily("basketflow_flow_freshness_seconds",
                                  "Now minus the newest event time written online",
                                  labels=["view"])
        for view, ts in sorted(self.newest.items()):
            newest.add_metric([view], ts)
            fresh.add_metric([view], now - ts)
        yield from (newest, fresh)
        yield GaugeMetricFamily("basketflow_flow_clock_timestamp_seconds",
                                "The flow's event-time clock (0: not started)", self.clock)
        yield GaugeMetricFamily("basketflow_flow_clock_freshness_seconds",
                                "Now minus the event-time clock", now - self.clock
                                if self.clock else 0)

    def _outages(self, now: float) -> Iterator[Metric]:
        down = GaugeMetricFamily("basketflow_flow_outage", "1 while the server is "
                                 "unreachable", labels=["server"])
        started = CounterMetricFamily("basketflow_flow_outages", "Outages begun",
                                      labels=["server"])
        length = GaugeMetricFamily("basketflow_flow_outage_duration_seconds",
                                   "How long the current outage has lasted (0: none)",
                                   labels=["server"])
        for server, outage in (("redis", self.redis), ("broker", self.broker)):
            if outage is None:
                continue
            since = outage.since
            down.add_metric([server], 0 if since is None else 1)
            started.add_metric([server], outage.started)
            length.add_metric([server], 0 if since is None else now - since)
        yield from (down, started, length)


class _Installed:
    """The collector registered in prometheus-client's default registry (one per
    process: a later flow in the same process replaces it)."""

    current: FlowMetrics | None = None

    def collect(self) -> Iterator[Metric]:
        metrics = self.current
        return metrics.collect() if metrics is not None else iter(())

    def describe(self) -> list[Any]:
        return []  # families vary with the run: checked at collection, not registration


_installed = _Installed()


def install(metrics: FlowMetrics) -> None:
    """Serve ``metrics`` from prometheus-client's default registry, which Bytewax's API
    server appends to its own."""
    if _installed.current is None:
        REGISTRY.register(_installed)  # type: ignore[arg-type]
    _installed.current = metrics


def serve_on(port: int, graph_dir: Path) -> subprocess.Popen[bytes]:
    """Serve the metrics of the flow about to run in this process on ``port`` (loopback
    and every interface, as Bytewax binds): turn on Bytewax's API server on a free port
    of its own, its graph written in ``graph_dir`` (made if missing; not the working
    directory), and start the relay that answers on ``port`` from it
    (:mod:`basketflow.flows.metrics_relay`; stop it when the flow ends, or it ends with
    this process). Raise :class:`MetricsPortTaken` when ``port`` cannot be bound."""
    bytewax_port = free_port()
    relay = subprocess.Popen(
        [sys.executable, "-m", "basketflow.flows.metrics_relay", str(port),
         str(bytewax_port), str(os.getpid())],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    assert relay.stdout is not None
    first = relay.stdout.readline().decode().split(" ", 2)
    if first[0].strip() != "ready":
        relay.wait()
        code = int(first[1]) if len(first) == 3 else 0
        why = "is in use" if code == errno.EADDRINUSE else \
            f"cannot be bound ({first[-1].strip() or 'the relay did not start'})"
        raise MetricsPortTaken(
            f"metrics port {port} {why}; give another with --metrics-port (a run in "
            "two processes uses it and the next one)")
    os.environ[ENV_API_ENABLED] = "true"
    os.environ[ENV_API_PORT] = str(bytewax_port)
    graph_dir.mkdir(parents=True, exist_ok=True)
    os.environ[ENV_API_CACHE] = str(graph_dir)
    return relay


def free_port() -> int:
    """A port free on every interface now (where Bytewax's API server will listen)."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])
