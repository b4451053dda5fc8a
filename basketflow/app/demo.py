"""``basketflow demo``: everything at once on embedded servers of its own, told as it
happens through typed events (a front end renders each as it comes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from basketflow.app.features import FeatureRow, LiveScore, online_store, read_online
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
class Backfilled:
    """The feature log computed from the file, without Kafka."""

    events: int


@dataclass(frozen=True)
class Segmented:
    """Customer categories fitted and every customer labelled."""

    segmentation: Segmentation
    labelled: int


@dataclass(frozen=True)
class Trained:
    """The classifier learnt from the stored events up to the fit's date, registered as
    the champion the flow's predictions start from."""

    version: int
    baskets: int


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
class ReportWritten:
    """The daily HTML report of the file's busiest day."""

    day: date
    path: Path


@dataclass(frozen=True)
class Finished:
    """The demo is over: where its data is, what to look at, and the servers' addresses
    when they were left running (None: stopped)."""

    data_dir: Path
    customers: list[str]
    day: date
    report: Path
    running: ServersStarted | None


DemoEvent = Union[Step, ServersStarted, Backfilled, Segmented, Trained, Replayed, FlowRan,
                  CustomerShown, ReportWritten, Finished]


def run_demo(settings: Settings, rows: int, seed: int,
             on_event: Callable[[DemoEvent], None], keep_running: bool = False) -> None:
    """Generate ``rows`` synthetic lines, backfill the feature log, fit and assign customer
    categories, train the classifier on the stored events up to the fit's date (the
    champion the flow predicts with), replay the lines, run the flow with live scores, read the busiest
    customers' features, write the busiest day's HTML report; ``on_event`` hears each step
    as it starts and each result as it comes.

    Uses its own data directory (<data-dir>/demo, emptied first, after stopping servers
    a previous demo left running) and its own embedded servers, started as ``basketflow
    up`` starts them (so ``basketflow --data-dir <data-dir>/demo status`` and ``down``
    find them), and stopped at the end unless ``keep_running``. The same seed tells the
    same story: every figure it reports is the same from run to run (the flow runs to the
    end of the topic in full batches, see :mod:`basketflow.flows.kafka_batches`).
    """
    import shutil

    from basketflow.app.model_registry import train
    from basketflow.app.reports import daily_reports
    from basketflow.app.services import down, up
    from basketflow.flows.backfill import file_events, run_backfill
    from basketflow.flows.live import FeatureOutputs, RunOptions, run_live
    from basketflow.producers.replay import replay
    from basketflow.producers.synthetic import write_csv
    from basketflow.reports.segments import assign_customers, fit_segments, scoring_config
    from basketflow.sinks.online_store import SCORE_VIEW

    root = settings.data_dir / "demo"
    own = Settings(root, None, None, settings.topic, settings.dead_topic, settings.prefix)
    if own.state_file.exists():
        down(own)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    on_event(Step("starting the embedded broker and Redis-protocol server"))
    addresses = up(own)
    servers = ServersStarted(addresses["broker"], addresses["redis"])
    try:
        demo = own.with_addresses(servers.bootstrap, servers.redis_url)
        on_event(servers)
        csv_path = root / "sample.csv"
        on_event(Step(f"generating {rows:,} synthetic lines (seed {seed})"))
        write_csv(csv_path, rows=rows, seed=seed)
        on_event(Step("backfilling the feature log from the file (no Kafka)"))
        done = [0]
        run_backfill(file_events(csv_path, [0]),
                     FeatureOutputs(None, demo.prefix, demo.offline_dir),
                     RunOptions(snapshot_seconds=3600), lambda n: done.__setitem__(0, n))
        on_event(Backfilled(done[0]))
        on_event(Step(f"fitting customer categories on the baskets up to {DEMO_FIT_UNTIL}"))
        segmentation = fit_segments(root, DEMO_FIT_UNTIL, seed=seed, k=DEMO_CATEGORIES)
        on_event(Segmented(segmentation, len(assign_customers(root))))
        on_event(Step(f"training the classifier on the baskets up to {DEMO_FIT_UNTIL}"))
        trained = train(demo, DEMO_FIT_UNTIL)
        on_event(Trained(trained.version.version.id, trained.version.version.lineage.n_learned))
        on_event(Step("replaying the lines into Kafka"))
        on_event(Replayed(replay(csv_path, servers.bootstrap, demo.topic, demo.dead_topic)))
        on_event(Step("running the dataflow to the end of the topic (features and live "
                      "scores)"))
        stats = run_live(demo, stop_at_end=True, options=RunOptions(),
                         scoring=scoring_config(root))
        on_event(FlowRan(stats.events, stats.seconds, stats.scores))
        customers, day = busiest(csv_path, SHOWN_CUSTOMERS)
        on_event(Step(f"reading the {len(customers)} busiest customers' live features"))
        store = online_store(demo)
        for customer in customers:
            read = read_online(store, [customer], ["customer", "basket"])[0]
            score = store.read_score(customer)
            on_event(CustomerShown(customer, read.views,
                                   LiveScore.from_stored(customer, score) if score else None))
        on_event(Step(f"writing the daily report of the busiest day, {day}"))
        written = daily_reports(demo, [day], root / "reports", "html")
        report = Path(next(f for r in written for f in r.files if f.endswith(".html")))
        on_event(ReportWritten(day, report))
    except BaseException:
        down(own)
        raise
    if not keep_running:
        on_event(Step("stopping the embedded servers"))
        down(own)
    on_event(Finished(root, customers, day, report, servers if keep_running else None))


def busiest(csv_path: Path, n: int) -> tuple[list[str], date]:
    """The ``n`` customers with the most lines in a file, and the day with the most lines
    (ties: the first), to show off in the demo."""
    from collections import Counter
    from datetime import datetime, timezone

    from basketflow.producers.csv_source import read_events
    from basketflow.schemas.events import Transaction
    customers: Counter[str] = Counter()
    days: Counter[int] = Counter()
    for e in read_events(csv_path):
        if isinstance(e, Transaction):
            days[e.ts // 86_400] += 1
            if e.customer_id:
                customers[e.customer_id] += 1
    busiest_day = max(sorted(days), key=days.__getitem__)
    return ([c for c, _ in customers.most_common(n)],
            datetime.fromtimestamp(busiest_day * 86_400, timezone.utc).date())
