"""The offline store's layout and its readers: partition names round-trip, only finished
files are listed, and what the writers store is what the readers find."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pyarrow.parquet as pq
from hypothesis import given
from hypothesis import strategies as st

from basketflow.schemas.records import LateEvent, LogRow, Score, ScoreRow
from basketflow.sinks.offline_layout import (
    day_of,
    dead_letters_dir,
    event_days,
    event_files,
    events_dir,
    feature_log_days,
    feature_log_dir,
    feature_log_files,
    feature_log_pattern,
    files_by_day,
    files_of,
    late_events_dir,
    partition_day,
    partition_name,
    scores_dir,
)
from basketflow.sinks.offline_store import FeatureLog, LateEventLog, ScoreLog

DEC_1 = 1_291_191_960  # 2010-12-01T08:26:00Z


@given(st.dates(min_value=date(1970, 1, 1), max_value=date(9999, 12, 31)))
def test_a_day_partition_name_round_trips(day: date) -> None:
    assert partition_day(partition_name(day)) == day
    assert partition_name(day) == partition_name(day.isoformat())


@given(st.integers(min_value=0, max_value=253_402_300_799))
def test_an_event_time_lands_in_the_partition_of_its_utc_day(ts: int) -> None:
    day = partition_day(partition_name(day_of(ts)))
    assert day is not None and day == date(1970, 1, 1) + timedelta(days=ts // 86_400)


def test_names_that_are_not_day_partitions_are_none() -> None:
    for name in ("date=", "date=2010-13-01", "day=2010-12-01", "2010-12-01", "date=x"):
        assert partition_day(name) is None


def test_every_log_has_its_folder(tmp_path: Path) -> None:
    assert [p.relative_to(tmp_path).as_posix() for p in (
        events_dir(tmp_path), dead_letters_dir(tmp_path), late_events_dir(tmp_path),
        scores_dir(tmp_path), feature_log_dir(tmp_path, "basket"))] == [
        "events", "dead", "late", "scores", "features/basket"]
    assert feature_log_pattern("basket") == "features/basket/date=YYYY-MM-DD/*.parquet"


def test_only_finished_files_of_day_partitions_are_listed(tmp_path: Path) -> None:
    events = events_dir(tmp_path)
    for name in ("date=2010-12-02/part-b.parquet", "date=2010-12-02/part-a.parquet",
                 "date=2010-12-01/part-c.parquet", "date=2010-12-01/.part-d.parquet",
                 "date=2010-12-01/_part-e.parquet", "date=2010-12-01/.part-f.parquet.tmp",
                 "date=2010-12-03/.part-g.parquet", "date=soon/part-h.parquet",
                 "notes/part-i.parquet"):
        (events / name).parent.mkdir(parents=True, exist_ok=True)
        (events / name).write_bytes(b"")
    (events / "date=2010-12-04").mkdir()
    (events / "date=2010-12-05.parquet").write_bytes(b"")  # a file, not a partition
    by_day = files_by_day(events)
    assert {d: [p.name for p in files] for d, files in by_day.items()} == {
        date(2010, 12, 1): ["part-c.parquet"],
        date(2010, 12, 2): ["part-a.parquet", "part-b.parquet"]}
    assert event_days(tmp_path) == [date(2010, 12, 1), date(2010, 12, 2)]
    assert [p.name for p in event_files(tmp_path)] == [
        "part-c.parquet", "part-a.parquet", "part-b.parquet"]
    assert [p.name for p in event_files(tmp_path, [date(2010, 12, 2), date(2011, 1, 1)])] == [
        "part-a.parquet", "part-b.parquet"]
    assert [p.name for p in files_of(by_day, until=date(2010, 12, 1))] == ["part-c.parquet"]
    assert files_by_day(tmp_path / "nothing") == {} and event_files(tmp_path / "none") == []


def test_what_the_writers_store_the_readers_find(tmp_path: Path) -> None:
    log = FeatureLog(tmp_path, "customer")
    empty = dict.fromkeys(log.names)
    assert log.append([LogRow("customer", "17850", DEC_1, 1, empty),
                       LogRow("customer", "17850", DEC_1 + 86_400, 2, empty)]) == 2
    assert feature_log_days(tmp_path, "customer") == [date(2010, 12, 1), date(2010, 12, 2)]
    assert len(feature_log_files(tmp_path, "customer")) == 2
    assert [p.parent.name for p in feature_log_files(tmp_path, "customer",
                                                     until=date(2010, 12, 1))] == [
        "date=2010-12-01"]
    assert feature_log_files(tmp_path, "basket") == []
    score = ScoreRow("17850", "536365", DEC_1, 1, Score("gifts", {"gifts": 1.0}, "m", DEC_1))
    assert ScoreLog(tmp_path).append([score, score]) == 1
    stored = pq.read_table(files_of(files_by_day(scores_dir(tmp_path)))[0]).to_pylist()
    assert [(r["entity_id"], int(r["ts"].timestamp()), r["seq"], r["invoice"], r["category"],
             r["probabilities"], r["model_version"]) for r in stored] == [
        ("17850", DEC_1, 1, "536365", "gifts", '{"gifts": 1.0}', "m")]
    assert LateEventLog(tmp_path).append([LateEvent("f:1", "17850", DEC_1, DEC_1 + 9000)]) == 1
    for directory in (scores_dir(tmp_path), late_events_dir(tmp_path)):
        assert list(files_by_day(directory)) == [date(2010, 12, 1)]
