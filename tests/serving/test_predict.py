"""``POST /predict`` against a real server: a basket posted line by line gets, after each
line, the very score the flow's own steps (its customer folder and scoring state, the
same model) give the same lines; a returning customer's history comes from the online
store; bad lines, no model: 422, 503."""

from __future__ import annotations

import json
import random
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from basketflow.config import Settings
from basketflow.features.entity_features import CustomerFolder
from basketflow.flows.scoring import ScoringConfig, ScoringSteps
from basketflow.models.classifier import BasketClassifier, classifier_features
from basketflow.models.registry import Lineage, Registry, registry_dir
from basketflow.schemas.events import Transaction, format_invoice_date
from basketflow.schemas.records import ScoreRow
from basketflow.schemas.features import registry
from tests.serving.conftest import Server, events, start_server, store_of

SEGMENTATION = "seg-test"
CATEGORIES = ("Gifts", "Home", "Wholesale")


def trained_model() -> BasketClassifier:
    """A model that has learnt from 60 made-up baskets, each category its own kind."""
    model = BasketClassifier(SEGMENTATION)
    rng = random.Random(3)
    for n in range(60):
        label = CATEGORIES[n % 3]
        scale = 1 + CATEGORIES.index(label) * 20
        basket = {"value": rng.uniform(5, 50) * scale, "items": rng.randint(1, 10) * scale,
                  "lines": rng.randint(1, 12), "distinct_products": rng.randint(1, 10),
                  "non_product_lines": 0, "hour_of_day": rng.randint(7, 19),
                  "weekday": rng.randint(0, 6), "country": rng.choice(["France", "EIRE"]),
                  "started": 1291191960, f"share_{'home_decor' if label == 'Home' else 'gifts'}":
                  1.0}
        model.learn(classifier_features(basket, None), label)
    return model


def install_model(data_dir: Path) -> BasketClassifier:
    """The model as the flow leaves it: a registered version, the champion."""
    model = trained_model()
    Registry(registry_dir(data_dir)).register(model, Lineage.of(model, "flow"), {},
                                              follow=True)
    return model


