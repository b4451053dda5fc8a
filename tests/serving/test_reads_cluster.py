"""``basketflow serve``'s read routes with the online store on a real Redis Cluster of
three nodes (``REDIS_CLUSTER=1``): the tests of ``test_reads.py`` that read the store (a
customer's views as of the clock, many customers at once, the live score) and a cluster
that does not answer (503 quickly, as one server's)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from basketflow.config import Settings
from basketflow.security import redis_client
from tests.redis_cluster import LocalCluster
from tests.serving.conftest import CUSTOMER, Server
from tests.serving.test_reads import (  # noqa: F401 (the same tests, on a cluster)
    test_a_customers_features_are_every_view_as_of_the_clock,
    test_a_store_that_is_down_is_503_quickly,
    test_many_customers_in_one_call,
    test_the_live_score,
    written,
)


@pytest.fixture
def settings(settings: Settings, redis_cluster: LocalCluster,
             monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The test's settings with the session's cluster as the online store."""
    monkeypatch.setenv("REDIS_CLUSTER", "1")
    return replace(settings, redis_url=redis_cluster.url)


def test_the_server_reads_the_cluster(server: Server, written: object, settings: Settings,
                                      redis_cluster: LocalCluster) -> None:
    """These tests run on the cluster: the values are there, under tagged keys."""
    client = redis_client(redis_cluster.url)
    assert client.exists(f"{settings.prefix}:packed:customer:{{{CUSTOMER}}}") == 1
    client.close()
    assert server.client.get(f"/customers/{CUSTOMER}/features").status_code == 200
