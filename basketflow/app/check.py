"""``basketflow check``: verify the offline store and the recovery state, and set aside
what cannot be read.

The model registry's versions are checked too (each entry's HMAC and artifact's
sha256, nothing unpickled): a refused version is reported, never moved.

Every Parquet file of the offline store is read whole and must hold its log's columns
(:func:`basketflow.sinks.offline_store.verify_file`); every recovery partition (the
SQLite files under ``<data>/recovery/**``) must pass SQLite's ``PRAGMA integrity_check``
and hold Bytewax's tables, and the partitions of one recovery directory must agree on
the epoch they resume from (:mod:`basketflow.flows.recovery_store`).

An offline store whose event ids are of the old form (``<file>:<line>``, before ids were
made from content) is a finding too, and so is a recovery directory made then
(:func:`basketflow.flows.recovery_store.old_event_ids`): ``repair`` migrates the store's
ids in place (:mod:`basketflow.sinks.event_ids`) and sets the recovery state aside as a
damaged one.

With ``repair`` a damaged file is moved to ``<data>/quarantine/`` under its path
relative to the data directory (never deleted: it may be read by hand), while no run
holds the topic's lock. A damaged recovery partition takes its whole directory's
partitions with it: Bytewax needs all of them or none, and with none the next run
rebuilds its state from the topic's start (every write of the flow is idempotent, so
nothing is doubled). Each finding says how to restore what it held.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from basketflow.config import Settings
from basketflow.errors import BasketflowError
from basketflow.offline_uri import StoreDir, StorePath

QUARANTINE = "quarantine"

#: How to restore the rows of a set-aside file, by its log (the store's top folder).
RESTORE = {
    "events": "store the events again: `basketflow backfill --from FILE` (the file they "
              "were replayed from), or `basketflow run --from-start` while the topic "
              "still holds them",
    "dead": "`basketflow run --from-start` while the topic still holds the lines",
    "late": "`basketflow run --from-start` while the topic still holds the events",
    "scores": "`basketflow run --from-start` while the topic still holds the events "
              "(predictions are made live only)",
    "features": "`basketflow backfill --from-offline` recomputes the feature log from "
                "the stored events",
    "recovery": "the next `basketflow run` rebuilds the state from the topic's start "
                "(it needs the events still in Kafka; writes are idempotent, nothing "
                "is doubled)",
    "models": "a refused model version is never loaded (nor moved): promote one that "
              "passes (`basketflow models promote VERSION`) or register a new one "
              "(`basketflow models train`)",
}


class DamagedFiles(BasketflowError):
    """``check`` found damaged files and was not asked to repair them."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} damaged file{'s' if count != 1 else ''} found: run "
                         "`basketflow check --repair` to move them to quarantine/ (or "
                         "migrate event ids of the old form)")


@dataclass(frozen=True)
class Finding:
    """One damaged file: what it is (``offline``, ``recovery``, or ``event ids``: a store
    of ids of the old form), why, where it was moved (None: not moved; for ``event ids``
    the store's first file, migrated in place) and how to restore what it held (for
    ``event ids``: what the migration did)."""

    kind: str
    path: Path
    reason: str
    moved_to: Path | None = None
    restore: str = ""

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {"kind": self.kind, "path": str(self.path), "reason": self.reason,
                "moved_to": str(self.moved_to) if self.moved_to else None,
                "restore": self.restore}


@dataclass(frozen=True)
class CheckResult:
    """What ``check`` looked at and found; ``repaired`` when damaged files were moved."""

    offline_files: int
    recovery_partitions: int
    findings: list[Finding] = field(default_factory=list)
    repaired: bool = False
    model_versions: int = 0

    @property
    def ok(self) -> bool:
        """Nothing damaged was found."""
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {"ok": self.ok, "offline_files": self.offline_files,
                "recovery_partitions": self.recovery_partitions,
                "model_versions": self.model_versions, "repaired": self.repaired,
                "findings": [f.to_json() for f in self.findings]}


def recovery_dirs(recovery_root: Path) -> list[Path]:
    """Every directory under ``recovery_root`` that holds recovery partitions."""
    if not recovery_root.is_dir():
        return []
    return sorted({p.parent for p in recovery_root.rglob("part-*.sqlite3")})


def quarantine_path(settings: Settings, path: StoreDir) -> Path:
    """Where ``path`` is set aside: the same path relative to the data directory under
    ``<data>/quarantine/`` (a file of an offline store elsewhere, in another folder or
    on object storage: its path in the store under ``<data>/quarantine/offline/``), with
    ``.1``, ``.2``, ... added when that is taken.

    >>> from basketflow.config import load_settings
    >>> s = load_settings("/d")
    >>> quarantine_path(s, Path("/d/offline/events/date=2011-01-05/p.parquet")).as_posix()
    '/d/quarantine/offline/events/date=2011-01-05/p.parquet'
    """
    if isinstance(path, Path) and path.is_relative_to(settings.data_dir):
        target = settings.data_dir / QUARANTINE / path.relative_to(settings.data_dir)
    else:  # a file of an offline store elsewhere (another folder, object storage)
        target = (settings.data_dir / QUARANTINE / "offline"
                  / path.relative_to(settings.offline_dir))
    n = 0
    chosen = target
    while chosen.exists():
        n += 1
        chosen = target.with_name(f"{target.name}.{n}")
    return chosen


