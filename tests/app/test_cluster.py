"""`basketflow run --processes N`: each part of the flow as a Bytewax cluster over the
topic's partitions, or (`--whole-flow`) the whole flow as one.

A cluster of the whole flow of 3 processes and a cluster per part of 2 + 2 processes on
loopback end with the same stores as one process (events, dead letters, feature logs,
every Redis key; :mod:`tests.store_contents`); clusters rescaled between runs and killed
on the way, by a SIGKILL of the command or of one of its processes, end the same too (the
whole flow: 2, then 3, then one process; per part: 2 + 2, then 2 + 1, then a process a
part); a killed process is named in the run's one `Error:` line. The locks let a
cluster's processes share a data directory and refuse anything else beside them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import redis

from basketflow.app.run_lock import RunLocked, run_lock
from basketflow.app.status import consumed as flow_consumed
from basketflow.config import ENV_REGISTER_EVERY, Settings
from basketflow.models.registry import Registry, registry_dir
from basketflow.producers.synthetic import write_csv
from tests.app.test_flow_processes import gone, parts_contents
from tests.flows.test_recovery import cli_env, contents, finish, isolated
from tests.store_contents import differences
from tests.test_end_to_end import BAD_LINES, basketflow, with_bad_lines

ROWS = 15_000


@pytest.fixture
def topic(settings: Settings, tmp_path: Path) -> Settings:
    """A small generated stream with rejected lines, replayed once into the test's topic
    (its 3 partitions: every process of a cluster of 3 reads one)."""
    generated, path = tmp_path / "generated.csv", tmp_path / "with_bad.csv"
    write_csv(generated, rows=ROWS, seed=31, start=date(2010, 12, 1), end=date(2011, 2, 28))
    with_bad_lines(generated, path)
    sent = basketflow(settings, "replay", str(path))
    assert (sent["sent"], sent["rejected"]) == (ROWS, len(BAD_LINES))
    return settings


def start(settings: Settings, *args: str) -> subprocess.Popen[bytes]:
    """`basketflow run --stop-at-end` with short snapshots and small batches, so a kill
    falls between many epochs."""
    return subprocess.Popen(
        [sys.executable, "-m", "basketflow.cli", "run", "--stop-at-end", "--snapshot-interval",
         "0.2", "--max-batch", "500", "--json", *args],
        env=cli_env(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def one_process(settings: Settings) -> dict[str, Any]:
    """The stores of an uninterrupted run in one process, the reference."""
    ref = isolated(settings, "one")
    assert finish(start(ref, "--one-process"))["events"] == ROWS
    return contents(ref)


def consumed(settings: Settings, part: str = "") -> int:
    """Messages of the topic the flow (in one process or a cluster) has consumed, or its
    serve part (``part`` "serve") alone (asked again when the loaded machine's Redis is
    slower than the status check's timeout)."""
    for _ in range(20):
        try:
            return flow_consumed(settings.redis_url or "", settings.prefix, settings.topic,
                                 (part,))
        except redis.RedisError:
            time.sleep(0.1)
    raise AssertionError("Redis did not answer the progress check 20 times in a row")


def wait_for_more(proc: subprocess.Popen[bytes], settings: Settings, than: int,
                  part: str = "") -> None:
    """Wait until the running flow (``part`` "serve": its serve part) has consumed more
    than ``than`` messages."""
    deadline = time.monotonic() + 180  # a loaded machine starts processes slowly
    while consumed(settings, part) <= than:
        assert proc.poll() is None and time.monotonic() < deadline, \
            proc.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
        time.sleep(0.01)


def members(proc: subprocess.Popen[bytes], count: int) -> list[int]:
    """The pids of a cluster's processes, once all have started."""
    deadline = time.monotonic() + 180  # a loaded machine starts processes slowly
    while True:
        pids = [int(c) for c in Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
                .read_text().split()]
        if len(pids) == count:
            return pids
        assert proc.poll() is None and time.monotonic() < deadline, \
            proc.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
        time.sleep(0.02)


@pytest.mark.slow
def test_clusters_of_the_flow_and_of_each_part_end_as_one_process(topic: Settings) -> None:
    want = one_process(topic)
    assert len(want["events"]) == ROWS and len(want["dead"]) == len(BAD_LINES)
    for args, clusters in ((["--processes", "3", "--whole-flow"], {"": 3}),
                           (["--processes", "4"], {"serve": 2, "store": 2})):
        cluster = isolated(topic, "-".join(args))
        figures = finish(start(cluster, *args))
        assert figures["events"] == ROWS and figures["dead_letters"] == len(BAD_LINES)
        by_cluster = figures["parts"] if "" not in clusters else {"": figures}
        assert set(by_cluster) == set(clusters), figures
        for part, count in clusters.items():
            processes = by_cluster[part]["parts"]
            prefix = f"{part} " if part else ""
            assert set(processes) == {f"{prefix}process {i}" for i in range(count)}
        # every process that stores events read a share of the partitions, none all
        stored = [p["events"] for cluster, figures_of in by_cluster.items()
                  if cluster != "serve" for p in figures_of["parts"].values()]
        assert sum(stored) == ROWS and all(0 < n < ROWS for n in stored), figures
        diffs = differences(parts_contents(cluster, apart="" not in clusters), want)
        assert not diffs, f"{args}:\n" + "\n".join(diffs)


def killed_alone(proc: subprocess.Popen[bytes], pid: int) -> str:
    """Kill ``pid``, one of the run's processes; the run's one `Error:` line (the others
    stopped, no traceback, no panic)."""
    os.kill(pid, signal.SIGKILL)
    _out, err = proc.communicate(timeout=180)
    errors = [line for line in err.decode().splitlines() if line.startswith("Error:")]
    assert proc.returncode == 1 and len(errors) == 1, err.decode()[-3000:]
    assert "Traceback" not in err.decode() and "panicked" not in err.decode()
    return errors[0]


def killed_whole(proc: subprocess.Popen[bytes], pids: list[int], settings: Settings,
                 part: str = "") -> int:
    """SIGKILL the command once its flow (``part`` "serve": its serve part too) consumed a
    quarter of the topic (its processes die with it); what the flow had consumed."""
    wait_for_more(proc, settings, ROWS // 4)
    wait_for_more(proc, settings, ROWS // 4, part)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert gone(pids), "a process outlived `basketflow run`"
    first = consumed(settings)
    assert first < ROWS, "the run ended before the kill"
    return first


@pytest.mark.slow
def test_rescaled_and_killed_cluster_ends_as_one_process(topic: Settings) -> None:
    """2 processes killed whole (SIGKILL of the command: its processes die with it), then
    3 processes of which one is killed (the others stop, the run names it), then the rest
    in one process: nothing lost or doubled."""
    want = one_process(topic)
    moving = isolated(topic, "moving")
    proc = start(moving, "--processes", "2", "--whole-flow")
    first = killed_whole(proc, members(proc, 2), moving)

    proc = start(moving, "--processes", "3", "--whole-flow")
    pids = members(proc, 3)
    wait_for_more(proc, moving, first)
    assert killed_alone(proc, pids[1]) == (
        "Error: process 1 of the flow was killed by SIGKILL, and the other processes "
        "stopped; run the same command again: the cluster resumes from its last snapshot")

    finish(start(moving, "--one-process"))
    diffs = differences(contents(moving), want)
    assert not diffs, "\n".join(diffs)


def member(pids: list[int], *args: str) -> int:
    """The one of ``pids`` whose command line holds ``args`` in a row."""
    def holds(pid: int) -> bool:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        return any(words[i:i + len(args)] == list(args) for i in range(len(words)))
    found = [pid for pid in pids if holds(pid)]
    assert len(found) == 1, (args, found)
    return found[0]


@pytest.mark.slow
def test_rescaled_and_killed_part_clusters_end_as_one_process(topic: Settings) -> None:
    """A cluster per part: 2 + 2 processes killed whole, then 2 + 1 of which a serve
    process is killed (every other process stops, the run names it), then a process a
    part (the default): nothing lost or doubled."""
    want = one_process(topic)
    moving = isolated(topic, "moving")
    proc = start(moving, "--processes", "4")
    killed_whole(proc, members(proc, 4), moving, "serve")

    proc = start(moving, "--processes", "3")
    pids = members(proc, 3)
    wait_for_more(proc, moving, consumed(moving, "serve"), "serve")  # the serve cluster runs
    assert killed_alone(proc, member(pids, "--part", "serve", "--process-id", "1")) == (
        "Error: process 1 of the serve part of the flow was killed by SIGKILL, and the "
        "other processes stopped; run the same command again: the cluster resumes from "
        "its last snapshot")

    finish(start(moving))
    diffs = differences(parts_contents(moving), want)
    assert not diffs, "\n".join(diffs)


@pytest.mark.slow
def test_a_cluster_across_hosts_ends_as_one_process(topic: Settings) -> None:
    """Two processes started by hand (`--process-id`, `--addresses`), each with a data
    directory of its own, as on two hosts, and one offline store: process 0 keeps the
    recovery state, process 1 none, and the stores end as one process's."""
    from dataclasses import replace

    from basketflow.app.flow_processes import loopback_addresses
    want = one_process(topic)
    hosts = [replace(isolated(topic, f"host-{i}"), prefix=f"{topic.prefix}-hosts",
                     offline_store=topic.data_dir.parent / "shared-offline") for i in (0, 1)]
    addresses = ",".join(loopback_addresses(2))
    procs = [start(host, "--process-id", str(i), "--addresses", addresses)
             for i, host in enumerate(hosts)]
    events = [finish(proc)["events"] for proc in procs]
    assert sum(events) == ROWS and all(events), events
    assert any((hosts[0].recovery_dir / topic.topic).glob("part-*.sqlite3"))
    assert not any((hosts[1].recovery_dir / topic.topic).glob("part-*.sqlite3"))
    diffs = differences(contents(hosts[0]), want)
    assert not diffs, "\n".join(diffs)


def test_a_cluster_shares_its_data_directory_and_nothing_else(tmp_path: Path) -> None:
    with run_lock(tmp_path, "tx", ("serve", "store"), process_id=0):
        with run_lock(tmp_path, "tx", ("serve", "store"), process_id=1):
            for other in ({"process_id": 1}, {}):
                with pytest.raises(RunLocked), run_lock(tmp_path, "tx", ("serve", "store"),
                                                        **other):
                    pass
    with run_lock(tmp_path, "tx", ("serve", "store")):
        with pytest.raises(RunLocked), run_lock(tmp_path, "tx", ("serve",), process_id=2):
            pass
    # a cluster per part: process 0 of each part beside the other's, not twice
    with run_lock(tmp_path, "tx", ("serve",), process_id=0), \
            run_lock(tmp_path, "tx", ("store",), process_id=0):
        with pytest.raises(RunLocked), run_lock(tmp_path, "tx", ("store",), process_id=0):
            pass


@pytest.mark.parametrize("args, says", [
    (["--processes", "2", "--one-process"], "give it or --processes"),
    (["--whole-flow"], "give the count"),
    (["--processes", "2", "--whole-flow", "--part", "serve"], "give one of them"),
    (["--process-id", "0"], "--process-id and --addresses go together"),
    (["--process-id", "2", "--addresses", "a:1,b:1"], "--process-id 2 is not in --addresses"),
    (["--process-id", "0", "--addresses", "a,b:1"], "give HOST:PORT,HOST:PORT"),
    (["--processes", "2", "--process-id", "0", "--addresses", "a:1"], "give one of them"),
])
def test_cluster_options_are_checked_first(args: list[str], says: str, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "basketflow.cli", "--data-dir",
                           str(tmp_path), "run", *args], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and says in done.stderr, done.stderr


@pytest.mark.slow
def test_a_cluster_scores_what_one_process_scores(settings: Settings, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Learn in one place, predict everywhere: each of a cluster's processes predicts
    for the customers whose features it folds, with the champion it loads from the
    registry, so with the same published versions (a model trained up to April; the
    runs learn the baskets after it but publish nothing) two processes score every
    basket update exactly as one process does, and none twice, though their learner
    takes the baskets in another order."""
    import shutil

    import pandas as pd

    from tests.labelled_store import labelled
    source = labelled(settings, tmp_path)
    trained = basketflow(settings, "models", "train", "--until", "2011-04-30")
    assert trained["aliases"] == ["champion"]
    monkeypatch.setenv(ENV_REGISTER_EVERY, "1000000")  # the runs' processes inherit it
    assert basketflow(settings, "replay", str(source))["sent"] > 0
    logs = {}
    for name, args in (("one", ["--one-process"]), ("two", ["--processes", "2", "--whole-flow"])):
        run = isolated(settings, name)
        shutil.copytree(settings.data_dir, run.data_dir)
        figures = finish(start(run, *args))
        logs[name] = pd.read_parquet(run.offline_dir / "scores").drop(columns=["date"])
        if name == "two":
            assert all(p["events"] for p in figures["parts"].values()), figures
    keys = ["entity_id", "ts", "seq"]
    assert not logs["one"].duplicated(keys).any() and not logs["two"].duplicated(keys).any()
    assert set(logs["one"]["model_version"]) == {trained["model"]}
    # the rows in effect: per customer and event time the one after most events (where
    # the polls split an invoice differs between the runs, see tests/store_contents.py)
    one, two = (log.sort_values("seq").groupby(["entity_id", "ts"]).last()
                for log in (logs["one"], logs["two"]))
    assert len(one) > 300
    pd.testing.assert_frame_equal(one, two.loc[one.index])
    assert len(two) == len(one)
    assert [v.id for v in Registry(registry_dir(run.data_dir)).versions()] == [trained["id"]]
