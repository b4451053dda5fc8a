"""Online read latency: one customer's whole feature vector, and 100 customers in one call.

Fills an embedded Valkey with the ``customer`` and ``basket`` values of every customer of
the real file (folded through the flow's own feature code; the seeded generator's data
when the real file is absent) and a score per customer shaped like the live ones (a
category and the probabilities of 10), then times through the Python API
(:meth:`basketflow.sinks.online_store.RedisOnlineStore.read_vectors`), for the views ``customer`` +
``basket`` and for those + ``score`` (what the demo and a serving call read):

- 10,000 reads of one random customer's vector;
- 1,000 reads of 100 random customers in one call;

each seven ways, taking turns call by call on the same entities: ``now``,
``read_vectors``: the packed values (``<prefix>:packed:<view>:<entity>``) of one customer
through its script in one round trip, of 100 by one plain MGET with a second round trip
for the script only where a value is missing (42 of the real file's customers have no
basket, so most calls of 100 with ``basket`` take it); ``served``, the whole read of
``basketflow features`` and ``FeatureStore.get_online_features``
(:func:`basketflow.app.features.read_online`): the same values with the flow's
event-time clocks in the same round trips, as rows with the request-time features
computed at the clock; ``rows``, that read as it was before as-of times (the
vectors without clocks, as rows without request-time features, kept here to
compare); ``script``, the same values
through the script given every key in one round trip (``read_vectors`` before, kept
here to compare); ``entity``, the alternative of a hash per entity with a field per view
holding the same packed values (one HMGET per entity in one script, built and read here
to compare); ``hashes``, the per-view hashes as read before packed values existed (one
script of HGETALLs, kept here to compare); and ``naive``, one HGETALL round trip per key.
Prints the 1-minute load average with every block (wall times on a shared machine move
with it), p50 and p99 wall time in milliseconds and the mean client CPU time per call
(this thread's, which load inflates far less than wall time), and for 100 customers, in
a separate pass, the server's own CPU time per call (its main thread's) and the commands
it ran per call, those in scripts included. Then the same for the three views with the
baskets of half the customers expired, as in a live store where most customers have no
current basket (half the reads of one, and every read of 100, take the second round
trip). Targets (issue 3): one vector p99 < 0.5 ms; 100 customers p99 < 2 ms. Feast 0.67
on this machine kind, 7 features: one entity p50 0.26 / p99 0.64 ms; 100 entities p50
4.2 / p99 7.5 ms.

Also prints the server memory the hashes and the packed values take, and times the
write of every customer's ``customer`` and ``basket`` rows in batches of 2,000 as the
flow writes them, five times each way, taking turns: the hashes alone through redis-py's
``Pipeline`` (the write before packed values, kept here to compare) and
:meth:`~basketflow.sinks.online_store.RedisOnlineStore.write` (hashes and packed values, packed by
hiredis), as client CPU and wall time per row.

With ``--cluster``, instead: the same store on one embedded Valkey and on a Redis
Cluster of three embedded Valkey nodes on this machine (``tests/redis_cluster.py``; keys
tagged by entity, see :mod:`basketflow.sinks.online_store`), in the same run: the write
of every customer's ``customer``, ``basket`` and score rows in batches of 2,000 as the
flow writes them (five times each, taking turns), then one customer's and 100
customers' vectors (customer + basket + score) through ``read_vectors`` and the whole
served read, both stores taking turns call by call on the same entities; then the
whole live flow (:func:`basketflow.flows.live.run_live`, one process, no recovery) over
the file replayed into an embedded broker, to the topic's end, on each store in turn,
twice: events/s end to end.

    python benchmarks/online_read.py [--reads N] [--ways now,script,...] [PATH.csv[.gz]]
    python benchmarks/online_read.py --cluster [--reads N] [PATH.csv[.gz]]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import msgspec
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # tests.redis_cluster

from machine import REAL_DATA, describe

from basketflow.app.features import FeatureRow, OnlineFeatures, read_online
from basketflow.app.services import start_redis, stop_service
from basketflow.features.entity_features import CustomerFolder
from basketflow.flows.progress import SERVE_PROGRESS
from basketflow.producers.csv_source import read_events
from basketflow.producers.synthetic import write_csv
from basketflow.schemas.events import Transaction
from basketflow.schemas.features import FeatureView, registry
from basketflow.sinks.online_store import _READ_VECTORS, PACKED_KEY, RedisOnlineStore, connect
from basketflow.sinks.packed_pipeline import send_pipelined

VIEWS = ["customer", "basket"]
#: The ways of reading timed (see the module docstring).
WAYS = ("now", "served", "rows", "script", "entity", "hashes", "naive")
#: A way of reading: (views, entities) -> anything.
Read = Callable[[list[str], list[str]], object]
CATEGORIES = [f"category-{i}" for i in range(10)]

#: The read before packed values: HGETALL of every key given, as one reply.
_HGETALL_ALL = """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('HGETALL', key) end
return out
"""

#: The alternative: HMGET of the asked views (ARGV) from every entity's hash (KEYS).
_HMGET_ALL = """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('HMGET', key, unpack(ARGV)) end
return out
"""


def latest_values(path: Path) -> dict[str, dict[str, tuple[int, dict[str, Any]]]]:
    """view -> customer -> (event time, latest values), from the flow's feature code."""
    by_customer: dict[str, list[Transaction]] = defaultdict(list)
    for e in read_events(path, [0]):
        if isinstance(e, Transaction) and e.customer_id:
            by_customer[e.customer_id].append(e)
    latest: dict[str, dict[str, tuple[int, dict[str, Any]]]] = {view: {} for view in VIEWS}
    for customer, events in by_customer.items():
        update = CustomerFolder().fold(customer, sorted(events, key=lambda e: e.ts), 3600)
        if update is not None:
            for view in VIEWS:
                if view in update.values:
                    latest[view][customer] = (update.times[view], update.values[view])
    return latest


