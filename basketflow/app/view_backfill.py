"""``basketflow backfill --views NAME --from-offline``: the history of the feature
repository's own views, computed by the generic engine
(:mod:`basketflow.features.declared_state`) from the offline store's events, without
Kafka, so a new feature has history for training.

Each view's feature log is computed whole and replaces the one before: it is written
under a hidden folder of the offline store and moved into place when done, so a reader
sees the old log or the new one. The registry must agree with the repository
(``basketflow apply`` first), so the log's ``version`` is the one ``historical`` and
``features describe`` know.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from basketflow.config import Settings
from basketflow.errors import BasketflowError
from basketflow.offline_uri import is_remote

if TYPE_CHECKING:
    from basketflow.features.declared_state import Engine
    from basketflow.schemas.events import Transaction
    from basketflow.schemas.feature_view import FeatureView

#: Rows written per Parquet append.
CHUNK = 50_000


class NotADeclaredView(BasketflowError, ValueError):
    """``--views`` naming a view the repository does not declare as its own."""


@dataclass(frozen=True)
class ViewBackfillFigures:
    """What a backfill of declared views did."""

    events: int
    rows: dict[str, int]
    entities: dict[str, int]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {"events": self.events, "rows": self.rows, "entities": self.entities,
                "seconds": self.seconds}


def backfill_views(settings: Settings, names: list[str],
                   on_progress: Callable[[int], None] = lambda events: None,
                   ) -> ViewBackfillFigures:
    """Compute the feature logs of the repository's views ``names`` from the offline
    store's events; ``on_progress(events read)`` now and then."""
    import time

    from basketflow.app.registry import ensure_applied
    from basketflow.features.declared_state import Engine
    from basketflow.flows.backfill import offline_events
    from basketflow.schemas.declare import ENTITIES
    from basketflow.schemas.repository import load_repository
    started = time.perf_counter()
    if is_remote(settings.offline_dir):
        raise BasketflowError(
            f"--views swaps a view's whole log into place by renaming a folder, which "
            f"{settings.offline_dir} (object storage) cannot do: backfill the view into a "
            "local offline store (BASKETFLOW_OFFLINE_URI=PATH) and copy its "
            "features/<view>/ folder over")
    ensure_applied(settings)
    if settings.feature_repository is None:
        raise NotADeclaredView("--views computes the feature repository's own views, and "
                               "this project names none: set feature_repository in "
                               "basketflow.yaml (basketflow init writes one)")
    repository = load_repository(settings.feature_repository)
    unknown = [n for n in names if n not in repository.own]
    if unknown:
        raise NotADeclaredView(
            f"--views {', '.join(unknown)}: not a view of the repository's own (its own: "
            f"{', '.join(repository.own) or 'none'}); the built-in views are backfilled by "
            "`basketflow backfill --from-offline` without --views")
    engines = {n: Engine(repository.declarations[n]) for n in names}
    by_entity: dict[str, dict[str, list[Transaction]]] = {n: {} for n in names}
    events = 0
    for e in offline_events(settings.offline_dir)():
        events += 1
        for name, engine in engines.items():
            key = ENTITIES[engine.view.entity](e)
            by_entity[name].setdefault(key, []).append(e)
        if events % CHUNK == 0:
            on_progress(events)
    on_progress(events)
    rows = {n: _write_log(settings.offline_dir, repository.views[n], engines[n], by_entity[n])
            for n in names}
    return ViewBackfillFigures(events, rows, {n: len(by_entity[n]) for n in names},
                               round(time.perf_counter() - started, 3))


def _write_log(offline_dir: Path, view: FeatureView, engine: Engine,
               entities: dict[str, list[Transaction]]) -> int:
    """Write one view's whole log beside the store, then swap it into place."""
    from basketflow.features.declared_state import feature_rows
    from basketflow.schemas.records import LogRow
    from basketflow.sinks.offline_layout import feature_log_dir
    from basketflow.sinks.offline_store import FeatureLog
    offline_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".backfill-{view.name}-", dir=offline_dir))
    try:
        log = FeatureLog(staging, view)
        batch: list[LogRow] = []
        written = 0
        for entity, events in entities.items():
            for seq, (ts, values) in enumerate(feature_rows(engine, events)):
                batch.append(LogRow(view.name, entity, ts, seq, values))
            if len(batch) >= CHUNK:
                written += log.append(batch)
                batch = []
        written += log.append(batch)
        target = feature_log_dir(offline_dir, view.name)
        staged = feature_log_dir(staging, view.name)
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        if staged.exists():
            staged.rename(target)
        return written
    finally:
        shutil.rmtree(staging, ignore_errors=True)
