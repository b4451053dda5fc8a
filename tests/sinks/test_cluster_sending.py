"""Commands sent per node on a real Redis Cluster of three nodes when the slot map the
client holds is out of date: a slot moved to another node (with its keys, by ``CLUSTER
SETSLOT`` and ``MIGRATE``, as a resharding does) answers ``MOVED``; the store re-reads
the map and sends the call again, and reads and writes go on with nothing lost."""

from __future__ import annotations

import uuid

import pytest
import redis
from redis.crc import key_slot

from basketflow.security import redis_client
from basketflow.sinks.online_store import RedisOnlineStore
from tests.redis_cluster import LocalCluster
from tests.sinks.test_online_store import view


def move_slot(cluster: LocalCluster, slot: int, source: int, target: int) -> None:
    """Move ``slot`` and its keys from node ``source`` to node ``target``."""
    nodes = [redis.Redis(port=cluster.port(i)) for i in range(len(cluster.nodes))]
    ids = [node.execute_command("CLUSTER", "MYID").decode() for node in nodes]
    nodes[target].execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source])
    nodes[source].execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target])
    while keys := nodes[source].execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
        nodes[source].execute_command("MIGRATE", "127.0.0.1", cluster.port(target), "", 0,
                                      5000, "KEYS", *keys)
    for node in nodes:
        node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target])
        node.close()


def test_a_moved_slot_is_followed_by_reads_and_writes(
        redis_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_CLUSTER", "1")
    store = RedisOnlineStore(redis_client(redis_cluster.url), f"t-{uuid.uuid4().hex[:8]}")
    customer = view("customer")
    entities = [f"c{i}" for i in range(200)]
    store.write(customer, {e: (1, {"n": i}) for i, e in enumerate(entities)})
    slot = key_slot(store.key("customer", "c7").encode())
    manager = store.client.nodes_manager
    ports = [redis_cluster.port(i) for i in range(len(redis_cluster.nodes))]
    source = ports.index(int(manager.get_node_from_slot(slot).port))
    target = (source + 1) % len(ports)

    move_slot(redis_cluster, slot, source, target)
    assert int(manager.get_node_from_slot(slot).port) == ports[source]  # a stale map
    got = store.read_vectors(["customer"], entities)  # MOVED, then sent again
    assert [row["customer"]["n"] for row in got] == list(range(200))
    assert int(manager.get_node_from_slot(slot).port) == ports[target]

    move_slot(redis_cluster, slot, target, source)  # stale again, for a write
    store.write(customer, {"c7": (2, {"n": -7})})
    assert int(manager.get_node_from_slot(slot).port) == ports[source]
    assert store.read_vectors(["customer"], ["c7", "c8"]) == [
        {"customer": {"n": -7, "_ts": 2, "_version": customer.version}},
        {"customer": {"n": 8, "_ts": 1, "_version": customer.version}}]
