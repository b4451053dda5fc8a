"""``basketflow serve`` over loopback: latency and throughput of its routes, each beside
a direct Python read of the same values in the same run (the floor).

Fills an embedded Valkey with the ``customer`` and ``basket`` values of every customer
of a generated file (``--rows``, seed 7; ``--real`` for the real file), folded by the
flow's own feature code, registers a trained model as the champion for ``/predict``, starts
``basketflow serve --no-access-log`` (one worker; uvicorn with uvloop and httptools, and with
``--servers uvicorn,granian`` granian too, in turn) and
drives it with a small asyncio HTTP/1.1 client over keep-alive connections (a bounded
number of requests and seconds per case). The cases of issue #15:

1. one customer's features (``GET /customers/{id}/features``), concurrency 1;
2. the same at concurrency 16: requests/s and p99;
3. 100 customers in one call (``POST /features``);
4. ``POST /predict`` of a 20-line basket of a known customer;

and ``GET /health/live`` (no Redis, no encoding: the framework and HTTP alone). Each
case's floor is the same work in this process with no HTTP: the read through
:func:`basketflow.app.features.read_selected` and its JSON encoding, or the prediction
through :func:`basketflow.app.predict.predict_basket` with its customer read. The
client runs on the same 2 cores as the server, and its own CPU is in every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import REAL_DATA, describe
from online_read import latest_values

from basketflow.app.features import read_online, read_selected
from basketflow.app.predict import basket_events, predict_basket
from basketflow.app.services import free_port, start_redis, stop_service
from basketflow.models.classifier import BasketClassifier, classifier_features
from basketflow.models.registry import Lineage, Registry, registry_dir
from basketflow.producers.synthetic import write_csv
from basketflow.schemas.features import registry
from basketflow.sinks.online_store import RedisOnlineStore, connect

PREFIX, SEGMENTATION = "bench", "seg-bench"
CATEGORIES = [f"category-{i}" for i in range(10)]


class Connection:
    """One keep-alive HTTP/1.1 connection: a request written, its response read by its
    Content-Length."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def request(self, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return int(status_line.split()[1]), await self.reader.readexactly(length)


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()


def post(path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()


Request = Callable[[int], tuple[bytes, bytes]]


@dataclass(frozen=True)
class Served:
    """One case's answers: every latency (seconds), the requests per second, and the
    CPU seconds per request of the server (its process and its workers', user and
    system) and of this client: what bounds the requests per second on two cores, and
    what other programs on a busy machine do not change much, unlike wall times."""

    latencies: list[float]
    rate: float
    cpu: float
    client_cpu: float


def cpu_seconds(pid: int) -> float:
    """The CPU seconds used so far by process ``pid`` and its child processes."""
    ticks = os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    total = 0.0
    for each in [pid, *map(int, children)]:
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


async def drive(port: int, make: Request, concurrency: int, count: int,
                seconds: float, pid: int) -> Served:
    """``count`` requests (at most ``seconds``) over ``concurrency`` connections to the
    server of process ``pid``."""
    connections = [await Connection.open(port) for _ in range(concurrency)]
    cpu, client_cpu = cpu_seconds(pid), time.process_time()
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    issued = 0

    async def worker(conn: Connection) -> None:
        nonlocal issued
        while issued < count and time.perf_counter() < deadline:
            head, body = make(issued)
            issued += 1
            start = time.perf_counter()
            status, _ = await conn.request(head, body)
            latencies.append(time.perf_counter() - start)
            assert status == 200, status

    began = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in connections))
    elapsed = time.perf_counter() - began
    cpu, client_cpu = cpu_seconds(pid) - cpu, time.process_time() - client_cpu
    for c in connections:
        c.writer.close()
    return Served(latencies, len(latencies) / elapsed, cpu / len(latencies),
                  client_cpu / len(latencies))