def scores(customers: Sequence[str], rng: random.Random,
           ) -> dict[str, tuple[int, dict[str, Any]]]:
    """A score per customer shaped like the flow's (see ``basketflow.sinks.flow_sinks``)."""
    out = {}
    for customer in customers:
        weights = [rng.random() for _ in CATEGORIES]
        probabilities = {c: w / sum(weights) for c, w in zip(CATEGORIES, weights)}
        out[customer] = (1_317_000_000, {
            "category": max(probabilities, key=probabilities.__getitem__),
            "probabilities": probabilities, "model_version": "bench",
            "invoice": "570000", "seq": rng.randrange(1, 500)})
    return out


class HashReads:
    """``read_vectors`` as it was before packed values: every view's hash, in one
    script."""

    def __init__(self, store: RedisOnlineStore) -> None:
        self.store = store
        self.script = store.client.register_script(_HGETALL_ALL)

    def read_vectors(self, views: Sequence[str], entities: Sequence[str],
                     ) -> list[dict[str, dict[str, Any] | None]]:
        keys = [self.store.key(view, entity) for entity in entities for view in views]
        hashes = self.script(keys=keys)
        values = iter(msgspec.json.decode(
            b"[" + b",".join(v for flat in hashes for v in flat[1::2]) + b"]"))
        decoded = [dict(zip((k.decode() for k in flat[0::2]), values)) or None
                   for flat in hashes]
        n = len(views)
        return [dict(zip(views, decoded[i * n:(i + 1) * n])) for i in range(len(entities))]


def rows_before(store: RedisOnlineStore, views: list[str], entities: list[str],
                ) -> list[OnlineFeatures]:
    """``read_online`` before as-of times: the vectors alone, each view's values as a
    row by filtering out the reserved fields, no request-time features."""
    return [OnlineFeatures(entity, {
        view: FeatureRow(view, entity, {k: v for k, v in values.items() if k[0] != "_"},
                         values.get("_ts"), values.get("_version")) if values else None
        for view, values in vector.items()}, None, None)
        for entity, vector in zip(entities, store.read_vectors(views, entities))]


