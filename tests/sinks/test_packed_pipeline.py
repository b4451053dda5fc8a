"""Pipelined writes packed by hiredis, against a real Redis-protocol server: every command
applied in order, error replies raised after the last reply, connection errors raised as
redis-py raises them, and the connection usable afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from basketflow.app.services import start_redis, stop_service
from basketflow.config import Settings
from basketflow.sinks.online_store import connect
from basketflow.sinks.packed_pipeline import send_pipelined


def test_every_command_is_applied_in_order(settings: Settings) -> None:
    assert settings.redis_url
    client = connect(settings.redis_url)
    key = f"{settings.prefix}:h"
    send_pipelined(client, [("HSET", key, "a", b"1", "b", 2, "c", 2.5),
                            ("HSET", key, "a", "x"), ("EXPIRE", key, 100)])
    assert client.hgetall(key) == {b"a": b"x", b"b": b"2", b"c": b"2.5"}
    assert 90 < client.ttl(key) <= 100
    send_pipelined(client, [])


def test_an_error_reply_is_raised_after_every_reply_is_read(settings: Settings) -> None:
    assert settings.redis_url
    client = connect(settings.redis_url)
    text, after = f"{settings.prefix}:s", f"{settings.prefix}:after"
    client.set(text, "not a hash")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        send_pipelined(client, [("HSET", text, "a", 1), ("HSET", after, "a", 1)])
    assert client.hget(after, "a") == b"1"  # the command after the error ran
    assert client.ping()  # and no unread reply is left on the connection
    assert client.get(text) == b"not a hash"


@pytest.mark.server  # starts a server of its own, to stop it
def test_a_server_that_is_gone_raises_a_connection_error(tmp_path: Path) -> None:
    server = start_redis(tmp_path / "valkey")
    client = connect(server.address)
    stop_service(server)
    with pytest.raises(redis.ConnectionError):
        send_pipelined(client, [("HSET", "k", "a", 1)])
