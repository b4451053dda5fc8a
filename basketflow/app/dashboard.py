"""What the dashboard at ``/`` of ``basketflow serve`` shows, gathered here and returned
as plain typed records (:mod:`basketflow.serving.dashboard` renders them).

- **The stream** over the last hour: :class:`StreamHistory` keeps a sample of the flow's
  progress (events consumed, event-time clock, and the lag: from the flow's metrics when
  their port is known, else where the broker reports it) every few seconds, taken by the server while it runs, and gives throughput (events/s between two
  samples), freshness (the sample's wall time minus the clock) and lag as series.
- **The registry**: each view, its entity, version and features.
- **The latest reports** written under ``<data>/reports/`` and the **drift alerts** of
  the newest one (its "Feature drift" section).
- **A customer's history**: the feature-log rows of one customer (spend and orders over
  30 days) for its chart; its live values and score come from the online store, read by
  the API's own functions.
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from basketflow.config import Settings

#: Seconds between two samples of the stream, and how many are kept (an hour).
SAMPLE_EVERY = 5.0
KEPT_SAMPLES = 720
#: The customer's features drawn in its history chart.
HISTORY_FEATURES = ("spend_30d", "orders_30d")


@dataclass(frozen=True)
class StreamSample:
    """The flow's progress at wall time ``at``: events consumed (None: no flow has
    recorded any), the event-time clock (None: not started), and the lag summed over the
    topic's partitions (None where the broker does not report its partitions' ends)."""

    at: float
    events: int | None
    clock: int | None
    lag: int | None


def stream_sample(settings: Settings, metrics_port: int | None = None) -> StreamSample:
    """The flow's progress now, from its progress hash; its lag from the flow's metrics
    on ``metrics_port`` (the part furthest behind), else from the broker's watermarks."""
    from basketflow.app.flow_scrape import flow_metrics
    from basketflow.app.status import CHECK_TIMEOUT, flow_progress, topics_status
    progress = flow_progress(settings.redis_url, settings.prefix, CHECK_TIMEOUT)
    lag: int | None = None
    if metrics_port is not None:
        lags = [p["lag"] for p in flow_metrics(metrics_port, settings.topic)]
        lag = max(lags) if lags and None not in lags else None
    elif settings.kafka_bootstrap:
        broker = {"address": settings.kafka_bootstrap, "alive": True}
        topic = topics_status(settings, broker, progress.get("offsets", {}),
                              CHECK_TIMEOUT, {}).get(settings.topic, {})
        if topic.get("lag_known"):
            lags = [p.get("lag") for p in topic.get("per_partition", [])]
            lag = sum(lags) if lags and None not in lags else None
    return StreamSample(time.time(), progress.get("events"), progress.get("clock"), lag)


class StreamHistory:
    """The last hour of :class:`StreamSample`\\ s, as the charts' series.

    >>> h = StreamHistory()
    >>> for at, events in ((100.0, 0), (105.0, 500), (110.0, 1500)):
    ...     h.add(StreamSample(at, events, 1_291_191_960, None))
    >>> h.series()["events_per_second"]
    [None, 100.0, 200.0]
    """

    def __init__(self, kept: int = KEPT_SAMPLES) -> None:
        self.samples: deque[StreamSample] = deque(maxlen=kept)

    def add(self, sample: StreamSample) -> None:
        self.samples.append(sample)

    def series(self) -> dict[str, list[Any]]:
        """``at`` (epoch seconds), ``events_per_second`` (None for the first sample or
        where a count is missing), ``freshness_seconds`` (wall time minus the clock) and
        ``lag``, one value per sample."""
        at, rate, fresh, lag = [], [], [], []
        before: StreamSample | None = None
        for s in self.samples:
            at.append(round(s.at, 3))
            rate.append(round((s.events - before.events) / (s.at - before.at), 1)
                        if before and s.events is not None and before.events is not None
                        and s.at > before.at else None)
            fresh.append(round(s.at - s.clock, 1) if s.clock else None)
            lag.append(s.lag)
            before = s
        return {"at": at, "events_per_second": rate, "freshness_seconds": fresh, "lag": lag}


@dataclass(frozen=True)
class ViewSummary:
    """One view of the registry."""

    name: str
    entity: str
    version: str
    features: list[str]


def registry_views() -> list[ViewSummary]:
    """Every view of the feature registry."""
    from basketflow.schemas.features import registry
    return [ViewSummary(v.name, v.entity, v.version, list(v.feature_names))
            for v in registry().values()]


@dataclass(frozen=True)
class ReportLink:
    """A daily report written under the data directory: its day and its page's path
    relative to ``<data>/reports``."""

    day: str
    page: str


def latest_reports(settings: Settings, count: int = 7) -> list[ReportLink]:
    """The newest ``count`` daily reports with an HTML page, newest first."""
    folder = settings.data_dir / "reports"
    if not folder.is_dir():
        return []
    days = sorted((d.name for d in folder.iterdir() if (d / "report.html").is_file()),
                  reverse=True)
    return [ReportLink(day, f"{day}/report.html") for day in days[:count]]


def drift_alerts(settings: Settings) -> tuple[str | None, list[dict[str, Any]]]:
    """The day of the newest report with a drift section, and its features that moved
    (warn or alert), most moved first; ``(None, [])`` without one."""
    folder = settings.data_dir / "reports"
    for link in latest_reports(settings, count=10_000):
        try:
            report = json.loads((folder / link.day / "report.json").read_text())
        except (OSError, ValueError):
            continue
        section = report.get("sections", {}).get("drift")
        if section and section.get("available"):
            return link.day, [f for f in section["most_moved"] if f["status"] != "ok"]
    return None, []


def customer_history(settings: Settings, customer: str) -> dict[str, list[Any]]:
    """The customer's feature-log rows of the current ``customer`` view, oldest first:
    ``ts`` and each of :data:`HISTORY_FEATURES` (the last row of each event time)."""
    from basketflow.reports.offline_query import OfflineQuery
    from basketflow.schemas.features import registry
    from basketflow.sinks.offline_layout import ensure_whole, feature_log_files
    from basketflow.sinks.offline_scan import parquet_source
    files = feature_log_files(settings.offline_dir, "customer")
    empty: dict[str, list[Any]] = {"ts": [], **{f: [] for f in HISTORY_FEATURES}}
    if not files:
        return empty
    ensure_whole(files)
    columns = ", ".join(HISTORY_FEATURES)
    with OfflineQuery(settings.offline_dir) as query:
        source = parquet_source(query.con, files, union_by_name=True)
        rows = query.rows(
            f"SELECT CAST(epoch(ts) AS BIGINT), {columns} FROM {source.sql} "
            "WHERE entity_id = $customer AND version = $version "
            "QUALIFY row_number() OVER (PARTITION BY ts ORDER BY seq DESC) = 1 ORDER BY ts",
            {**source.params, "customer": customer,
             "version": registry()["customer"].version})
    history = empty
    for row in rows:
        history["ts"].append(int(row[0]))
        for name, value in zip(HISTORY_FEATURES, row[1:]):
            history[name].append(value)
    return history
