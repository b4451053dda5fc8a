"""The routes of ``basketflow serve`` (FastAPI; OpenAPI docs at ``/docs``).

Reads go to the online store through one client whose every command times out
(:func:`~basketflow.sinks.online_store.serving_client`), called in the event loop
itself: a read is one round trip of a few hundred microseconds, cheaper than handing
it to a thread, and a Redis that hangs holds a worker for the timeout at most (then
503). Sending to the broker and its health check do block for longer, so they run in
threads. Responses are encoded by msgspec, not by FastAPI's validation of a response
model: the values are the store's own, already typed. The hot reads (one customer's
or product's features, a customer's score) are dispatched by
:class:`~basketflow.serving.direct.DirectGets`, which calls their endpoints without
FastAPI's per-request machinery.

Errors are JSON, ``{"error": KIND, "message": TEXT}`` (plus ``details`` or
``rejected`` where there is more to say): 401/403 for keys and roles, 404 for an entity
without values or a route that does not exist, 422 for bad input, 503 when Redis, the
broker or the live model is not there.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
import redis
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import Response

from basketflow.app import features as app_features
from basketflow.app.posted import parse_posted
from basketflow.app.predict import BadLines, LiveModel, NoLiveModel, basket_events, predict_basket
from basketflow.errors import BasketflowError
from basketflow.kafka import BrokerUnavailable, admin_config
from basketflow.security import redact_log_handlers
from basketflow.schemas.events import Rejection
from basketflow.serving import feast
from basketflow.serving.dashboard import add_dashboard
from basketflow.serving.direct import DirectGets, direct_route
from basketflow.serving.auth import ADMIN, ENV_API_KEYS, PREDICT, PUSH, READ, ApiKeys, load_keys, presented_key
from basketflow.serving.metrics import CONTENT_TYPE, HttpMetrics, MetricsMiddleware, metrics_text
from basketflow.serving.options import ENV_SERVE_OPTIONS, ServeOptions
from basketflow.sinks.online_store import RedisOnlineStore, serving_client

if TYPE_CHECKING:
    from basketflow.schemas.feature_view import FeatureView

log = logging.getLogger("basketflow.serve")
#: The most entities one call may read, and lines one call may post.
MAX_ENTITIES, MAX_LINES = 1000, 10_000
#: How many lists of feature names asked each worker keeps the views' answer to.
WANTED_CACHE = 256
#: The features asked per view (None: all of the view's); shared by the reads that
#: asked the same, so never changed.
Wanted = dict[str, tuple[str, ...] | None]


class ApiError(Exception):
    """An error answered as JSON with its status."""

    def __init__(self, status: int, kind: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.kind, self.extra = status, kind, extra


def json_response(data: Any, status: int = 200) -> Response:
    """``data`` as a JSON response, encoded by msgspec."""
    return Response(msgspec.json.encode(data), status, media_type="application/json")


def error_response(status: int, kind: str, message: str, **extra: Any) -> Response:
    """An error's JSON body: ``{"error", "message", ...}``."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(msgspec.json.encode({"error": kind, "message": message, **extra}),
                    status, headers, media_type="application/json")


@dataclass
class Backends:
    """What the routes read from and send to, made once per worker process."""

    options: ServeOptions
    store: RedisOnlineStore
    keys: ApiKeys
    model: LiveModel
    push: Any = None
    #: The views served: the built-in ones and the feature repository's own.
    views: Mapping[str, FeatureView] = field(default_factory=dict)
    customer_views: tuple[str, ...] = ()
    #: The features a read asks per view (:func:`_wanted` of the views served), kept for
    #: the most recent lists of names asked: the views do not change while a worker runs.
    wanted: Callable[[tuple[str, ...], str | None], Wanted] = field(init=False)

    def __post_init__(self) -> None:
        """The views of the options' project, loaded once per worker process."""
        self.views = self.views or app_features.served_views(self.options.settings)
        self.customer_views = self.customer_views or app_features.customer_views(self.views)
        self.wanted = lru_cache(maxsize=WANTED_CACHE)(partial(_wanted, self.views))

    def pusher(self) -> Any:
        """The events producer (:class:`~basketflow.producers.push.EventPush`), made at
        the first push; :class:`ApiError` 503 when no broker is configured."""
        settings = self.options.settings
        if settings.kafka_bootstrap is None:
            raise ApiError(503, "broker_unavailable", "no broker is configured: set "
                           "KAFKA_BOOTSTRAP_SERVERS or start one with `basketflow up`")
        if self.push is None:
            from basketflow.producers.push import EventPush
            self.push = EventPush(settings.kafka_bootstrap, settings.topic,
                                  settings.dead_topic)
        return self.push