class ScriptReads:
    """``read_vectors`` before its plain MGET for larger reads: the script given every
    key, in one round trip (one EVALSHA packed by hiredis); an all-packed reply decoded in one
    MessagePack call, any other value by value."""

    def __init__(self, store: RedisOnlineStore) -> None:
        self.store = store
        self.sha = store.client.script_load(_READ_VECTORS)

    def read_vectors(self, views: Sequence[str], entities: Sequence[str],
                     ) -> list[dict[str, dict[str, Any] | None]]:
        n = len(views)
        head = f"{self.store.prefix}:{PACKED_KEY}:"
        keys = [f"{head}{view}:{entity}" for entity in entities for view in views]
        reply = send_pipelined(self.store.client, [(
            "EVALSHA", self.sha, len(keys), *keys, f"{self.store.prefix}:",
            len(head.encode()))])[0]
        packed = [item for item in reply if isinstance(item, bytes)]
        if len(packed) == len(reply):
            decoded = _UNPACK_LIST(b"\xdd" + len(packed).to_bytes(4, "big") + b"".join(packed))
        else:
            decoded = []
            for item in reply:
                if isinstance(item, bytes):
                    decoded.append(_UNPACK_ONE(item))
                elif item:
                    values = msgspec.json.decode(b"[" + b",".join(item[1::2]) + b"]")
                    decoded.append(dict(zip((k.decode() for k in item[0::2]), values)))
                else:
                    decoded.append(None)
        return [dict(zip(views, decoded[i * n:(i + 1) * n])) for i in range(len(entities))]


_UNPACK_LIST = msgspec.msgpack.Decoder(list[dict[str, Any]]).decode
_UNPACK_ONE = msgspec.msgpack.Decoder().decode


class EntityHashReads:
    """The alternative layout: one hash per entity, ``<prefix>:entity:<entity>``, with a
    field per view holding the view's packed value, read with one HMGET per entity."""

    def __init__(self, store: RedisOnlineStore,
                 latest: dict[str, dict[str, tuple[int, dict[str, Any]]]]) -> None:
        self.store = store
        self.script = store.client.register_script(_HMGET_ALL)
        pipe = store.client.pipeline(transaction=False)
        for view, rows in latest.items():
            for entity, (ts, values) in rows.items():
                pipe.hset(self.key(entity), view, msgspec.msgpack.encode(
                    {**values, "_ts": ts, "_version": "bench"}))
        pipe.execute()

    def key(self, entity: str) -> str:
        """``<prefix>:entity:<entity>``."""
        return f"{self.store.prefix}:entity:{entity}"

    def read_vectors(self, views: Sequence[str], entities: Sequence[str],
                     ) -> list[dict[str, dict[str, Any] | None]]:
        replies = self.script(keys=[self.key(e) for e in entities], args=list(views))
        unpack = msgspec.msgpack.decode
        return [{view: unpack(v) if v is not None else None for view, v in zip(views, got)}
                for got in replies]


def pipeline_write(store: RedisOnlineStore, view: str, version: str,
                   rows: dict[str, tuple[int, dict[str, Any]]], ttl: int | None) -> None:
    """The write before packed values: the view's hashes alone, through redis-py's
    Pipeline."""
    pipe = store.client.pipeline(transaction=False)
    dumps = msgspec.json.encode
    for entity, (ts, values) in rows.items():
        mapping = {name: dumps(v) for name, v in values.items()}
        mapping["_ts"] = dumps(ts)
        mapping["_version"] = dumps(version)
        key = store.key(view, entity)
        pipe.hset(key, mapping=mapping)
        if ttl is not None:
            pipe.expire(key, ttl)
    pipe.execute()


def write_costs(ways: dict[str, Callable[..., None]],
                latest: dict[str, dict[str, tuple[int, dict[str, Any]]]],
                views: Sequence[str] = VIEWS) -> dict[str, str]:
    """Per way, the median client CPU and wall time per row of five writes of every
    row of ``views`` (by default customer and basket) in batches of 2,000, the ways
    taking turns."""
    cpu: dict[str, list[float]] = {name: [] for name in ways}
    wall: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(5):
        for name, write in ways.items():
            rows = 0
            started_cpu, started = time.thread_time(), time.perf_counter()
            for view in views:
                items = list(latest[view].items())
                for i in range(0, len(items), 2000):
                    batch = dict(items[i:i + 2000])
                    known = registry().get(view)  # None: the scores
                    write(view, known and known.version, batch, known and known.ttl_seconds)
                    rows += len(batch)
            cpu[name].append((time.thread_time() - started_cpu) / rows)
            wall[name].append((time.perf_counter() - started) / rows)
    return {name: f"client CPU {statistics.median(cpu[name]) * 1e6:.1f} us/row, wall "
                  f"{statistics.median(wall[name]) * 1e6:.1f} us/row" for name in ways}