def basket_rows(customer: str, invoice: str, start_minute: int) -> list[list[str]]:
    """Seven lines of one invoice, a minute apart, products of several categories."""
    items = [("85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 6, "2.55"),
             ("22633", "HAND WARMER UNION JACK", 12, "1.85"),
             ("POST", "POSTAGE", 1, "18.0"),
             ("84879", "ASSORTED COLOUR BIRD ORNAMENT", 32, "1.69"),
             ("22745", "POPPY'S PLAYHOUSE BEDROOM", 6, "2.1"),
             ("21754", "HOME BUILDING BLOCK WORD", 3, "5.95"),
             ("85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 6, "2.55")]
    start = 1291191960 + start_minute * 60
    return [[invoice, code, text, str(qty), format_invoice_date(start + 60 * n), price,
             customer, "France"] for n, (code, text, qty, price) in enumerate(items)]


def flow_scores(folder: CustomerFolder, model: BasketClassifier, entity: str,
                lines: list[Transaction]) -> list[dict[str, Any]]:
    """The flow's score after each line: its customer folder, one line per batch, then
    its predict step, with the model as the champion of a registry of its own."""
    with tempfile.TemporaryDirectory() as tmp:
        Registry(Path(tmp)).register(model, Lineage.of(model, "flow"), {}, follow=True)
        steps, basket, scores = ScoringSteps(ScoringConfig({}, model.labels_version,
                                                           Path(tmp))), None, []
        for line in lines:
            update = folder.fold(entity, [line], 3600)
            assert update is not None
            basket, (row,) = steps.predict(basket, update)
            assert isinstance(row, ScoreRow)
            scores.append({"category": row.score.category,
                           "probabilities": row.score.probabilities,
                           "model_version": row.score.model_version})
    return scores


def posted(lines: list[Transaction]) -> list[dict[str, Any]]:
    """The lines as the shop posts them: stock code, quantity, unit price, description
    and the time each was put in the basket."""
    return [{"stock_code": t.stock_code, "quantity": t.quantity, "unit_price": t.unit_price,
             "description": t.description, "invoice_date": t.ts} for t in lines]


def served_scores(server: Server, lines: list[Transaction], customer: str | None,
                  ) -> list[dict[str, Any]]:
    """The server's score of the basket after each line, posted whole each time."""
    scores = []
    for k in range(1, len(lines) + 1):
        got = server.client.post("/predict", json={
            "lines": posted(lines[:k]), "customer_id": customer, "country": "France",
            "invoice": lines[0].invoice})
        assert got.status_code == 200, got.text
        body = got.json()
        scores.append({k: body[k] for k in ("category", "probabilities", "model_version")})
    return scores


@pytest.fixture
def model(settings: Settings) -> BasketClassifier:
    return install_model(settings.data_dir)


def test_a_first_visit_posted_line_by_line_gets_the_flows_scores(
        server: Server, model: BasketClassifier) -> None:
    lines = events(basket_rows("13000", "570001", 0))
    expected = flow_scores(CustomerFolder(), model, "13000", lines)
    assert len({str(s["probabilities"]) for s in expected}) > 3  # the score moves
    assert served_scores(server, lines, "13000") == expected
    guest = server.client.post("/predict", json={"lines": posted(lines), "country": "France"})
    assert guest.status_code == 200 and guest.json()["customer_known"] is False
    assert guest.json()["probabilities"] == expected[-1]["probabilities"]


def test_a_returning_customer_gets_the_flows_scores_from_the_online_history(
        server: Server, model: BasketClassifier, settings: Settings) -> None:
    folder = CustomerFolder()
    first = folder.fold("14000", events(basket_rows("14000", "570002", 0)), 3600)
    assert first is not None  # the first basket is in the online store, as the flow left it
    store_of(settings).write(registry()["customer"], {
        "14000": (first.times["customer"], first.values["customer"])})
    second = events(basket_rows("14000", "570003", 90))
    expected = flow_scores(folder, model, "14000", second)
    got = served_scores(server, second, "14000")
    assert got == expected
    assert got[0] != flow_scores(CustomerFolder(), model, "14000", second)[0]  # history counts


def test_bad_baskets_are_422_per_line(server: Server, model: BasketClassifier) -> None:
    lines = [{"stock_code": "85123A", "quantity": 6, "unit_price": 2.55},
             {"stock_code": "22633", "quantity": "six", "unit_price": 1.85},
             {"stock_code": "", "quantity": 1, "unit_price": 1.0},
             {"stock_code": "22633", "quantity": 1, "unit_price": 1.0, "colour": "red"}]
    got = server.client.post("/predict", json={"lines": lines, "country": "France"})
    assert got.status_code == 422, got.text
    assert got.json()["error"] == "bad_lines"
    assert got.json()["rejected"] == [
        {"line": 2, "reason": "Quantity 'six' is not a whole number"},
        {"line": 3, "reason": "StockCode is empty"},
        {"line": 4, "reason": "unknown field(s): colour; a line has invoice, stock_code, "
                              "description, quantity, invoice_date, unit_price, "
                              "customer_id, country"}]
    for body in ({"lines": []}, {"country": "France"},
                 {"lines": lines[:1], "invoice_date": "soon"}):
        bad = server.client.post("/predict", json=body)
        assert bad.status_code == 422, (body, bad.text)


def test_without_a_live_model_predict_is_503(server: Server) -> None:
    got = server.client.post("/predict", json={
        "lines": [{"stock_code": "85123A", "quantity": 6, "unit_price": 2.55}]})
    assert got.status_code == 503 and got.json()["error"] == "no_live_model", got.text
    assert "segment" in got.json()["message"]


def test_a_promote_and_a_rollback_are_served_at_the_next_request(
        settings: Settings) -> None:
    install_model(settings.data_dir)
    server = start_server(settings)
    try:
        body = {"lines": [{"stock_code": "85123A", "quantity": 600, "unit_price": 2.55}]}
        before = server.client.post("/predict", json=body).json()["probabilities"]
        model = trained_model()
        for _ in range(30):
            model.learn(classifier_features({"value": 1530.0, "items": 600, "lines": 1},
                                            None), "Home")
        registry = Registry(registry_dir(settings.data_dir))
        newer = registry.register(model, Lineage.of(model, "train"), {})
        assert server.client.post("/predict", json=body).json()["probabilities"] == before
        registry.promote(newer.id)
        after = server.client.post("/predict", json=body).json()["probabilities"]
        assert after != before and after["Home"] > before["Home"]
        registry.rollback()
        assert server.client.post("/predict", json=body).json()["probabilities"] == before
        # promotes and rollbacks while requests go on (each change waits for two requests
        # to start after it): none fails, each answers with one of the two versions whole
        answers: list[dict[str, float]] = []

        def move() -> None:
            for change in [lambda: registry.promote(newer.id), registry.rollback] * 5:
                change()
                seen = len(answers)
                while len(answers) < seen + 2:
                    time.sleep(0.002)

        moving = threading.Thread(target=move)
        moving.start()
        while moving.is_alive():
            got = server.client.post("/predict", json=body)
            assert got.status_code == 200, got.text
            answers.append(got.json()["probabilities"])
        moving.join()
        assert {json.dumps(a, sort_keys=True) for a in answers} <= \
            {json.dumps(before, sort_keys=True), json.dumps(after, sort_keys=True)}
        assert before in answers and after in answers
    finally:
        server.stop()
