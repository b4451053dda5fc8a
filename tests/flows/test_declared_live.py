"""A view the team declares (the README's Christmas spend, as written there), applied,
computed by the live flow through the real broker and Valkey: its online values equal
the declaration's plain-Python reference at the flow's clock, its feature log equals the one
``backfill --views`` computes from the stored events (one implementation), and
``basketflow features ID`` and the HTTP API serve it with its version and as-of time."""

from __future__ import annotations

import csv
import json
import random
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from basketflow import FeatureStore
from basketflow.app.flow_processes import child_env
from basketflow.app.project import init_project
from basketflow.app.registry import apply
from basketflow.app.view_backfill import backfill_views
from basketflow.config import ENV_OF_KEY, Settings, load_settings
from basketflow.flows.live import RunOptions, run_live
from basketflow.producers.replay import replay
from basketflow.schemas.events import Transaction, parse_row
from basketflow.schemas.repository import load_repository
from basketflow.sinks.offline_layout import feature_log_dir
from basketflow.sinks.online_store import RedisOnlineStore, connect
from tests.cli.commands import basketflow
from tests.serving.conftest import start_server

HEADER = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
          "CustomerID", "Country"]
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_view() -> str:
    """The README's own view of the team's (``features/christmas.py``), as written there."""
    text = README.read_text()
    start = text.index("```python\n", text.index("say `features/christmas.py`")) + 10
    return text[start:text.index("```", start)]


PRODUCTS = [("23084", "CHRISTMAS TREE DECORATION"), ("22086", "PAPER CHAIN KIT CHRISTMAS"),
            ("21813", "ADVENT CALENDAR GINGHAM SACK"), ("71053", "WHITE METAL LANTERN"),
            ("22633", "HAND WARMER UNION JACK")]
CUSTOMERS = ("13001", "13002", "13003", "13004")
START = datetime(2011, 10, 1, tzinfo=timezone.utc).timestamp()
VIEW = "customer_christmas"


