"""The online store: the latest feature values of every entity, in Redis.

One narrow contract (:class:`OnlineStore`, as Feast's online stores have one) and one
class behind it (:class:`RedisOnlineStore`). Everything the flow, the command line and
``basketflow status`` keep in Redis goes through it:

- **feature values**: :meth:`~OnlineStore.write` takes a
  :class:`~basketflow.schemas.features.FeatureView` and the latest values of many of its
  entities (the view's version and TTL come from the view); :meth:`~OnlineStore.read` and
  :meth:`~OnlineStore.read_vectors` take view names (those of the registry, and
  :data:`SCORE_VIEW`);
- **live scores**: :meth:`~OnlineStore.write_scores` and :meth:`~OnlineStore.read_score`,
  under the view name :data:`SCORE_VIEW` with the model version as ``_version``;
- **the flow's progress**: :meth:`~OnlineStore.write_progress` and
  :meth:`~OnlineStore.read_progress`, the hash ``<prefix>:flow:progress`` (or
  ``<prefix>:flow:progress:<part>`` for one part of the flow run on its own) of text
  fields, among them the flow's event-time clock (:data:`CLOCK_FIELD`), which
  :meth:`~OnlineStore.read_vectors_and_clocks` reads with the values, in the same round
  trip.

Two kinds of key per view (or scores) and entity, written together by every write, in the
same pipelined round trip:

- ``<prefix>:<view>:<entity>``: a hash, one field per feature, each value JSON so that
  numbers, strings and nulls come back with their types, plus the reserved fields
  ``_ts`` (event time of the values, epoch seconds) and ``_version`` (the view's
  definition version). What :meth:`RedisOnlineStore.read`, ``basketflow score`` and the
  tests read.
- ``<prefix>:packed:<view>:<entity>``: the same values with ``_ts`` and ``_version`` as
  one MessagePack map in a string, for serving: one MGET fetches every view of 100
  customers, where reading the hashes cost the server a reply element per field.
  MessagePack, not JSON: the reader decodes it faster (no float parsing), from fewer
  bytes.

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

**On a Redis Cluster** (``REDIS_CLUSTER=1``, :func:`basketflow.security.redis_client`)
the entity in every key is a hash tag: ``<prefix>:<view>:{<entity>}`` and
``<prefix>:packed:<view>:{<entity>}``, so every view of one entity (its hashes, its
packed values, its score) lives in one hash slot, the slot of the entity id alone. A
vector read then takes each entity's keys in one MGET (or one script, which reads the
hashes it falls back to in the same slot), grouped per node in one round trip
(:func:`~basketflow.sinks.packed_pipeline.send_pipelined`), and a write sends each
node its commands at once. The progress hashes keep their names on both: each is one
key read or written alone. One server keeps the names without braces, so a store
written before clusters existed reads as it did; a cluster's keys are named apart, and
moving a store from one server to a cluster means writing it again (a backfill with
``--materialize``, or the flow from its topic). The key prefix must hold no brace there
(it would become the tag).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from basketflow.errors import BasketflowError
from basketflow.security import redis_client, redis_failure
from basketflow.sinks.packed_pipeline import Command, send_pipelined

if TYPE_CHECKING:  # annotations only: reading the store needs neither
    from basketflow.schemas.features import FeatureView
    from basketflow.schemas.records import ScoreRow

TS_FIELD = "_ts"
VERSION_FIELD = "_version"
#: ``<prefix>:packed:<view>:<entity>``: a view's values in one MessagePack value.
PACKED_KEY = "packed"
#: The view name of the live scores: ``<prefix>:score:<entity>`` (and its packed value).
SCORE_VIEW = "score"
#: ``<prefix>:flow:progress[:<part>]``: the flow's progress hash.
PROGRESS_KEY = "flow:progress"
#: The progress hash's field holding the flow's event-time clock: the newest event time
#: it has processed, epoch seconds.
CLOCK_FIELD = "clock"
#: ``entity -> (event time, values)``: the latest values of some entities of one view.
Rows = Mapping[str, tuple[int, Mapping[str, Any]]]


class OnlineStore(Protocol):
    """What the flow, the command line and ``basketflow status`` need of an online store
    (see the module docstring)."""

    def write(self, view: FeatureView, rows: Rows) -> None:
        """Store the latest values of some entities of ``view``, stamped with its version
        (expiring after its TTL without a new write, when it has one)."""

    def read(self, view: str, entity: str) -> dict[str, Any] | None:
        """The values of one entity of the view named ``view``, with ``_ts`` and
        ``_version``; None if unknown."""

    def read_vectors(self, views: Sequence[str], entities: Sequence[str],
                     ) -> list[dict[str, dict[str, Any] | None]]:
        """Every named view of many entities (``view -> values or None`` per entity, in
        order), in one round trip."""

    def read_vectors_and_clocks(self, views: Sequence[str], entities: Sequence[str],
                                parts: Sequence[str],
                                ) -> tuple[list[dict[str, dict[str, Any] | None]],
                                           dict[str, int]]:
        """:meth:`read_vectors`, and in the same round trip the event-time clock
        (:data:`CLOCK_FIELD`) of the progress hash of each of ``parts`` that has one."""

    def write_scores(self, rows: Iterable[ScoreRow]) -> None:
        """Store each entity's latest score (the last of ``rows`` for it)."""

    def read_score(self, entity: str) -> dict[str, Any] | None:
        """An entity's latest score: ``category``, ``probabilities``, ``model_version``,
        ``invoice``, ``seq``, ``_ts`` and ``_version``; None if unknown."""

    def write_progress(self, part: str, fields: Mapping[str, int | str]) -> None:
        """Set fields of the flow's progress hash (of one part of it, when ``part``)."""

    def read_progress(self, part: str = "") -> dict[str, str]:
        """The flow's progress hash (of one part, when ``part``) as text; {} if none."""

    def latest_entities(self, view: str, limit: int) -> list[tuple[str, int]]:
        """Up to ``limit`` entities that have values of ``view``, with the event time of
        those values, the most recent first (ties: by entity id)."""

    def close(self) -> None:
        """Release the store's connections."""


