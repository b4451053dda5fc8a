"""Online read latency: one customer's whole feature vector, and 100 customers in one call.

Fills an embedded Valkey with the ``customer`` and ``basket`` values of every customer of
the real file (folded through the flow's own feature code; the seeded generator's data
when the real file is absent), then times through the Python API
(:meth:`sinks.online_store.RedisOnlineStore.read_vectors`):

- 10,000 reads of one random customer's vector (every view, one round trip);
- 1,000 reads of 100 random customers (one round trip);

beside the naive way in the same run (one HGETALL round trip per key). Prints p50 and p99
in milliseconds. Targets (issue 3): one vector p99 < 0.5 ms; 100 customers p99 < 2 ms.
Feast 0.67 on this machine kind, 7 features: one entity p50 0.26 / p99 0.64 ms; 100
entities p50 4.2 / p99 7.5 ms.

    python benchmarks/online_read.py [--reads N] [PATH.csv[.gz]]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import REAL_DATA, describe  # noqa: E402

from basketflow.services import start_redis, stop_service  # noqa: E402
from flows.entity_features import EntityFolder  # noqa: E402
from producers.csv_source import read_events  # noqa: E402
from producers.synthetic import write_csv  # noqa: E402
from schemas.events import Transaction  # noqa: E402
from schemas.features import versions  # noqa: E402
from sinks.online_store import RedisOnlineStore, connect  # noqa: E402

VIEWS = ["customer", "basket"]


def latest_values(path: Path) -> dict[str, dict[str, dict]]:
    """view -> customer -> latest values, from the flow's feature code over the file."""
    by_customer: dict[str, list[Transaction]] = defaultdict(list)
    for e in read_events(path, [0]):
        if isinstance(e, Transaction) and e.customer_id:
            by_customer[e.customer_id].append(e)
    latest: dict[str, dict[str, dict]] = {view: {} for view in VIEWS}
    for customer, events in by_customer.items():
        update = EntityFolder("customer").fold(customer, sorted(events, key=lambda e: e.ts),
                                               3600)
        if update is not None:
            for view in VIEWS:
                if view in update.values:
                    latest[view][customer] = (update.ts, update.values[view])
    return latest


def percentiles(timings: list[float]) -> str:
    """p50 / p99 of timings in seconds, as milliseconds."""
    q = statistics.quantiles(timings, n=100)
    return f"p50 {q[49] * 1000:.3f} ms, p99 {q[98] * 1000:.3f} ms"


def timed(calls: int, call: Callable[[], object]) -> list[float]:
    """Wall time of each of ``calls`` calls."""
    out = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", type=Path, default=REAL_DATA)
    parser.add_argument("--reads", type=int, default=10_000)
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
        features = sum(len(next(iter(latest[v].values()))[1]) for v in VIEWS)
        print(f"{len(customers):,} customers, {features} features over {len(VIEWS)} views")
        server = start_redis(Path(tmp) / "valkey")
        try:
            store = RedisOnlineStore(connect(server.address), "bench")
            for view in VIEWS:
                store.write(view, versions()[view], latest[view])
            rng = random.Random(7)
            one = lambda: store.read_vectors(VIEWS, [rng.choice(customers)])  # noqa: E731
            naive_one = lambda: [store.read(v, rng.choice(customers)) for v in VIEWS]  # noqa
            many = lambda: store.read_vectors(VIEWS, rng.sample(customers, 100))  # noqa: E731
            naive_many = lambda: [store.read(v, c) for c in rng.sample(customers, 100)  # noqa
                                  for v in VIEWS]
            timed(500, one)  # warm up the connection and the server
            n_many = max(args.reads // 10, 100)
            print(f"one customer's vector, {args.reads:,} reads: {percentiles(timed(args.reads, one))}"
                  f"  (naive, a round trip per view: {percentiles(timed(args.reads, naive_one))})")
            print(f"100 customers in one call, {n_many:,} reads: {percentiles(timed(n_many, many))}"
                  f"  (naive, a round trip per key: {percentiles(timed(n_many, naive_many))})")
        finally:
            stop_service(server)


if __name__ == "__main__":
    main()
