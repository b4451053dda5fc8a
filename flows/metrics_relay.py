"""The process that answers a flow process's scrapes: ``/metrics`` from a copy of Bytewax's
``/metrics`` refreshed every :data:`REFRESH_SECONDS`, anything else (``/dataflow``)
passed through.

Why a process of its own: Bytewax's API server renders the Python part of ``/metrics``
(prometheus-client's registry, where the flow's collector is) holding the interpreter
lock, so on a busy flow a scrape waits for the flow's thread to give the lock up, and on a
loaded machine for that thread to be scheduled at all: tens of ms. The relay holds no
lock the flow wants; a scrape costs it one copy of bytes, and the wait moves to its
refresh, which nobody waits for. Figures are at most :data:`REFRESH_SECONDS` (and one
refresh's time) old; Prometheus scrapes every 15 s.

Started by :func:`~basketflow.flows.flow_metrics.serve_on` as
``python -m basketflow.flows.metrics_relay PORT SOURCE_PORT PARENT_PID``: it binds
``PORT`` on every interface (as Bytewax would), writes ``ready`` or ``error ERRNO
MESSAGE`` as its first line, and ends when its parent process has gone.
"""

from __future__ import annotations

import errno
import http.client
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: Seconds between two copies of Bytewax's ``/metrics``.
REFRESH_SECONDS = 1.0
#: Seconds a request to Bytewax's server may take.
SOURCE_TIMEOUT = 10.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Relay:
    """The newest copy of the source's ``/metrics`` (None until one is had); the source
    is Bytewax's server on loopback port ``source_port``."""

    def __init__(self, source_port: int) -> None:
        self.source_port = source_port
        self.metrics: bytes | None = None

    def fetch(self, path: str) -> tuple[int, str, bytes]:
        """Status, content type and body of the source's answer to ``GET path`` (raises
        ``OSError`` when it does not answer)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.source_port,
                                                timeout=SOURCE_TIMEOUT)
        try:
            connection.request("GET", path)
            answer = connection.getresponse()
            return answer.status, answer.headers.get_content_type(), answer.read()
        except http.client.HTTPException as exc:
            raise OSError(f"a bad answer: {exc}") from exc
        finally:
            connection.close()

    def refresh(self) -> None:
        """Copy the source's ``/metrics`` (keep the last copy when it does not answer:
        before the flow starts its server, or while it ends)."""
        try:
            status, _kind, body = self.fetch("/metrics")
        except OSError:
            return
        if status == 200:
            self.metrics = body

    def refresh_while(self, parent: int) -> None:
        """Refresh every :data:`REFRESH_SECONDS` while ``parent`` is this process's
        parent (when it ends, this process is handed to another)."""
        while os.getppid() == parent:
            self.refresh()
            time.sleep(REFRESH_SECONDS)

    def passed_through(self, path: str) -> tuple[int, str, bytes]:
        """Status, content type and body of the source's answer to ``path`` (503 when it
        does not answer)."""
        try:
            return self.fetch(path)
        except OSError as exc:
            return 503, "text/plain", f"the flow's API server does not answer: {exc}".encode()


def handler_for(relay: Relay) -> type[BaseHTTPRequestHandler]:
    """The request handler of a relay's server."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path.split("?", 1)[0] == "/metrics":
                body = relay.metrics
                status, kind = (200, CONTENT_TYPE) if body is not None else (
                    503, "text/plain")
                body = body if body is not None else b"the flow's metrics are not ready yet"
            else:
                status, kind, body = relay.passed_through(self.path)
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: a scrape every few seconds is not news."""

    return Handler


def bind(port: int, relay: Relay) -> ThreadingHTTPServer:
    """The relay's server on ``port``, every interface (raises ``OSError``)."""
    server = ThreadingHTTPServer(("0.0.0.0", port), handler_for(relay))
    server.daemon_threads = True
    return server


def main(argv: list[str]) -> int:
    """Serve until the parent ends (see the module docstring)."""
    port, source_port, parent = (int(a) for a in argv)
    relay = Relay(source_port)
    try:
        server = bind(port, relay)
    except OSError as exc:
        print(f"error {exc.errno or errno.EINVAL} {exc.strerror or exc}", flush=True)
        return 1
    print("ready", flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    relay.refresh_while(parent)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