class RedisUnavailable(BasketflowError, RuntimeError):
    """The Redis-protocol server did not answer; the message says what to do."""


class ClusterPrefixError(BasketflowError, ValueError):
    """A key prefix with a brace, which a Redis Cluster would take for the hash tag."""


def lazy_client(url: str) -> redis.Redis:
    """A client for ``url`` that connects at its first command, not now: for a flow's
    sinks, whose every command goes through :class:`~basketflow.sinks.redis_retry.RedisRetry`,
    so a sink built during an outage waits for Redis like every write does."""
    return redis_client(url, socket_connect_timeout=3, socket_timeout=10)


def serving_client(url: str, timeout: float) -> redis.Redis:
    """A client for a server that answers requests (``basketflow serve``): every command
    gives up after ``timeout`` seconds (connecting too), and only a dropped connection
    is tried once more (a restarted server leaves stale pooled connections), so a
    request never waits long on a Redis that hangs. It connects at its first command."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry
    return redis_client(url, socket_connect_timeout=timeout, socket_timeout=timeout,
                        retry=Retry(NoBackoff(), 1, (redis.ConnectionError,)))


def connect(url: str) -> redis.Redis:
    """A client for ``url`` that fails fast, with a message naming the fix (a server
    that does not answer, a refused password or certificate: :func:`redis_failure`)."""
    try:
        client = lazy_client(url)
        client.ping()
    except (redis.ConnectionError, redis.ResponseError) as exc:
        raise RedisUnavailable(redis_failure(url, exc)) from exc
    return client


def _decode(raw: Mapping[bytes, bytes]) -> dict[str, Any] | None:
    """A stored hash -> typed values (None when the key does not exist)."""
    if not raw:
        return None
    return {k.decode(): msgspec.json.decode(v) for k, v in raw.items()}


#: A vector read's script, run read-only (EVALSHA_RO: a user whose keys are read-only may run
#: it, and it cannot write): every key of a small read, or the keys whose packed value the
#: MGET of a larger one did not find. KEYS: packed keys; ARGV: ``<prefix>:``, the length
#: of ``<prefix>:packed:``, :data:`CLOCK_FIELD`, then any progress hashes whose clock to
#: read. Per key, in order: the packed value (for a missed key: written since the MGET),
#: or where there is none, the view's hash (its key is the packed key without
#: ``packed:``) as a flat field/value list ({} when there is none either); then each
#: progress hash's clock (nil where it has none). Only the hashes' keys are not declared,
#: which a single server allows. MGET takes the keys a thousand at a time (Lua's unpack
#: stops at about 8,000).
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
for i = 4, #ARGV do
  out[#KEYS + i - 3] = redis.call('HGET', ARGV[i], ARGV[3])
end
return out
"""


