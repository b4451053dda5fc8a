"""``basketflow plan`` and ``apply``: the feature repository against the registry as it
was last applied, and recording it.

The repository is the folder the project names (``feature_repository``), or, without
one, the built-in views. The registry as applied is the file ``apply`` writes in the
offline store (:mod:`basketflow.sinks.registry_store`), or, before any ``apply``, the
built-in views: what every store written before registries existed was written under.
``plan`` lists each view as new, changed (old and new version), removed or unchanged,
and what it needs: a backfill when its stored values or their computation changed (its
history must be computed again), nothing when only what is read changed (descriptions,
TTL, request-time features). A run or a backfill is refused while the two disagree
(:func:`ensure_applied`), with the command that fixes it. The plan also lists each
data-quality expectation parameter the project file sets otherwise than last applied
(before any apply: the defaults); the report checks the project's values at once, so
such a change refuses nothing, and ``apply`` records it beside the views.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from basketflow.config import Settings
from basketflow.errors import BasketflowError
from basketflow.features.declared_state import Engine
from basketflow.schemas.declare import View
from basketflow.schemas.feature_view import FeatureView

NEW, CHANGED, REMOVED, UNCHANGED = "new", "changed", "removed", "unchanged"
#: What a change needs.
BACKFILL, NOTHING = "backfill", "nothing"
#: Definition keys whose change alters only what a read returns, not what is stored.
READ_ONLY_KEYS = ("description", "ttl_seconds", "request_time")
BACKFILL_COMMAND = "basketflow backfill --from-offline"


class RegistryOutOfDate(BasketflowError):
    """The feature repository and the registry disagree: a run would compute views other
    than those recorded."""


@dataclass(frozen=True)
class ViewChange:
    """One view of the plan."""

    view: str
    change: str
    old_version: str | None
    new_version: str | None
    needs: str
    #: What differs, in words: the definition's parts that changed.
    what: str
    #: Whether a flow or backfill computes it today: the built-in views, and the
    #: repository's own views that the generic engine computes.
    computed: bool = True
    #: Whether it is a view of the repository's own (not built in).
    own: bool = False

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class Plan:
    """The repository against the registry as applied."""

    repository: Path | None
    registry: Path
    #: When the registry was applied (epoch seconds); None: never (the built-in views).
    applied_at: int | None
    changes: tuple[ViewChange, ...]
    #: The expectation parameters changed since the last apply (``name.parameter: old
    #: -> new``).
    expectations: tuple[str, ...] = ()

    @property
    def differs(self) -> bool:
        """Whether applying would change the registry's views."""
        return any(c.change != UNCHANGED for c in self.changes)

    @property
    def backfill_views(self) -> tuple[str, ...]:
        """The views whose history a backfill must compute (and can)."""
        return tuple(c.view for c in self.changes if c.needs == BACKFILL and c.computed)

    @property
    def own_backfill_views(self) -> tuple[str, ...]:
        """Of :attr:`backfill_views`, the repository's own (``backfill --views``)."""
        return tuple(c.view for c in self.changes if c.needs == BACKFILL and c.computed
                     and c.own)

    @property
    def uncomputed_views(self) -> tuple[str, ...]:
        """The declared views no flow or backfill computes yet."""
        return tuple(c.view for c in self.changes if not c.computed and c.change != REMOVED)

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {"repository": str(self.repository) if self.repository else None,
                "registry": str(self.registry), "applied_at": self.applied_at,
                "differs": self.differs, "changes": [c.to_json() for c in self.changes],
                "expectations": list(self.expectations)}


def repository_views(settings: Settings) -> tuple[dict[str, FeatureView], dict[str, str]]:
    """The repository's views by name and where each was declared (the built-in views,
    from the package, without a repository)."""
    views, declared_at, _ = _loaded(settings)
    return views, declared_at


def training_views(settings: Settings) -> tuple[dict[str, FeatureView], dict[str, View]]:
    """The repository's views by name, and the declarations of its own views (by name),
    which ``historical`` folds with after the feature log's clock."""
    views, _, declarations = _loaded(settings)
    return views, declarations


def _loaded(settings: Settings) -> tuple[dict[str, FeatureView], dict[str, str],
                                         dict[str, View]]:
    """:func:`repository_views`, and the declarations of the repository's own views."""
    from basketflow.schemas.features import registry
    if settings.feature_repository is None:
        return dict(registry()), {}, {}
    from basketflow.schemas.repository import load_repository
    loaded = load_repository(settings.feature_repository)
    return loaded.views, loaded.declared_at, loaded.declarations


