"""Crash recovery: a flow killed with SIGKILL and restarted ends exactly where an
uninterrupted run of the same topic ends.

Generated data (with lines the producer rejects) is replayed once. One uninterrupted run
of the real command is the reference; a second run of the same topic, on its own key
prefix and data directory, is killed at seeded random points after it has made progress
(watched in its progress hash) and restarted each time, until it reaches the end. What is
compared, and why the product feature log is compared by each product's final row only,
is explained in :mod:`store_contents`.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import redis
from tests.store_contents import differences, store_contents
from tests.test_end_to_end import BAD_LINES, basketflow, with_bad_lines

from basketflow.app.flow_processes import child_env
from basketflow.app.services import start_redis, stop_service
from basketflow.app.status import consumed as flow_consumed
from basketflow.config import Settings
from basketflow.flows.live import PARTS
from basketflow.producers.synthetic import write_csv
from basketflow.sinks.redis_retry import read_health

ROWS = 40_000
SNAPSHOT = "0.2"


def cli_env(settings: Settings) -> dict[str, str]:
    """The environment that points the real command at the test's servers and names."""
    return child_env(settings)


def start_run(settings: Settings, *args: str) -> subprocess.Popen[bytes]:
    """`basketflow run --stop-at-end` with short snapshots and small batches (so that the
    progress hash moves in small steps to kill at), in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "basketflow.cli", "run", "--stop-at-end",
         "--snapshot-interval", SNAPSHOT, "--max-batch", "1000", "--json", *args],
        env=cli_env(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def consumed(settings: Settings) -> int:
    """Messages of the events topic consumed by the flow's slower part."""
    return flow_consumed(settings.redis_url or "", settings.prefix, settings.topic)


def kill_when(proc: subprocess.Popen[bytes], settings: Settings, at_least: int,
              then: float) -> int | None:
    """SIGKILL the flow ``then`` seconds after its progress hash shows ``at_least``
    messages consumed; return how many it showed, or None when the flow ended first."""
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        seen = consumed(settings)
        if seen >= at_least:
            time.sleep(then)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return seen
        time.sleep(0.01)
    assert proc.poll() is not None, "the flow made no progress within 120 s"
    return None