def backends(options: ServeOptions) -> Backends:
    """The online store, keys and model of ``options`` (nothing connects yet)."""
    settings = options.settings
    assert settings.redis_url, "resolve Redis's address first"
    store = RedisOnlineStore(serving_client(settings.redis_url, options.redis_timeout),
                             settings.prefix)
    keys = load_keys(options.api_keys_file, os.environ.get(ENV_API_KEYS))
    return Backends(options, store, keys, LiveModel(settings.data_dir))


def app_from_env() -> FastAPI:
    """The application of the options ``basketflow serve`` put in the environment: what
    each uvicorn worker process imports. Its log handlers redact secrets, as the command
    line's do (a worker's output does not pass through the command line's streams)."""
    redact_log_handlers()
    return create_app(backends(ServeOptions.from_json(os.environ[ENV_SERVE_OPTIONS])))


# ------------------------------------------------------------------ request bodies

class FeaturesRequest(BaseModel):
    """``POST /features``: entities and what to read of them."""

    entities: list[str | int] = Field(min_length=1, max_length=MAX_ENTITIES)
    features: list[str] = Field(default_factory=list, description=(
        "views or view:feature names; default: the customer's views"))


class FeastRequest(BaseModel):
    """``POST /get-online-features``: Feast's request."""

    features: list[str] = Field(min_length=1)
    entities: dict[str, list[str | int]]
    full_feature_names: bool = False


class PredictRequest(BaseModel):
    """``POST /predict``: a basket being filled."""

    lines: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_LINES, description=(
        "stock_code, quantity, unit_price, description (optional)"))
    customer_id: str | int | None = None
    country: str = "Unspecified"
    invoice: str | None = None
    invoice_date: str | int | None = Field(None, description=(
        "the basket's time (ISO 8601, epoch seconds or 12/1/2010 8:26); default now"))


class EventsRequest(BaseModel):
    """``POST /events``: invoice lines to send to the topic."""

    lines: list[Any] = Field(min_length=1, max_length=MAX_LINES)


# ------------------------------------------------------------------ the application