def _move(settings: Settings, path: StoreDir) -> Path:
    """Move one file to quarantine (a remote one: copied, then deleted); return where it
    went."""
    target = quarantine_path(settings, path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(path, StorePath):
        target.write_bytes(path.read_bytes())
        path.unlink()
    else:
        os.replace(path, target)
    return target


def check(settings: Settings, repair: bool = False,
          on_progress: Callable[[int, int], None] | None = None) -> CheckResult:
    """Verify every file of the offline store and every recovery partition; with
    ``repair`` move the damaged ones to quarantine (see the module docstring).
    ``on_progress(done, total)`` is called as files are checked. Raises
    :class:`~basketflow.app.run_lock.RunLocked` when repairing while a run holds the
    topic."""
    from basketflow.flows.recovery_store import disagreement, partitions
    from basketflow.flows.recovery_store import damage as recovery_damage
    from basketflow.flows.recovery_store import old_event_ids
    from basketflow.sinks.event_ids import old_event_id
    from basketflow.sinks.offline_layout import store_files
    from basketflow.sinks.offline_store import verify_file

    root = settings.offline_dir
    files = store_files(root)
    stores = {d: partitions(d) for d in recovery_dirs(settings.recovery_dir)}
    total = len(files) + sum(len(parts) for parts in stores.values())
    done = 0
    bad_files: list[tuple[Path, str]] = []
    for path in files:
        reason = verify_file(root, path)
        if reason is not None:
            bad_files.append((path, reason))
        done += 1
        if on_progress is not None and (done % 50 == 0 or done == total):
            on_progress(done, total)
    bad_stores: dict[Path, list[tuple[Path, str]]] = {}
    for directory, parts in stores.items():
        for part in parts:
            reason = recovery_damage(part)
            if reason is not None:
                bad_stores.setdefault(directory, []).append((part, reason))
            done += 1
            if on_progress is not None:
                on_progress(done, total)
        if directory not in bad_stores and (
                torn := disagreement(directory) or old_event_ids(directory)) is not None:
            bad_stores[directory] = [torn]
    old_ids = old_event_id(root) if not bad_files else None  # damaged files first
    findings: list[Finding] = []
    if repair and (bad_files or bad_stores or old_ids):
        from basketflow.app.run_lock import run_lock
        from basketflow.flows.live import PARTS
        with run_lock(settings.data_dir, settings.topic, PARTS):
            if old_ids is not None:
                findings.append(_migrated(root, *old_ids))
            for path, reason in bad_files:
                findings.append(Finding("offline", path, reason, _move(settings, path),
                                        _restore(root, path)))
            for directory, damaged in bad_stores.items():
                reasons = dict(damaged)
                for part in partitions(directory):
                    for extra in (part, *(Path(f"{part}{s}") for s in ("-wal", "-shm"))):
                        if extra.exists():
                            moved = _move(settings, extra)
                            if extra in reasons:
                                findings.append(Finding("recovery", extra, reasons[extra],
                                                        moved, RESTORE["recovery"]))
    else:
        findings = [Finding("offline", path, reason, None, _restore(root, path))
                    for path, reason in bad_files]
        if old_ids is not None:
            findings.append(Finding(EVENT_IDS, old_ids[0], _old_ids_reason(old_ids[1]),
                                    None, MIGRATE_IDS))
        findings += [Finding("recovery", part, reason, None, RESTORE["recovery"])
                     for damaged in bad_stores.values() for part, reason in damaged]
    repaired = repair and bool(findings)
    versions, refused = _model_versions(settings)
    return CheckResult(len(files), total - len(files), findings + refused, repaired, versions)


def _model_versions(settings: Settings) -> tuple[int, list[Finding]]:
    """The model registry's versions checked (HMAC and sha256, nothing unpickled), and a
    finding for each that fails; none without a registry."""
    from basketflow.models.registry import REGISTRY_FILE, Registry, registry_dir
    directory = registry_dir(settings.data_dir)
    if not (directory / REGISTRY_FILE).exists():
        return 0, []
    registry = Registry(directory)
    try:
        versions, failed = registry.verify()
    finally:
        registry.close()
    return versions, [Finding("models", path, reason, None, RESTORE["models"])
                      for _, path, reason in failed]


#: The kind of finding of a store of ids of the old form.
EVENT_IDS = "event ids"
#: What ``check`` says of a store of old ids before it migrates them.
MIGRATE_IDS = ("`basketflow check --repair` gives every stored event its id from its "
               "content, keeping one row of a transaction stored twice")


def _old_ids_reason(old_id: str) -> str:
    """Why a store of ids of the old form is a finding."""
    return (f"event ids of the old form ({old_id!r}: a file's name and line), under which "
            "the same transaction from another copy of a file is stored twice")


def _migrated(root: Path, path: Path, old_id: str) -> Finding:
    """Migrate the store's event ids (:func:`~basketflow.sinks.event_ids.migrate_event_ids`);
    the finding says what was done, and what to recompute."""
    from basketflow.sinks.event_ids import migrate_event_ids
    done = migrate_event_ids(root)
    return Finding(EVENT_IDS, path, _old_ids_reason(old_id), path,
                   f"migrated in place: {done.events:,} events given ids from their "
                   f"content in {done.files:,} files, {done.duplicates:,} rows of "
                   f"transactions stored twice removed, {done.late:,} late events renamed; "
                   "if any were removed, recompute the feature log from the events "
                   "(`basketflow backfill --from-offline`) into a fresh data directory")


def _restore(root: Path, path: Path) -> str:
    """How to restore the rows of a store file (by its log)."""
    try:
        top = path.relative_to(root).parts[0]
    except (ValueError, IndexError):
        top = ""
    return RESTORE.get(top, RESTORE["events"])
