"""The registry as applied: the feature views ``basketflow apply`` recorded, in the
offline store beside the data they describe (``<offline>/registry/registry.json``),
and the data-quality expectations' parameters as applied (so ``plan`` shows a change).

Each view is kept as its definition and version (what the stores' ``_version`` and
``version`` columns refer to), each served feature's kind, and where it was declared, so
``features list`` and ``describe`` show it without the repository's code, and ``plan``
compares the repository against it. The file is written under a temporary name and
renamed into place (on a remote filesystem, one object written whole), so a reader sees
the old registry or the new one, never half.

>>> import tempfile
>>> from basketflow.schemas.features import registry
>>> root = Path(tempfile.mkdtemp())
>>> read_registry(root) is None
True
>>> write_registry(root, [registry()["basket"]], {"basket": "builtin"}, applied_at=0)
>>> read_registry(root).views["basket"].version == registry()["basket"].version
True
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from basketflow.errors import BasketflowError
from basketflow.offline_uri import StoreDir, StorePath
from basketflow.schemas.feature_view import FeatureView
from basketflow.sinks.offline_layout import as_root

#: Bumped when the file's layout changes.
FORMAT = 1


class RegistryDamaged(BasketflowError):
    """A registry file that cannot be read."""


@dataclass(frozen=True)
class AppliedView:
    """One view as the registry recorded it."""

    name: str
    version: str
    definition: dict[str, Any]
    kinds: dict[str, str]
    declared_at: str

    @classmethod
    def of(cls, view: FeatureView, declared_at: str) -> AppliedView:
        """The record of a compiled view."""
        return cls(view.name, view.version, view.definition(), view.kinds, declared_at)


@dataclass(frozen=True)
class AppliedRegistry:
    """The registry file: when it was applied, and its views in order."""

    path: StoreDir
    applied_at: int
    views: dict[str, AppliedView]
    #: The data-quality expectations' parameters as applied; None: a registry written
    #: before they were recorded (the defaults stood).
    expectations: dict[str, dict[str, Any]] | None = None


def registry_path(offline_root: StoreDir) -> StoreDir:
    """Where the registry lives in the offline store."""
    return as_root(offline_root) / "registry" / "registry.json"


def read_registry(offline_root: StoreDir) -> AppliedRegistry | None:
    """The applied registry, or None when nothing was applied yet."""
    path = registry_path(offline_root)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        views = {v["name"]: AppliedView(**v) for v in data["views"]}
        return AppliedRegistry(path, int(data["applied_at"]), views,
                               data.get("expectations"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RegistryDamaged(f"the registry {path} cannot be read ({exc}); run "
                              "`basketflow apply` to write it again from the feature "
                              "repository") from exc


def write_registry(offline_root: StoreDir, views: list[FeatureView], declared_at: dict[str, str],
                   applied_at: int, expectations: dict[str, dict[str, Any]] | None = None
                   ) -> None:
    """Record ``views`` (each declared where ``declared_at`` says), and the
    data-quality expectations' parameters when given, as the registry."""
    path = registry_path(offline_root)
    data: dict[str, Any] = {
        "format": FORMAT, "applied_at": applied_at,
        "views": [AppliedView.of(v, declared_at.get(v.name, "")).__dict__ for v in views]}
    if expectations is not None:
        data["expectations"] = expectations
    text = json.dumps(data, indent=1, sort_keys=True)
    if isinstance(path, StorePath):
        path.write_text(text)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
