"""Many Redis commands in one round trip, packed by hiredis: how the online store writes,
and sends its reads (an MGET, and the fallback script where values are missing).

redis-py's ``Pipeline`` spends most of its client time per argument and per command in
Python (stacking each command, checking every argument's type before packing, parsing
and post-processing every reply). The online store writes wide hashes (dozens of fields
per customer) and two commands per row (the hash and the packed value), so that cost
shows in the flow's throughput. Packing each command with ``hiredis.pack_command`` and
sending them all at once on one pooled connection writes hashes and packed values
together in less client CPU than ``Pipeline`` spent on the hashes alone
(``benchmarks/online_read.py`` times both ways). Semantics are
``Pipeline(transaction=False)``'s: every reply is read, the first error reply is raised
after the last, and a connection that failed mid-way is dropped so that no later call
reads a stale reply from it.

**On a Redis Cluster** (a ``RedisCluster`` client) each command goes to the node that
serves its key's hash slot: the commands are grouped per node, each group packed and sent
on one connection of that node, all groups sent before any reply is read, so the nodes
work at once and a call costs one round trip however many nodes it touches. The order of
the replies is the order of the commands. The first key of a command routes it (the
first of ``KEYS`` for a script); a command's keys must share one slot (MGET's too), which
the online store's hash tags see to. A ``MOVED``, ``ASK``, ``TRYAGAIN`` or ``CLUSTERDOWN``
reply (slots moved, a node restarting) re-reads the slot map and sends the call again, a
few times; commands are absolute writes and reads, so sending one twice is harmless.
When the cluster still refuses, :class:`ClusterUnavailable` (a ``redis.ConnectionError``)
is raised, which the flow's retries wait out as they wait out a server that is down.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import hiredis
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from basketflow.errors import BasketflowError

#: One command: its name and arguments (str, bytes, int or float).
Command = tuple[str | bytes | int | float, ...]
#: Where a command's first key is, for the commands whose key is not its first argument.
_KEY_AT = {"EVALSHA_RO": 3, "EVAL_RO": 3, "EVALSHA": 3, "EVAL": 3}
#: Error replies of a cluster whose slots moved or that is not whole yet, and how many
#: times a call is sent again after one of them (waiting :data:`_CLUSTER_WAIT` more each).
_CLUSTER_RETRY = (redis.exceptions.AskError, redis.exceptions.TryAgainError,
                  redis.exceptions.ClusterDownError)
_CLUSTER_ATTEMPTS = 4
_CLUSTER_WAIT = 0.05


class ClusterUnavailable(redis.ConnectionError):
    """A Redis Cluster kept answering that its slots moved or that it is down."""


class WrongRedisMode(BasketflowError, redis.ResponseError):
    """One server's client met a Redis Cluster (a ``MOVED`` or ``CROSSSLOT`` reply); the
    message says to set ``REDIS_CLUSTER=1``."""


def send_pipelined(client: redis.Redis, commands: Sequence[Command]) -> list[Any]:
    """Send ``commands`` in one round trip and return every reply (as hiredis parses
    them: bytes, ints, lists, None).

    Raises the first error reply (:class:`redis.ResponseError`) once all replies are
    read, and connection errors as redis-py raises them (so that
    :class:`basketflow.sinks.redis_retry.RedisRetry` waits them out).
    """
    if not commands:
        return []
    if isinstance(client, RedisCluster):
        return _send_cluster(client, commands)
    packed = b"".join(map(hiredis.pack_command, commands))
    pool = client.connection_pool
    connection = pool.get_connection()
    first_error: redis.ResponseError | None = None
    replies: list[Any] = []
    try:
        connection.send_packed_command([packed])
        for _ in commands:
            try:
                replies.append(connection.read_response())
            except redis.ResponseError as exc:
                first_error = first_error or exc
    except BaseException:
        connection.disconnect()
        raise
    finally:
        pool.release(connection)
    if first_error is not None:
        if isinstance(first_error, (redis.exceptions.MovedError,
                                    redis.exceptions.ClusterCrossSlotError)):
            raise WrongRedisMode(f"the online store is a Redis Cluster ({first_error}); "
                                 "set REDIS_CLUSTER=1") from first_error
        raise first_error
    return replies


def command_slot(command: Command) -> int:
    """The hash slot of ``command``'s first key (see :data:`_KEY_AT`).

    >>> command_slot(("HSET", "bf:customer:{17850}", "a", 1)) == command_slot(
    ...     ("EVALSHA_RO", "f00", 1, "bf:packed:basket:{17850}"))
    True
    """
    key = command[_KEY_AT.get(str(command[0]), 1)]
    return key_slot(key if isinstance(key, bytes) else str(key).encode())


def _send_cluster(client: RedisCluster, commands: Sequence[Command]) -> list[Any]:
    """:func:`send_pipelined` on a cluster (see the module docstring)."""
    wait = _CLUSTER_WAIT
    for attempt in range(_CLUSTER_ATTEMPTS):
        try:
            replies, first_error = _send_to_nodes(client, commands)
        except (redis.ConnectionError, redis.TimeoutError):
            _refresh_slots(client)
            raise
        if first_error is None:
            return replies
        if not isinstance(first_error, _CLUSTER_RETRY):
            raise first_error
        if attempt + 1 < _CLUSTER_ATTEMPTS:
            time.sleep(wait)
            wait *= 2
            _refresh_slots(client)
    raise ClusterUnavailable(f"the Redis Cluster refused the call: "
                             f"{type(first_error).__name__} {first_error}")


def _send_to_nodes(client: RedisCluster, commands: Sequence[Command],
                   ) -> tuple[list[Any], redis.ResponseError | None]:
    """Send each command to its slot's node, all nodes before reading; the replies in
    the commands' order and the first error reply (None when there is none)."""
    groups: dict[str, tuple[Any, list[int]]] = {}
    manager = client.nodes_manager
    for i, command in enumerate(commands):
        node = manager.get_node_from_slot(command_slot(command))
        groups.setdefault(node.name, (node, []))[1].append(i)
    sent: list[tuple[Any, Any, list[int]]] = []
    replies: list[Any] = [None] * len(commands)
    first_error: redis.ResponseError | None = None
    try:
        for node, indices in groups.values():
            pool = client.get_redis_connection(node).connection_pool
            connection = pool.get_connection()
            sent.append((pool, connection, indices))
            connection.send_packed_command(
                [b"".join(hiredis.pack_command(commands[i]) for i in indices)])
        for _, connection, indices in sent:
            for i in indices:
                try:
                    replies[i] = connection.read_response()
                except redis.ResponseError as exc:
                    first_error = first_error or exc
    except BaseException:
        for _, connection, _ in sent:
            connection.disconnect()
        raise
    finally:
        for pool, connection, _ in sent:
            pool.release(connection)
    return replies, first_error


def _refresh_slots(client: RedisCluster) -> None:
    """Read the cluster's slot map again; when no node answers, keep the one known (the
    next call fails as this one did, and the caller's retries wait)."""
    try:
        client.nodes_manager.initialize()
    except (redis.RedisError, redis.exceptions.RedisClusterException):
        pass
