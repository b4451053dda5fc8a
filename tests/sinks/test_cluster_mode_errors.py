"""The wrong ``REDIS_CLUSTER`` for the server ``REDIS_URL`` names (unset on a Redis
Cluster, set on one server, or not a yes or no) is one ``Error:`` line saying what to set,
against the real servers: the session's Valkey and its 3-node cluster."""

from __future__ import annotations

from dataclasses import replace

import pytest

from basketflow.config import Settings
from tests.cli.commands import basketflow, error_lines, user_env
from tests.redis_cluster import LocalCluster

def test_a_cluster_read_as_one_server_or_one_server_as_a_cluster_is_one_error_line(
        settings: Settings, redis_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REDIS_CLUSTER", raising=False)
    on_cluster = replace(settings, redis_url=redis_cluster.url)
    env = user_env(settings.data_dir, on_cluster)
    done = basketflow("features", "17850", "13047", "12583", env=env)
    assert done.returncode == 1 and error_lines(done) == [
        line for line in done.stderr.splitlines() if line], done.stderr
    assert "is a Redis Cluster" in done.stderr and "set REDIS_CLUSTER=1" in done.stderr

    env = user_env(settings.data_dir, settings, REDIS_CLUSTER="1")
    done = basketflow("features", "17850", env=env)
    assert done.returncode == 1 and len(error_lines(done)) == 1, done.stderr
    assert "is one server, not a Redis Cluster" in done.stderr and "unset REDIS_CLUSTER" \
        in done.stderr

    done = basketflow("features", "17850", env=env | {"REDIS_CLUSTER": "maybe"})
    assert done.returncode == 1 and "REDIS_CLUSTER='maybe'" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
