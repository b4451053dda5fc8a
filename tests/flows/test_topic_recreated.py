"""A topic recreated under a flow's stored offsets (issue #20, item 1).

The embedded broker keeps its topics in memory: after it restarts, the flow's stored
offsets lie past the end of the new, empty topic, and events replayed into it were
skipped without a word while ``run --stop-at-end`` hung. Here the topics are deleted and
recreated with the admin client (what a restarted broker amounts to), fewer events are
replayed, and the real command must stop with one ``Error:`` line and a non-zero exit,
within a bounded time; ``--from-start`` (or ``--reset-offsets earliest``) then processes
exactly the new events.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
from confluent_kafka.admin import AdminClient
from tests.test_end_to_end import basketflow

from basketflow.app.flow_processes import child_env
from basketflow.config import Settings
from basketflow.flows.kafka_batches import TOPIC_IDS_FILE, TopicIdWatch
from basketflow.kafka import DEFAULT_PARTITIONS, ensure_topics
from basketflow.producers.synthetic import write_csv


def recreate_topics(settings: Settings) -> None:
    """Delete both topics and create them again, empty (a restarted embedded broker)."""
    assert settings.kafka_bootstrap
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    for future in admin.delete_topics([settings.topic, settings.dead_topic],
                                      operation_timeout=10).values():
        future.result(10)
    ensure_topics(settings.kafka_bootstrap,
                  {settings.topic: DEFAULT_PARTITIONS, settings.dead_topic: 1})


def run_command(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """`basketflow run --stop-at-end` with the test's servers; at most 120 s (a hang fails)."""
    return subprocess.run([sys.executable, "-m", "basketflow.cli", "run", "--stop-at-end",
                           "--snapshot-interval", "0.5", *args],
                          env=child_env(settings), capture_output=True, text=True,
                          timeout=120)


def replayed_then_recreated(settings: Settings, tmp_path: Path) -> int:
    """Replay 3,000 events and consume them; recreate the topics and replay 600 other
    events (fewer than the flow's offsets); return how many were sent the second time."""
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    write_csv(first, rows=3000, seed=3, start=date(2011, 1, 1), end=date(2011, 1, 20))
    write_csv(second, rows=600, seed=4, start=date(2011, 2, 1), end=date(2011, 2, 5))
    sent = basketflow(settings, "replay", str(first))["sent"]
    assert basketflow(settings, "run", "--stop-at-end")["events"] == sent
    recreate_topics(settings)
    return int(basketflow(settings, "replay", str(second))["sent"])


def assert_one_error(done: subprocess.CompletedProcess[str], says: str) -> None:
    """A failed run that printed one Error line containing ``says``, no traceback."""
    assert done.returncode != 0, done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, done.stderr[-3000:]
    assert says in errors[0] and "--from-start" in errors[0], errors[0]
    assert "Traceback" not in done.stderr and "panicked" not in done.stderr, done.stderr[-3000:]


def test_recreated_topic_stops_the_run_until_from_start(settings: Settings,
                                                        tmp_path: Path) -> None:
    sent = replayed_then_recreated(settings, tmp_path)
    assert_one_error(run_command(settings), "was recreated")
    # Refused again, not half-run: the state and offsets are as they were.
    assert_one_error(run_command(settings), "was recreated")
    done = run_command(settings, "--from-start", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    assert '"events": %d' % sent in done.stdout, done.stdout
    # The state now belongs to the new topic: a plain run resumes at its end.
    assert run_command(settings).returncode == 0


def test_offset_past_the_end_is_found_while_reading(settings: Settings,
                                                    tmp_path: Path) -> None:
    """Without a recorded topic id (a state made before ids were kept, or a topic that
    lost its messages to retention), each reader sees its offset past the partition's
    end and stops the flow, instead of hanging at --stop-at-end."""
    sent = replayed_then_recreated(settings, tmp_path)
    for ids in (settings.recovery_dir / settings.topic).rglob(TOPIC_IDS_FILE):
        ids.unlink()
    assert_one_error(run_command(settings), "beyond the partition's end")
    assert_one_error(run_command(settings, "--part", "store"), "beyond the partition's end")
    done = run_command(settings, "--reset-offsets", "earliest", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    assert '"events": %d' % sent in done.stdout, done.stdout


def stored_events(settings: Settings) -> int:
    """Events in the offline store."""
    return sum(pq.ParquetFile(f).metadata.num_rows
               for f in (settings.offline_dir / "events").glob("*/*.parquet"))


def test_a_topic_recreated_under_a_running_flow_stops_it(settings: Settings,
                                                          tmp_path: Path) -> None:
    """The topic is deleted and created again while a tailing flow reads it, and more
    events than the flow's offsets are replayed into it: offsets carry over, so the flow
    would read on from its old offsets and skip the new topic's first events. The run
    must stop with one Error line (against Kafka, the readers' look at the topic's id
    every few seconds; against the embedded broker, librdkafka's consumer crashes when
    its topic is deleted, which the run reports in one line), the next run must refuse
    to read on, and ``--from-start`` then has every event, none twice."""
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    write_csv(first, rows=600, seed=3, start=date(2011, 1, 1), end=date(2011, 1, 5))
    write_csv(second, rows=3000, seed=4, start=date(2011, 2, 1), end=date(2011, 2, 20))
    sent = basketflow(settings, "replay", str(first))["sent"]
    run = subprocess.Popen([sys.executable, "-m", "basketflow.cli", "run",
                            "--snapshot-interval", "0.5"], env=child_env(settings),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while stored_events(settings) < sent:  # a deleted topic takes what was not stored
            assert run.poll() is None, run.stderr.read()[-3000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the flow did not store the first events"
            time.sleep(0.1)
        recreate_topics(settings)
        more = int(basketflow(settings, "replay", str(second))["sent"])
        _, stderr = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode != 0
    assert len([line for line in stderr.splitlines() if line.startswith("Error:")]) == 1
    assert "Traceback" not in stderr and "panicked" not in stderr, stderr[-3000:]
    assert_one_error(run_command(settings), "was recreated")
    again = run_command(settings, "--from-start", "--json")
    assert again.returncode == 0, again.stderr[-3000:]
    assert stored_events(settings) == sent + more  # the first topic's, and all the new


def test_the_watch_of_a_topic_sees_its_id_change(settings: Settings) -> None:
    """What the readers look at every few seconds, against the real broker."""
    assert settings.kafka_bootstrap
    ensure_topics(settings.kafka_bootstrap, {settings.topic: DEFAULT_PARTITIONS,
                                             settings.dead_topic: 1})
    watch = TopicIdWatch(settings.kafka_bootstrap, settings.topic)
    watch._next = 0.0  # look now
    assert not watch.look()
    recreate_topics(settings)
    assert not watch.look()  # not yet time to look again
    watch._next = 0.0
    assert watch.look() and watch.look()
