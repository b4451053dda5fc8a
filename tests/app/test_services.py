"""The embedded servers: ``up``/``down``/``resolve`` and ``status`` on real processes, no mocks.

These tests start their own servers in their own data directory (not the session ones from
conftest) because they kill and restart them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis

from basketflow.app.services import (
    BROKER,
    REDIS,
    ServicesNotRunning,
    ServiceStartError,
    address_port,
    down,
    embedded_services,
    read_state,
    resolve,
    start_redis,
    up,
)
from basketflow.app.status import EMBEDDED_LAG_NOTE, collect_status
from basketflow.config import ENV_DATA_DIR, ENV_KAFKA, ENV_REDIS, Settings, load_settings
from basketflow.sinks.online_store import RedisOnlineStore

pytestmark = pytest.mark.server  # servers of their own, started and stopped by the tests


@pytest.fixture
def local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings for a private data dir with no addresses from the environment; whatever a
    test leaves running is stopped afterwards.
    """
    for name in (ENV_KAFKA, ENV_REDIS, ENV_DATA_DIR):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(tmp_path / "data")
    try:
        yield settings
    finally:
        down(settings)


def _gone(pid: int, timeout: float = 5.0) -> bool:
    """Whether ``pid`` disappears (or turns zombie) within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            if not Path(f"/proc/{pid}/cmdline").read_bytes():
                return True  # a zombie: exited, not yet reaped
        except OSError:
            return True
        time.sleep(0.02)
    return False


def test_up_writes_state_and_is_idempotent(local: Settings) -> None:
    addresses = up(local)
    assert set(addresses) == {BROKER, REDIS}
    assert addresses[BROKER].startswith("127.0.0.1:")
    saved = json.loads(local.state_file.read_text())
    # the embedded Valkey asks for the password generated at its start, kept 0600
    assert addresses[REDIS].startswith(f"redis://:{saved['redis_password']}@127.0.0.1:")
    assert local.state_file.stat().st_mode & 0o777 == 0o600
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=address_port(addresses[REDIS])).ping()
    for name in (BROKER, REDIS):
        assert saved[name]["address"] == addresses[name]
        assert {"pid", "log", "started_at"} <= set(saved[name])
        assert Path(saved[name]["log"]).is_file()
    state = read_state(local)
    assert all(proc.is_running() for proc in state.values())

    assert up(local) == addresses  # a no-op on a healthy set...
    assert {n: p.pid for n, p in read_state(local).items()} == {n: p.pid for n, p in state.items()}

    resolved = resolve(local)  # ...and every later command finds the servers
    assert (resolved.kafka_bootstrap, resolved.redis_url) == (addresses[BROKER], addresses[REDIS])


def test_stale_state_is_detected_and_repaired(local: Settings) -> None:
    addresses = up(local)
    before = read_state(local)
    os.kill(before[REDIS].pid, signal.SIGKILL)
    assert _gone(before[REDIS].pid)

    with pytest.raises(ServicesNotRunning, match="basketflow up") as error:
        resolve(local)
    assert ENV_REDIS in str(error.value)
    assert set(read_state(local)) == {BROKER}  # the dead entry was removed, not trusted

    assert up(local) == addresses  # restarted on its old port, which was free again
    after = read_state(local)
    assert after[BROKER].pid == before[BROKER].pid  # only the dead one was restarted
    assert after[REDIS].pid != before[REDIS].pid
    assert resolve(local).redis_url == addresses[REDIS]


def test_resolve_without_up_says_what_to_do(local: Settings) -> None:
    with pytest.raises(ServicesNotRunning, match="basketflow up"):
        resolve(local)


def test_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_KAFKA, "127.0.0.1:1")
    monkeypatch.setenv(ENV_REDIS, "redis://127.0.0.1:1/0")
    settings = load_settings(tmp_path)
    assert up(settings) == {BROKER: "127.0.0.1:1", REDIS: "redis://127.0.0.1:1/0"}
    assert not settings.state_file.exists()  # nothing was started
    resolved = resolve(settings)
    assert (resolved.kafka_bootstrap, resolved.redis_url) == ("127.0.0.1:1", "redis://127.0.0.1:1/0")


def test_environment_for_one_starts_only_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_KAFKA, raising=False)
    monkeypatch.setenv(ENV_REDIS, "redis://127.0.0.1:1/0")
    settings = load_settings(tmp_path)
    try:
        addresses = up(settings)
        assert set(read_state(settings)) == {BROKER}
        assert addresses[REDIS] == "redis://127.0.0.1:1/0"
        assert resolve(settings).kafka_bootstrap == addresses[BROKER]
    finally:
        down(settings)


def test_down_stops_everything(local: Settings) -> None:
    up(local)
    pids = [proc.pid for proc in read_state(local).values()]
    assert sorted(down(local)) == [BROKER, REDIS]
    assert all(_gone(pid, 0.5) for pid in pids)
    assert not local.state_file.exists()
    assert down(local) == []  # twice is harmless


def test_valkey_keeps_data_across_restart(local: Settings) -> None:
    url = up(local)[REDIS]
    client = redis.Redis.from_url(url)
    client.set("bf:test:kept", "yes")
    client.close()
    down(local)

    url = up(local)[REDIS]
    client = redis.Redis.from_url(url)
    assert client.get("bf:test:kept") == b"yes"
    client.close()


def test_start_error_names_the_log(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServiceStartError) as error:
            start_redis(tmp_path, port=port, timeout=10)
    assert str(tmp_path / "logs" / "valkey.log") in str(error.value)


def test_embedded_services_stop_at_exit(tmp_path: Path) -> None:
    with embedded_services(tmp_path) as (bootstrap, url):
        assert redis.Redis.from_url(url).ping()
        port = int(bootstrap.rsplit(":", 1)[1])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def _write_events(events_dir: Path) -> None:
    """A small offline store: 2 dates, 3 files, 6 rows (plus an in-flight temp file)."""
    for date, files in {"2010-12-01": [3, 1], "2010-12-02": [2]}.items():
        part = events_dir / f"date={date}"
        part.mkdir(parents=True)
        for i, rows in enumerate(files):
            table = pa.table({"event_id": [f"{date}-{i}-{r}" for r in range(rows)]})
            pq.write_table(table, part / f"part-{i}.parquet")
    (events_dir / "date=2010-12-02" / ".part-9.parquet.tmp").write_bytes(b"half written")


def test_status_on_running_services(local: Settings) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    addresses = up(local)
    settings = resolve(local)
    _write_events(settings.offline_dir / "events")

    admin = AdminClient({"bootstrap.servers": addresses[BROKER]})
    for future in admin.create_topics([NewTopic(settings.topic, 2, 1)]).values():
        future.result(10)
    producer = Producer({"bootstrap.servers": addresses[BROKER]})
    for i in range(5):
        producer.produce(settings.topic, value=b"x", partition=0)
    assert producer.flush(10) == 0

    client = redis.Redis.from_url(addresses[REDIS])
    RedisOnlineStore(client, settings.prefix).write_progress("", {
        f"offset:{settings.topic}:0": 5, "events": 5,
        "event_time": "2010-12-02T10:00:00", "clock": 1_291_284_000,
        "updated_at": "2026-01-01T00:00:00+00:00",
    })
    for key in (f"{settings.prefix}:customer:1", f"{settings.prefix}:customer:2",
                f"{settings.prefix}:basket:9", "other:customer:1"):
        client.hset(key, "v", 1)
    client.close()

    status = collect_status(settings)
    json.dumps(status)  # printable with --json
    for name in (BROKER, REDIS):
        assert status["services"][name]["alive"] is True
        assert status["services"][name]["embedded"] is True
        assert status["services"][name]["pid"] == read_state(local)[name].pid
    assert status["offline"] | {"dir": None} == {
        "dir": None, "rows": 6, "files": 3, "partitions": 2, "first_date": "2010-12-01",
        "last_date": "2010-12-02", "unreadable": [], "error": None,
    }
    assert status["online"]["keys"] == {"basket": 1, "customer": 2, "flow": 1}
    assert status["flow"]["events"] == 5
    assert status["flow"]["clock"] == 1_291_284_000
    assert status["flow"]["serve"]["clock"] is None

    topic = status["topics"][settings.topic]
    assert topic["exists"] is True and topic["partitions"] == 2
    first = topic["per_partition"][0]
    assert first["next_offset"] == 5
    assert first["trusted"] is False and EMBEDDED_LAG_NOTE in first["note"]
    assert first["lag"] is None and first["high_watermark"] is None  # Tansu's are wrong
    assert topic["lag_known"] is False
    assert status["topics"][settings.dead_topic]["exists"] is False


def test_status_with_services_down(local: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    status = collect_status(local)  # nothing started, nothing configured
    for name in (BROKER, REDIS):
        assert status["services"][name]["alive"] is False
        assert "basketflow up" in status["services"][name]["error"]
    assert status["online"]["alive"] is False

    up(local)
    os.kill(read_state(local)[BROKER].pid, signal.SIGKILL)  # a stale state file
    assert _gone(read_state(local)[BROKER].pid)
    stale = collect_status(local)
    assert stale["services"][BROKER]["alive"] is False
    assert "stale" in stale["services"][BROKER]["error"]
    assert stale["services"][REDIS]["alive"] is True
    assert stale["topics"][local.topic]["error"]

    with socket.socket() as sock:  # nothing listens on a port we just released
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    monkeypatch.setenv(ENV_KAFKA, f"127.0.0.1:{dead_port}")
    monkeypatch.setenv(ENV_REDIS, f"redis://127.0.0.1:{dead_port}/0")
    external = collect_status(load_settings(local.data_dir))
    for name in (BROKER, REDIS):
        assert external["services"][name]["mode"] == "external"
        assert external["services"][name]["alive"] is False
        assert external["services"][name]["error"]


def test_session_fixtures_answer(settings: Settings, broker: str, redis_url: str) -> None:
    """The conftest servers are up and ``settings`` points at them with names of its own."""
    from basketflow.app.services import check_broker, check_redis

    assert (settings.kafka_bootstrap, settings.redis_url) == (broker, redis_url)
    assert settings.topic.startswith("t-") and settings.prefix == settings.topic
    assert settings.dead_topic != settings.topic
    check_broker(broker)
    check_redis(redis_url)
