"""Servers of the security tests, started on free loopback ports and stopped after:
Debian's ``redis-server`` with TLS (the bundled Valkey has none), and the bundled Valkey
with a password and the ACL users of ``basketflow security redis-acl``."""

from __future__ import annotations

import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from basketflow.app.redis_acl import READER, WRITER, redis_acl
from basketflow.app.services import free_port, start_redis, stop_service
from tests.security.certificates import Pair

REDIS_SERVER = shutil.which("redis-server")
#: Random-looking, so that any 5 characters of one found in an output are a leak.
ADMIN_PASSWORD = "Ad7qZ4xW2pK9"
WRITER_PASSWORD = "Wr3kV8nJ5tQ1"
READER_PASSWORD = "Rd6hM2cX9bL4"


@contextmanager
def tls_redis(folder: Path, server: Pair, ca: Path, password: str | None = None
              ) -> Iterator[int]:
    """``redis-server`` speaking only TLS (``--port 0``) with ``server``'s certificate on a
    free loopback port; yields the port."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server (with TLS) is not installed: apt-get install redis-server")
    port = free_port()
    argv = [REDIS_SERVER, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
            "--tls-cert-file", str(server.cert), "--tls-key-file", str(server.key),
            "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no", "--save", "",
            "--appendonly", "no", "--dir", str(folder), "--daemonize", "no",
            "--logfile", str(folder / f"redis-{port}.log")]
    if password:
        config = folder / f"redis-{port}.conf"
        config.write_text(f"requirepass {password}\n")
        argv.insert(1, str(config))
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on {port}") from None
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass(frozen=True)
class AclServer:
    """The bundled Valkey with a password for its ``default`` user and the two ACL users."""

    port: int
    prefix: str

    def url(self, user: str, password: str) -> str:
        return f"redis://{user}:{password}@127.0.0.1:{self.port}"

    @property
    def writer(self) -> str:
        return self.url(WRITER, WRITER_PASSWORD)

    @property
    def reader(self) -> str:
        return self.url(READER, READER_PASSWORD)

    @property
    def admin(self) -> str:
        return self.url("default", ADMIN_PASSWORD)


@contextmanager
def acl_valkey(folder: Path, prefix: str) -> Iterator[AclServer]:
    """Valkey whose ``default`` user has a password, with the writer and reader users of
    ``prefix`` created from ``basketflow security redis-acl``'s lines."""
    proc = start_redis(folder, password=ADMIN_PASSWORD)
    try:
        (folder / "w").write_text(WRITER_PASSWORD + "\n")
        (folder / "r").write_text(READER_PASSWORD + "\n")
        admin = redis.Redis.from_url(proc.address)
        for user in redis_acl(prefix, folder / "w", folder / "r"):
            admin.execute_command(*shlex.split(user.line))
        admin.close()
        yield AclServer(proc.port, prefix)
    finally:
        stop_service(proc)
