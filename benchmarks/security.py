"""The cost of security on the online store: flow events/s and online read latency with
TLS and ACL users on and off, in the same run, in turns.

Four Redis-protocol servers on loopback, each measured with the same topic and reads:

- the bundled Valkey open (no password: the tests' and the old default) against the same
  Valkey with a password and the ACL users of ``basketflow security redis-acl`` (the
  flow writes as the writer, reads are the reader's);
- Debian's ``redis-server`` in plaintext against the same binary speaking only TLS
  (``rediss://``, certificate and host name checked against a CA made here with the
  ``openssl`` command), the pair that prices TLS alone.

Per server and round: ``run_live`` (one process, no recovery snapshots) over the topic
from its start, events/s end to end; then ``--reads`` reads of one customer's vector
(customer and basket views, as ``basketflow features ID`` reads) on one connection,
p50 and p99 wall time. The load average is printed with each block.

    python benchmarks/security.py [--rows 20000] [--rounds 2] [--reads 2000]
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402

import redis  # noqa: E402

from basketflow.app.redis_acl import READER, WRITER, redis_acl  # noqa: E402
from basketflow.app.services import (  # noqa: E402
    free_port,
    start_broker,
    start_redis,
    stop_service,
)
from basketflow.config import Settings  # noqa: E402
from basketflow.flows.live import RunOptions, run_live  # noqa: E402
from basketflow.producers.replay import replay  # noqa: E402
from basketflow.producers.synthetic import write_csv  # noqa: E402
from basketflow.security import ENV_REDIS_SSL_CA, redis_client  # noqa: E402
from basketflow.sinks.online_store import RedisOnlineStore  # noqa: E402

#: A server under test: the flow's (writer's) URL and the reads' (reader's) URL.
Server = tuple[str, str]


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


@contextmanager
def valkey(folder: Path, acl: bool) -> Iterator[Server]:
    """The bundled Valkey, open or with a password and the two ACL users."""
    proc = start_redis(folder, password="Admin-bench-1" if acl else None)
    try:
        if not acl:
            yield proc.address, proc.address
            return
        (folder / "w").write_text("Writer-bench-1")
        (folder / "r").write_text("Reader-bench-1")
        admin = redis.Redis.from_url(proc.address)
        for user in redis_acl("bench", folder / "w", folder / "r"):
            admin.execute_command(*shlex.split(user.line))
        base = f"127.0.0.1:{proc.port}"
        yield (f"redis://{WRITER}:Writer-bench-1@{base}", f"redis://{READER}:Reader-bench-1@{base}")
    finally:
        stop_service(proc)


def certificates(folder: Path) -> Path:
    """A CA and a server certificate for 127.0.0.1 signed by it (openssl); the CA's path."""
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=bench-ca")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (folder / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "1", "-extfile", "ext")
    return folder / "ca.pem"


@contextmanager
def redis_server(folder: Path, tls: bool) -> Iterator[Server]:
    """Debian's redis-server on a free port, plaintext or TLS only."""
    port = free_port()
    argv = [shutil.which("redis-server") or "redis-server", "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(folder)]
    if tls:
        argv += ["--port", "0", "--tls-port", str(port), "--tls-cert-file",
                 str(folder / "server.pem"), "--tls-key-file", str(folder / "server.key"),
                 "--tls-ca-cert-file", str(folder / "ca.pem"), "--tls-auth-clients", "no"]
    else:
        argv += ["--port", str(port)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"{'rediss' if tls else 'redis'}://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis_client(url).ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, f"redis-server did not start on {port}"
                time.sleep(0.05)
        yield url, url
    finally:
        proc.terminate()
        proc.wait(10)


def read_latency(url: str, prefix: str, reads: int) -> tuple[float, float]:
    """p50 and p99 (ms) of the vector read of the customer with the latest values,
    ``reads`` times on one client."""
    store = RedisOnlineStore(redis_client(url), prefix)
    [(customer, _)] = store.latest_entities("customer", 1)
    store.read_vectors(["customer", "basket"], [customer])  # connect, load the script
    times = []
    for _ in range(reads):
        start = time.perf_counter()
        store.read_vectors(["customer", "basket"], [customer])
        times.append(time.perf_counter() - start)
    store.close()
    times.sort()
    return times[len(times) // 2] * 1000, times[int(len(times) * 0.99)] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--reads", type=int, default=2_000)
    args = parser.parse_args()
    print(f"machine: {describe()}")
    with tempfile.TemporaryDirectory() as name, ExitStack() as stack:
        root = Path(name)
        os.environ[ENV_REDIS_SSL_CA] = str(certificates(root))
        broker = start_broker(root / "broker")
        stack.callback(stop_service, broker)
        sample = root / "sample.csv"
        write_csv(sample, args.rows, seed=7)
        sent = replay(sample, broker.address, "transactions", "transactions.dead").sent
        print(f"data: {args.rows:,} synthetic lines (seed 7), {sent:,} events; {load()}")
        makers: dict[str, Callable[[], Server]] = {
            "valkey open": lambda: stack.enter_context(valkey(root / "v-open", False)),
            "valkey ACL users": lambda: stack.enter_context(valkey(root / "v-acl", True)),
            "redis-server plain": lambda: stack.enter_context(redis_server(root, False)),
            "redis-server TLS": lambda: stack.enter_context(redis_server(root, True)),
        }
        servers = {label: make() for label, make in makers.items()}
        rates: dict[str, list[float]] = {label: [] for label in servers}
        p99s: dict[str, list[tuple[float, float]]] = {label: [] for label in servers}
        for round_ in range(args.rounds):
            for label, (writer, reader) in servers.items():
                prefix = f"r{round_}-{label.replace(' ', '-')}"
                settings = Settings(root / prefix, broker.address, writer,
                                    prefix=f"bench:{prefix}")
                stats = run_live(settings, stop_at_end=True, options=RunOptions(recovery_dir=None))
                rate = stats.events / stats.seconds
                rates[label].append(rate)
                p50, p99 = read_latency(reader, settings.prefix, args.reads)
                p99s[label].append((p50, p99))
                print(f"round {round_ + 1}, {label:18}: flow {rate:8,.0f} events/s; read p50 "
                      f"{p50:.3f} ms, p99 {p99:.3f} ms; {load()}", flush=True)
        print("best of the rounds (flow: highest events/s; reads: lowest p99):")
        for label in servers:
            best_p50, best_p99 = min(p99s[label], key=lambda t: t[1])
            print(f"  {label:18}: flow {max(rates[label]):8,.0f} events/s; read p50 "
                  f"{best_p50:.3f} ms, p99 {best_p99:.3f} ms")
        for secure, plain in (("valkey ACL users", "valkey open"),
                              ("redis-server TLS", "redis-server plain")):
            ratio = max(rates[secure]) / max(rates[plain])
            p99 = min(t[1] for t in p99s[secure]) / min(t[1] for t in p99s[plain])
            print(f"  {secure} / {plain}: flow events/s x{ratio:.2f}, read p99 x{p99:.2f}")


if __name__ == "__main__":
    main()
