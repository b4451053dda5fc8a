"""``basketflow backfill --views NAME --from-offline``: the history of the feature
repository's own views, computed from the offline store's events, without Kafka, by the
live flow's own steps for them (:mod:`basketflow.flows.declared_views`), so a new
feature has history for training, and its log is the one the live flow writes over the
same events.

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
from typing import Any

from basketflow.config import Settings
from basketflow.errors import BasketflowError
from basketflow.offline_uri import is_remote


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
    store's events; ``on_progress(events read)`` after each batch."""
    import time

    from basketflow.app.registry import ensure_applied
    from basketflow.features.declared_state import Engine
    from basketflow.flows.backfill import offline_events, run_backfill
    from basketflow.flows.live import FeatureOutputs, RunOptions
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
    declared = tuple(repository.declarations[n] for n in names)
    for view in declared:
        Engine(view)  # what it does not compute yet is an error naming the line
    events = offline_events(settings.offline_dir)
    settings.offline_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".backfill-views-", dir=settings.offline_dir))
    try:
        outputs = FeatureOutputs(None, settings.prefix, staging, store_events=False,
                                 allowed_lateness=settings.allowed_lateness,
                                 entities=frozenset(), declared=declared)
        read = [0]

        def counted(done: int) -> None:
            read[0] = done
            on_progress(done)

        run_backfill(events, outputs, RunOptions(), counted)
        rows, entities = {}, {}
        for name in names:
            rows[name], entities[name] = _swap_in(settings.offline_dir, staging, name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ViewBackfillFigures(read[0], rows, entities, round(time.perf_counter() - started, 3))


def _swap_in(offline_dir: Path, staging: Path, name: str) -> tuple[int, int]:
    """Move one view's log, written under ``staging``, into place (the old one removed);
    its rows and entities."""
    import pyarrow.parquet as pq

    from basketflow.sinks.offline_layout import feature_log_dir
    target, staged = feature_log_dir(offline_dir, name), feature_log_dir(staging, name)
    rows, entities = 0, set()
    for path in sorted(staged.rglob("*.parquet")) if staged.exists() else ():
        table = pq.read_table(path, columns=["entity_id"])
        rows += table.num_rows
        entities.update(table.column(0).to_pylist())
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if staged.exists():
        staged.rename(target)
    return rows, len(entities)
