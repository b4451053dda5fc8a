"""``basketflow serve``'s read routes against a real server process: features of
customers and products, many at once, Feast's shapes, live scores, health, metrics, and
every error code (404, 422, 503)."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from basketflow.app.services import free_port
from basketflow.config import Settings
from basketflow.features.entity_features import PRODUCT_ENGINE
from basketflow.schemas.features import days_since, registry
from basketflow.schemas.records import Score, ScoreRow
from tests.serving.conftest import (
    CLOCK,
    CUSTOMER,
    LINES,
    Server,
    events,
    server_env,
    start_server,
    store_of,
    write_customer,
)

@pytest.fixture
def written(settings: Settings) -> dict[str, tuple[int, dict[str, Any]]]:
    return write_customer(settings, CUSTOMER, LINES)


def expected_view(view: str, ts: int, values: dict[str, Any]) -> dict[str, Any]:
    """What a read of one view returns: the stored values, the request-time features at
    the clock (by hand: days from the source time), then ``_ts`` and ``_version``."""
    out = dict(values)
    if view == "customer":
        out["days_since_last_purchase"] = round((CLOCK - values["last_purchase"]) / 86_400, 4)
        out["days_since_first_purchase"] = round((CLOCK - values["first_purchase"]) / 86_400, 4)
    return out | {"_ts": ts, "_version": registry()[view].version}


def test_a_customers_features_are_every_view_as_of_the_clock(
        server: Server, written: dict[str, tuple[int, dict[str, Any]]]) -> None:
    got = server.client.get(f"/customers/{CUSTOMER}/features")
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["entity"] == CUSTOMER and body["as_of"] == CLOCK
    assert body["as_of_from"] == "clock"
    assert body["views"] == {view: expected_view(view, *written[view])
                             for view in ("customer", "basket")}
    assert body["views"]["basket"]["invoice"] == "536366"
    assert body["views"]["customer"]["days_since_last_purchase"] == days_since(
        CLOCK, written["customer"][1]["last_purchase"])


def test_features_picks_the_named_ones(server: Server, written: Any) -> None:
    got = server.client.get(f"/customers/{CUSTOMER}/features",
                            params={"features": "customer:spend_30d,basket:value"})
    assert got.status_code == 200, got.text
    views = got.json()["views"]
    assert views["customer"]["spend_30d"] == written["customer"][1]["spend_30d"]
    assert set(views["customer"]) == {"spend_30d", "_ts", "_version"}
    assert views["basket"] == {"value": 11.1, "_ts": written["basket"][0],
                               "_version": registry()["basket"].version}


def test_a_products_features(server: Server, settings: Settings) -> None:
    state = PRODUCT_ENGINE.state()
    for e in events(LINES[:1]):
        state.update(e)
    values = state.values(1291194000)
    store_of(settings).write(registry()["product"], {"85123A": (1291194000, values)})
    got = server.client.get("/products/85123A/features")
    assert got.status_code == 200, got.text
    assert got.json()["views"] == {"product": values | {
        "_ts": 1291194000, "_version": registry()["product"].version}}
    assert server.client.get("/products/NOPE/features").status_code == 404


def test_many_customers_in_one_call(server: Server, written: Any, settings: Settings) -> None:
    other = write_customer(settings, "12583", [
        [*row[:6], "12583", "France"] for row in LINES[:2]])
    got = server.client.post("/features", json={"entities": [CUSTOMER, 12583, "00000"],
                                                "features": ["customer:orders_30d"]})
    assert got.status_code == 200, got.text
    results = got.json()["results"]
    assert [r["entity"] for r in results] == [CUSTOMER, "12583", "00000"]
    assert results[0]["views"]["customer"]["orders_30d"] == 2
    assert results[1]["views"]["customer"]["orders_30d"] == 1 == \
        other["customer"][1]["orders_30d"]
    assert results[2]["views"] == {"customer": None} and results[2]["as_of"] == CLOCK


def test_feast_shapes(server: Server, written: Any) -> None:
    """Feast's documented request (its feature-server example with our names): entities
    as a join key with a list of ids, features as view:feature; the response's metadata
    and column-major results, an unknown id NOT_FOUND."""
    request = {"features": ["customer:spend_30d", "basket:value", "customer:orders_7d"],
               "entities": {"customer_id": [17850, 99999]}}
    got = server.client.post("/get-online-features", json=request)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["metadata"] == {"feature_names": ["customer_id", "spend_30d", "value",
                                                  "orders_7d"]}
    stamp = "2010-12-01T08:28:00Z"
    assert body["results"] == [
        {"values": [17850, 99999], "statuses": ["PRESENT", "PRESENT"],
         "event_timestamps": ["1970-01-01T00:00:00Z"] * 2},
        {"values": [written["customer"][1]["spend_30d"], None],
         "statuses": ["PRESENT", "NOT_FOUND"],
         "event_timestamps": [stamp, "1970-01-01T00:00:00Z"]},
        {"values": [11.1, None], "statuses": ["PRESENT", "NOT_FOUND"],
         "event_timestamps": [stamp, "1970-01-01T00:00:00Z"]},
        {"values": [2, None], "statuses": ["PRESENT", "NOT_FOUND"],
         "event_timestamps": [stamp, "1970-01-01T00:00:00Z"]}]
    full = server.client.post("/get-online-features", json=request | {
        "full_feature_names": True}).json()
    assert full["metadata"]["feature_names"][1:] == [
        "customer__spend_30d", "basket__value", "customer__orders_7d"]
    wrong = server.client.post("/get-online-features", json={
        "features": ["product:units_7d"], "entities": {"customer_id": [1]}})
    assert wrong.status_code == 422 and wrong.json()["error"] == "wrong_entity"


def test_the_live_score(server: Server, settings: Settings) -> None:
    score = Score("Gifts, frequent", {"Gifts, frequent": 0.75, "Home": 0.25}, "m-1", 1291191960)
    store_of(settings).write_scores([ScoreRow(CUSTOMER, "536365", 1291191960, 2, score)])
    got = server.client.get(f"/customers/{CUSTOMER}/score")
    assert got.status_code == 200, got.text
    assert got.json() == {"customer_id": CUSTOMER, "category": "Gifts, frequent",
                          "probabilities": {"Gifts, frequent": 0.75, "Home": 0.25},
                          "model_version": "m-1", "invoice": "536365", "seq": 2,
                          "_ts": 1291191960, "_version": "m-1"}
    missing = server.client.get("/customers/00000/score")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_bad_requests_are_json_errors(server: Server, written: Any) -> None:
    cases = [
        ("get", f"/customers/{CUSTOMER}/features?features=customer:nope", None, 422,
         "unknown_feature"),
        ("get", f"/customers/{CUSTOMER}/features?features=nope", None, 422, "unknown_feature"),
        ("get", f"/customers/{CUSTOMER}/features?features=product", None, 422, "wrong_entity"),
        ("get", "/customers/00000/features", None, 404, "not_found"),
        ("get", "/no/such/route", None, 404, "not_found"),
        ("post", "/features", {"entities": []}, 422, "bad_input"),
        ("post", "/features", {"entities": ["1"] * 1001}, 422, "bad_input"),
        ("post", "/get-online-features", {"features": ["customer"],
                                          "entities": {"customer_id": [1]}}, 422,
         "unknown_feature"),
    ]
    for method, path, body, status, kind in cases:
        got = server.client.request(method, path, json=body)
        assert (got.status_code, got.json()["error"]) == (status, kind), (path, got.text)
        assert got.json()["message"]
    raw = server.client.post("/features", content=b"{not json",
                             headers={"content-type": "application/json"})
    assert raw.status_code == 422 and raw.json()["error"] == "bad_input"


def test_health_and_metrics(server: Server, written: Any) -> None:
    health = server.client.get("/health")
    assert health.status_code == 200, health.text
    assert health.json() == {"status": "ok", "redis": "ok", "broker": "ok"}
    for _ in range(3):
        server.client.get(f"/customers/{CUSTOMER}/features")
    server.client.get("/customers/00000/features")
    text = server.client.get("/metrics").text
    samples = {(s.name, s.labels.get("route"), s.labels.get("status"), s.labels.get("le")):
               s.value for family in text_string_to_metric_families(text)
               for s in family.samples}
    route = "/customers/{customer_id}/features"
    assert samples[("basketflow_http_requests_total", route, "200", None)] == 3
    assert samples[("basketflow_http_requests_total", route, "404", None)] == 1
    assert samples[("basketflow_http_request_duration_seconds_count", route, "200", None)] == 3
    assert ("basketflow_http_request_duration_seconds_bucket", route, "200", "0.0001") in samples
    assert "/customers/17850" not in text  # routes by template: bounded labels


def test_a_store_that_is_down_is_503_quickly(settings: Settings) -> None:
    nowhere = replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    server = start_server(nowhere, "--redis-timeout", "0.2", env=server_env(nowhere))
    try:
        start = time.monotonic()
        got = server.client.get(f"/customers/{CUSTOMER}/features")
        assert time.monotonic() - start < 2
        assert got.status_code == 503 and got.json()["error"] == "store_unavailable", got.text
        assert server.client.get("/health").status_code == 503
        assert server.client.get("/health/live").status_code == 200
    finally:
        log = server.stop()
    assert "Traceback" not in log


def test_openapi_docs(server: Server) -> None:
    assert server.client.get("/docs").status_code == 200
    paths = server.client.get("/openapi.json").json()["paths"]
    assert {"/customers/{customer_id}/features", "/predict", "/get-online-features",
            "/events", "/metrics"} <= set(paths)


def test_workers_count_together(settings: Settings, written: Any) -> None:
    server = start_server(settings, "--workers", "2")
    try:
        for _ in range(6):
            assert server.client.get(f"/customers/{CUSTOMER}/features").status_code == 200
        text = server.client.get("/metrics").text
    finally:
        server.stop()
    counts = {s.labels.get("route"): s.value for family in text_string_to_metric_families(text)
              for s in family.samples if s.name == "basketflow_http_requests_total"}
    assert counts["/customers/{customer_id}/features"] == 6


def test_granian_gives_the_same_answers_as_uvicorn(server: Server, written: Any,
                                                   settings: Settings) -> None:
    """``--server granian`` runs the same application: every answer, errors included,
    equals uvicorn's (``server``)."""
    pytest.importorskip("granian")
    other = start_server(settings, "--server", "granian")
    try:
        for method, path, body in (
                ("get", f"/customers/{CUSTOMER}/features", None),
                ("get", f"/customers/{CUSTOMER}/features?features=customer:spend_30d", None),
                ("get", "/customers/00000/features", None),
                ("post", "/features", {"entities": [CUSTOMER, "00000"]}),
                ("post", "/features", {"entities": []}),
                ("get", "/health/live", None)):
            a = server.client.request(method, path, json=body)
            b = other.client.request(method, path, json=body)
            assert (b.status_code, b.json()) == (a.status_code, a.json()), path
    finally:
        log = other.stop()
    assert "Traceback" not in log, log
    assert other.proc.returncode == 0, log  # SIGTERM stopped it: its worker too, in time
