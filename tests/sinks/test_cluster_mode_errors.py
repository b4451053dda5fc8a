"""The wrong ``REDIS_CLUSTER`` for the server ``REDIS_URL`` names (unset on a Redis
Cluster, set on one server, or not a yes or no), a user a cluster refuses and a cluster
that does not answer are each one ``Error:`` line saying what to do, against the real
servers: the session's Valkey and its 3-node cluster."""

from __future__ import annotations

from dataclasses import replace

import pytest

from basketflow.app.services import free_port
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


def test_a_refused_user_or_no_cluster_at_all_is_one_error_line_without_the_password(
        settings: Settings, redis_cluster: LocalCluster) -> None:
    wrong = f"redis://nobody:Wrong-pw-5e8a1@127.0.0.1:{redis_cluster.port(0)}"
    env = user_env(settings.data_dir, replace(settings, redis_url=wrong), REDIS_CLUSTER="1")
    done = basketflow("features", "17850", env=env)
    assert done.returncode == 1 and len(error_lines(done)) == 1, done.stderr
    assert "refused the user or password" in done.stderr and "Wrong-pw" not in done.stderr

    nowhere = f"redis://127.0.0.1:{free_port()}"
    env = user_env(settings.data_dir, replace(settings, redis_url=nowhere), REDIS_CLUSTER="1")
    done = basketflow("features", "17850", env=env)
    assert done.returncode == 1 and len(error_lines(done)) == 1, done.stderr
    assert "no Redis Cluster answers at" in done.stderr and "Traceback" not in done.stderr