def applied_definitions(settings: Settings) -> tuple[dict[str, tuple[str, dict[str, Any]]],
                                                    int | None]:
    """Each applied view's version and definition, and when they were applied (None:
    never, and the built-in views stand for the registry)."""
    from basketflow.sinks.registry_store import read_registry
    applied = read_registry(settings.offline_dir)
    if applied is None:
        from basketflow.schemas.features import registry
        return {n: (v.version, v.definition()) for n, v in registry().items()}, None
    return ({n: (v.version, v.definition) for n, v in applied.views.items()},
            applied.applied_at)


def plan(settings: Settings) -> Plan:
    """The changes ``apply`` would record."""
    from basketflow.sinks.registry_store import registry_path
    from basketflow.schemas.features import registry
    views, _, declarations = _loaded(settings)
    applied, applied_at = applied_definitions(settings)
    computed = {name: name in registry() or Engine.computes(declarations[name])
                for name in views}
    changes = [replace(_change(name, applied.get(name), view), computed=computed[name],
                       own=name not in registry())
               for name, view in views.items()]
    changes += [ViewChange(name, REMOVED, version, None, NOTHING,
                           "no longer declared: its stored values stay, nothing computes it")
                for name, (version, _) in applied.items() if name not in views]
    return Plan(settings.feature_repository, registry_path(settings.offline_dir), applied_at,
                tuple(changes), tuple(_expectation_changes(settings)))


def _expectation_changes(settings: Settings) -> list[str]:
    """The project's expectation parameters against those last applied (the defaults
    when none were)."""
    from basketflow.schemas.expectations import DEFAULTS, configured, differences
    from basketflow.sinks.registry_store import read_registry
    applied = read_registry(settings.offline_dir)
    old = applied.expectations if applied and applied.expectations is not None else DEFAULTS
    return differences(old, configured(settings.expectations).values)


def _change(name: str, applied: tuple[str, dict[str, Any]] | None,
            view: FeatureView) -> ViewChange:
    """How one declared view stands against its applied record."""
    if applied is None:
        return ViewChange(name, NEW, None, view.version, BACKFILL, "a new view")
    version, old = applied
    new = view.definition()
    if version == view.version:
        return ViewChange(name, UNCHANGED, version, version, NOTHING, "")
    differing = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    needs = NOTHING if _stored_part(old) == _stored_part(new) else BACKFILL
    return ViewChange(name, CHANGED, version, view.version, needs,
                      "changed: " + ", ".join(differing))


def _stored_part(definition: dict[str, Any]) -> dict[str, Any]:
    """The part of a definition that decides the stored values: all but what is only
    read, and the features without their descriptions.

    >>> _stored_part({"description": "x", "features": [{"name": "a", "description": "y"}]})
    {'features': [{'name': 'a'}]}
    """
    kept = {k: v for k, v in definition.items() if k not in READ_ONLY_KEYS}
    kept["features"] = [{k: v for k, v in f.items() if k != "description"}
                        for f in definition.get("features", [])]
    return kept


def apply(settings: Settings, now: Callable[[], float] = time.time) -> Plan:
    """Record the repository's views and the project's expectation parameters as the
    registry; return what changed."""
    from basketflow.schemas.expectations import configured
    from basketflow.sinks.registry_store import write_registry
    made = plan(settings)
    views, declared_at = repository_views(settings)
    write_registry(settings.offline_dir, list(views.values()), declared_at, int(now()),
                   configured(settings.expectations).values)
    return made


def ensure_applied(settings: Settings) -> None:
    """Refuse (:class:`RegistryOutOfDate`) when the repository and the registry
    disagree, naming the views and the commands that fix it. The registry lives in the
    offline store, so a data directory or store that cannot be written is said first
    (``StoreUnwritable``), not taken for a registry to apply again."""
    from basketflow.sinks.offline_store import ensure_writable
    ensure_writable(settings.data_dir, settings.offline_dir)
    made = plan(settings)
    if not made.differs:
        return
    shown = "; ".join(f"{c.view} {c.change}" + (f" ({c.old_version} -> {c.new_version})"
                                                 if c.change == CHANGED else "")
                      for c in made.changes if c.change != UNCHANGED)
    where = made.repository or "the built-in views"
    raise RegistryOutOfDate(f"the feature repository ({where}) and the registry "
                            f"({made.registry}) disagree: {shown}; run `basketflow plan` to "
                            "see the changes and `basketflow apply` to record them")