def shop_lines(seed: int) -> list[list[str]]:
    """Lines of four customers over about two months, in time order: some buy often,
    one stops after the first weeks (its windows must empty at the clock)."""
    rng = random.Random(seed)
    lines: list[tuple[float, list[str]]] = []
    for n, customer in enumerate(CUSTOMERS):
        days = 20 if n == 3 else 60
        for _ in range(rng.randint(15, 30)):
            ts = START + rng.randrange(days * 86_400 // 60) * 60
            code, name = rng.choice(PRODUCTS)
            lines.append((ts, ["", code, name, str(rng.randint(1, 12)),
                               datetime.fromtimestamp(ts, timezone.utc).strftime(
                                   "%m/%d/%Y %H:%M"), f"{rng.randint(50, 900) / 100:.2f}",
                               customer, "United Kingdom"]))
    lines.sort(key=lambda line: line[0])
    for invoice, (_, row) in enumerate(lines, 570_000):
        row[0] = str(invoice)
    return [row for _, row in lines]


@pytest.fixture
def shop(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A project with the Christmas view applied, on the session's broker and Valkey."""
    for name in ENV_OF_KEY.values():
        monkeypatch.delenv(name, raising=False)
    init_project(tmp_path / "shop")
    (tmp_path / "shop" / "features" / "christmas.py").write_text(readme_view())
    project = load_settings(cwd=tmp_path / "shop")
    shop = replace(project, kafka_bootstrap=settings.kafka_bootstrap,
                   redis_url=settings.redis_url, topic=settings.topic,
                   dead_topic=settings.dead_topic, prefix=settings.prefix)
    apply(shop)
    return shop


def log_rows(offline_dir: Path) -> list[tuple[Any, ...]]:
    """The view's feature log, every row, sorted."""
    files = sorted(feature_log_dir(offline_dir, VIEW).rglob("*.parquet"))
    rows = [tuple(row.values()) for path in files for row in pq.read_table(path).to_pylist()]
    return sorted(rows, key=repr)


@pytest.mark.slow
def test_a_declared_view_is_computed_live_exact_at_the_clock_and_served(
        shop: Settings, tmp_path: Path) -> None:
    assert shop.kafka_bootstrap and shop.redis_url and shop.feature_repository
    lines = shop_lines(seed=21)
    path = tmp_path / "shop.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([HEADER, *lines])
    replay(path, shop.kafka_bootstrap, shop.topic, shop.dead_topic)
    run_live(shop, stop_at_end=True, options=RunOptions())

    view = load_repository(shop.feature_repository).declarations[VIEW]
    version = load_repository(shop.feature_repository).views[VIEW].version
    events: dict[str, list[Transaction]] = {}
    for n, row in enumerate(lines):
        e = parse_row(row, f"x:{n}")
        assert isinstance(e, Transaction)
        events.setdefault(e.entity_id, []).append(e)
    clock = max(e.ts for each in events.values() for e in each)
    store = RedisOnlineStore(connect(shop.redis_url), shop.prefix)
    assert int(store.read_progress()["clock"]) == clock
    for customer, mine in events.items():
        online = store.read(VIEW, customer)
        assert online is not None and online["_version"] == version
        expected = view.reference(mine, clock)
        assert {k: online[k] for k in expected} == pytest.approx(expected), customer
    assert any(view.reference(mine, clock)["christmas_spend_28d"] > 0
               for mine in events.values())  # the filter keeps some lines
    quiet = events[CUSTOMERS[3]]  # silent for weeks: its windows are empty at the clock
    assert clock - quiet[-1].ts > 28 * 86_400
    assert store.read(VIEW, CUSTOMERS[3])["christmas_spend_28d"] == 0  # type: ignore[index]

    live = log_rows(shop.offline_dir)
    assert len(live) > len(lines)  # rows where windows moved on without events too
    figures = backfill_views(shop, [VIEW])
    assert figures.events == len(lines) and figures.rows[VIEW] == len(live)
    assert log_rows(shop.offline_dir) == live

    customer = CUSTOMERS[0]
    expected = view.reference(events[customer], clock)
    last = expected["last_line"]
    done = basketflow("features", customer, "--json", env=child_env(shop))
    assert done.returncode == 0, done.stderr
    read = json.loads(done.stdout)
    assert read["as_of"] == clock and read["as_of_from"] == "clock"
    served = read["views"][VIEW]
    assert served["_version"] == version
    assert served["days_since_last_line"] == round((clock - last) / 86_400, 4)
    assert {k: served[k] for k in expected} == pytest.approx(expected)
    assert "customer" in read["views"]  # the built-in views beside it

    python = FeatureStore(data_dir=shop.data_dir, redis_url=shop.redis_url,
                          prefix=shop.prefix)
    python.settings = replace(python.settings, feature_repository=shop.feature_repository,
                              offline_store=shop.offline_store)
    row = python.get_online_features([customer], [f"{VIEW}:christmas_spend_14d"])[0]
    assert row.as_of == clock and row.views[VIEW] is not None
    assert row.views[VIEW].values == {"christmas_spend_14d": served["christmas_spend_14d"]}

    server = start_server(shop, env=child_env(shop))
    try:
        answer = server.client.get(f"/customers/{customer}/features")
        assert answer.status_code == 200, answer.text
        assert answer.json()["views"][VIEW] == served
        many = server.client.post("/features", json={"entities": list(CUSTOMERS),
                                                     "features": [VIEW]})
        assert many.status_code == 200, many.text
        assert [r["views"][VIEW]["_version"] for r in many.json()["results"]] == \
            [version] * len(CUSTOMERS)
        feast = server.client.post("/get-online-features", json={
            "features": [f"{VIEW}:christmas_spend_28d"],
            "entities": {"customer_id": [customer]}})
        assert feast.status_code == 200, feast.text
        assert feast.json()["results"][1]["values"] == [served["christmas_spend_28d"]]
    finally:
        server.stop()


@pytest.mark.slow
def test_a_declared_view_added_to_a_running_deployment_and_resumed_from_its_snapshots(
        shop: Settings, tmp_path: Path) -> None:
    """A flow resumed from recovery snapshots made before the view was declared computes
    it from the events it reads from then on; resumed again, its entities' states come
    back from the snapshots (the folder pickled without its engine) and go on exact."""
    assert shop.kafka_bootstrap and shop.redis_url and shop.feature_repository
    lines = shop_lines(seed=14)
    parts = (lines[:len(lines) // 3], lines[len(lines) // 3:2 * len(lines) // 3],
             lines[2 * len(lines) // 3:])
    options = RunOptions(recovery_dir=tmp_path / "recovery")
    for n, part in enumerate(parts):
        path = tmp_path / f"part{n}.csv"
        with path.open("w", newline="") as f:
            csv.writer(f).writerows([HEADER, *part])
        replay(path, shop.kafka_bootstrap, shop.topic, shop.dead_topic)
        run_live(shop if n else replace(shop, feature_repository=None), stop_at_end=True,
                 options=options)  # the first run: no feature repository yet
    view = load_repository(shop.feature_repository).declarations[VIEW]
    seen: dict[str, list[Transaction]] = {}
    for n, row in enumerate(parts[1] + parts[2]):
        e = parse_row(row, f"x:{n}")
        assert isinstance(e, Transaction)
        seen.setdefault(e.entity_id, []).append(e)
    clock = max(e.ts for each in seen.values() for e in each)
    store = RedisOnlineStore(connect(shop.redis_url), shop.prefix)
    for customer, mine in seen.items():
        online = store.read(VIEW, customer)
        assert online is not None
        expected = view.reference(mine, clock)
        assert {k: online[k] for k in expected} == pytest.approx(expected), customer