def direct(work: Callable[[int], Any], count: int) -> list[float]:
    """The floor: ``work(i)`` timed ``count`` times in this process."""
    out = []
    for i in range(count):
        start = time.perf_counter()
        work(i)
        out.append(time.perf_counter() - start)
    return out


def ms(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 1000) - 1] * 1000 if len(
        values) > 1 else values[0] * 1000


def report(name: str, served: Served, floor: list[float] | None) -> None:
    times = served.latencies
    line = (f"{name:32} p50 {ms(times, .5):6.3f} ms  p99 {ms(times, .99):6.3f} ms  "
            f"{served.rate:5.0f} req/s  CPU us/req: server {served.cpu * 1e6:4.0f}, "
            f"client {served.client_cpu * 1e6:3.0f}  (n={len(times)})")
    if floor:
        line += f"   direct p50 {ms(floor, .5):.3f} / p99 {ms(floor, .99):.3f} ms"
    print(line, flush=True)


def fill(url: str, rows: int, real: bool, data_dir: Path) -> list[str]:
    """The online store's values and a champion model; the customers written."""
    if real and REAL_DATA.is_file():
        source = REAL_DATA
    else:
        source = data_dir / "sample.csv"
        write_csv(source, rows=rows, seed=7)
    latest = latest_values(source)
    store = RedisOnlineStore(connect(url), PREFIX)
    for view, values in latest.items():
        items = list(values.items())
        for i in range(0, len(items), 1000):
            store.write(registry()[view], dict(items[i:i + 1000]))
    store.write_progress("", {"clock": max(ts for ts, _ in latest["customer"].values())})
    model, rng = BasketClassifier(SEGMENTATION), random.Random(1)
    for customer, (_, basket) in list(latest["basket"].items())[:2000]:
        model.learn(classifier_features(basket, latest["customer"][customer][1]),
                    rng.choice(CATEGORIES))
    Registry(registry_dir(data_dir)).register(model, Lineage.of(model, "flow"), {},
                                              follow=True)
    return sorted(latest["customer"])


