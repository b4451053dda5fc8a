"""The project file ``basketflow.yaml``: where a project's servers, stores and feature
repository are, found by walking up from the working directory as git finds ``.git``.

Every key is optional; a missing key keeps today's default (:mod:`basketflow.config`),
so a directory without a project file (the demo's) works as before. Relative paths are
relative to the file's folder, so a command run anywhere inside the project finds the
same stores. The environment overrides the file (:func:`basketflow.config.load_settings`).

A bad file is a :class:`ProjectFileError` naming the file, the line and the key, so the
user fixes it in one go: a YAML syntax error, an unknown key (with the known ones), a
value of the wrong type. The ``expectations`` key (the data-quality expectations'
parameters, a mapping of expectation to parameter to value) is read here only as that
shape, each value with its line: :mod:`basketflow.schemas.expectations` knows the
expectations and checks the values (:class:`ExpectationSetting`).

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> _ = (root / FILE_NAME).write_text("prefix: shop\\nallowed_lateness: 600\\n")
>>> (root / "sub").mkdir()
>>> project = read_project(find_project_file(root / "sub"))
>>> project.prefix, project.allowed_lateness, project.kafka is None
('shop', 600, True)
>>> _ = (root / FILE_NAME).write_text("prefix: shop\\nlateness: 600\\n")
>>> try:
...     read_project(root / FILE_NAME)
... except ProjectFileError as exc:
...     print(str(exc).replace(str(root / FILE_NAME), "FILE")[:35])
FILE line 2: unknown key 'lateness'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
import yaml

from basketflow.errors import BasketflowError
from basketflow.offline_uri import StoreDir, StoreLocationError, store_location

FILE_NAME = "basketflow.yaml"


class ProjectFileError(BasketflowError):
    """A project file that cannot be read or holds a bad value."""


@dataclass(frozen=True)
class ExpectationSetting:
    """One value under ``expectations``: the expectation, its parameter, the value
    (a list as a tuple), and where it is written (``FILE line N``) for errors."""

    expectation: str
    parameter: str
    value: Any
    where: str


@dataclass(frozen=True)
class Project:
    """What a project file says; ``None`` means "not set here" (the default applies)."""

    path: Path
    data_dir: Path | None = None
    offline_store: StoreDir | None = None
    kafka: str | None = None
    redis: str | None = None
    topic: str | None = None
    dead_topic: str | None = None
    prefix: str | None = None
    feature_repository: Path | None = None
    allowed_lateness: int | None = None
    expectations: tuple[ExpectationSetting, ...] = ()

    @property
    def root(self) -> Path:
        """The project's folder: where the file is."""
        return self.path.parent


#: Each key of the file: what it holds (for errors and ``init``'s comments) and its kind.
KEYS: dict[str, tuple[str, str]] = {
    "data_dir": ("path", "recovery snapshots and embedded servers' state"),
    "offline_store": ("uri", "the Parquet offline store (a path, or s3://, gs://, abfs://, "
                             "hdfs:// URI)"),
    "kafka": ("text", "an existing broker's bootstrap servers; null: the embedded one"),
    "redis": ("text", "an existing Redis's URL; null: the embedded one"),
    "topic": ("text", "the events topic"),
    "dead_topic": ("text", "the topic of dead letters"),
    "prefix": ("text", "the namespace of every online-store key"),
    "feature_repository": ("path", "the folder of feature view declarations"),
    "allowed_lateness": ("seconds", "how late an event may be and still change features"),
    "expectations": ("expectations", "the daily report's data-quality expectations: "
                                     "bounds, shares of lines allowed"),
}


def find_project_file(start: Path | None = None) -> Path | None:
    """The nearest ``basketflow.yaml`` in ``start`` (default: the working directory) or
    a folder above it, or None."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / FILE_NAME
        if candidate.is_file():
            return candidate
    return None


def read_project(path: Path) -> Project:
    """The project file at ``path``, checked key by key."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectFileError(f"cannot read the project file {path}: {exc}") from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ProjectFileError(f"{path}{_yaml_problem(exc)}; fix the file or write a new "
                               "one with `basketflow init`") from exc
    if node is None:
        return Project(path)
    if not isinstance(node, yaml.MappingNode):
        raise ProjectFileError(f"{path} line {node.start_mark.line + 1}: the project file "
                               "must be a mapping of keys to values (key: value)")
    values: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key, line = key_node.value, key_node.start_mark.line + 1
        if key not in KEYS:
            raise ProjectFileError(f"{path} line {line}: unknown key {key!r}; the keys are "
                                   f"{', '.join(KEYS)}")
        if key in values:
            raise ProjectFileError(f"{path} line {line}: key {key!r} is given twice")
        values[key] = _value(path, key, line, value_node)
    return Project(path, **values)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """`` line N: not valid YAML (what, and what it was in)`` of a YAML error."""
    mark, context = getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)
    line = f" line {mark.line + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if context is not None and getattr(exc, "context", None):
        problem += f", {exc.context} from line {context.line + 1}"  # type: ignore[attr-defined]
    return f"{line}: not valid YAML ({problem})"


def _value(path: Path, key: str, line: int, node: yaml.Node) -> Any:
    """One key's value, of its kind; None for an explicit null (the default)."""
    kind, meaning = KEYS[key]
    if kind == "expectations":
        return _expectations(path, node)
    value = yaml.SafeLoader("").construct_object(node, deep=True)
    if value is None:
        return None
    where = f"{path} line {line}: {key!r} ({meaning})"
    if kind == "seconds":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ProjectFileError(f"{where} must be a whole number of seconds >= 0, "
                                   f"not {value!r}")
        return value
    if not isinstance(value, str) or not value.strip():
        raise ProjectFileError(f"{where} must be a non-empty text, not {value!r}")
    if kind == "path":
        return (path.parent / Path(value).expanduser()).resolve()
    if kind == "uri":
        try:
            return store_location(value, base=path.parent)
        except StoreLocationError as exc:
            raise ProjectFileError(f"{where}: {exc}") from exc
    return value


def _expectations(path: Path, node: yaml.Node) -> tuple[ExpectationSetting, ...]:
    """The ``expectations`` mapping's values with their lines; () for null."""
    if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
        return ()
    settings = []
    for name_node, params in _mapping(path, node, "expectations"):
        for param_node, value_node in _mapping(path, params, f"expectations.{name_node.value}"):
            value = yaml.SafeLoader("").construct_object(value_node, deep=True)
            settings.append(ExpectationSetting(
                name_node.value, param_node.value,
                tuple(value) if isinstance(value, list) else value,
                f"{path} line {param_node.start_mark.line + 1}"))
    return tuple(settings)


def _mapping(path: Path, node: yaml.Node, key: str) -> list[tuple[yaml.Node, yaml.Node]]:
    """The (key, value) nodes of a mapping under ``key``, each key given once."""
    line = node.start_mark.line + 1
    if not isinstance(node, yaml.MappingNode):
        raise ProjectFileError(f"{path} line {line}: {key!r} must be a mapping (name: value)")
    seen: set[str] = set()
    for key_node, _ in node.value:
        if key_node.value in seen:
            raise ProjectFileError(f"{path} line {key_node.start_mark.line + 1}: key "
                                   f"{key}.{key_node.value} is given twice")
        seen.add(key_node.value)
    return list(node.value)
