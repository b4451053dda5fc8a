"""The hot reads' short dispatch (basketflow.serving.direct): the same answers as
FastAPI's, without FastAPI's routing. The real server's routes are
tests/serving/test_reads.py's and test_access.py's."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Query, Request
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.responses import JSONResponse, Response

from basketflow.serving.direct import DirectGets, direct_route
from basketflow.serving.metrics import Receive, Scope, Send


class Refused(Exception):
    """What the test's key check and endpoint raise; its handler answers 418."""


def check(request: Request) -> None:
    if request.headers.get("x-key") == "bad":
        raise Refused("bad key")


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/things/{name}/parts", dependencies=[Depends(check)])
    async def parts(name: str, pick: Annotated[str | None, Query()] = None) -> Response:
        if name == "broken":
            raise Refused(f"{name} is broken")
        return JSONResponse({"name": name, "pick": pick})

    @app.exception_handler(Refused)
    async def refused(_request: Request, exc: Refused) -> Response:
        return JSONResponse({"error": str(exc)}, 418)
    return app


async def not_fastapi(scope: Scope, receive: Receive, send: Send) -> None:
    """Stands for FastAPI's own dispatch: it answers 599, so a test sees who answered."""
    await JSONResponse({"passed": scope["path"]}, 599)(scope, receive, send)


REQUESTS = [("GET", "/things/a%20b/parts", {}), ("GET", "/things/a/parts?pick=x&pick=y", {}),
            ("GET", "/things/a/parts?pick=", {}), ("GET", "/things/a/parts", {"x-key": "bad"}),
            ("GET", "/things/broken/parts", {})]


@pytest.mark.parametrize(("method", "url", "headers"), REQUESTS)
def test_direct_answers_are_fastapis(method: str, url: str, headers: dict[str, str]) -> None:
    app = make_app()
    routes = [direct_route(r) for r in app.routes if isinstance(r, APIRoute)]
    direct = DirectGets(not_fastapi, routes, app.exception_handlers)
    fastapi = TestClient(app).request(method, url, headers=headers)
    answered = TestClient(direct).request(method, url, headers=headers)  # type: ignore[arg-type]
    assert (answered.status_code, answered.json()) == (fastapi.status_code, fastapi.json())


@pytest.mark.parametrize(("method", "url"), [("POST", "/things/a/parts"),
                                             ("GET", "/things/a/parts/"),
                                             ("GET", "/things//parts"), ("GET", "/other")])
def test_other_requests_pass_on(method: str, url: str) -> None:
    app = make_app()
    routes = [direct_route(r) for r in app.routes if isinstance(r, APIRoute)]
    answered = TestClient(DirectGets(not_fastapi, routes, {})).request(method, url)  # type: ignore[arg-type]
    assert answered.status_code == 599


def route_of(app: FastAPI) -> APIRoute:
    return next(r for r in app.routes if isinstance(r, APIRoute))


def sync_endpoint(name: str) -> Any:
    return name


async def int_path(name: int) -> Any:
    return name


async def query_default(name: str, pick: str = "all") -> Any:
    return name


async def header(name: str, request: Request) -> Any:
    return request.headers.get(name)


def needs_a_query(pick: str | None = None) -> None:
    """A dependency that takes more than the request."""


async def plain(name: str) -> Any:
    return name


@pytest.mark.parametrize(("endpoint", "dependencies", "reason"), [
    (sync_endpoint, [], "not a coroutine function"),
    (int_path, [], "path parameter name is not text"),
    (query_default, [], "query parameter pick is not optional text"),
    (header, [], "the endpoint takes more than path and query parameters"),
    (plain, [Depends(needs_a_query)], "a dependency takes more than the request")])
def test_a_route_that_is_not_direct_is_refused(endpoint: Any, dependencies: list[Any],
                                               reason: str) -> None:
    app = FastAPI()
    app.get("/things/{name}", dependencies=dependencies)(endpoint)
    with pytest.raises(TypeError, match=reason):
        direct_route(route_of(app))