def start_server(url: str, data_dir: Path, workers: int, server: str,
                 code: Path | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """``basketflow serve`` on a free port, of this checkout or (``code``) of another:
    its ``basketflow`` package first on the server's path (``python -m`` puts the
    working folder first, so the server runs in ``code``)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASKETFLOW_")} | {
        "REDIS_URL": url, "BASKETFLOW_PREFIX": PREFIX, "BASKETFLOW_DATA_DIR": str(data_dir)}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    proc = subprocess.Popen([sys.executable, "-m", "basketflow.cli", "serve", "--port",
                             str(port), "--no-access-log", "--workers", str(workers),
                             "--server", server], env=env, cwd=code,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            import urllib.request
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=1)
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


def predict_body(customer: str, rng: random.Random) -> dict[str, Any]:
    codes = ["85123A", "22633", "84879", "22745", "21754", "71053", "POST", "22423"]
    return {"customer_id": customer, "country": "United Kingdom", "invoice_date": 1317376800,
            "lines": [{"stock_code": rng.choice(codes), "quantity": rng.randint(1, 24),
                       "unit_price": round(rng.uniform(0.5, 9), 2),
                       "description": "A PRODUCT"} for _ in range(20)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--real", action="store_true", help="the real file, when present")
    parser.add_argument("--requests", type=int, default=5000, help="per case")
    parser.add_argument("--seconds", type=float, default=20.0, help="at most, per case")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--servers", default="uvicorn",
                        help="ASGI servers to compare, in turn: uvicorn,granian")
    parser.add_argument("--baseline", type=Path, metavar="CHECKOUT",
                        help="also serve the code of another checkout (a worktree of main), "
                        "in turn with this one's: the old code against the new in one run")
    parser.add_argument("--rounds", type=int, default=1,
                        help="times each server (and the baseline) is measured, in turns")
    args = parser.parse_args()
    print(describe())
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        redis_proc = start_redis(data_dir / "valkey")
        try:
            customers = fill(redis_proc.address, args.rows, args.real, data_dir)
            print(f"{len(customers)} customers in the online store; {args.workers} worker(s); load "
                  f"{os.getloadavg()[0]:.2f}", flush=True)
            for name, code in turns(args.servers.split(","), args.baseline, args.rounds):
                print(f"server: {name}, code: {code or 'this checkout'}", flush=True)
                server, port = start_server(redis_proc.address, data_dir, args.workers, name,
                                            code)
                try:
                    run_cases(port, server.pid, customers, redis_proc.address, data_dir,
                              args)
                finally:
                    server.terminate()
                    server.wait(10)
        finally:
            stop_service(redis_proc)


def turns(servers: list[str], baseline: Path | None, rounds: int,
          ) -> list[tuple[str, Path | None]]:
    """Each server with this checkout's code and then the baseline's, ``rounds`` times.

    >>> turns(["uvicorn"], Path("/old"), 2)
    [('uvicorn', None), ('uvicorn', PosixPath('/old')), ('uvicorn', None), ('uvicorn', PosixPath('/old'))]
    """
    codes = [None] if baseline is None else [None, baseline.resolve()]
    return [(name, code) for _ in range(rounds) for name in servers for code in codes]


def run_cases(port: int, pid: int, customers: list[str], url: str, data_dir: Path,
              args: argparse.Namespace) -> None:
    """Every case against the server of process ``pid`` on ``port``, printed."""
    rng = random.Random(7)
    n, secs = args.requests, args.seconds
    store = RedisOnlineStore(connect(url), PREFIX)
    encode = msgspec.json.encode
    views = ["customer", "basket"]
    picks = [rng.choice(customers) for _ in range(n)]
    hundreds = [rng.sample(customers, 100) for _ in range(max(n // 5, 200))]
    bodies = [encode({"entities": h}) for h in hundreds]
    baskets = [predict_body(rng.choice(customers), rng) for _ in range(200)]
    basket_bodies = [encode(b) for b in baskets]
    run = asyncio.run

    def one(i: int) -> tuple[bytes, bytes]:
        return get(f"/customers/{picks[i % n]}/features"), b""

    run(drive(port, one, 1, 500, secs, pid))  # warm up: connections, caches, the model
    report("GET /health/live (no Redis), c=1",
           run(drive(port, lambda i: (get("/health/live"), b""), 1, n, secs, pid)), None)
    served = run(drive(port, one, 1, n, secs, pid))
    floor = direct(lambda i: encode(read_selected(store, [picks[i % n]], views)[0].to_json()), n)
    report("1 customer's features, c=1", served, floor)
    report("1 customer's features, c=16", run(drive(port, one, 16, n * 2, secs, pid)), None)
    served = run(drive(port, lambda i: (post("/features", bodies[i % len(bodies)]),
                                        bodies[i % len(bodies)]), 1, n // 5, secs, pid))
    floor = direct(lambda i: encode({"results": [r.to_json() for r in read_selected(
        store, hundreds[i % len(hundreds)], views)]}), n // 5)
    report("100 customers in one call, c=1", served, floor)

    from basketflow.app.predict import LiveModel
    model = LiveModel(data_dir)

    def predict_direct(i: int) -> bytes:
        body = baskets[i % len(baskets)]
        found = read_online(store, [body["customer_id"]], ["customer"])[0].views["customer"]
        events = basket_events(body["lines"], customer_id=body["customer_id"],
                               country=body["country"], ts=body["invoice_date"])
        return encode(predict_basket(model.current(), events,
                                     found.values if found else None).to_json())

    served = run(drive(port, lambda i: (post("/predict", basket_bodies[i % 200]),
                                        basket_bodies[i % 200]), 1, n, secs, pid))
    report("/predict, 20-line basket, c=1", served, direct(predict_direct, n))
    sizes = {"1 customer": len(encode(read_selected(store, [picks[0]], views)[0].to_json())),
             "100 customers": len(bodies[0])}
    print("response/request bytes:", json.dumps(sizes), f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
