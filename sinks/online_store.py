"""The online store: the latest feature values of every entity, in Redis.

One narrow class behind one contract (as Feast's online stores are): write the latest
values of many entities of a view in one round trip, read one or many back.

Two kinds of key per view and entity, written together by every write, in the same
pipelined round trip:

- ``<prefix>:<view>:<entity>``: a hash, one field per feature, each value JSON so that
  numbers, strings and nulls come back with their types, plus the reserved fields
  ``_ts`` (event time of the values, epoch seconds) and ``_version`` (the view's
  definition version). What :meth:`RedisOnlineStore.read`, ``basketflow score`` and the
  tests read.
- ``<prefix>:packed:<view>:<entity>``: the same values with ``_ts`` and ``_version`` as
  one MessagePack map in a string, for serving: one MGET fetches every view of 100
  customers, where reading the hashes cost the server a reply element per field (p99
  over 2 ms for the server alone). MessagePack, not JSON: the reader decodes it in about
  60% of the time (no float parsing), from a quarter fewer bytes.

A value per view, not one per entity holding every view: a write then replaces only the
views that moved, whole, with no read-modify-write and nothing to carry for the views
that did not, and each value can have its view's TTL on the server. A hash per entity
with a field per view reads as fast (``benchmarks/online_read.py`` measures both) but
cannot expire one field on Redis 7, so it needed wall-clock expiry times in the values.

Rules, the same for both kinds:

- **TTL**: a view with a TTL gives both keys that TTL in the same round trip (EXPIRE on
  the hash, SET ... EX on the packed value), so both expire together, on the server's
  clock: a read never serves a packed value whose hash has expired.
- **Versions**: values carry the ``_version`` they were written with. A packed value is
  replaced whole by every write, so values of an older definition are never served
  under a newer version (a hash keeps the fields a newer definition dropped; the packed
  value does not).
- **Reads** (:meth:`RedisOnlineStore.read_vectors`) take each asked view of each entity
  from its packed value, and only where there is none (a store written before packed
  values existed, an expired view, or nothing at all) from the view's hash: a small read
  in one server-side script, a larger one by one MGET, then the script for the keys it
  missed alone.

Writes are absolute values, never increments, so replaying an update after a crash
cannot apply it twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import msgspec
import redis

from basketflow.errors import BasketflowError
from basketflow.sinks.packed_pipeline import Command, send_pipelined

TS_FIELD = "_ts"
VERSION_FIELD = "_version"
#: ``<prefix>:packed:<view>:<entity>``: a view's values in one MessagePack value.
PACKED_KEY = "packed"


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


class RedisUnavailable(BasketflowError, RuntimeError):
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


#: A vector read's script: every key of a small read, or the keys whose packed value the
#: MGET of a larger one did not find. KEYS: packed keys; ARGV: ``<prefix>:`` and the
#: length of ``<prefix>:packed:``. Per key, in order: the packed value (for a missed key:
#: written since the MGET), or where there is none, the view's hash (its key is the
#: packed key without ``packed:``) as a flat field/value list ({} when there is none
#: either). Only the hashes' keys are not declared, which a single server allows. MGET
#: takes the keys a thousand at a time (Lua's unpack stops at about 8,000).
_READ_VECTORS = """
local head, skip = ARGV[1], tonumber(ARGV[2]) + 1
local out = {}
for first = 1, #KEYS, 1000 do
  local last = math.min(first + 999, #KEYS)
  local got = redis.call('MGET', unpack(KEYS, first, last))
  for i = first, last do
    out[i] = got[i - first + 1] or redis.call('HGETALL', head .. KEYS[i]:sub(skip))
  end
end
return out
"""


_READ_VECTORS_SHA = hashlib.sha1(_READ_VECTORS.encode()).hexdigest()
#: Reads of up to this many keys go to the script alone, in one round trip, whether a
#: value is missing or not: the script's extra server work for them (it copies every
#: value through Lua) is at most 0.03 ms, against 0.1 ms for a second round trip on an
#: idle 2-core VM (1 to 10 customers x 3 views, ``benchmarks/online_read.py``).
_SCRIPT_MAX_KEYS = 32


class RedisOnlineStore:
    """Feature values in Redis under one key prefix: a hash and a packed value per view
    and entity (see the module docstring)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._packed_head = f"{prefix}:{PACKED_KEY}:"

    def key(self, view: str, entity: str) -> str:
        """``<prefix>:<view>:<entity>``."""
        return f"{self.prefix}:{view}:{entity}"

    def packed_key(self, view: str, entity: str) -> str:
        """``<prefix>:packed:<view>:<entity>``."""
        return f"{self._packed_head}{view}:{entity}"

    def write(self, view: str, version: str,
              rows: Mapping[str, tuple[int, Mapping[str, Any]]],
              ttl_seconds: int | None = None) -> None:
        """One pipelined round trip for all rows (:mod:`basketflow.sinks.packed_pipeline`): each
        entity's hash and packed value, both given ``ttl_seconds`` to live when set."""
        dumps = msgspec.json.encode
        encoded_version = dumps(version)
        expiry: tuple[Any, ...] = () if ttl_seconds is None else ("EX", ttl_seconds)
        commands: list[Command] = []
        for entity, (ts, values) in rows.items():
            key = self.key(view, entity)
            hset: list[Any] = ["HSET", key]
            for name, value in values.items():
                hset += (name, dumps(value))
            hset += (TS_FIELD, dumps(ts), VERSION_FIELD, encoded_version)
            commands.append(tuple(hset))
            packed = _pack({**values, TS_FIELD: ts, VERSION_FIELD: version})
            commands.append(("SET", self.packed_key(view, entity), packed, *expiry))
            if ttl_seconds is not None:  # after the SET: the hash never expires first
                commands.append(("EXPIRE", key, ttl_seconds))
        send_pipelined(self.client, commands)

    def read(self, view: str, entity: str) -> dict[str, Any] | None:
        """The values of one entity (one HGETALL of the view's hash)."""
        return _decode(self.client.hgetall(self.key(view, entity)))

    def read_vectors(self, views: Sequence[str], entities: Sequence[str],
                     ) -> list[dict[str, dict[str, Any] | None]]:
        """Every given view of many entities, usually in one round trip (a customer's
        whole vector: ``read_vectors(["customer", "basket", "score"], [id])[0]``).

        Up to :data:`_SCRIPT_MAX_KEYS` keys, one script (:data:`_READ_VECTORS`) reads
        each packed value, or where there is none the view's hash. Past that, one plain
        MGET of the packed values, and only where one is missing a second round trip
        runs the script on those keys alone. Then every value is decoded in one
        MessagePack call. For 100 customers x 3 views the script for every key cost the
        server 1.6 times the CPU (0.50 against 0.31 ms per call at load 0.9: Lua copies
        every value into a Lua string and back into the reply) and the wall p50 0.06-0.08
        ms more on an idle machine, 0.25-0.43 ms more at load 2.6-2.9, even where every
        call took the second round trip, which costs the client 0.03-0.07 ms of CPU;
        about half the client's CPU is the MessagePack decoding
        (``benchmarks/online_read.py``). The keys of one call must live on one server (on
        Redis Cluster: one hash slot).
        """
        if not views or not entities:
            return [dict.fromkeys(views) for _ in entities]
        heads = [f"{self._packed_head}{view}:" for view in views]
        keys = [f"{head}{entity}" for entity in entities for head in heads]
        if len(keys) <= _SCRIPT_MAX_KEYS:
            values = [None] * len(keys)  # all for the script
        else:
            values = send_pipelined(self.client, [("MGET", *keys)])[0]
        if None in values:
            self._fill_missing(keys, values)
        return _decode_vectors(views, values)

    def _fill_missing(self, keys: list[str], values: list[bytes | None]) -> None:
        """Replace each None in ``values`` (the values of ``keys`` found so far) by what
        the script finds for its key, as a MessagePack value: the packed value, the
        view's hash re-packed, or nil."""
        missing = [i for i, value in enumerate(values) if value is None]
        command = (len(missing), *(keys[i] for i in missing), f"{self.prefix}:",
                   len(self._packed_head.encode()))
        try:
            found = send_pipelined(self.client, [("EVALSHA", _READ_VECTORS_SHA, *command)])[0]
        except redis.exceptions.NoScriptError:  # a restarted or flushed server
            found = send_pipelined(self.client, [("EVAL", _READ_VECTORS, *command)])[0]
        for i, item in zip(missing, found):
            if isinstance(item, bytes):
                values[i] = item
            elif item:
                fields = msgspec.json.decode(b"[" + b",".join(item[1::2]) + b"]")
                values[i] = _pack(dict(zip((k.decode() for k in item[0::2]), fields)))
            else:
                values[i] = _NIL


def _decode_vectors(views: Sequence[str], values: list[bytes],
                    ) -> list[dict[str, dict[str, Any] | None]]:
    """``values`` (MessagePack values, nil where there is none, ``len(views)`` per entity
    in order) -> ``view -> values or None`` per entity: decoded in one MessagePack call
    as one array (framing them as one map per entity instead, keyed by the views, cost
    the same), then zipped with the views."""
    decoded = iter(_unpack_many(_ARRAY32 + len(values).to_bytes(4, "big") + b"".join(values)))
    return [dict(zip(views, decoded)) for _ in range(len(values) // len(views))]


_pack = msgspec.msgpack.Encoder().encode
_unpack_many = msgspec.msgpack.Decoder(list[dict[str, Any] | None]).decode
#: The MessagePack header of an array of up to 2**32 - 1 items (the count follows), and nil.
_ARRAY32, _NIL = b"\xdd", b"\xc0"
