"""The metrics relay (flows/metrics_relay.py): it answers /metrics from its copy of the
source's, passes other paths through, says 503 before its first copy, reports a taken
port on its first line, and ends when its parent has gone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from basketflow.flows.metrics_relay import REFRESH_SECONDS

RELAY = [sys.executable, "-m", "basketflow.flows.metrics_relay"]


class Source(BaseHTTPRequestHandler):
    """Bytewax's server, played: ``/metrics`` counts the requests it has had."""

    served = 0

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/metrics":
            Source.served += 1
            body, status = f"requests {Source.served}\n".encode(), 200
        elif self.path == "/dataflow":
            body, status = b'{"flow_id": "f"}', 200
        else:
            body, status = b"no such page", 404
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def source() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Source)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def start(port: int, source_port: int, parent: int) -> subprocess.Popen[str]:
    relay = subprocess.Popen([*RELAY, str(port), str(source_port), str(parent)],
                             stdout=subprocess.PIPE, text=True)
    assert relay.stdout is not None
    assert relay.stdout.readline() == "ready\n"
    return relay


def test_scrapes_are_answered_from_the_copy(source: int) -> None:
    silent, port = free_port(), free_port()
    relay = start(port, silent, os.getpid())  # a source that does not answer yet
    try:
        assert get(port, "/metrics") == (503, b"the flow's metrics are not ready yet")
        assert get(port, "/dataflow")[0] == 503
    finally:
        relay.terminate()
        relay.wait()
    relay = start(port, source, os.getpid())
    try:
        deadline = time.monotonic() + 10
        while get(port, "/metrics")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        copies, began = Source.served, time.monotonic()
        # Many scrapes, few copies: the source is asked once per refresh, not per scrape.
        answers = {get(port, "/metrics") for _ in range(20)}
        assert Source.served - copies <= (time.monotonic() - began) / REFRESH_SECONDS + 1
        assert all(status == 200 and body.startswith(b"requests ") for status, body in answers)
        assert get(port, "/dataflow") == (200, b'{"flow_id": "f"}')
        assert get(port, "/elsewhere") == (404, b"no such page")
    finally:
        relay.terminate()
        relay.wait()


def test_a_taken_port_is_the_first_line(source: int) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([*RELAY, str(port), str(source), str(os.getpid())],
                              capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert done.stdout.startswith("error 98 ")  # EADDRINUSE


def test_the_relay_ends_with_its_parent(source: int) -> None:
    port = free_port()
    parent = subprocess.run(  # a parent that starts the relay and ends at once
        [sys.executable, "-c", "import os, subprocess, sys; r = subprocess.Popen("
         f"{RELAY!r} + ['{port}', '{source}', str(os.getpid())], stdout=subprocess.PIPE,"
         " text=True); print(r.pid, r.stdout.readline().strip())"],
        capture_output=True, text=True, timeout=30, check=True)
    pid, first = parent.stdout.split()
    assert first == "ready"
    deadline = time.monotonic() + 5 * REFRESH_SECONDS + 5
    while time.monotonic() < deadline:
        if not running(int(pid)):
            return
        time.sleep(0.1)
    os.kill(int(pid), 9)
    raise AssertionError("the relay outlived its parent")


def running(pid: int) -> bool:
    """Whether ``pid`` runs (an ended process nobody has reaped yet does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
