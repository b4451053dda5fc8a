"""The live flow with its online store on a real Redis Cluster of three nodes: the real
``basketflow run --stop-at-end`` of one topic ends with the same stores on the cluster as
on one server, every reader (``features``, ``entities``, ``score``, ``status``, the
Python API) reads the same from both (a score written by hand: this run fits no
segmentation to score by), and one node stopped mid-run (long enough for the other
nodes to declare the cluster down) and started again ends with nothing lost or doubled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from redis.crc import key_slot

from basketflow.app.feature_store import FeatureStore
from basketflow.app.flow_processes import child_env
from basketflow.app.status import consumed
from basketflow.config import Settings
from basketflow.producers.synthetic import write_csv
from basketflow.security import ENV_REDIS_CLUSTER
from basketflow.schemas.records import Score, ScoreRow
from basketflow.sinks.online_store import RedisOnlineStore, connect
from basketflow.sinks.redis_retry import read_health
from tests.flows.test_recovery import contents, finish, isolated
from tests.redis_cluster import LocalCluster
from tests.store_contents import differences
from tests.test_end_to_end import basketflow

ROWS = 12_000


@contextmanager
def mode(cluster: bool) -> Iterator[None]:
    """This process's clients on a cluster (``REDIS_CLUSTER=1``) or on one server."""
    before = os.environ.get(ENV_REDIS_CLUSTER)
    os.environ[ENV_REDIS_CLUSTER] = "1" if cluster else "0"
    try:
        yield
    finally:
        if before is None:
            del os.environ[ENV_REDIS_CLUSTER]
        else:
            os.environ[ENV_REDIS_CLUSTER] = before


def start_run(settings: Settings, cluster: bool) -> subprocess.Popen[bytes]:
    """The real `basketflow run --stop-at-end` in the background, on a cluster or not."""
    env = child_env(settings) | {ENV_REDIS_CLUSTER: "1" if cluster else "0"}
    return subprocess.Popen(
        [sys.executable, "-m", "basketflow.cli", "run", "--stop-at-end",
         "--snapshot-interval", "0.2", "--max-batch", "500", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def stores(settings: Settings, cluster: bool) -> dict[str, Any]:
    """What a run left in its stores (:mod:`tests.store_contents`)."""
    with mode(cluster):
        return contents(settings)


def readers(settings: Settings, cluster: bool, customers: list[str]) -> dict[str, Any]:
    """What every reader gives: the commands' JSON, the Python API's values; a score
    written for the first customer first (this run fitted no segmentation to score by)."""
    with mode(cluster):
        store = RedisOnlineStore(connect(settings.redis_url or ""), settings.prefix)
        store.write_scores([ScoreRow(customers[0], "536365", 1_291_200_000, 3, Score(
            "gifts", {"gifts": 0.75, "decor": 0.25}, "m1", 1_291_200_000))])
        store.close()
        api = FeatureStore(data_dir=settings.data_dir, redis_url=settings.redis_url,
                           prefix=settings.prefix)
        rows = api.get_online_features(customers, ["customer", "basket"])
        status = basketflow(settings, "status")
        return {
            "features": basketflow(settings, "features", *customers),
            "entities": basketflow(settings, "entities", "--limit", "20"),
            "score": basketflow(settings, "score", customers[0]),
            "api_score": api.get_score(customers[0]),
            "online_keys": status["online"]["keys"],
            "api": [{v: f and f.values for v, f in row.views.items()} for row in rows],
        }


@pytest.fixture
def replayed(settings: Settings, tmp_path: Path) -> Settings:
    """Generated data replayed once into the test's topic."""
    path = tmp_path / "generated.csv"
    write_csv(path, rows=ROWS, seed=31, start=date(2010, 12, 1), end=date(2011, 2, 28))
    assert basketflow(settings, "replay", str(path))["sent"] == ROWS
    return settings


@pytest.fixture
def on_one_server(replayed: Settings) -> tuple[Settings, dict[str, Any]]:
    """An uninterrupted run on one server (the session's Valkey): its settings, stores."""
    single = isolated(replayed, "single")
    finish(start_run(single, cluster=False))
    return single, stores(single, cluster=False)


def on_cluster(settings: Settings, cluster: LocalCluster, name: str) -> Settings:
    """The same topic, with its own prefix and data directory, on the cluster."""
    return replace(isolated(settings, name), redis_url=cluster.url)


@pytest.mark.slow
def test_a_run_on_a_cluster_ends_as_on_one_server_and_reads_the_same(
        replayed: Settings, on_one_server: tuple[Settings, dict[str, Any]],
        redis_cluster: LocalCluster) -> None:
    single, want = on_one_server
    clustered = on_cluster(replayed, redis_cluster, "cluster")
    finish(start_run(clustered, cluster=True))
    got = stores(clustered, cluster=True)
    assert len(got["redis"]) > 1000 and got["events"]
    diffs = differences(got, want)
    assert not diffs, "\n".join(diffs)

    with mode(True):
        client = connect(redis_cluster.url)
        slots_of: dict[str, set[int]] = defaultdict(set)
        for key in client.scan_iter(match=f"{clustered.prefix}:*", count=1000):
            name = key.decode()
            if "{" in name:
                slots_of[name[name.index("{") + 1:-1]].add(key_slot(key))
        nodes = {client.nodes_manager.get_node_from_slot(next(iter(s))).name
                 for s in slots_of.values()}
        client.close()
    assert slots_of and all(len(slots) == 1 for slots in slots_of.values())
    assert len(nodes) == 3  # the entities are spread over every node

    entities = [e["entity"] for e in basketflow(single, "entities", "--limit", "40")]
    customers = [e for e in entities if not e.startswith("guest")][:30]
    assert len({key_slot(c.encode()) for c in customers}) > 20  # a read across slots
    want_reads = readers(single, False, customers)
    got_reads = readers(clustered, True, customers)
    assert got_reads == want_reads
    assert all(row["customer"] for row in got_reads["api"])
    assert got_reads["score"]["score"]["category"] == "gifts"


@pytest.mark.slow
def test_a_node_stopped_mid_run_and_started_again_ends_identical(
        replayed: Settings, on_one_server: tuple[Settings, dict[str, Any]],
        redis_cluster: LocalCluster) -> None:
    """Node 1 stops for 5 s (past the 3 s node timeout, so the other nodes answer
    CLUSTERDOWN too); the flow waits, then catches up, and ends as on one server."""
    _, want = on_one_server
    outage = on_cluster(replayed, redis_cluster, "outage")
    proc = start_run(outage, cluster=True)
    with mode(True):
        while consumed(outage.redis_url or "", outage.prefix, outage.topic) < ROWS // 4:
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
            time.sleep(0.01)
    redis_cluster.stop_node(1)
    try:
        time.sleep(5)
        health = read_health(outage.data_dir)
        assert health is not None and health["redis"] == "down", health
        assert proc.poll() is None, "the flow must wait for the cluster, not end"
    finally:
        redis_cluster.start_node(1)
    finish(proc)
    health = read_health(outage.data_dir)
    assert health is not None and health["redis"] == "up"
    diffs = differences(stores(outage, cluster=True), want)
    assert not diffs, "\n".join(diffs)