_READ_VECTORS_SHA = hashlib.sha1(_READ_VECTORS.encode(), usedforsecurity=False).hexdigest()
#: Reads of up to this many keys go to the script alone, in one round trip, whether a
#: value is missing or not: for so few keys the script's extra server work (it copies
#: every value through Lua) costs less than a second round trip
#: (``benchmarks/online_read.py``).
_SCRIPT_MAX_KEYS = 32


def progress_key(prefix: str, part: str = "") -> str:
    """The flow's progress hash: ``<prefix>:flow:progress``, or of one part of the flow,
    ``<prefix>:flow:progress:<part>``.

    >>> progress_key("bf"), progress_key("bf", "serve")
    ('bf:flow:progress', 'bf:flow:progress:serve')
    """
    return f"{prefix}:{PROGRESS_KEY}{':' if part else ''}{part}"


def glob_escape(text: str) -> str:
    """Escape Redis glob characters so a prefix like ``a*b`` matches literally.

    >>> glob_escape("a*b:")
    'a\\\\*b:'
    """
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def open_online_store(url: str, prefix: str) -> OnlineStore:
    """The online store at ``url`` under ``prefix``, on a client that fails fast
    (:func:`connect`)."""
    return RedisOnlineStore(connect(url), prefix)


class RedisOnlineStore:
    """Feature values, scores and the flow's progress in Redis under one key prefix: a
    hash and a packed value per view and entity (see the module docstring)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        #: Keys carry the entity as a hash tag (a Redis Cluster, see the module).
        self.cluster = isinstance(client, RedisCluster)
        if self.cluster and ("{" in prefix or "}" in prefix):
            raise ClusterPrefixError(f"the key prefix {prefix!r} holds a brace, which a "
                                     "Redis Cluster takes for the hash tag; choose another "
                                     "BASKETFLOW_PREFIX")
        self._open, self._close = ("{", "}") if self.cluster else ("", "")
        self._packed_head = f"{prefix}:{PACKED_KEY}:"
        self._versions: dict[str, tuple[FeatureView, str]] = {}

    def key(self, view: str, entity: str) -> str:
        """``<prefix>:<view>:<entity>`` (``...:{<entity>}`` on a cluster)."""
        return f"{self.prefix}:{view}:{self._open}{entity}{self._close}"

    def packed_key(self, view: str, entity: str) -> str:
        """``<prefix>:packed:<view>:<entity>`` (``...:{<entity>}`` on a cluster)."""
        return f"{self._packed_head}{view}:{self._open}{entity}{self._close}"

    def entity_in_key(self, rest: str) -> str:
        """The entity of a key, from the text after its ``<prefix>:<view>:``: the text
        itself, or on a cluster without the tag's braces.

        >>> RedisOnlineStore(redis.Redis(), "bf").entity_in_key("17850")
        '17850'
        """
        return rest[1:-1] if self.cluster else rest

    def write(self, view: FeatureView, rows: Rows) -> None:
        """One pipelined round trip for all rows (:mod:`basketflow.sinks.packed_pipeline`):
        each entity's hash and packed value, stamped with the view's version, both given
        the view's TTL to live when it has one."""
        self._write(view.name, self._version(view), rows, view.ttl_seconds)

    def _version(self, view: FeatureView) -> str:
        """``view.version``, worked out once per view (it digests the whole definition,
        too slow to do for every batch); views are immutable."""
        known = self._versions.get(view.name)
        if known is None or known[0] is not view:
            known = self._versions[view.name] = (view, view.version)
        return known[1]

    def write_scores(self, rows: Iterable[ScoreRow]) -> None:
        """Each entity's latest score under :data:`SCORE_VIEW`, with no TTL: one
        pipelined round trip per model version among ``rows`` (usually one)."""
        by_version: dict[str, dict[str, tuple[int, dict[str, Any]]]] = {}
        for row in rows:
            s = row.score
            by_version.setdefault(s.model_version, {})[row.entity] = (row.ts, {
                "category": s.category, "probabilities": s.probabilities,
                "model_version": s.model_version, "invoice": row.invoice, "seq": row.seq})
        for version, latest in by_version.items():
            self._write(SCORE_VIEW, version, latest, None)

    def read_score(self, entity: str) -> dict[str, Any] | None:
        """An entity's latest score (one HGETALL of its hash)."""
        return self.read(SCORE_VIEW, entity)

    def write_progress(self, part: str, fields: Mapping[str, int | str]) -> None:
        """One HSET of the progress hash (:func:`progress_key`)."""
        self.client.hset(progress_key(self.prefix, part), mapping=dict(fields))

    def read_progress(self, part: str = "") -> dict[str, str]:
        """One HGETALL of the progress hash (:func:`progress_key`), decoded as text."""
        raw = self.client.hgetall(progress_key(self.prefix, part))
        return {_text(k): _text(v) for k, v in raw.items()}

    def latest_entities(self, view: str, limit: int) -> list[tuple[str, int]]:
        """The entities of the view's hashes (``SCAN``, never ``KEYS``, which blocks the
        server) with their ``_ts``, read a thousand per pipelined round trip; the
        ``limit`` most recent kept as it goes, so memory stays small on a large store."""
        import heapq
        head = f"{self.prefix}:{view}:"
        pattern = glob_escape(head) + "*"
        best: list[tuple[int, str]] = []
        keys = self.client.scan_iter(match=pattern, count=1000)
        while True:
            chunk = [k for _, k in zip(range(1000), keys)]
            if not chunk:
                break
            found = send_pipelined(self.client, [("HGET", key, TS_FIELD) for key in chunk])
            for key, ts in zip(chunk, found):
                if ts is not None:
                    item = (int(msgspec.json.decode(ts)),
                            self.entity_in_key(_text(key)[len(head):]))
                    if len(best) < limit:
                        heapq.heappush(best, item)
                    elif item > best[0]:
                        heapq.heapreplace(best, item)
        return [(entity, ts) for ts, entity in sorted(best, key=lambda t: (-t[0], t[1]))]

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()

    def _write(self, view: str, version: str, rows: Rows, ttl_seconds: int | None) -> None:
        """Write ``rows`` of the view named ``view`` (see :meth:`write`)."""
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
        MessagePack call. For many keys the script for every key costs the server more
        CPU than the MGET (Lua copies every value into a Lua string and back into the
        reply) and the read more wall time, even where every call takes the second round
        trip; much of the client's CPU is the MessagePack decoding
        (``benchmarks/online_read.py`` measures both ways). The keys of one call must
        live on one server (on Redis Cluster: one hash slot).
        """
        return self._read_vectors(views, entities, ())[0]

    def read_vectors_and_clocks(self, views: Sequence[str], entities: Sequence[str],
                                parts: Sequence[str],
                                ) -> tuple[list[dict[str, dict[str, Any] | None]],
                                           dict[str, int]]:
        """:meth:`read_vectors`, reading the clock of each part's progress hash
        (:func:`progress_key`) in its first round trip: in the script of a small read
        (no reply more), as one HGET each after the MGET of a larger one."""
        hashes = [progress_key(self.prefix, part) for part in parts]
        vectors, replies = self._read_vectors(views, entities, hashes)
        return vectors, {part: int(clock) for part, clock in zip(parts, replies)
                         if clock is not None}

    def _read_vectors(self, views: Sequence[str], entities: Sequence[str],
                      clocks: Sequence[str],
                      ) -> tuple[list[dict[str, dict[str, Any] | None]], list[Any]]:
        """:meth:`read_vectors`, with the clock of each progress hash in ``clocks`` (or
        None) read in its first round trip."""
        if not views or not entities:
            return ([dict.fromkeys(views) for _ in entities],
                    send_pipelined(self.client, [("HGET", key, CLOCK_FIELD) for key in clocks]))
        heads = [f"{self._packed_head}{view}:" for view in views]
        keys = [f"{head}{self._open}{entity}{self._close}"
                for entity in entities for head in heads]
        if len(keys) <= _SCRIPT_MAX_KEYS:
            values: list[bytes | None] = [None] * len(keys)  # all for the script
            replies = self._fill_missing(keys, values, clocks)
            return _decode_vectors(views, values), replies
        groups = self._slot_groups(keys, len(views))
        gets = [("MGET", *(keys[i] for i in group)) for group in groups] if self.cluster \
            else [("MGET", *keys)]
        found = send_pipelined(self.client, [*gets, *(("HGET", key, CLOCK_FIELD)
                                                     for key in clocks)])
        if not self.cluster:
            values = found[0]
        else:
            values = [None] * len(keys)
            for group, got in zip(groups, found):
                for i, value in zip(group, got):
                    values[i] = value
        if None in values:
            self._fill_missing(keys, values)
        return _decode_vectors(views, values), found[len(groups):]

    def _slot_groups(self, keys: Sequence[str], per_entity: int,
                     only: Sequence[int] | None = None) -> list[Sequence[int]]:
        """The indices of ``keys`` (of those in ``only``, when given) grouped so that
        one command may take each group: all in one on one server; on a cluster, per
        hash slot (the keys of one entity, ``per_entity`` in a row, share one)."""
        indices = range(len(keys)) if only is None else only
        if not self.cluster:
            return [indices]
        groups: dict[int, list[int]] = {}
        slot_of: dict[int, int] = {}
        for i in indices:
            first = i - i % per_entity
            slot = slot_of.get(first)
            if slot is None:
                slot = slot_of[first] = key_slot(keys[first].encode())
            groups.setdefault(slot, []).append(i)
        return list(groups.values())

    def _fill_missing(self, keys: list[str], values: list[bytes | None],
                      clocks: Sequence[str] = ()) -> list[Any]:
        """Replace each None in ``values`` (the values of ``keys`` found so far) by what
        the script finds for its key, as a MessagePack value: the packed value, the
        view's hash re-packed, or nil; return the clocks of the progress hashes
        ``clocks``, read in the same round trip (by the script on one server, by one
        HGET each on a cluster, where they live in slots of their own)."""
        missing = [i for i, value in enumerate(values) if value is None]
        groups = self._slot_groups(keys, 1, missing) if self.cluster else [missing]
        in_script = () if self.cluster else clocks
        tail = (f"{self.prefix}:", len(self._packed_head.encode()), CLOCK_FIELD, *in_script)
        alone = [("HGET", key, CLOCK_FIELD) for key in clocks if self.cluster]

        def commands(name: str, script: str) -> list[Command]:
            return [(name, script, len(group), *(keys[i] for i in group), *tail)
                    for group in groups] + alone
        try:
            found = send_pipelined(self.client, commands("EVALSHA_RO", _READ_VECTORS_SHA))
        except redis.exceptions.NoScriptError:  # a restarted or flushed server
            found = send_pipelined(self.client, commands("EVAL_RO", _READ_VECTORS))
        if self.cluster:
            got = [item for reply in found[:len(groups)] for item in reply]
            missing = [i for group in groups for i in group]
            found = [*got, *found[len(groups):]]
        else:
            found = found[0]
        for i, item in zip(missing, found):
            if isinstance(item, bytes):
                values[i] = item
            elif item:
                fields = msgspec.json.decode(b"[" + b",".join(item[1::2]) + b"]")
                values[i] = _pack(dict(zip((k.decode() for k in item[0::2]), fields)))
            else:
                values[i] = _NIL
        return found[len(missing):]


def _text(value: bytes | str) -> str:
    """A reply's bytes as text (a client that decodes replies gives text already)."""
    return value.decode() if isinstance(value, bytes) else value


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