def create_app(b: Backends) -> FastAPI:
    """The API over ``b``: every route, the error handlers, metrics."""
    app = FastAPI(title="basketflow", version=_version(),
                  description="Live features, scores and basket predictions.")
    metrics = HttpMetrics()

    def role(name: str) -> list[Any]:
        """The route's dependencies: a check of the key's roles, none without keys (a
        dependency costs every request some microseconds)."""
        if not b.keys.enabled:
            return []

        def check(request: Request) -> None:
            headers = request.headers
            key = presented_key(headers.get("authorization"), headers.get("x-api-key"))
            if key is None:
                raise ApiError(401, "unauthorized", "this route needs an API key: "
                               "header `Authorization: Bearer KEY` or `X-API-Key: KEY`")
            roles = b.keys.roles_of(key)
            if roles is None:
                raise ApiError(401, "unauthorized", "unknown API key")
            if name not in roles:
                raise ApiError(403, "forbidden", f"this key lacks the role {name!r}")
        return [Depends(check)]

    reader, predictor, pusher, admin = (role(r) for r in (READ, PREDICT, PUSH, ADMIN))
    _handlers(app, b)
    add_dashboard(app, b.options.settings, b.store, b.customer_views, reader,
                  b.options.flow_metrics_port)

    @app.get("/customers/{customer_id}/features", dependencies=reader)
    async def customer_features(customer_id: str, features: Annotated[str | None, Query(
            description="comma-separated views or view:feature names")] = None) -> Response:
        """A customer's live features: every view (default: customer and basket) with
        its values, event time and version, as of the flow's event-time clock."""
        return _one(b, customer_id, features, "customer_id", b.customer_views)

    @app.get("/products/{stock_code}/features", dependencies=reader)
    async def product_features(stock_code: str, features: Annotated[str | None, Query(
            description="comma-separated view:feature names")] = None) -> Response:
        """A product's live demand features (the product view)."""
        return _one(b, stock_code, features, "stock_code", ("product",))

    @app.post("/features", dependencies=reader)
    async def many_features(body: FeaturesRequest) -> Response:
        """Many entities in one read; an entity without values has nulls."""
        ids = [str(e) for e in body.entities]
        wanted = b.wanted(tuple(body.features or b.customer_views), None)
        found = app_features.read_selected(b.store, ids, wanted, b.views)
        return json_response({"results": [f.to_json() for f in found]})

    @app.post("/get-online-features", dependencies=reader)
    async def get_online_features(body: FeastRequest) -> Response:
        """Feast's feature-server route: its request and response shapes."""
        return _feast(b, body)

    @app.get("/customers/{customer_id}/score", dependencies=reader)
    async def customer_score(customer_id: str) -> Response:
        """The customer's live category score from the flow's model."""
        stored = b.store.read_score(customer_id)
        if stored is None:
            raise ApiError(404, "not_found", f"no live score for customer {customer_id!r}")
        return json_response({"customer_id": customer_id}
                             | app_features.LiveScore.from_stored(customer_id, stored).to_json())

    @app.post("/predict", dependencies=predictor)
    async def predict(body: PredictRequest) -> Response:
        """Score a posted basket now with the live model; nothing is stored."""
        return _predict(b, body)

    @app.post("/events", dependencies=pusher)
    async def events(body: EventsRequest) -> Response:
        """Send invoice lines to the events topic (bad ones to the dead topic: 422)."""
        parsed = parse_posted(body.lines, "api")
        await run_in_threadpool(b.pusher().send, parsed)
        rejected = [{"line": n, "reason": item.reason}
                    for n, item in enumerate(parsed, 1) if isinstance(item, Rejection)]
        accepted = len(parsed) - len(rejected)
        if rejected:
            return error_response(422, "bad_lines", f"{len(rejected)} line(s) rejected "
                                  "and sent to the dead-letter topic", accepted=accepted,
                                  rejected=rejected)
        return json_response({"accepted": accepted})

    @app.get("/health")
    async def health() -> Response:
        """Ready: Redis and the broker answer (503 otherwise). Open without a key."""
        checks = {"redis": _redis_ok(b), "broker": await run_in_threadpool(_broker_ok, b)}
        ready = checks["redis"] == "ok" and checks["broker"] in ("ok", "not configured")
        return json_response({"status": "ok" if ready else "unavailable"} | checks,
                             200 if ready else 503)

    @app.get("/health/live")
    async def live() -> Response:
        """Alive: the process answers."""
        return json_response({"status": "ok"})

    @app.get("/metrics", dependencies=admin)
    async def prometheus() -> Response:
        """Prometheus text: requests and latency per route, method and status."""
        return Response(metrics_text(metrics), media_type=CONTENT_TYPE)

    hot = (customer_features, product_features, customer_score)
    direct = [direct_route(r) for r in app.routes
              if isinstance(r, APIRoute) and r.endpoint in hot]
    app.add_middleware(DirectGets, routes=direct,  # type: ignore[arg-type]
                       handlers=app.exception_handlers)
    app.add_middleware(MetricsMiddleware, metrics=metrics,  # type: ignore[arg-type]
                       log_requests=b.options.log_requests)
    return app


def _version() -> str:
    from importlib.metadata import version
    return version("basketflow")


def _wanted(views: Mapping[str, FeatureView], names: Sequence[str], entity: str | None,
            ) -> Wanted:
    """The features asked per view of ``views``; 422 for an unknown one, or (with
    ``entity``) one of a view keyed by another entity."""
    try:
        wanted = app_features.wanted_features(names, views)
    except (app_features.UnknownView, app_features.UnknownFeature) as exc:
        raise ApiError(422, "unknown_feature", str(exc)) from None
    other = [v for v in wanted
             if entity and app_features.feature_view(v, views).entity != entity]
    if other:
        raise ApiError(422, "wrong_entity", f"view(s) {', '.join(other)} are not keyed by "
                       f"{entity}")
    return wanted


def _one(b: Backends, entity: str, features: str | None, key: str,
         default: tuple[str, ...]) -> Response:
    """One entity's features (:func:`_wanted` of the comma-separated ``features``)."""
    names = [n.strip() for n in features.split(",") if n.strip()] if features else default
    found = app_features.read_selected(b.store, [entity], b.wanted(tuple(names), key),
                                       b.views)[0]
    if not any(found.views.values()):
        raise ApiError(404, "not_found", f"no features for {key} {entity!r} in the online "
                       "store")
    return json_response(found.to_json())


