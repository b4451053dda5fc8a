"""Where basketflow's parts live: one settings object, read from the environment.

Every command and every process (CLI, flow, producer, tests, docker-compose services)
resolves its addresses through :func:`load_settings`, so the same variables wire a laptop
demo on embedded servers and a real deployment:

- ``BASKETFLOW_DATA_DIR``: the offline store, the recovery snapshots, the state file of the
  embedded services (default ``./data``);
- ``KAFKA_BOOTSTRAP_SERVERS``: an existing Kafka-protocol broker; unset means the embedded
  one started by ``basketflow up``;
- ``REDIS_URL``: an existing Redis-protocol server; unset means the embedded one;
- ``BASKETFLOW_TOPIC`` / ``BASKETFLOW_DEAD_TOPIC``: the event topic and its dead letters;
- ``BASKETFLOW_PREFIX``: the namespace of every online-store key;
- ``BASKETFLOW_OFFLINE_URI`` (or ``BASKETFLOW_OFFLINE_STORE``): the Parquet offline store,
  a path or a URI (``s3://bucket/prefix``, see :mod:`basketflow.offline_uri`; default
  ``<data dir>/offline``);
- ``BASKETFLOW_FEATURE_REPOSITORY``: the folder of feature view declarations (default:
  none, the built-in views);
- ``BASKETFLOW_ALLOWED_LATENESS``: seconds an event may be late and still change features.

Each of them may also be set in the project file, ``basketflow.yaml``, found by walking up
from the working directory (:mod:`basketflow.project_file`): the environment overrides
the file, and without either, the defaults above apply.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from basketflow.errors import BasketflowError
from basketflow.offline_uri import StoreDir, store_location
from basketflow.project_file import ExpectationSetting, Project, find_project_file, read_project

ENV_DATA_DIR = "BASKETFLOW_DATA_DIR"
ENV_KAFKA = "KAFKA_BOOTSTRAP_SERVERS"
ENV_REDIS = "REDIS_URL"
ENV_TOPIC = "BASKETFLOW_TOPIC"
ENV_DEAD_TOPIC = "BASKETFLOW_DEAD_TOPIC"
ENV_PREFIX = "BASKETFLOW_PREFIX"
ENV_OFFLINE_STORE = "BASKETFLOW_OFFLINE_STORE"
ENV_OFFLINE_URI = "BASKETFLOW_OFFLINE_URI"
ENV_FEATURE_REPOSITORY = "BASKETFLOW_FEATURE_REPOSITORY"
ENV_ALLOWED_LATENESS = "BASKETFLOW_ALLOWED_LATENESS"
ENV_REGISTER_EVERY = "BASKETFLOW_REGISTER_EVERY"
"""How many baskets the live learner learns between two versions it publishes."""
DEFAULT_REGISTER_EVERY = 100
ENV_DEBUG = "BASKETFLOW_DEBUG"
"""Set to 1 to let the command line show an error's traceback (as ``--debug`` does)."""

DEFAULT_TOPIC = "transactions"
DEFAULT_DEAD_TOPIC = "transactions.dead"
DEFAULT_PREFIX = "bf"
#: The environment variable that overrides each key of the project file.
ENV_OF_KEY = {"data_dir": ENV_DATA_DIR, "offline_store": ENV_OFFLINE_STORE,
              "kafka": ENV_KAFKA, "redis": ENV_REDIS, "topic": ENV_TOPIC,
              "dead_topic": ENV_DEAD_TOPIC, "prefix": ENV_PREFIX,
              "feature_repository": ENV_FEATURE_REPOSITORY,
              "allowed_lateness": ENV_ALLOWED_LATENESS}
#: Seconds an event may be older than its entity's latest and still change its features.
DEFAULT_ALLOWED_LATENESS_S = 3600


