"""The repair of Bytewax's recovery store before a resume (:mod:`basketflow.flows.recovery_store`),
on partitions made by Bytewax itself, holding what a killed execution leaves behind."""

from __future__ import annotations

import pickle
import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, TestingSource, run_main

from basketflow.flows.recovery_store import discard_unfinished, resume_epoch


def store(tmp_path: Path, exs: list[tuple[int, int, int]], fronts: list[tuple[int, int, int]],
          commit: int, snap_epochs: list[int]) -> Path:
    """Two partitions with the given executions, frontiers, commit epoch and one snapshot
    per given epoch (all in partition 0)."""
    init_db_dir(tmp_path, 2)
    for part in sorted(tmp_path.glob("part-*.sqlite3")):
        with closing(sqlite3.connect(part)) as db, db:
            db.execute("INSERT OR REPLACE INTO commits (part_index, commit_epoch) "
                       "SELECT part_index, ? FROM parts", (commit,))
            if part.name == "part-0.sqlite3":
                db.executemany("INSERT INTO exs (ex_num, worker_count, resume_epoch) "
                               "VALUES (?, ?, ?)", exs)
                db.executemany("INSERT INTO fronts (ex_num, worker_index, worker_frontier) "
                               "VALUES (?, ?, ?)", fronts)
                db.executemany("INSERT INTO snaps (step_id, state_key, snap_epoch, ser_change) "
                               "VALUES ('s', 'k', ?, NULL)", [(e,) for e in snap_epochs])
    return tmp_path


def snap_epochs(recovery_dir: Path) -> list[int]:
    with closing(sqlite3.connect(recovery_dir / "part-0.sqlite3")) as db:
        return [e for (e,) in db.execute("SELECT snap_epoch FROM snaps ORDER BY snap_epoch")]


def test_a_fresh_store_has_nothing_to_resume(tmp_path: Path) -> None:
    assert resume_epoch(store(tmp_path, [], [], 0, [])) is None


def test_resume_from_the_last_executions_frontier(tmp_path: Path) -> None:
    """Killed while closing epoch 9: its snapshots are discarded, epoch 8's are kept,
    even though the commit of epoch 8 was not written before the kill."""
    recovery = store(tmp_path, [(0, 1, 1), (1, 1, 4)], [(0, 0, 4), (1, 0, 9)], commit=7,
                     snap_epochs=[3, 7, 8, 9])
    assert resume_epoch(recovery) == 9
    assert discard_unfinished(recovery) == 1
    assert snap_epochs(recovery) == [3, 7, 8]


def test_an_execution_killed_before_its_first_frontier_resumes_where_it_began(
        tmp_path: Path) -> None:
    recovery = store(tmp_path, [(0, 1, 1), (1, 1, 4)], [(0, 0, 4)], commit=3,
                     snap_epochs=[3, 4])
    assert resume_epoch(recovery) == 4
    discard_unfinished(recovery)
    assert snap_epochs(recovery) == [3]


def test_the_slowest_worker_sets_the_frontier(tmp_path: Path) -> None:
    recovery = store(tmp_path, [(0, 2, 1)], [(0, 0, 6), (0, 1, 5)], commit=4,
                     snap_epochs=[4, 5])
    assert resume_epoch(recovery) == 5


def count_per_key(recovery_dir: Path, items: list[int]) -> list[tuple[str, int]]:
    """Run a flow counting items per key (mod 3), one epoch per item, with recovery."""
    flow = Dataflow("count")
    keyed = op.key_on("key", op.input("in", flow, TestingSource(items)), lambda x: str(x % 3))
    out: list[tuple[str, int]] = []
    op.output("out", op.stateful_map("count", keyed, lambda n, _x: ((n or 0) + 1,) * 2),
              TestingSink(out))
    run_main(flow, epoch_interval=timedelta(0), recovery_config=RecoveryConfig(str(recovery_dir)))
    return out


def test_a_resume_after_commits_that_trail_the_frontier_keeps_the_state(tmp_path: Path) -> None:
    """Partitions commit (and compact older snapshots) one by one, behind the frontier.
    Here partition 0 has committed epoch 10, compacting keys 0 and 2 into their epoch-10
    snapshots, while partition 1 has committed only epoch 9 and still holds the source's
    epoch-9 position. Bytewax resumes from the frontier (11) with the epoch-10 snapshots:
    they must all be kept. (Discarding after the lowest commit instead deleted keys 0 and
    2's only snapshots: they restarted from nothing, after the source's position.)"""
    init_db_dir(tmp_path, 2)
    assert count_per_key(tmp_path, list(range(9)))[-3:] == [("0", 3), ("1", 3), ("2", 3)]
    assert resume_epoch(tmp_path) == 11
    with closing(sqlite3.connect(tmp_path / "part-1.sqlite3")) as db, db:
        db.execute("UPDATE commits SET commit_epoch = 9")
        db.execute("INSERT INTO snaps (step_id, state_key, snap_epoch, ser_change) "
                   "VALUES ('count.in', 'iterable', 9, ?)", (pickle.dumps(8),))
    assert discard_unfinished(tmp_path) == 0
    assert count_per_key(tmp_path, list(range(12)))[-3:] == [("0", 4), ("1", 4), ("2", 4)]
