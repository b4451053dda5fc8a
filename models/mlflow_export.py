"""The model registry's versions written to MLflow, for teams that keep their models there
(``basketflow models export --mlflow URI``; MLflow is the optional extra ``mlflow``).

Each version becomes one MLflow run (experiment ``basketflow``, run name ``version N``)
holding its metrics (every number of :mod:`basketflow.models.prequential`'s figures, by
their path: ``since_start.accuracy``, ``rolling.per_category.<category>.log_loss``...)
and a ``pyfunc`` model, registered as a version of one registered model
(``basketflow-basket-classifier`` unless named otherwise). Its lineage (parent, baskets
learnt, clock, offsets, segmentation, feature view versions, code versions, sha256) is
kept as tags ``basketflow.*`` on both the run and the model version; the registry's
aliases (``champion``, ``challenger``) are set on the registered model too.

**Idempotent.** A version already exported (a model version tagged with its id and
sha256) is left as it is, so an export can run again after every new version or after
a failure half-way: only what is missing is written, and the aliases are set again.

**Trust.** Only an artifact the registry has verified (its entry's HMAC, its sha256) is
exported, and the pyfunc model checks the sha256 of the copy it loads before unpickling it
(:class:`BasketPyfunc`). MLflow itself keeps no such authentication: its store is as
trusted as whoever can write to it.

**The pyfunc model** takes a DataFrame whose columns are the classifier's features
(:func:`basketflow.models.classifier.classifier_features`) and returns one row per basket:
``category`` and a ``p_<category>`` column per category (missing values are absent
features; a model that has learnt nothing gives no category).
"""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from basketflow.errors import BasketflowError
from basketflow.models.aliases import ALIASES
from basketflow.models.registry import ARTIFACTS, Registry, Version

#: The registered model the versions become versions of, unless named otherwise.
DEFAULT_NAME = "basketflow-basket-classifier"
EXPERIMENT = "basketflow"
#: The tags that identify an exported version.
ID_TAG, SHA_TAG = "basketflow.version", "basketflow.sha256"
_METRIC_NAME = re.compile(r"[^A-Za-z0-9_\-. /]")


class MlflowExportError(BasketflowError):
    """The export cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class ExportedVersion:
    """A registry version and the MLflow model version it is; ``written`` False when it
    had been exported before; the aliases that name it (in both registries)."""

    version: int
    mlflow_version: str
    written: bool
    aliases: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Plain data (``--json``)."""
        return {"version": self.version, "mlflow_version": self.mlflow_version,
                "written": self.written, "aliases": list(self.aliases)}