def finish(proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    """Wait for a flow run to end by itself, successfully; return its figures."""
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode(errors="replace")[-3000:]
    return json.loads(out)


def isolated(settings: Settings, name: str) -> Settings:
    """The same topic and servers, with a key prefix and data directory of its own."""
    return replace(settings, data_dir=settings.data_dir.parent / name,
                   prefix=f"{settings.prefix}-{name}")


@pytest.fixture
def replayed(settings: Settings, tmp_path: Path) -> Settings:
    """Generated data with rejected lines, replayed once into the test's topic."""
    generated = tmp_path / "generated.csv"
    write_csv(generated, rows=ROWS, seed=23, start=date(2010, 12, 1), end=date(2011, 3, 31))
    path = tmp_path / "with_bad.csv"
    with_bad_lines(generated, path)
    sent = basketflow(settings, "replay", str(path))
    assert (sent["sent"], sent["rejected"]) == (ROWS, len(BAD_LINES))
    return settings


def contents(settings: Settings) -> dict[str, Any]:
    """The stores of a run, with Redis keys made comparable across prefixes."""
    got = store_contents(settings.redis_url or "", settings.prefix, settings.offline_dir)
    got["redis"] = {k.removeprefix(settings.prefix): v for k, v in got["redis"].items()}
    return got


@pytest.mark.slow
def test_two_uninterrupted_runs_are_identical(replayed: Settings) -> None:
    """What the recovery test compares is deterministic to begin with."""
    first, second = isolated(replayed, "first"), isolated(replayed, "second")
    finish(start_run(first))
    finish(start_run(second))
    want = contents(first)
    assert len(want["events"]) == ROWS and len(want["dead"]) == len(BAD_LINES)
    diffs = differences(contents(second), want)
    assert not diffs, "\n".join(diffs)


def uninterrupted(settings: Settings) -> dict[str, Any]:
    """The stores of an uninterrupted run of the topic, in a data directory of its own."""
    ref = isolated(settings, "reference")
    finish(start_run(ref))
    return contents(ref)


@pytest.mark.slow
def test_killed_and_restarted_flow_ends_identical(replayed: Settings) -> None:
    want = uninterrupted(replayed)

    crashed = isolated(replayed, "crashed")
    rng = random.Random(6)
    points = sorted(rng.sample(range(ROWS // 10, ROWS * 9 // 10), 4))
    kills: list[int] = []
    for point in points:
        seen = kill_when(start_run(crashed), crashed, max(point, kills[-1] + 1 if kills else 0),
                         then=rng.uniform(0, 0.5))
        if seen is None:
            break
        kills.append(seen)
    assert len(kills) >= 3, f"only {len(kills)} kills before the flow ended: {kills}"
    for part in PARTS:
        assert any((crashed.recovery_dir / crashed.topic / part).glob("part-*.sqlite3"))
    finish(start_run(crashed))

    print("KILLS", kills)
    diffs = differences(contents(crashed), want)
    assert not diffs, f"killed at {kills}:\n" + "\n".join(diffs)


@pytest.mark.slow
def test_redis_outage_mid_run_ends_identical(replayed: Settings, tmp_path: Path) -> None:
    """A dedicated Valkey stopped for a few seconds mid-run and started again on the same
    port with its append-only file: the flow waits, catches up, and ends identical."""
    ref = isolated(replayed, "reference")
    finish(start_run(ref))
    want = contents(ref)

    valkey = start_redis(tmp_path / "own-valkey")
    try:
        outage = replace(isolated(replayed, "outage"), redis_url=valkey.address)
        proc = start_run(outage)
        while consumed(outage) < ROWS // 4:
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
            time.sleep(0.01)
        stop_service(valkey)
        time.sleep(3)
        health = read_health(outage.data_dir)
        assert health is not None and health["redis"] == "down", health
        assert proc.poll() is None, "the flow must wait for Redis, not end"
        valkey = start_redis(tmp_path / "own-valkey", port=valkey.port)
        finish(proc)
        health = read_health(outage.data_dir)
        assert health is not None and health["redis"] == "up"
        assert float(health["last_outage_seconds"]) >= 2.5  # type: ignore[arg-type]
        diffs = differences(contents(outage), want)
        assert not diffs, "\n".join(diffs)
    finally:
        stop_service(valkey)


def _pings_answered(client: redis.Redis) -> int:
    """How many PING commands the server has answered (the watcher itself sends none)."""
    stats = client.info("commandstats").get("cmdstat_ping")
    return int(stats["calls"]) if stats else 0


def test_redis_down_while_the_sinks_are_built_ends_identical(replayed: Settings,
                                                             tmp_path: Path) -> None:
    """Redis answers the run's check at its start and is gone (SIGKILL) before Bytewax
    builds the Redis sinks: the sinks must wait for it like every write does, not fail
    with `RedisUnavailable ... error init StatefulSink`. The check is the flow's only
    connection before its first write (a run in one process checks once), so killing
    Valkey as soon as the server has answered that check's PING hits that moment every
    time. (Killing it at the check's connection, before its PING, is a Redis down at the
    start: that run stops with an `Error:` line, as it should.)"""
    ref = isolated(replayed, "reference")
    finish(start_run(ref, "--one-process"))
    want = contents(ref)

    valkey = start_redis(tmp_path / "own-valkey")
    watch = redis.Redis.from_url(valkey.address)
    try:
        before = _pings_answered(watch)  # the start's own check
        outage = replace(isolated(replayed, "at-build"), redis_url=valkey.address)
        proc = start_run(outage, "--one-process")
        deadline = time.monotonic() + 60
        while _pings_answered(watch) <= before:
            assert proc.poll() is None and time.monotonic() < deadline, \
                proc.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
            time.sleep(0.001)
        watch.close()
        os.kill(valkey.pid, signal.SIGKILL)
        stop_service(valkey)  # reaps it
        time.sleep(3)
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
        health = read_health(outage.data_dir)
        assert health is not None and health["redis"] == "down", health
        valkey = start_redis(tmp_path / "own-valkey", port=valkey.port)
        finish(proc)
        diffs = differences(contents(outage), want)
        assert not diffs, "\n".join(diffs)
    finally:
        watch.close()
        stop_service(valkey)
