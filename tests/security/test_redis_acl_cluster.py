"""The users of ``basketflow security redis-acl`` on a real Redis Cluster of three nodes,
their lines applied on every node: the writer runs the flow, the reader reads what it
wrote (the command line) and is refused every write."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from basketflow.app.redis_acl import READER, WRITER, redis_acl
from basketflow.config import Settings
from basketflow.flows.live import RunOptions, run_live
from basketflow.producers.replay import replay
from basketflow.security import ENV_REDIS_CLUSTER, redis_client
from basketflow.sinks.online_store import RedisOnlineStore
from tests.cli.commands import basketflow, user_env
from tests.redis_cluster import LocalCluster
from tests.security.servers import READER_PASSWORD, WRITER_PASSWORD
from tests.security.test_redis_acl import HEADER, LINES


@pytest.fixture
def users(redis_cluster: LocalCluster, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """The writer's and the reader's URLs, the users created on every node."""
    monkeypatch.setenv(ENV_REDIS_CLUSTER, "1")
    (tmp_path / "w").write_text(WRITER_PASSWORD)
    (tmp_path / "r").write_text(READER_PASSWORD)
    for i in range(len(redis_cluster.nodes)):
        with redis.Redis(port=redis_cluster.port(i)) as admin:
            for user in redis_acl("acl", tmp_path / "w", tmp_path / "r"):
                admin.execute_command(*shlex.split(user.line))
    yield tuple(f"redis://{user}:{password}@127.0.0.1:{redis_cluster.port(0)}"
                for user, password in ((WRITER, WRITER_PASSWORD), (READER, READER_PASSWORD)))
    for i in range(len(redis_cluster.nodes)):
        with redis.Redis(port=redis_cluster.port(i)) as admin:
            admin.execute_command("ACL", "DELUSER", WRITER, READER)


def test_the_writer_runs_the_flow_and_the_reader_reads_it_not_writes(
        users: tuple[str, str], broker: str, tmp_path: Path) -> None:
    writer, reader = users
    source = tmp_path / "lines.csv"
    source.write_text("\n".join([HEADER, *LINES]) + "\n")
    settings = Settings(tmp_path / "data", broker, writer, topic=f"acl-{tmp_path.name}",
                        dead_topic=f"acl-{tmp_path.name}.dead", prefix="acl")
    replay(source, broker, settings.topic, settings.dead_topic)
    run_live(settings, stop_at_end=True, options=RunOptions())

    done = basketflow("features", "17850", "--json",
                      env=user_env(settings.data_dir, replace(settings, redis_url=reader)))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["views"]["customer"]["lifetime_orders"] == 2

    store = RedisOnlineStore(redis_client(reader), "acl")
    assert store.read_vectors(["customer"], ["13047"])[0]["customer"]["lifetime_orders"] == 1
    with pytest.raises(redis.exceptions.NoPermissionError):
        store.write_progress("", {"events": 1})
    with pytest.raises(redis.exceptions.NoPermissionError):
        store.client.execute_command("SET", store.packed_key("customer", "13047"), "x")