def metric_items(metrics: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """Every number of a version's metrics, named by its path (MLflow's metric names
    allow letters, digits and ``_-. /``; any other character becomes ``_``).

    >>> sorted(metric_items({"rolling": {"accuracy": 0.5, "log_loss": None},
    ...                      "per_category": {"gift shop": {"baskets": 3}}}))
    [('per_category.gift shop.baskets', 3.0), ('rolling.accuracy', 0.5)]
    """
    for key, value in metrics.items():
        name = f"{prefix}{_METRIC_NAME.sub('_', str(key))}"
        if isinstance(value, dict):
            yield from metric_items(value, f"{name}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield name, float(value)


def lineage_tags(version: Version) -> dict[str, str]:
    """A version's lineage as ``basketflow.*`` tags (dicts as JSON)."""
    tags = {ID_TAG: str(version.id), SHA_TAG: version.sha256,
            "basketflow.model": version.model, "basketflow.created": version.created}
    for key, value in vars(version.lineage).items():
        tags[f"basketflow.{key}"] = (json.dumps(value, sort_keys=True)
                                     if isinstance(value, dict) else str(value))
    return tags


def export(registry: Registry, uri: str, name: str = DEFAULT_NAME,
           on_version: Callable[[ExportedVersion], None] = lambda v: None,
           ) -> list[ExportedVersion]:
    """Export every version kept in ``registry`` to the MLflow tracking and registry
    store at ``uri`` (``sqlite:///path/mlflow.db``, ``http://host:5000``, a folder),
    oldest first, then set the aliases. :class:`MlflowExportError` without MLflow or
    when the store cannot be used."""
    mlflow = _mlflow()
    out: list[ExportedVersion] = []
    with _quiet(), tempfile.TemporaryDirectory() as tmp:
        try:
            client = _client(mlflow, uri)
            done = _exported(client, name)
            experiment = _experiment(client)
            named: dict[int, list[str]] = {}
            for alias, aliased in sorted(registry.aliases().items()):
                named.setdefault(aliased, []).append(alias)
            for version in registry.versions():
                aliases = tuple(named.get(version.id, ()))
                previous = done.get((str(version.id), version.sha256))
                if previous is not None:
                    item = ExportedVersion(version.id, previous, False, aliases)
                else:
                    item = ExportedVersion(version.id, _write(
                        mlflow, registry, version, experiment, name, Path(tmp)), True,
                        aliases)
                    done[(str(version.id), version.sha256)] = item.mlflow_version
                out.append(item)
                on_version(item)
            _set_aliases(client, registry, name, {v.version: v.mlflow_version for v in out})
        except mlflow.exceptions.MlflowException as exc:
            raise MlflowExportError(f"MLflow refused the export after {len(out)} version(s) "
                                    f"({_first_line(exc)}); run it again once the store "
                                    "is fixed: what is there is kept") from None
    return out


def _mlflow() -> Any:
    """The ``mlflow`` package; :class:`MlflowExportError` without it."""
    try:
        import mlflow
        import mlflow.exceptions
    except ImportError:
        raise MlflowExportError("MLflow is not installed: pip install 'basketflow[mlflow]'"
                                ) from None
    return mlflow


def _client(mlflow: Any, uri: str) -> Any:
    """MLflow pointed at ``uri`` (tracking and registry) and a client of it."""
    try:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        return mlflow.tracking.MlflowClient(tracking_uri=uri, registry_uri=uri)
    except Exception as exc:  # MLflow raises its own and its stores' errors
        raise _unreadable(exc) from None


def _unreadable(exc: BaseException) -> MlflowExportError:
    return MlflowExportError(f"the MLflow store cannot be read ({_first_line(exc)}); "
                             "check --mlflow (sqlite:///PATH, http://HOST:PORT)")


@contextmanager
def _quiet() -> Iterator[None]:
    """MLflow's and its database migrations' chatter (log lines, and lines it prints to
    stderr) kept out of the command's output."""
    loggers = [logging.getLogger(n) for n in ("mlflow", "alembic")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with redirect_stderr(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _exported(client: Any, name: str) -> dict[tuple[str, str], str]:
    """The versions exported before: (registry version, sha256) -> MLflow version."""
    try:
        found = client.search_model_versions(f"name='{name}'")
    except Exception as exc:  # MLflow raises its own and its stores' errors
        raise _unreadable(exc) from None
    return {(v.tags.get(ID_TAG, ""), v.tags.get(SHA_TAG, "")): str(v.version) for v in found}


def _experiment(client: Any) -> str:
    """The id of the ``basketflow`` experiment, created when absent."""
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        return str(experiment.experiment_id)
    return str(client.create_experiment(EXPERIMENT))


def _write(mlflow: Any, registry: Registry, version: Version, experiment: str, name: str,
           tmp: Path) -> str:
    """One version as a run with its metrics and pyfunc model, registered under
    ``name``; its MLflow version."""
    registry.load(version.id)  # refused unless its entry and artifact are authentic
    artifact = tmp / f"{version.sha256}.pkl"
    shutil.copyfile(registry.directory / ARTIFACTS / f"{version.sha256}.pkl", artifact)
    tags = lineage_tags(version)
    with mlflow.start_run(experiment_id=experiment, run_name=f"version {version.id}",
                          tags=tags):
        for metric, value in metric_items(version.metrics):
            mlflow.log_metric(metric, value)
        info = mlflow.pyfunc.log_model(
            name="model", python_model=_pyfunc(), artifacts={"classifier": str(artifact)},
            model_config={"sha256": version.sha256})
    registered = mlflow.register_model(info.model_uri, name, tags=tags)
    return str(registered.version)


def _pyfunc() -> Any:
    """The pyfunc model object (its class needs MLflow, imported only here)."""
    from basketflow.models.mlflow_pyfunc import BasketPyfunc
    return BasketPyfunc()


def _set_aliases(client: Any, registry: Registry, name: str,
                 exported: dict[int, str]) -> None:
    """The registry's aliases on the registered model, where their version was
    exported; an alias the registry no longer sets is removed."""
    if not exported:
        return
    aliases = registry.aliases()
    for alias in ALIASES:
        version = aliases.get(alias)
        if version in exported:
            client.set_registered_model_alias(name, alias, exported[version])
        elif version is None and alias in client.get_registered_model(name).aliases:
            client.delete_registered_model_alias(name, alias)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
