"""Running the real command in a subprocess, as a user would, for the command-line tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from basketflow.config import (
    ENV_DATA_DIR,
    ENV_DEAD_TOPIC,
    ENV_DEBUG,
    ENV_KAFKA,
    ENV_PREFIX,
    ENV_REDIS,
    ENV_TOPIC,
    Settings,
)


def user_env(data_dir: Path, settings: Settings | None = None, **extra: str) -> dict[str, str]:
    """The environment of a user with ``data_dir``: no server addresses unless
    ``settings`` gives them (with its topic, dead topic and prefix), no debug switch."""
    env = {k: v for k, v in os.environ.items()
           if k not in (ENV_KAFKA, ENV_REDIS, ENV_DEBUG, ENV_TOPIC, ENV_DEAD_TOPIC, ENV_PREFIX)}
    env[ENV_DATA_DIR] = str(data_dir)
    if settings is not None:
        env |= {ENV_TOPIC: settings.topic, ENV_DEAD_TOPIC: settings.dead_topic,
                ENV_PREFIX: settings.prefix}
        if settings.kafka_bootstrap:
            env[ENV_KAFKA] = settings.kafka_bootstrap
        if settings.redis_url:
            env[ENV_REDIS] = settings.redis_url
    return env | extra


def basketflow(*args: str, env: dict[str, str], cwd: Path | None = None,
               timeout: float = 180, python_flags: tuple[str, ...] = (),
               ) -> subprocess.CompletedProcess[str]:
    """``basketflow ARGS`` (as ``python -m basketflow.cli``), its output captured."""
    return subprocess.run([sys.executable, *python_flags, "-m", "basketflow.cli", *args],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


def error_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    """The ``Error:`` lines of a run's standard error."""
    return [line for line in done.stderr.splitlines() if line.startswith("Error:")]