@dataclass(frozen=True)
class Settings:
    """Resolved addresses and names; ``None`` addresses mean "the embedded server"."""

    data_dir: Path
    kafka_bootstrap: str | None
    redis_url: str | None
    topic: str = DEFAULT_TOPIC
    dead_topic: str = DEFAULT_DEAD_TOPIC
    prefix: str = DEFAULT_PREFIX
    #: The offline store's folder (local, or a remote URI's) when not ``<data_dir>/offline``.
    offline_store: StoreDir | None = None
    #: The folder of feature view declarations; None: the built-in views only.
    feature_repository: Path | None = None
    allowed_lateness: int = DEFAULT_ALLOWED_LATENESS_S
    #: The project file's data-quality expectation values, checked where they are used
    #: (:func:`basketflow.schemas.expectations.configured`); (): the defaults.
    expectations: tuple[ExpectationSetting, ...] = ()
    #: The project file the settings were read from, if any.
    project_file: Path | None = None

    @property
    def offline_dir(self) -> StoreDir:
        """Root of the Parquet offline store (``events/``, ``features/``): a local folder,
        or a :class:`~basketflow.offline_uri.StorePath` on a remote filesystem."""
        return self.offline_store or self.data_dir / "offline"

    @property
    def recovery_dir(self) -> Path:
        """Bytewax recovery snapshots of the live flow."""
        return self.data_dir / "recovery"

    @property
    def state_file(self) -> Path:
        """Where ``basketflow up`` remembers the embedded servers it started."""
        return self.data_dir / "services.json"

    def with_addresses(self, kafka_bootstrap: str, redis_url: str) -> "Settings":
        """A copy with both server addresses filled in."""
        return replace(self, kafka_bootstrap=kafka_bootstrap, redis_url=redis_url)


def load_settings(data_dir: str | Path | None = None, cwd: Path | None = None) -> Settings:
    """Read the settings: an explicit ``data_dir`` wins, then the environment, then the
    project file found from ``cwd`` (default: the working directory), then the defaults."""
    env = os.environ
    path = find_project_file(cwd)
    project = read_project(path) if path else Project(Path("."))
    root = Path(data_dir or env.get(ENV_DATA_DIR) or project.data_dir or "data").resolve()
    return Settings(
        data_dir=root,
        kafka_bootstrap=env.get(ENV_KAFKA) or project.kafka or None,
        redis_url=env.get(ENV_REDIS) or project.redis or None,
        topic=env.get(ENV_TOPIC) or project.topic or DEFAULT_TOPIC,
        dead_topic=env.get(ENV_DEAD_TOPIC) or project.dead_topic or DEFAULT_DEAD_TOPIC,
        prefix=env.get(ENV_PREFIX) or project.prefix or DEFAULT_PREFIX,
        offline_store=_env_location() or project.offline_store,
        feature_repository=_env_path(ENV_FEATURE_REPOSITORY) or project.feature_repository,
        allowed_lateness=_lateness(env.get(ENV_ALLOWED_LATENESS), project.allowed_lateness),
        expectations=project.expectations,
        project_file=path,
    )


def _env_path(name: str) -> Path | None:
    """The folder an environment variable names, resolved from the working directory."""
    value = os.environ.get(name)
    return Path(value).resolve() if value else None


def _env_location() -> StoreDir | None:
    """The offline store the environment names (``BASKETFLOW_OFFLINE_URI``, else
    ``BASKETFLOW_OFFLINE_STORE``): a path resolved from the working directory, or a URI."""
    value = os.environ.get(ENV_OFFLINE_URI) or os.environ.get(ENV_OFFLINE_STORE)
    return store_location(value) if value else None


def register_every() -> int:
    """How many baskets learnt make a new model version: ``BASKETFLOW_REGISTER_EVERY``,
    or the default; a bad value is an error naming the variable."""
    value = os.environ.get(ENV_REGISTER_EVERY)
    if not value:
        return DEFAULT_REGISTER_EVERY
    if not value.isdigit() or int(value) < 1:
        raise BasketflowError(f"{ENV_REGISTER_EVERY}={value!r}: give a whole number of "
                              "baskets >= 1")
    return int(value)


def _lateness(env_value: str | None, in_file: int | None) -> int:
    """The allowed lateness in seconds: the environment's, the project file's, or the
    default; a bad environment value is an error naming the variable."""
    if env_value:
        if not env_value.isdigit():
            raise BasketflowError(f"{ENV_ALLOWED_LATENESS}={env_value!r}: give a whole "
                                  "number of seconds >= 0")
        return int(env_value)
    return DEFAULT_ALLOWED_LATENESS_S if in_file is None else in_file
