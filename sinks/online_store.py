"""The online store: the latest feature values of every entity, in Redis.

One narrow class behind one contract (as Feast's online stores are): write the latest
values of many entities of a view in one round trip, read one or many back. Keys are
``<prefix>:<view>:<entity id>`` hashes; each value is stored as JSON so that numbers,
strings and nulls come back with their types; the reserved fields ``_ts`` (event time of
the values, epoch seconds) and ``_version`` (the view's definition version) travel with
them.

Writes are absolute values, never increments, so replaying an update after a crash
cannot apply it twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import msgspec
import redis

TS_FIELD = "_ts"
VERSION_FIELD = "_version"


class OnlineStore(Protocol):
    """What the flow, the CLI and the classifier need of an online store."""

    def write(self, view: str, version: str,
              rows: Mapping[str, tuple[int, Mapping[str, Any]]],
              ttl_seconds: int | None = None) -> None:
        """Store ``entity -> (event time, values)`` of one view (expiring after
        ``ttl_seconds`` without a new write, when given)."""

    def read(self, view: str, entity: str) -> dict[str, Any] | None:
        """The values of one entity, with ``_ts`` and ``_version``; None if unknown."""

    def read_vectors(self, views: Sequence[str], entities: Sequence[str],
                     ) -> list[dict[str, dict[str, Any] | None]]:
        """Every given view of many entities (``view -> values or None`` per entity, in
        order), in one round trip."""


class RedisUnavailable(RuntimeError):
    """The Redis-protocol server did not answer; the message says what to do."""


def connect(url: str) -> redis.Redis:
    """A client for ``url`` that fails fast, with a message naming the fix."""
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        raise RedisUnavailable(
            f"no Redis-protocol server answers at {url} ({exc}); start one with "
            "`basketflow up` or set REDIS_URL") from exc
    return client


def _decode(raw: Mapping[bytes, bytes]) -> dict[str, Any] | None:
    """A stored hash -> typed values (None when the key does not exist)."""
    if not raw:
        return None
    return {k.decode(): msgspec.json.decode(v) for k, v in raw.items()}


#: HGETALL of every key given, as one reply (a list of flat field/value lists).
_HGETALL_ALL = """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('HGETALL', key) end
return out
"""


class RedisOnlineStore:
    """Feature values in Redis hashes under one key prefix."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._hgetall_script = client.register_script(_HGETALL_ALL)

    def key(self, view: str, entity: str) -> str:
        """``<prefix>:<view>:<entity>``."""
        return f"{self.prefix}:{view}:{entity}"

    def write(self, view: str, version: str,
              rows: Mapping[str, tuple[int, Mapping[str, Any]]],
              ttl_seconds: int | None = None) -> None:
        """One pipelined round trip for all rows; each key written once, and given
        ``ttl_seconds`` to live when set."""
        pipe = self.client.pipeline(transaction=False)
        dumps = msgspec.json.encode
        encoded_version = dumps(version)
        for entity, (ts, values) in rows.items():
            mapping = {name: dumps(v) for name, v in values.items()}
            mapping[TS_FIELD] = dumps(ts)
            mapping[VERSION_FIELD] = encoded_version
            key = self.key(view, entity)
            pipe.hset(key, mapping=mapping)
            if ttl_seconds is not None:
                pipe.expire(key, ttl_seconds)
        pipe.execute()

    def read(self, view: str, entity: str) -> dict[str, Any] | None:
        """The values of one entity (one HGETALL)."""
        return _decode(self.client.hgetall(self.key(view, entity)))

    def read_vectors(self, views: Sequence[str], entities: Sequence[str],
                     ) -> list[dict[str, dict[str, Any] | None]]:
        """Every given view of many entities in one command (a customer's whole vector:
        ``read_vectors(["customer", "basket", "score"], [id])[0]``).

        One server-side script returns every hash, so the client parses one reply instead
        of one per key, and every value of every hash is decoded by one JSON decode of
        the values joined into an array: 100 customers x 2 views cost about a third of
        a pipeline of HGETALLs (``benchmarks/online_read.py``). The keys of one call must
        live on one server (on Redis Cluster: one hash slot).
        """
        keys = [self.key(view, entity) for entity in entities for view in views]
        hashes = self._hgetall_script(keys=keys) if keys else []
        values = iter(msgspec.json.decode(
            b"[" + b",".join(v for flat in hashes for v in flat[1::2]) + b"]"))
        decoded = [dict(zip((k.decode() for k in flat[0::2]), values)) or None
                   for flat in hashes]
        n = len(views)
        return [dict(zip(views, decoded[i * n:(i + 1) * n])) for i in range(len(entities))]
