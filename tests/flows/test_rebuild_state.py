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
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
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
from tests.producers.test_replay_messages import topic_contents
from tests.store_contents import differences
from tests.user_errors import one_error_line

from basketflow.config import Settings
from basketflow.flows.dead_letters import CONSUMER_ERROR
from basketflow.flows.kafka_batches import topic_partitions
from basketflow.flows.live import decode_batch
from basketflow.flows.rebuild import (
    CannotRebuild,
    check_ends,
    check_rebuildable,
    stored_ends,
    stored_messages,
)
from basketflow.flows.recovery_store import damage, partitions
from basketflow.offline_uri import store_location
from basketflow.schemas.events import (
    Rejection,
    Transaction,
    decode_event,
    encode_event,
    parse_row,
)
from basketflow.sinks.offline_store import (
    EVENT_COLUMNS,
    DeadLetterStore,
    ParquetEventStore,
    PlacedEvents,
)


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
    ends = stored_ends(torn_run.offline_dir, torn_run.topic)

    figures = finish(start_run(torn_run, "--rebuild-state"))
    # Each part takes the stored messages up to the first one missing in each partition
    # (one stored after it, an event of the day before late in its partition, is read
    # from the topic again); the store part's process ends the store at the topic's end.
    assert figures["parts"]["store"]["from_store"] == sum(ends.values()) > 0, (figures, ends)
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
                         (["--processes", "3"], "--processes")):
        one_error_line(run_command(empty, "run", "--rebuild-state", *args), wanted)
    # Rows of another topic of the same name in the store: two at one position.
    ParquetEventStore(empty.offline_dir).append_placed([PlacedEvents([_line(0), _line(1)],
                                                                     0, [3, 3])])
    (empty.recovery_dir / empty.topic).mkdir(parents=True)
    one_error_line(run_command(empty, "run", "--stop-at-end", "--rebuild-state"),
                   "two rows at offset 3 of partition 0", "--from-start")
    assert (empty.recovery_dir / empty.topic).is_dir()  # nothing discarded


@pytest.mark.slow
def test_rebuild_state_in_one_process_resumes_from_the_stores_end(replayed: Settings) -> None:
    """One process, no damage: a complete run's state is rebuilt from the store alone."""
    done = isolated(replayed, "done")
    finish(start_run(done, "--one-process"))
    before = contents(done)
    on_topic = topic_messages(done)
    assert stored_positions(before) == {where: msg_id for where, msg_id in on_topic.items()
                                        if msg_id is not None}
    again = finish(start_run(done, "--one-process", "--rebuild-state"))
    assert again["from_store"] == len(on_topic), json.dumps(again)  # the topic not read there
    assert differences(contents(done), before) == []


@pytest.mark.slow
def test_rebuild_state_of_a_store_without_positions_reads_the_topic_from_its_start(
        replayed: Settings) -> None:
    """A store written before positions were kept: the state is made again from the
    topic's start (it still starts at offset 0), and the store is left as it was."""
    older = isolated(replayed, "older")
    finish(start_run(older, "--one-process"))
    for path in sorted(older.offline_dir.glob("*/date=*/*.parquet")):
        table = pq.read_table(path)
        kept = [n for n in table.column_names if n not in ("kafka_partition", "kafka_offset")]
        pq.write_table(table.select(kept), path)
    before = contents(older)
    assert stored_ends(older.offline_dir, older.topic) == {}
    again = finish(start_run(older, "--one-process", "--rebuild-state"))
    assert "from_store" not in again and again["events"] == len(before["events"])
    assert differences(contents(older), before) == []


def topic_messages(settings: Settings) -> dict[tuple[int, int], str | None]:
    """Every message of the settings' topic by its position: the event id of those that
    decode (None: the flow's dead letters)."""
    assert settings.kafka_bootstrap
    count = len(topic_partitions(settings.kafka_bootstrap, settings.topic))
    found = {}
    for partition, messages in enumerate(topic_contents(settings.kafka_bootstrap,
                                                        settings.topic, count)):
        for offset, (_key, value) in enumerate(messages):
            event = decode_event(value)
            found[partition, offset] = event.event_id if isinstance(event, Transaction) else None
    return found


def stored_positions(stored: dict[str, Any]) -> dict[tuple[int, int], str]:
    """The position on the topic of every stored event (each must have one: every event
    of the run came from the topic)."""
    return {(row["kafka_partition"], row["kafka_offset"]): event_id
            for event_id, row in stored["events"].items()}


