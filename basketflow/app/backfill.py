"""``basketflow backfill`` and ``historical``: the feature log from history, and
point-in-time training sets from it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from basketflow.config import Settings

if TYPE_CHECKING:
    from basketflow.flows.live import FeatureOutputs
    from basketflow.schemas.events import Transaction


@dataclass(frozen=True)
class BackfillPlan:
    """A checked backfill, ready to run: its events (``bytes_read[0]`` counts the bytes
    of a file read so far), where it writes, with how many processes, and the size of
    its file (0: it reads the offline store)."""

    events: Callable[[], Iterator[Transaction]]
    outputs: FeatureOutputs
    processes: int
    total_bytes: int
    bytes_read: list[int]


@dataclass(frozen=True)
class BackfillFigures:
    """What a backfill did, in ``--json`` order (``seconds`` unrounded; rounded in JSON)."""

    events: int
    feature_rows: int
    offline_rows_written: int
    online_writes: int
    late_events: int
    seconds: float
    events_per_second: float
    processes: int

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return asdict(self) | {"seconds": round(self.seconds, 2)}


@dataclass(frozen=True)
class HistoricalWritten:
    """A training set written: rows, file, features asked."""

    rows: int
    out: Path
    features: list[str]

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {"rows": self.rows, "out": str(self.out), "features": self.features}


def plan_backfill(settings: Settings, source: Path | None, *, materialize: bool = False,
                  allowed_lateness: int | None = None,
                  processes: int | None = None) -> BackfillPlan:
    """Check and prepare a backfill from ``source`` (a Kaggle file; None: the offline
    store's events). With ``materialize`` the latest values go to Redis too, whose
    address is resolved here (:class:`~basketflow.app.services.ServicesNotRunning` if
    there is none). The file is checked here, before the dataflow starts
    (:func:`~basketflow.producers.csv_source.check_events_file`): a missing, empty,
    binary or wrongly headed one raises ``BadInputFile``, one error line, where the
    same error inside the running dataflow would be a Rust panic. An offline store of
    event ids of the old form raises
    :class:`~basketflow.sinks.event_ids.OldEventIds`: it would store (or fold) the same
    transactions twice. A feature repository that disagrees with the registry raises
    :class:`~basketflow.app.registry.RegistryOutOfDate`."""
    from basketflow.app.registry import ensure_applied
    from basketflow.producers.csv_source import check_events_file
    ensure_applied(settings)
    if source is not None:
        check_events_file(source)  # before the dataflow's libraries are imported
    from basketflow.app.services import REDIS, resolve
    from basketflow.flows.backfill import default_processes, file_events, offline_events
    from basketflow.flows.live import FeatureOutputs
    from basketflow.sinks.event_ids import ensure_content_ids
    ensure_content_ids(settings.offline_dir)
    redis_url = resolve(settings, (REDIS,)).redis_url if materialize else None
    outputs = FeatureOutputs(redis_url, settings.prefix, settings.offline_dir,
                             store_events=source is not None,
                             allowed_lateness=settings.allowed_lateness
                             if allowed_lateness is None else allowed_lateness)
    raw = [0]
    total = source.stat().st_size if source is not None else 0
    events = file_events(source, raw) if source is not None else offline_events(settings.offline_dir)
    return BackfillPlan(events, outputs, processes or default_processes(), total, raw)


def run_backfill(plan: BackfillPlan,
                 on_batch: Callable[[int], None] = lambda done: None) -> BackfillFigures:
    """Run a planned backfill; ``on_batch(events done)`` after each batch (the bytes of
    the file read so far are in ``plan.bytes_read[0]``). Call ``on_batch`` from the
    caller's thread only: the other processes are forked, and a thread may hold a lock at
    that moment."""
    from basketflow.flows.backfill import run_backfill as run
    from basketflow.flows.live import RunOptions
    counted = [0]

    def counting(done: int) -> None:
        counted[0] = done
        on_batch(done)

    start = time.perf_counter()
    stats = run(plan.events, plan.outputs, RunOptions(snapshot_seconds=3600), counting,
                processes=plan.processes)
    seconds = time.perf_counter() - start
    return BackfillFigures(counted[0], stats.feature_rows, stats.offline_rows,
                           stats.online_writes, stats.late_events, seconds,
                           round(counted[0] / seconds, 1) if seconds else 0, plan.processes)


def historical(settings: Settings, entities: Path, features: list[str],
               out_path: Path, entity_column: str | None = None,
               mkdir: bool = False) -> HistoricalWritten:
    """Write the point-in-time training set of an entity file (CSV or Parquet) to
    ``out_path``, whose folder must exist unless ``mkdir``; ValueError for a bad column,
    feature or file name. The views are the feature repository's (its own too)."""
    from basketflow.app.paths import output_path
    from basketflow.app.registry import training_views
    from basketflow.reports.historical import historical_to_file
    output_path(out_path, mkdir)
    views, declarations = training_views(settings)
    rows = historical_to_file(settings.offline_dir, entities, features, out_path,
                              entity_column=entity_column, views=views,
                              declarations=declarations)
    return HistoricalWritten(rows, out_path, features)