def memory(store: RedisOnlineStore,
           latest: dict[str, dict[str, tuple[int, dict[str, Any]]]]) -> str:
    """The server's memory (MEMORY USAGE) of every hash and every packed value."""
    pipe = store.client.pipeline(transaction=False)
    keys = [(view, entity) for view, rows in latest.items() for entity in rows]
    for view, entity in keys:
        pipe.memory_usage(store.key(view, entity), samples=0)
    for view, entity in keys:
        pipe.memory_usage(store.packed_key(view, entity), samples=0)
    used = pipe.execute()
    return (f"hashes {sum(used[:len(keys)]) / 2**20:.1f} MiB, packed values "
            f"{sum(used[len(keys):]) / 2**20:.1f} MiB ({len(keys):,} of each)")


def load() -> str:
    """The machine's 1-minute load average, which moves wall times on a shared machine."""
    return f"load {os.getloadavg()[0]:.2f}"


def percentiles(timings: list[float]) -> str:
    """p50 / p99 of timings in seconds, as milliseconds."""
    q = statistics.quantiles(timings, n=100)
    return f"p50 {q[49] * 1000:.3f} / p99 {q[98] * 1000:.3f} ms"


def interleaved(ways: dict[str, Read], views: list[str], calls: int,
                entities: Callable[[], list[str]],
                ) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Wall time of each of ``calls`` rounds per way, and each way's mean client CPU
    time per call (this thread's), the ways taking turns on the same entities each
    round, so that the load of a shared machine falls on all alike, in an order shuffled
    each round: a way run after a slow one pays for it (after the naive way's hundreds
    of round trips, a read of 100 customers took 0.1-0.2 ms more client CPU), and a
    rotating order would keep the same way after it."""
    wall: dict[str, list[float]] = {name: [] for name in ways}
    cpu = dict.fromkeys(ways, 0.0)
    order = list(ways.items())
    shuffle = random.Random(5).shuffle
    for _ in range(calls):
        ids = entities()
        shuffle(order)
        for name, read in order:
            started_cpu, started = time.thread_time(), time.perf_counter()
            read(views, ids)
            wall[name].append(time.perf_counter() - started)
            cpu[name] += time.thread_time() - started_cpu
    return wall, {name: spent / calls for name, spent in cpu.items()}


def server_cpu(client: redis.Redis) -> float:
    """CPU seconds the server's main thread has used (Valkey's threads for I/O are off
    here, so it does all the work: reading and parsing commands, running them, writing
    replies)."""
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user_main_thread"] + cpu["used_cpu_sys_main_thread"])


def server_time(client: redis.Redis, calls: int, call: Callable[[], object],
                ) -> tuple[float, dict[str, int]]:
    """The server's mean CPU time per read (seconds) over ``calls`` reads, which load
    inflates far less than its wall time (INFO commandstats would time only the commands,
    and a command run by a script twice, in its own line and in the script's); and the
    commands run per read (from INFO commandstats, those in scripts included)."""
    client.config_resetstat()
    spent = server_cpu(client)
    for _ in range(calls):
        call()
    spent = server_cpu(client) - spent
    commands = {name.removeprefix("cmdstat_"): value["calls"]
                for name, value in client.info("commandstats").items()
                if not name.startswith(("cmdstat_config", "cmdstat_info"))}
    return spent / calls, commands


def measure(client: redis.Redis, ways: dict[str, Read], views: list[str],
            customers: list[str], reads: int) -> list[str]:
    """Lines of figures per way of reading, with the load average before and after:
    ``reads`` reads of one random customer, a tenth as many of 100, and the server's mean
    time per read of 100 with the commands it ran per read."""
    rng = random.Random(11)
    many = max(reads // 10, 100)
    lines = [f"one customer, {reads:,} reads per way ({load()})"]
    wall, cpu = interleaved(ways, views, reads, lambda: [rng.choice(customers)])
    lines += [f"  {name:7} {percentiles(wall[name])}, client CPU {cpu[name] * 1000:.3f} "
              "ms/call" for name in ways]
    lines.append(f"100 customers, {many:,} reads per way ({load()})")
    wall, cpu = interleaved(ways, views, many, lambda: rng.sample(customers, 100))
    for name, read in ways.items():
        spent, commands = server_time(
            client, many, lambda read=read: read(views, rng.sample(customers, 100)))
        sent = ", ".join(f"{calls / many:.2f} {command}"
                         for command, calls in sorted(commands.items()))
        lines.append(f"  {name:7} {percentiles(wall[name])}, client CPU "
                     f"{cpu[name] * 1000:.3f} ms/call; server CPU {spent * 1000:.3f} ms/call, "
                     f"running {sent}")
    lines.append(f"({load()})")
    return lines


def cluster_against_one(tmp: Path, path: Path,
                        latest: dict[str, dict[str, tuple[int, dict[str, Any]]]],
                        customers: list[str], reads: int) -> None:
    """Writes and reads on one server and on a 3-node cluster (see the module docstring)."""
    from basketflow.security import redis_client
    from tests.redis_cluster import start_cluster

    server = start_redis(tmp / "valkey")
    cluster = start_cluster(tmp / "cluster")
    try:
        one = RedisOnlineStore(connect(server.address), "bench")
        many = RedisOnlineStore(redis_client(cluster.url, cluster=True), "bench")
        views = {view: registry().get(view) or FeatureView(view, "customer_id", "bench", ())
                 for view in latest}
        print(f"writes of {sum(map(len, latest.values())):,} rows ({load()}):")
        for name, cost in write_costs({
                "one server": lambda view, _v, rows, _t: one.write(views[view], rows),
                "3-node cluster": lambda view, _v, rows, _t: many.write(views[view], rows),
        }, latest, list(latest)).items():
            print(f"  {name:15} {cost}")
        newest = max(ts for rows in latest.values() for ts, _ in rows.values())
        for store in (one, many):
            for part in (SERVE_PROGRESS, ""):
                store.write_progress(part, {"clock": newest})
        ways: dict[str, Read] = {
            "one server, read_vectors": one.read_vectors,
            "cluster, read_vectors": many.read_vectors,
            "one server, served": lambda v, ids: read_online(one, ids, v),
            "cluster, served": lambda v, ids: read_online(many, ids, v),
        }
        rng = random.Random(11)
        views_read = [*VIEWS, "score"]
        interleaved(ways, views_read, 200, lambda: [rng.choice(customers)])  # warm up
        for count, calls in ((1, reads), (100, max(reads // 10, 100))):
            print(f"{count} customer{'s' * (count > 1)}, {calls:,} reads per way, views "
                  f"{'+'.join(views_read)} ({load()}):")
            wall, cpu = interleaved(ways, views_read, calls,
                                    lambda count=count: rng.sample(customers, count))
            for name in ways:
                print(f"  {name:25} {percentiles(wall[name])}, client CPU "
                      f"{cpu[name] * 1000:.3f} ms/call")
        print(f"({load()})")
        one.close()
        many.close()
        flow_runs(tmp, path, {"one server": (server.address, False),
                              "3-node cluster": (cluster.url, True)})
    finally:
        cluster.stop()
        stop_service(server)


def flow_runs(tmp: Path, path: Path, stores: dict[str, tuple[str, bool]]) -> None:
    """The live flow over ``path`` to the topic's end on each store (URL, cluster or
    not) in turn, twice, each run on a key prefix and data directory of its own."""
    from basketflow.app.services import start_broker
    from basketflow.config import Settings
    from basketflow.flows.live import RunOptions, run_live
    from basketflow.producers.replay import replay
    from basketflow.security import ENV_REDIS_CLUSTER

    broker = start_broker(tmp / "broker")
    try:
        sent = replay(path, broker.address, "transactions", "transactions.dead").sent
        print(f"flow, one process, {sent:,} events replayed:")
        for round_ in range(2):
            for name, (url, cluster) in stores.items():
                os.environ[ENV_REDIS_CLUSTER] = "1" if cluster else "0"
                settings = Settings(tmp / f"flow-{name}-{round_}", broker.address, url,
                                    prefix=f"flow{round_}")
                load_before = load()
                stats = run_live(settings, stop_at_end=True, options=RunOptions())
                print(f"  {name:15} {stats.events / stats.seconds:,.0f} events/s "
                      f"({stats.online_writes:,} online writes in {stats.seconds:.1f} s; "
                      f"{load_before})")
        del os.environ[ENV_REDIS_CLUSTER]
    finally:
        stop_service(broker)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", type=Path, default=REAL_DATA)
    parser.add_argument("--reads", type=int, default=10_000)
    parser.add_argument("--ways", default=",".join(WAYS),
                        help="the ways of reading to time, comma-separated (default: all)")
    parser.add_argument("--cluster", action="store_true",
                        help="one server against a 3-node Redis Cluster instead")
    args = parser.parse_args()
    print(f"machine: {describe()}")
    with tempfile.TemporaryDirectory() as tmp:
        path = args.path
        if not path.is_file():
            path = Path(tmp) / "generated.csv"
            write_csv(path, rows=100_000, seed=7, start=date(2011, 1, 1), end=date(2011, 9, 30))
        print(f"data: {path}")
        latest = latest_values(path)
        customers = sorted(latest["customer"])
        rng = random.Random(7)
        latest["score"] = scores(customers, rng)
        features = sum(len(next(iter(latest[v].values()))[1]) for v in VIEWS)
        print(f"{len(customers):,} customers, {features} features over {len(VIEWS)} views "
              f"(+ score: {len(next(iter(latest['score'].values()))[1])} fields)")
        if args.cluster:
            cluster_against_one(Path(tmp), path, latest, customers, args.reads)
            return
        server = start_redis(Path(tmp) / "valkey")
        try:
            client = connect(server.address)
            old, new = RedisOnlineStore(client, "old"), RedisOnlineStore(client, "new")
            for name, cost in write_costs({
                    "write, hashes only through redis-py Pipeline (before)":
                        lambda *a: pipeline_write(old, *a),
                    "write, hashes + packed values through hiredis (now)":
                        lambda view, _version, rows, _ttl: new.write(registry()[view], rows),
            }, latest).items():
                print(f"{name}: {cost}")
            store = RedisOnlineStore(client, "bench")
            for view, rows in latest.items():
                store.write(registry().get(view) or FeatureView(view, "customer_id", "bench", ()),
                            rows)
            print(f"memory: {memory(store, latest)}")
            newest = max(ts for rows in latest.values() for ts, _ in rows.values())
            for part in (SERVE_PROGRESS, ""):  # as a flow in two processes leaves them
                store.write_progress(part, {"clock": newest})
            every: dict[str, Callable[[], Read]] = {
                "now": lambda: store.read_vectors,
                "served": lambda: lambda views, ids: read_online(store, ids, views),
                "rows": lambda: lambda views, ids: rows_before(store, views, ids),
                "script": lambda: ScriptReads(store).read_vectors,
                "entity": lambda: EntityHashReads(store, latest).read_vectors,
                "hashes": lambda: HashReads(store).read_vectors,
                "naive": lambda: lambda views, ids: [store.read(v, c) for c in ids
                                                      for v in views],
            }
            ways = {name: every[name]() for name in args.ways.split(",")}
            interleaved(ways, VIEWS, 200, lambda: [rng.choice(customers)])  # warm up
            for views in (VIEWS, [*VIEWS, "score"]):
                print(f"views {'+'.join(views)}:")
                for line in measure(client, ways, views, customers, args.reads):
                    print(f"  {line}")
            expired = rng.sample(customers, len(customers) // 2)
            client.delete(*(key for customer in expired for key in (
                store.key("basket", customer), store.packed_key("basket", customer))))
            print("views customer+basket+score, the baskets of half the customers expired "
                  "(both keys deleted; without the entity way, whose copy keeps them):")
            for line in measure(client, {name: read for name, read in ways.items()
                                         if name != "entity"},
                                [*VIEWS, "score"], customers, args.reads):
                print(f"  {line}")
        finally:
            stop_service(server)


if __name__ == "__main__":
    main()
