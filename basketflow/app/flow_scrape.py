"""The flow's own Prometheus metrics, scraped and summed up for ``basketflow status
--metrics-port P`` (with ``--watch`` too): per flow process (``P``, and ``P+1`` when the
run has two), the events consumed, the lag on the events topic (right on the embedded
broker too, unlike the broker's ListOffsets answer ``status`` gets), the online-write
latency's p50 and p99, how far the clock is behind now, and the servers down.

Quantiles are estimated from the histogram's buckets as Prometheus's
``histogram_quantile`` does: linearly inside the bucket that holds the rank.

>>> histogram_quantile(0.5, [(0.001, 2), (0.01, 10), (float("inf"), 10)])
0.004375
>>> histogram_quantile(0.99, [(0.001, 0), (float("inf"), 0)]) is None
True
"""

from __future__ import annotations

import urllib.request
from dataclasses import asdict, dataclass
from typing import Any

#: Seconds a scrape may take before the part is reported as not answering.
SCRAPE_TIMEOUT = 2.0


@dataclass(frozen=True)
class PartMetrics:
    """One flow process's figures from its metrics (``error`` when it did not answer)."""

    port: int
    part: str | None = None
    events: int | None = None
    lag: int | None = None
    latency_p50: float | None = None
    latency_p99: float | None = None
    clock_behind: float | None = None
    down: list[str] | None = None
    error: str | None = None


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of cumulative ``(upper bound, count)`` buckets (None: empty)."""
    total = buckets[-1][1] if buckets else 0
    if not total:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def scrape_part(port: int, topic: str) -> PartMetrics:
    """The figures of the flow process serving metrics on ``port`` (loopback)."""
    from prometheus_client.parser import text_string_to_metric_families
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                    timeout=SCRAPE_TIMEOUT) as answer:
            text = answer.read().decode()
    except OSError as exc:
        return PartMetrics(port, error=f"no flow metrics on port {port}: {exc}")
    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, []).append(s)
    if "basketflow_flow_info" not in samples:
        return PartMetrics(port, error=f"port {port} serves no basketflow flow metrics")

    def total(name: str) -> int:
        return int(sum(s.value for s in samples.get(name, []) if s.labels.get("topic") == topic))

    buckets: dict[float, float] = {}
    for s in samples.get("basketflow_flow_online_write_latency_seconds_bucket", []):
        bound = float(s.labels["le"])
        buckets[bound] = buckets.get(bound, 0) + s.value
    ordered = sorted(buckets.items())
    clock = samples.get("basketflow_flow_clock_freshness_seconds", [])
    return PartMetrics(
        port, samples["basketflow_flow_info"][0].labels.get("part"),
        total("basketflow_flow_events_total"), total("basketflow_flow_consumer_lag_messages"),
        histogram_quantile(0.5, ordered), histogram_quantile(0.99, ordered),
        clock[0].value if clock and clock[0].value else None,
        [s.labels["server"] for s in samples.get("basketflow_flow_outage", []) if s.value])


def flow_metrics(port: int, topic: str) -> list[dict[str, Any]]:
    """Each flow process's figures: the one on ``port``, and on ``port + 1`` when it
    answers (a run in two processes)."""
    parts = [scrape_part(port, topic)]
    second = scrape_part(port + 1, topic)
    if second.error is None:
        parts.append(second)
    return [asdict(p) for p in parts]
