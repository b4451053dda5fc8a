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
- ``BASKETFLOW_PREFIX``: the namespace of every online-store key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

ENV_DATA_DIR = "BASKETFLOW_DATA_DIR"
ENV_KAFKA = "KAFKA_BOOTSTRAP_SERVERS"
ENV_REDIS = "REDIS_URL"
ENV_TOPIC = "BASKETFLOW_TOPIC"
ENV_DEAD_TOPIC = "BASKETFLOW_DEAD_TOPIC"
ENV_PREFIX = "BASKETFLOW_PREFIX"
ENV_DEBUG = "BASKETFLOW_DEBUG"
"""Set to 1 to let the command line show an error's traceback (as ``--debug`` does)."""

DEFAULT_TOPIC = "transactions"
DEFAULT_DEAD_TOPIC = "transactions.dead"
DEFAULT_PREFIX = "bf"


@dataclass(frozen=True)
class Settings:
    """Resolved addresses and names; ``None`` addresses mean "the embedded server"."""

    data_dir: Path
    kafka_bootstrap: str | None
    redis_url: str | None
    topic: str = DEFAULT_TOPIC
    dead_topic: str = DEFAULT_DEAD_TOPIC
    prefix: str = DEFAULT_PREFIX

    @property
    def offline_dir(self) -> Path:
        """Root of the Parquet offline store (``events/``, ``features/``)."""
        return self.data_dir / "offline"

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


def load_settings(data_dir: str | Path | None = None) -> Settings:
    """Read the settings from the environment; an explicit ``data_dir`` wins."""
    env = os.environ
    root = Path(data_dir or env.get(ENV_DATA_DIR) or "data").resolve()
    return Settings(
        data_dir=root,
        kafka_bootstrap=env.get(ENV_KAFKA) or None,
        redis_url=env.get(ENV_REDIS) or None,
        topic=env.get(ENV_TOPIC) or DEFAULT_TOPIC,
        dead_topic=env.get(ENV_DEAD_TOPIC) or DEFAULT_DEAD_TOPIC,
        prefix=env.get(ENV_PREFIX) or DEFAULT_PREFIX,
    )
