"""``basketflow init``: a new project, its file ``basketflow.yaml`` and its feature
repository ``features/`` with the built-in views declared as a starting point.

The file it writes sets every key to today's default, each with a comment saying what it
is and which environment variable overrides it, so a user edits values rather than
looking keys up. It never overwrites: a project file or a declaration already there is an
error naming it.

>>> import tempfile
>>> made = init_project(Path(tempfile.mkdtemp()) / "shop")
>>> made.project_file.name, [p.name for p in made.declarations]
('basketflow.yaml', ['customer.py', 'basket.py', 'product.py'])
>>> from basketflow.project_file import read_project
>>> read_project(made.project_file).prefix
'bf'
"""

from __future__ import annotations

import json
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from basketflow.config import (
    DEFAULT_ALLOWED_LATENESS_S,
    DEFAULT_DEAD_TOPIC,
    DEFAULT_PREFIX,
    DEFAULT_TOPIC,
    ENV_OF_KEY,
)
from basketflow.errors import BasketflowError
from basketflow.project_file import FILE_NAME, KEYS
from basketflow.schemas.expectations import DEFAULTS

#: The feature repository's folder in a new project.
REPOSITORY = "features"
#: The values ``init`` writes: today's defaults (null: the embedded servers).
INITIAL: dict[str, Any] = {
    "data_dir": "data", "offline_store": "data/offline", "kafka": None, "redis": None,
    "topic": DEFAULT_TOPIC, "dead_topic": DEFAULT_DEAD_TOPIC, "prefix": DEFAULT_PREFIX,
    "feature_repository": REPOSITORY, "allowed_lateness": DEFAULT_ALLOWED_LATENESS_S,
}


class ProjectExists(BasketflowError):
    """``init`` into a folder that already holds a project file or declarations."""


@dataclass(frozen=True)
class InitResult:
    """What ``init`` wrote."""

    project_file: Path
    repository: Path
    declarations: tuple[Path, ...]

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {"project_file": str(self.project_file), "repository": str(self.repository),
                "declarations": [str(p) for p in self.declarations]}


def project_text() -> str:
    """The project file ``init`` writes: every key, its default and what it is."""
    lines = ["# basketflow project file: every basketflow command run in this folder or",
             "# below it reads it. Environment variables override each key; relative paths",
             "# are relative to this folder; null means the default.", ""]
    for key, (_, meaning) in KEYS.items():
        if key == "expectations":
            lines += [f"# {meaning}", "#   [no env; the defaults: schemas/expectations.py]",
                      _expectations_text().rstrip("\n")]
            continue
        value = INITIAL[key]
        comment = f"# {meaning} [env {ENV_OF_KEY[key]}]"
        lines += [comment] if len(comment) <= 80 else [f"# {meaning}",
                                                        f"#   [env {ENV_OF_KEY[key]}]"]
        lines.append(f"{key}: {'null' if value is None else value}")
    return "\n".join(lines) + "\n"


def _expectations_text() -> str:
    """The ``expectations`` key at the defaults declared beside the event contract: an
    expectation's parameters on one line, a list wrapped between its items."""
    lines = ["expectations:"]
    for name, params in DEFAULTS.items():
        scalars = ", ".join(f"{k}: {json.dumps(v)}" for k, v in params.items()
                            if not isinstance(v, list))
        lists = {k: v for k, v in params.items() if isinstance(v, list)}
        if not lists:
            lines.append(f"  {name}: {{{scalars}}}")
            continue
        lines.append(f"  {name}:")
        for key, items in lists.items():
            text = ", ".join(json.dumps(i).replace(" ", "\u00a0") for i in items)
            wrapped = textwrap.wrap(f"{key}: [{text}]", 74, subsequent_indent="  ")
            lines += ["    " + w.replace("\u00a0", " ") for w in wrapped]
        lines += [f"    {k}: {json.dumps(v)}" for k, v in params.items()
                  if not isinstance(v, list)]
    return "\n".join(lines) + "\n"


def init_project(folder: Path) -> InitResult:
    """Write ``basketflow.yaml`` and ``features/`` (the built-in views' declarations)
    into ``folder``, creating it; nothing that exists is overwritten."""
    from basketflow.schemas.default_repository import FILES
    folder = folder.resolve()
    project_file = folder / FILE_NAME
    repository = folder / REPOSITORY
    targets = [repository / source.name for source in FILES]
    for path in (project_file, *targets):
        if path.exists():
            raise ProjectExists(f"{path} exists: basketflow init never overwrites; give an "
                                "empty or new folder")
    if folder.exists() and not folder.is_dir():
        raise ProjectExists(f"{folder} is a file: give a folder for the new project")
    repository.mkdir(parents=True, exist_ok=True)
    project_file.write_text(project_text(), encoding="utf-8")
    for source, target in zip(FILES, targets, strict=True):
        shutil.copyfile(source, target)
    return InitResult(project_file, repository, tuple(targets))
