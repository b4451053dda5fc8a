"""The online store's whole contract (every test of ``test_online_store.py``, both read
paths) against a real Redis Cluster of three nodes (the ``redis_cluster`` fixture), and
what only a cluster has: every key of one entity in one hash slot, reads of many
entities across slots and nodes, global keys alone in theirs."""

from __future__ import annotations

import uuid

import pytest
from redis.cluster import RedisCluster
from redis.crc import key_slot

from basketflow.config import Settings
from basketflow.sinks.online_store import RedisOnlineStore, connect
from tests.redis_cluster import LocalCluster
from tests.sinks.test_online_store import *  # noqa: F403 (the same tests, on a cluster)
from tests.sinks.test_online_store import view


@pytest.fixture
def settings(tmp_path, redis_cluster: LocalCluster,
             monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings on the session's cluster (``REDIS_CLUSTER=1``), a unique prefix per test."""
    monkeypatch.setenv("REDIS_CLUSTER", "1")
    return Settings(data_dir=tmp_path / "data", kafka_bootstrap=None,
                    redis_url=redis_cluster.url, prefix=f"t-{uuid.uuid4().hex[:8]}")


def test_the_client_is_a_cluster_client_and_keys_carry_the_entity_as_tag(
        settings: Settings) -> None:
    assert settings.redis_url
    store = RedisOnlineStore(connect(settings.redis_url), settings.prefix)
    assert isinstance(store.client, RedisCluster) and store.cluster
    assert store.key("customer", "17850") == f"{settings.prefix}:customer:{{17850}}"
    slots = {key_slot(k.encode()) for k in (
        store.key("customer", "17850"), store.packed_key("basket", "17850"),
        store.key("score", "17850"), store.packed_key("score", "17850"))}
    assert slots == {key_slot(b"17850")}

