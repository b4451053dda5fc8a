"""Least privilege on the bundled Valkey with the users of ``basketflow security
redis-acl``: the writer runs the flow and is refused anything outside the project's keys
and commands; the reader reads what the flow wrote (the command line and the HTTP API)
and is refused every write, a script's included; a wrong password is one ``Error:`` line
without the password."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from basketflow.config import Settings
from basketflow.flows.live import RunOptions, run_live
from basketflow.producers.replay import replay
from basketflow.security import redis_client
from basketflow.sinks.online_store import RedisOnlineStore
from tests.cli.commands import basketflow, error_lines, user_env
from tests.security.servers import READER_PASSWORD, AclServer, acl_valkey

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
LINES = ["536365,85123A,HEART,6,12/1/2010 8:26,2.55,17850,United Kingdom",
         "536366,22633,HAND WARMER,6,12/1/2010 8:28,1.85,17850,United Kingdom",
         "536367,84879,BIRD,32,12/1/2010 8:34,1.69,13047,United Kingdom"]


@pytest.fixture(scope="module")
def acl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclServer]:
    with acl_valkey(tmp_path_factory.mktemp("acl"), "acl") as server:
        yield server


@pytest.fixture(scope="module")
def flowed(acl: AclServer, broker: str, tmp_path_factory: pytest.TempPathFactory
           ) -> Settings:
    """The flow run to the topic's end with the writer user; its settings."""
    root = tmp_path_factory.mktemp("flow")
    source = root / "lines.csv"
    source.write_text("\n".join([HEADER, *LINES]) + "\n")
    settings = Settings(root / "data", broker, acl.writer, topic="acl-t",
                        dead_topic="acl-t.dead", prefix=acl.prefix)
    replay(source, broker, settings.topic, settings.dead_topic)
    run_live(settings, stop_at_end=True, options=RunOptions())
    return settings


def test_the_writer_runs_the_flow_and_the_reader_reads_it(flowed: Settings,
                                                          acl: AclServer) -> None:
    done = basketflow("features", "17850", "--json",
                      env=user_env(flowed.data_dir, replace(flowed, redis_url=acl.reader)))
    assert done.returncode == 0, done.stderr
    customer = json.loads(done.stdout)["views"]["customer"]
    assert customer["lifetime_orders"] == 2
    assert customer["lifetime_spend"] == pytest.approx(6 * 2.55 + 6 * 1.85)


def test_the_http_api_serves_with_the_reader(flowed: Settings, acl: AclServer) -> None:
    from basketflow.serving.api import backends, create_app
    from basketflow.serving.options import ServeOptions

    settings = replace(flowed, redis_url=acl.reader)
    with TestClient(create_app(backends(ServeOptions(settings, 2.0, None, False)))) as client:
        got = client.get("/customers/13047/features")
    assert got.status_code == 200, got.text
    customer = got.json()["views"]["customer"]
    assert customer["lifetime_orders"] == 1 and customer["lifetime_spend"] == pytest.approx(
        32 * 1.69)


def test_the_reader_is_refused_every_write(flowed: Settings, acl: AclServer) -> None:
    store = RedisOnlineStore(redis_client(acl.reader), acl.prefix)
    with pytest.raises(redis.exceptions.NoPermissionError):
        store.write_progress("", {"events": 1})
    client = store.client
    for command in (("SET", f"{acl.prefix}:x", "1"), ("DEL", f"{acl.prefix}:customer:17850"),
                    ("EVAL", "return redis.call('SET', KEYS[1], '1')", "1", f"{acl.prefix}:x"),
                    ("FLUSHALL",), ("CONFIG", "GET", "*")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*command)
    assert client.exists(f"{acl.prefix}:x") == 0


def test_the_writer_is_refused_outside_its_keys_and_commands(flowed: Settings,
                                                             acl: AclServer) -> None:
    client = redis_client(acl.writer)
    for command in (("SET", "other:x", "1"), ("GET", "other:x"), ("FLUSHALL",),
                    ("KEYS", "*"), ("CONFIG", "GET", "*"), ("ACL", "LIST"),
                    ("DEL", f"{acl.prefix}:customer:17850")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*command)


def test_a_wrong_password_is_one_error_line_without_it(acl: AclServer, tmp_path: Path) -> None:
    wrong = "Wrong-pw-d41d8"
    url = acl.url("basketflow-reader", wrong)
    done = basketflow("features", "17850", env=user_env(tmp_path, Settings(tmp_path, None, url)))
    [line] = error_lines(done)
    assert "refused the user or password" in line and "basketflow-reader:***@" in line
    assert wrong not in done.stdout + done.stderr and READER_PASSWORD not in line


def test_status_reads_with_the_reader_and_masks_its_password(flowed: Settings,
                                                             acl: AclServer) -> None:
    from basketflow.app.status import collect_status

    report = collect_status(replace(flowed, redis_url=acl.reader))
    redis_status = report["services"]["redis"]
    assert redis_status["alive"] and report["online"]["error"] is None
    assert redis_status["address"] == f"redis://basketflow-reader:***@127.0.0.1:{acl.port}"
    assert report["online"]["keys"]["customer"] == 2  # 17850 and 13047
    assert report["flow"]["events"] == len(LINES)