def _line(n: int) -> Transaction:
    """Line ``n`` of an invoice of 1 December 2010."""
    event = parse_row(["536365", f"8512{n}A", "HEART", str(n + 1), "12/1/2010 8:26", "2.55",
                       "17850", "United Kingdom"], f"data.csv:{n}")
    assert isinstance(event, Transaction)
    return event


def _older_file(root: Path, events: list[Transaction]) -> None:
    """``events`` in a file as a store written before positions were kept has them."""
    table = pa.Table.from_pylist([msgspec.structs.asdict(e) for e in events],
                                 schema=EVENT_COLUMNS)
    day = sorted((root / "events").glob("date=*"))[0]
    pq.write_table(table, day / "part-older.parquet")


def test_the_stored_messages_of_a_partition_end_at_its_first_missing_offset(
        tmp_path: Path) -> None:
    lines = [_line(n) for n in range(9)]
    ParquetEventStore(tmp_path).append_placed(
        [PlacedEvents(lines[:5], 0, [0, 1, 2, 4, 6]), PlacedEvents(lines[5:7], 1, [0, 1]),
         PlacedEvents([lines[7]])])
    _older_file(tmp_path, [lines[8]])  # read beside the others; no position
    bad = Rejection("not JSON: ...", "not json", source="flow")
    DeadLetterStore(tmp_path).append([
        ("tx:0:3", 1_291_191_960, bad),  # the flow's own: offset 3 of partition 0
        ("tx:0:5", 1_291_191_960, Rejection(f"{CONSUMER_ERROR}Broker: boom", "", source="flow")),
        ("tx-dead:0:7", 1_291_191_960, Rejection("bad", "x", source="producer")),
        ("other:1:3", 1_291_191_960, bad),  # another topic's: not this one's offset 3
        # Bytes that were not UTF-8, stored as text that now reads as an event.
        ("tx:1:2", 1_291_191_960, Rejection("not JSON: invalid UTF-8",
                                            encode_event(lines[8]).decode(), source="flow"))])
    assert stored_ends(tmp_path, "tx") == {0: 7, 1: 3}

    got = list(stored_messages(tmp_path, "tx", 0, 2, 7))
    assert [m.offset for m in got] == [2, 3, 4, 5, 6]
    assert [decode_event(m.value) for m in (got[0], got[2], got[4])] == [
        lines[2], lines[3], lines[4]]
    assert (got[1].value, got[1].error) == (b"not json", None)
    assert got[3].error == "Broker: boom"  # a consumer error again, named as before
    assert decode_batch(got[1:2]).dead[0][0] == "tx:0:3"  # the same dead letter's id
    again = decode_batch(list(stored_messages(tmp_path, "tx", 1, 0, 3)))
    assert (again.events, [letter[0] for letter in again.dead]) == ([lines[5], lines[6]],
                                                                     ["tx:1:2"])


def test_two_rows_at_one_position_are_refused(tmp_path: Path) -> None:
    ParquetEventStore(tmp_path).append_placed([PlacedEvents([_line(0), _line(1)], 0, [0, 0])])
    with pytest.raises(CannotRebuild, match="two rows at offset 0 of partition 0"):
        stored_ends(tmp_path, "tx")


def test_a_partition_whose_first_messages_are_gone_needs_them_stored() -> None:
    check_ends({0: 40, 1: 7}, {0: 40, 1: 3}, "tx")  # the topic holds each from the end on
    with pytest.raises(CannotRebuild, match=r"partition 1 .* starts at offset 8 .* only up to "
                                            r"offset 7.*--from-start"):
        check_ends({0: 40, 1: 7}, {0: 0, 1: 8}, "tx")
    with pytest.raises(CannotRebuild, match="holds no position on it from offset 0"):
        check_ends({}, {0: 1}, "tx")  # a store from before positions were kept
    check_ends({}, {0: 0}, "tx")  # ... is read from the topic's start


def test_a_remote_offline_store_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    remote = Settings(tmp_path, "localhost:1", "redis://localhost:1",
                      offline_store=store_location("s3://bucket/offline"))
    with pytest.raises(CannotRebuild, match="reads a local offline store, not s3://"):
        check_rebuildable(remote)