def _feast(b: Backends, body: FeastRequest) -> Response:
    """Feast's response to ``body`` (:mod:`basketflow.serving.feast`)."""
    if len(body.entities) != 1:
        raise ApiError(422, "bad_entities", "entities must name one join key "
                       "(customer_id or stock_code) with a list of ids")
    (join_key, ids), = body.entities.items()
    if len(ids) > MAX_ENTITIES:
        raise ApiError(422, "too_many_entities", f"at most {MAX_ENTITIES} ids per call")
    bad = [n for n in body.features if ":" not in n]
    if bad:
        raise ApiError(422, "unknown_feature", f"features are view:feature names, not "
                       f"{', '.join(map(repr, bad))}")
    wanted = b.wanted(tuple(body.features), join_key)
    pairs = [tuple(n.split(":", 1)) for n in body.features]
    found = app_features.read_selected(b.store, [str(i) for i in ids], wanted, b.views)
    return json_response(feast.response(ids, join_key, pairs, found,  # type: ignore[arg-type]
                                        body.full_feature_names))


def _predict(b: Backends, body: PredictRequest) -> Response:
    """Score the posted basket (:mod:`basketflow.app.predict`)."""
    from basketflow.app.posted import invoice_date_text
    from basketflow.schemas.events import parse_invoice_date
    ts = None
    if body.invoice_date is not None:
        try:
            ts = parse_invoice_date(invoice_date_text(body.invoice_date))
        except (ValueError, OverflowError, OSError):
            raise ApiError(422, "bad_input", f"invoice_date {body.invoice_date!r} is not "
                           "a time (ISO 8601, epoch seconds or 12/1/2010 8:26)") from None
    customer_id = None if body.customer_id is None else str(body.customer_id)
    events = basket_events(body.lines, customer_id=customer_id, country=body.country,
                           invoice=body.invoice, ts=ts)
    model = b.model.current()
    customer = None
    if customer_id is not None:
        row = app_features.read_online(b.store, [customer_id], ["customer"])[0]
        found = row.views["customer"]
        customer = found.values if found is not None else None
    return json_response(predict_basket(model, events, customer).to_json())


def _redis_ok(b: Backends) -> str:
    try:
        b.store.client.ping()
    except redis.RedisError as exc:
        return f"down: {type(exc).__name__}"
    return "ok"


def _broker_ok(b: Backends) -> str:
    bootstrap = b.options.settings.kafka_bootstrap
    if bootstrap is None:
        return "not configured"
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient
    try:
        AdminClient(admin_config(bootstrap)).list_topics(timeout=1.0)
    except KafkaException as exc:
        return f"down: {exc.args[0] if exc.args else exc}"
    return "ok"


def _handlers(app: FastAPI, b: Backends) -> None:
    """Every error as JSON with its status (module docstring)."""
    timeout = b.options.redis_timeout

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.kind, str(exc), **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> Response:
        details = [{"where": ".".join(map(str, e.get("loc", ()))), "problem": e.get("msg")}
                   for e in exc.errors()]
        return error_response(422, "bad_input", "the request does not fit the route: "
                              + "; ".join(f"{d['where']}: {d['problem']}" for d in details[:3]),
                              details=details)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> Response:
        kind = "not_found" if exc.status_code == 404 else "http_error"
        return error_response(exc.status_code, kind, str(exc.detail))

    @app.exception_handler(BadLines)
    async def bad_lines(_request: Request, exc: BadLines) -> Response:
        return error_response(422, "bad_lines", str(exc), rejected=[
            {"line": n, "reason": reason} for n, reason in exc.rejected])

    @app.exception_handler(redis.RedisError)
    async def store_down(_request: Request, exc: redis.RedisError) -> Response:
        log.warning("online store error: %s", type(exc).__name__)
        return error_response(503, "store_unavailable", "the online store (Redis) did not "
                              f"answer within {timeout:g} s ({type(exc).__name__})")

    @app.exception_handler(NoLiveModel)
    async def no_model(_request: Request, exc: NoLiveModel) -> Response:
        return error_response(503, "no_live_model", str(exc))

    @app.exception_handler(BrokerUnavailable)
    async def broker_down(_request: Request, exc: BrokerUnavailable) -> Response:
        return error_response(503, "broker_unavailable", str(exc))

    @app.exception_handler(BasketflowError)
    async def other(_request: Request, exc: BasketflowError) -> Response:
        return error_response(503, "unavailable", str(exc))
