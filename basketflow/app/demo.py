"""``basketflow demo``: everything at once on embedded servers of its own, told as it
happens through typed events (a front end renders each as it comes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from basketflow.app.features import FeatureRow, LiveScore, feature_rows, online_store
from basketflow.config import Settings

if TYPE_CHECKING:
    from basketflow.producers.replay import ReplaySummary
    from basketflow.reports.segments import Segmentation

DEMO_FIT_UNTIL = date(2011, 8, 31)
DEMO_CATEGORIES = 8
SHOWN_CUSTOMERS = 2


@dataclass(frozen=True)
class Step:
    """A step is about to start."""

    text: str


@dataclass(frozen=True)
class ServersStarted:
    """The demo's own broker and Redis-protocol server answer."""

    bootstrap: str
    redis_url: str


@dataclass(frozen=True)
class Segmented:
    """Customer categories fitted and every customer labelled."""

    segmentation: Segmentation


@dataclass(frozen=True)
class Replayed:
    """The file is in Kafka."""

    summary: ReplaySummary


@dataclass(frozen=True)
class FlowRan:
    """The dataflow ran to the end of the topic."""

    events: int
    seconds: float
    scores: int


@dataclass(frozen=True)
class CustomerShown:
    """One of the busiest customers' live features and score."""

    customer: str
    views: dict[str, FeatureRow | None]
    score: LiveScore | None


@dataclass(frozen=True)
class StatusCollected:
    """Servers, topics and stores at the end (see :mod:`basketflow.app.status`)."""

    report: dict[str, Any]


@dataclass(frozen=True)
class Stopping:
    """The demo's servers are about to stop."""


DemoEvent = Union[Step, ServersStarted, Segmented, Replayed, FlowRan, CustomerShown,
                  StatusCollected, Stopping]


def run_demo(settings: Settings, rows: int, seed: int,
             on_event: Callable[[DemoEvent], None]) -> None:
    """Generate ``rows`` synthetic lines, backfill the feature log, fit and assign customer
    categories, replay the lines, run the flow with live scores, read the busiest
    customers' features, collect the status; ``on_event`` hears each step as it starts
    and each result as it comes.

    Uses its own data directory (<data-dir>/demo, emptied first) and its own servers,
    stopped at the end, so it can run any number of times.
    """
    import shutil

    from basketflow.app.services import embedded_services
    from basketflow.app.status import collect_status
    from basketflow.flows.backfill import file_events, run_backfill
    from basketflow.flows.live import FeatureOutputs, RunOptions, run_live
    from basketflow.producers.replay import replay
    from basketflow.producers.synthetic import write_csv
    from basketflow.reports.segments import assign_customers, fit_segments, scoring_config
    from basketflow.sinks.online_store import SCORE_VIEW

    root = settings.data_dir / "demo"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    on_event(Step("starting the embedded broker and Redis-protocol server"))
    with embedded_services(root) as (bootstrap, redis_url):
        demo = Settings(root, bootstrap, redis_url, settings.topic, settings.dead_topic,
                        settings.prefix)
        on_event(ServersStarted(bootstrap, redis_url))
        csv_path = root / "sample.csv"
        on_event(Step(f"generating {rows:,} synthetic lines (seed {seed}) -> {csv_path}"))
        write_csv(csv_path, rows=rows, seed=seed)
        on_event(Step("backfilling the feature log from the file (no Kafka)"))
        run_backfill(file_events(csv_path, [0]),
                     FeatureOutputs(None, demo.prefix, demo.offline_dir),
                     RunOptions(snapshot_seconds=3600))
        on_event(Step("fitting customer categories on the baskets up to 2011-08-31"))
        segmentation = fit_segments(root, DEMO_FIT_UNTIL, seed=seed, k=DEMO_CATEGORIES)
        assign_customers(root)
        on_event(Segmented(segmentation))
        on_event(Step("replaying the lines into Kafka"))
        on_event(Replayed(replay(csv_path, bootstrap, demo.topic, demo.dead_topic)))
        on_event(Step("running the dataflow to the end of the topic (features and live "
                      "scores)"))
        stats = run_live(demo, stop_at_end=True, options=RunOptions(),
                         scoring=scoring_config(root))
        on_event(FlowRan(stats.events, stats.seconds, stats.scores))
        store = online_store(demo)
        for customer in busiest_customers(csv_path, SHOWN_CUSTOMERS):
            stored = store.read_vectors(["customer", "basket", SCORE_VIEW], [customer])[0]
            score = stored.pop(SCORE_VIEW)
            on_event(CustomerShown(customer, feature_rows(customer, stored),
                                   LiveScore.from_stored(customer, score) if score else None))
        on_event(StatusCollected(collect_status(demo)))
        on_event(Stopping())


def busiest_customers(csv_path: Path, n: int) -> list[str]:
    """The customers with the most lines in a file, to show off in the demo."""
    from collections import Counter

    from basketflow.producers.csv_source import read_events
    from basketflow.schemas.events import Transaction
    counts = Counter(e.customer_id for e in read_events(csv_path)
                     if isinstance(e, Transaction) and e.customer_id)
    return [c for c, _ in counts.most_common(n)]
