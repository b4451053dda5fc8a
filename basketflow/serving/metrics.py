"""Prometheus metrics and the access log of ``basketflow serve``, as one ASGI
middleware around the application.

Per route (its path template, ``/customers/{customer_id}/features``, never the path
itself, so labels stay few), method and status: ``basketflow_http_requests_total`` and
the ``basketflow_http_request_duration_seconds`` histogram, with buckets from 100 us (a
read takes a few hundred microseconds). A path no route matches is ``unmatched``.

The access log line (logger ``basketflow.serve.access``) has the method, the route
template, the status and the milliseconds: never the query string or a header, so no
key or id a client puts there reaches the log.

With several worker processes each counts in files under ``PROMETHEUS_MULTIPROC_DIR``
(``basketflow serve`` sets it) and ``/metrics`` sums them
(:func:`metrics_text`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Seconds: sub-millisecond buckets first, up to the slowest answer worth telling apart.
BUCKETS = (0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075,
           0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
UNMATCHED = "unmatched"
ENV_MULTIPROC = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
access_log = logging.getLogger("basketflow.serve.access")


class HttpMetrics:
    """The request counter and latency histogram, in their own registry (a test or a
    second app in one process starts from zero)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("route", "method", "status")
        self.requests = Counter("basketflow_http_requests", "HTTP requests answered",
                                labels, registry=self.registry)
        self.latency = Histogram("basketflow_http_request_duration_seconds",
                                 "Time from a request's arrival to its response's end",
                                 labels, buckets=BUCKETS, registry=self.registry)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request (label children kept: ``labels()`` is slow)."""
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(route, method, str(status)),
                self.latency.labels(route, method, str(status)))
        children[0].inc()
        children[1].observe(seconds)


def metrics_text(metrics: HttpMetrics) -> bytes:
    """The Prometheus text of ``metrics``, or of every worker's files when
    ``PROMETHEUS_MULTIPROC_DIR`` is set."""
    if os.environ.get(ENV_MULTIPROC):
        from prometheus_client import multiprocess
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(metrics.registry)


def route_of(scope: Scope) -> str:
    """The path template of the route that answered (:data:`UNMATCHED`: none)."""
    route = scope.get("route")
    return getattr(route, "path", UNMATCHED) if route is not None else UNMATCHED


class MetricsMiddleware:
    """Times every HTTP request, counts it by route and status, and logs it when
    ``log_requests``."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics, log_requests: bool) -> None:
        self.app, self.metrics, self.log_requests = app, metrics, log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            seconds = time.perf_counter() - start
            route, method = route_of(scope), scope["method"]
            self.metrics.observe(route, method, status, seconds)
            if self.log_requests:
                access_log.info("%s %s %d %.2f ms", method, route, status, seconds * 1000)
