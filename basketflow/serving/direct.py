"""The hot reads of ``basketflow serve`` called straight from the ASGI scope.

``GET /customers/{id}/features`` is what a shop's pages call most, and FastAPI's
machinery around one such read (matching the path against every route in turn, solving
the path and query parameters through its dependency system, its exception middleware
and exit stack) cost more CPU than the read and its encoding, and a worker's CPU per
request is what bounds its requests per second with many concurrent clients. :class:`DirectGets` answers the routes it is given by matching the route's
own compiled path, running the route's own dependencies (the API key check) and calling
the route's own endpoint, so the answers, the OpenAPI docs and the error handlers stay
FastAPI's; only the dispatch is shorter. Every other request, and every method but GET,
goes on to FastAPI unchanged.

A direct route's endpoint takes its path parameters as text and its query parameters as
optional text, and its dependencies take the request alone (:func:`direct_route`
checks all three when the application is built).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from basketflow.serving.metrics import ASGIApp, Receive, Scope, Send

Handler = Callable[[Request, Exception], Awaitable[Response]]


@dataclass(frozen=True)
class DirectRoute:
    """A route answered directly: its FastAPI route (its path pattern, endpoint and
    the label metrics count it under), its query parameters and its checks."""

    route: APIRoute
    #: The query parameters: the endpoint's name of each and the name in the URL.
    query: tuple[tuple[str, str], ...]
    checks: tuple[Callable[[Request], None], ...]


def direct_route(route: APIRoute) -> DirectRoute:
    """``route`` as a :class:`DirectRoute`, from what FastAPI made of its endpoint;
    :class:`TypeError` unless the endpoint is a coroutine function taking text path
    parameters and optional text query parameters (FastAPI validates neither: text is
    text) and each dependency takes the request alone."""
    dependant = route.dependant
    if not inspect.iscoroutinefunction(route.endpoint):
        raise TypeError(f"{route.path}: the endpoint is not a coroutine function")
    named = {f.name for f in (*dependant.path_params, *dependant.query_params)}
    if set(inspect.signature(route.endpoint).parameters) != named:
        raise TypeError(f"{route.path}: the endpoint takes more than path and query "
                        "parameters")
    for field in dependant.path_params:
        if field.field_info.annotation is not str:
            raise TypeError(f"{route.path}: path parameter {field.name} is not text")
    for field in dependant.query_params:
        if field.field_info.annotation != str | None or field.field_info.default is not None:
            raise TypeError(f"{route.path}: query parameter {field.name} is not "
                            "optional text")
    for check in dependant.dependencies:
        if check.call is None or check.request_param_name is None or set(
                inspect.signature(check.call).parameters) != {check.request_param_name}:
            raise TypeError(f"{route.path}: a dependency takes more than the request")
    return DirectRoute(route, tuple((f.name, f.alias) for f in dependant.query_params),
                       tuple(check.call for check in dependant.dependencies))


class DirectGets:
    """ASGI middleware: GET requests to the given routes answered by calling their
    endpoints (module docstring); errors answered by the application's handlers for
    their type, as FastAPI's exception middleware would; anything else passes on."""

    def __init__(self, app: ASGIApp, routes: Sequence[DirectRoute],
                 handlers: Mapping[Any, Handler]) -> None:
        self.app, self.routes = app, tuple(routes)
        self.handlers = {kind: handler for kind, handler in handlers.items()
                         if isinstance(kind, type)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("root_path"):
            path = scope["path"]
            for direct in self.routes:
                match = direct.route.path_regex.match(path)
                if match is not None:
                    response = await self._answer(direct, match.groupdict(), scope, receive)
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _answer(self, direct: DirectRoute, params: dict[str, Any], scope: Scope,
                      receive: Receive) -> Response:
        """The route's response to the request, or its error handler's."""
        scope["route"] = direct.route
        request = Request(scope, receive)
        try:
            for check in direct.checks:
                check(request)
            if direct.query and scope["query_string"]:
                query = request.query_params
                params.update((name, query.get(alias)) for name, alias in direct.query)
            response: Response = await direct.route.endpoint(**params)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            return await handler(request, exc)
        return response

    def _handler(self, exc: Exception) -> Handler | None:
        """The handler of ``exc``'s nearest class that has one, as Starlette looks it
        up."""
        for kind in type(exc).__mro__:
            if kind in self.handlers:
                return self.handlers[kind]
        return None
