"""Shared fixtures: real servers, never mocks (see docs/DESIGN.md, "Runtime parts").

- ``broker`` / ``redis_url`` (session): one embedded Tansu broker and one embedded Valkey
  server for the whole test session, on free loopback ports, stopped at session end even
  when tests fail. Each takes well under a second to start.
- ``redis_cluster`` (session): a Redis Cluster of three embedded Valkey nodes
  (:mod:`tests.redis_cluster`), started only by the tests that use it.
- ``settings`` (function): a :class:`~basketflow.config.Settings` pointing at those servers,
  with a fresh data directory and a unique topic, dead topic and key prefix per test, so
  tests never see each other's messages or keys.
- ``real_data``: the Kaggle extract in ``../shared/data`` beside the repository; the test is
  skipped when it is absent.

A test that uses ``broker``, ``redis_url`` or ``settings`` (directly or through another
fixture) is marked ``server``, one that uses ``real_data`` is marked ``real_data`` (the
markers are registered in pyproject.toml), so ``-m "not server"`` and ``-m "not
real_data"`` select by them. Tests that start servers of their own and the slow ones are
marked by hand.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from basketflow.app.services import start_broker, start_redis, stop_service
from basketflow.config import Settings
from tests.redis_cluster import LocalCluster, start_cluster

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = REPO_ROOT.parent / "shared" / "data" / "online_retail_2010-12_to_2011-09.csv.gz"
#: The fixtures that mark the tests using them, and with which marker.
MARKER_OF_FIXTURE = {"broker": "server", "redis_url": "server", "settings": "server",
                     "redis_cluster": "server", "real_data": "real_data"}


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test by the fixtures it uses (:data:`MARKER_OF_FIXTURE`)."""
    for item in items:
        used = getattr(item, "fixturenames", ())
        markers = {MARKER_OF_FIXTURE[name] for name in used if name in MARKER_OF_FIXTURE}
        for marker in sorted(markers):
            item.add_marker(marker)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address (``127.0.0.1:PORT``) of an embedded broker shared by the session."""
    proc = start_broker(tmp_path_factory.mktemp("broker"))
    try:
        yield proc.address
    finally:
        stop_service(proc)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL (``redis://127.0.0.1:PORT``) of an embedded Valkey server shared by the session."""
    proc = start_redis(tmp_path_factory.mktemp("valkey"))
    try:
        yield proc.address
    finally:
        stop_service(proc)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A Redis Cluster of three embedded Valkey nodes shared by the session
    (:mod:`tests.redis_cluster`); a test that stops a node starts it again."""
    cluster = start_cluster(tmp_path_factory.mktemp("valkey-cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def settings(tmp_path: Path, broker: str, redis_url: str) -> Settings:
    """Settings on the session's servers, isolated per test by unique names and a fresh dir."""
    unique = f"t-{uuid.uuid4().hex[:8]}"
    return Settings(
        data_dir=tmp_path / "data",
        kafka_bootstrap=broker,
        redis_url=redis_url,
        topic=unique,
        dead_topic=f"{unique}.dead",
        prefix=unique,
    )


@pytest.fixture
def real_data() -> Path:
    """Path of the real Kaggle extract; skips the test when the file is not there."""
    if not REAL_DATA.is_file():
        pytest.skip(f"real data not found at {REAL_DATA}")
    return REAL_DATA
