"""``basketflow run --rebuild-state``: after a torn recovery write stops the run, the
state is made again from the offline store up to where it ends in each partition, and
the run goes on from the topic there: the stores end as an uninterrupted run's end. The
store's newest day is removed first, so that the store always ends before the topic
does (the killed run's store part may have read it all).
Bad uses get one ``Error:`` line and discard nothing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.flows.test_recovery import (
    contents,
    finish,
    isolated,
    replayed,  # noqa: F401  (the fixture these tests start from)
    start_run,
    uninterrupted,
)
from tests.flows.test_start_faults import run_command
from tests.flows.test_torn_recovery import killed_and_torn
from tests.store_contents import differences
from tests.user_errors import one_error_line

from basketflow.config import Settings
from basketflow.flows.kafka_batches import RawMessage
from basketflow.flows.rebuild import CannotRebuild, StoredMessages, check_rebuildable
from basketflow.flows.recovery_store import damage, partitions
from basketflow.offline_uri import store_location
from basketflow.schemas.events import Transaction, encode_event, parse_row


@pytest.mark.slow
def test_rebuild_state_after_a_torn_write_ends_identical(replayed: Settings) -> None:
    want = uninterrupted(replayed)

    torn_run, victim = killed_and_torn(replayed)
    one_error_line(run_command(torn_run, "run", "--stop-at-end"), str(victim), "torn",
                   "basketflow run --rebuild-state")
    newest_day = sorted((torn_run.offline_dir / "events").glob("date=*"))[-1]
    shutil.rmtree(newest_day)  # the store ends before the topic's end, wherever it was killed
    stored = len(contents(torn_run)["events"])
    assert 0 < stored < len(want["events"]), stored  # the rest comes from the topic

    figures = finish(start_run(torn_run, "--rebuild-state"))
    # Copies of stored messages only, up to the first one missing in each partition: one
    # stored after it (an event of the day before, late in its partition) is read again.
    assert 0 < figures["from_store"] <= stored, (figures, stored)
    assert all(damage(p) is None for p in partitions(victim.parent))
    assert differences(contents(torn_run), want) == []


@pytest.mark.slow
def test_rebuild_state_refuses_what_it_cannot_rebuild(replayed: Settings) -> None:
    empty = isolated(replayed, "empty")
    one_error_line(run_command(empty, "run", "--stop-at-end", "--rebuild-state"),
                   "holds no events to rebuild the state from", "check --repair")
    assert not (empty.recovery_dir / empty.topic).exists()
    for args, wanted in ((["--from-start"], "--from-start"),
                         (["--reset-offsets", "earliest"], "--reset-offsets"),
                         (["--no-recovery"], "--no-recovery"),
                         (["--processes", "2"], "--processes")):
        one_error_line(run_command(empty, "run", "--rebuild-state", *args), wanted)


@pytest.mark.slow
def test_rebuild_state_in_one_process_resumes_from_the_stores_end(replayed: Settings) -> None:
    """One process, no damage: a complete run's state is rebuilt from the store alone."""
    done = isolated(replayed, "done")
    finish(start_run(done, "--one-process"))
    before = contents(done)
    again = finish(start_run(done, "--one-process", "--rebuild-state"))
    assert again["from_store"] == len(before["events"]), json.dumps(again)
    assert differences(contents(done), before) == []


def test_a_message_is_delivered_as_its_stored_copy_or_not_at_all(tmp_path: Path) -> None:
    row = ["536365", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", "6",
           "12/1/2010 8:26", "2.55", "17850", "United Kingdom"]
    event = parse_row(row, "data.csv:1")
    assert isinstance(event, Transaction)
    stored_copy = encode_event(event)
    on_topic = RawMessage("tx", 1, 7, json.dumps(json.loads(stored_copy)).encode(), 0)
    bad = RawMessage("tx", 1, 8, b"not json", 0)
    store = StoredMessages({event.event_id: stored_copy}, frozenset({"tx:1:8"}))
    assert store.copy_of(on_topic) == stored_copy  # the store's bytes, not the topic's
    assert store.copy_of(bad) == b"not json"  # a dead letter the store holds
    assert StoredMessages({}, frozenset()).copy_of(on_topic) is None
    assert StoredMessages({}, frozenset({"tx:1:7"})).copy_of(bad) is None


def test_a_remote_offline_store_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    remote = Settings(tmp_path, "localhost:1", "redis://localhost:1",
                      offline_store=store_location("s3://bucket/offline"))
    with pytest.raises(CannotRebuild, match="reads a local offline store, not s3://"):
        check_rebuildable(remote)
