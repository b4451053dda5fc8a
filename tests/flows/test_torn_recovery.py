"""A torn recovery write: after a ``kill -9``, half of one recovery partition's SQLite
write-ahead log is cut off, as a power loss with unsynced writes leaves it. SQLite then
opens the partition at an older state without a word; the partitions no longer agree on
where the flow resumes, and a resumed run would end with wrong states. The next run
stops with one ``Error:`` line naming the partition and the way out, and ``check``
reports it; after ``check --repair`` the run rebuilds its state from the topic and ends
as an uninterrupted run ends.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.flows.test_recovery import (
    contents,
    finish,
    isolated,
    kill_when,
    replayed,  # noqa: F401  (the fixture these tests start from)
    start_run,
    uninterrupted,
)
from tests.flows.test_start_faults import run_command
from tests.store_contents import differences
from tests.user_errors import one_error_line

from basketflow.config import Settings
from basketflow.flows.recovery_store import FRAME_HEADER, WAL_HEADER, damage

BLOCK = 4096  # a file-system block, and SQLite's page


def tear(recovery_dir: Path) -> Path | None:
    """Cut the largest write-ahead log under ``recovery_dir`` to about half its size, at
    a file-system block boundary as a power loss cuts it (never at a frame's end), and drop
    its shared-memory index, as a restart after a power loss finds them (SQLite then
    rebuilds the index from the frames left, drops a partial frame and every frame
    after it, and opens the partition at that older state without a word); return its
    partition, or None when no log holds a frame."""
    logs = sorted(recovery_dir.rglob("part-*.sqlite3-wal"), key=lambda p: p.stat().st_size)
    if not logs or logs[-1].stat().st_size <= 32:
        return None
    wal = logs[-1]
    keep = wal.stat().st_size // 2 // BLOCK * BLOCK
    if (keep - WAL_HEADER) % (FRAME_HEADER + BLOCK) == 0:
        keep -= BLOCK
    with open(wal, "r+b") as f:
        f.truncate(keep)
    Path(f"{str(wal).removesuffix('-wal')}-shm").unlink(missing_ok=True)
    return Path(str(wal).removesuffix("-wal"))


def killed_and_torn(replayed: Settings) -> tuple[Settings, Path]:
    """A run of the topic, in a data directory of its own, killed part way and its
    recovery state torn (:func:`tear`); the run's settings and the torn partition."""
    torn_run = isolated(replayed, "torn")
    victim = None
    for at_least in (8_000, 16_000, 24_000):
        if kill_when(start_run(torn_run), torn_run, at_least, then=0.3) is None:
            break
        victim = tear(torn_run.recovery_dir / torn_run.topic)
        if victim is not None:
            break
    assert victim is not None, "no write-ahead log to tear: the run ended first"
    assert damage(victim) is not None
    return torn_run, victim


@pytest.mark.slow
def test_a_torn_recovery_write_stops_the_run(replayed: Settings) -> None:
    want = uninterrupted(replayed)
    torn_run, victim = killed_and_torn(replayed)
    for _ in range(2):  # looking at it does not hide it
        one_error_line(run_command(torn_run, "run", "--stop-at-end"),
                       str(victim), "torn", "basketflow check --repair")
    checked = run_command(torn_run, "check")
    one_error_line(checked, "basketflow check --repair")
    assert "torn" in checked.stdout, checked.stdout
    repaired = run_command(torn_run, "check", "--repair")
    assert repaired.returncode == 0, repaired.stderr
    finish(start_run(torn_run))
    assert differences(contents(torn_run), want) == []
