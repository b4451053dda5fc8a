"""``basketflow models``: the model registry's versions listed, shown and compared, the
champion promoted and rolled back, and a version trained from history.

The registry is :mod:`basketflow.models.registry`; every function here opens it, does
one thing (a promote or rollback is one transaction) and returns a typed result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import Any

from basketflow.config import Settings
from basketflow.errors import BasketflowError
from basketflow.models.aliases import CHAMPION
from basketflow.models.registry import (
    REGISTRY_FILE,
    Registry,
    Version,
    registry_dir,
)


class NoRegistry(BasketflowError, LookupError):
    """The data directory has no model registry yet; the message says what makes one."""


@dataclass(frozen=True)
class VersionRow:
    """A version and the aliases that name it now."""

    version: Version
    aliases: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """Plain data (``--json``)."""
        return {**self.version.to_json(), "aliases": list(self.aliases)}


@dataclass(frozen=True)
class AliasMove:
    """An alias moved from one version (None: unset) to another."""

    alias: str
    before: int | None
    after: int

    def to_json(self) -> dict[str, Any]:
        """Plain data (``--json``)."""
        return {"alias": self.alias, "from": self.before, "to": self.after}


@dataclass(frozen=True)
class TrainedVersion:
    """A version trained from history, and whether it became the champion (it does when
    there is none, or the champion is a model of other labels or features)."""

    version: VersionRow
    promoted: bool

    def to_json(self) -> dict[str, Any]:
        """Plain data (``--json``)."""
        return {**self.version.to_json(), "promoted": self.promoted}


def open_registry(settings: Settings, create: bool = False) -> Registry:
    """The data directory's registry; :class:`NoRegistry` when there is none and
    ``create`` is False."""
    directory = registry_dir(settings.data_dir)
    if not create and not (directory / REGISTRY_FILE).exists():
        raise NoRegistry(f"no model registry under {directory} yet: the flow registers "
                         "versions as it learns (`basketflow segment fit`, `segment assign`, "
                         "then `basketflow run`), or run `basketflow models train`")
    return Registry(directory)


def _rows(registry: Registry, versions: list[Version]) -> list[VersionRow]:
    named: dict[int, list[str]] = {}
    for alias, version in sorted(registry.aliases().items()):
        named.setdefault(version, []).append(alias)
    return [VersionRow(v, tuple(named.get(v.id, ()))) for v in versions]


def list_versions(settings: Settings) -> list[VersionRow]:
    """Every version kept, oldest first (none when there is no registry yet)."""
    try:
        registry = open_registry(settings)
    except NoRegistry:
        return []
    try:
        return _rows(registry, registry.versions())
    finally:
        registry.close()


def show(settings: Settings, version: int) -> VersionRow:
    """One version with its aliases."""
    registry = open_registry(settings)
    try:
        return _rows(registry, [registry.get(version)])[0]
    finally:
        registry.close()


@dataclass(frozen=True)
class VersionDiff:
    """Two versions side by side, and both scored on the same held-out baskets
    (:func:`basketflow.reports.held_out.compare`; None with the reason in ``note`` when
    they cannot be: other labels, or no basket after ``since``)."""

    first: VersionRow
    second: VersionRow
    held_out: dict[str, Any] | None
    note: str | None

    def to_json(self) -> dict[str, Any]:
        """Plain data (``--json``)."""
        return {"first": self.first.to_json(), "second": self.second.to_json(),
                "held_out": self.held_out, "note": self.note}


def diff(settings: Settings, first: int, second: int,
         since: date | None = None) -> VersionDiff:
    """Two versions side by side, and both scored on the baskets of labelled customers
    closed after ``since`` (default: the later of their event-time clocks), which
    neither learnt from."""
    registry = open_registry(settings)
    try:
        a, b = _rows(registry, [registry.get(first), registry.get(second)])
        segmentations = {a.version.lineage.segmentation, b.version.lineage.segmentation}
        if len(segmentations) > 1:
            return VersionDiff(a, b, None, "the versions learnt the labels of different "
                               "segmentations: no held-out comparison")
        start = _since(since, a.version, b.version)
        from basketflow.reports.held_out import compare
        from basketflow.reports.segments import SegmentationError, load_labels
        try:
            labels = load_labels(settings.data_dir, segmentations.pop())
        except SegmentationError as exc:
            return VersionDiff(a, b, None, f"no held-out comparison: {exc}")
        held_out = compare(settings.offline_dir, registry, [a.version, b.version], labels,
                           start)
        if not held_out["baskets"]:
            return VersionDiff(a, b, None, "no basket of a labelled customer closed after "
                               "the later version's clock: give an earlier --since")
        return VersionDiff(a, b, held_out, None)
    finally:
        registry.close()


def _since(since: date | None, *versions: Version) -> int:
    """The moment the held-out baskets end after (epoch seconds): the last second
    before the day ``since``, else the later of the versions' clocks."""
    if since is not None:
        return int(datetime.combine(since, time.min, timezone.utc).timestamp()) - 1
    return max(v.lineage.clock or 0 for v in versions)


def promote(settings: Settings, version: int, alias: str = CHAMPION) -> AliasMove:
    """Point ``alias`` at ``version`` (one transaction)."""
    registry = open_registry(settings)
    try:
        return AliasMove(alias, registry.promote(version, alias), version)
    finally:
        registry.close()


def rollback(settings: Settings, alias: str = CHAMPION) -> AliasMove:
    """Put ``alias`` back to the version it named before (one transaction)."""
    registry = open_registry(settings)
    try:
        before, after = registry.rollback(alias)
        return AliasMove(alias, before, after)
    finally:
        registry.close()


def train(settings: Settings, until: date | None = None,
          on_batch: Callable[[int], None] = lambda n: None) -> TrainedVersion:
    """Learn the current segmentation's classifier from the offline store's events (up
    to ``until``) by the flow's own steps, register it (source ``train``), and make it
    the champion when there is none or the champion is of other labels or features."""
    from basketflow.reports.training import train as learn
    trained = learn(settings.data_dir, until, on_batch, settings.offline_dir)
    registry = open_registry(settings, create=True)
    try:
        champion = registry.alias(CHAMPION)
        replaces = champion is None or registry.get(champion).model != \
            trained.state.model.version
        version = trained.state.register(registry, "train", follow=False)
        if replaces:
            registry.promote(version, CHAMPION)
        return TrainedVersion(_rows(registry, [registry.get(version)])[0], replaces)
    finally:
        registry.close()


def export_mlflow(settings: Settings, uri: str, name: str | None = None,
                  on_version: Callable[[Any], None] = lambda v: None) -> list[Any]:
    """Write every kept version to the MLflow store at ``uri`` as registered model
    versions of ``name``, with their metrics, lineage tags and aliases; versions exported
    before are left as they are (:mod:`basketflow.models.mlflow_export`)."""
    from basketflow.models.mlflow_export import DEFAULT_NAME, export
    registry = open_registry(settings)
    try:
        return export(registry, uri, name or DEFAULT_NAME, on_version)
    finally:
        registry.close()
