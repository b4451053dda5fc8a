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
from datetime import date
from pathlib import Path

from confluent_kafka.admin import AdminClient
from tests.test_end_to_end import basketflow

from basketflow.app.flow_processes import child_env
from basketflow.config import Settings
from basketflow.flows.kafka_batches import TOPIC_IDS_FILE
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
