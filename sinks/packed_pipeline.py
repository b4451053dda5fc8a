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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import hiredis
import redis

#: One command: its name and arguments (str, bytes, int or float).
Command = tuple[str | bytes | int | float, ...]


def send_pipelined(client: redis.Redis, commands: Sequence[Command]) -> list[Any]:
    """Send ``commands`` in one round trip and return every reply (as hiredis parses
    them: bytes, ints, lists, None).

    Raises the first error reply (:class:`redis.ResponseError`) once all replies are
    read, and connection errors as redis-py raises them (so that
    :class:`basketflow.sinks.redis_retry.RedisRetry` waits them out).
    """
    if not commands:
        return []
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
        raise first_error
    return replies
