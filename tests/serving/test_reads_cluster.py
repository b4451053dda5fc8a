"""``basketflow serve``'s read routes (every test of ``test_reads.py``) with the online
store on a real Redis Cluster of three nodes (``REDIS_CLUSTER=1``)."""

from __future__ import annotations

import pytest

from basketflow.config import Settings
from tests.redis_cluster import LocalCluster
from tests.serving.test_reads import *  # noqa: F403 (the same tests, on a cluster)


@pytest.fixture
def settings(settings: Settings, redis_cluster: LocalCluster,
             monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The test's settings with the session's cluster as the online store."""
    monkeypatch.setenv("REDIS_CLUSTER", "1")
    return replace(settings, redis_url=redis_cluster.url)  # noqa: F405
