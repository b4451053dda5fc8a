"""States pickled in idle moments (basketflow.flows.idle_work) are snapshotted as they are at the
snapshot, never as they were when pickled early."""

from __future__ import annotations

import pickle
import time

from basketflow.flows import idle_work
from basketflow.flows.pickled_state import _PickledStateLogic, snapshots_dropped


def appender(state: list[int] | None, value: int) -> tuple[list[int], list[int]]:
    """A mapper that keeps every value seen, in place."""
    state = state if state is not None else []
    state.append(value)
    return state, [len(state)]


def test_a_state_changed_after_its_idle_pickling_is_pickled_again() -> None:
    idle = idle_work.this_thread()
    idle.clear()
    logic = _PickledStateLogic(appender, None)
    logic.on_item(1)
    assert idle.run(budget=1.0, now=time.monotonic() + idle_work.QUIET_SECONDS) == 1
    early = logic.pickled
    assert early is not None and logic.snapshot() is early  # taken as made in idle time
    logic.on_item(2)
    assert pickle.loads(logic.snapshot()) == [1, 2]
    idle.clear()


def test_a_state_still_changing_is_not_pickled_early() -> None:
    idle = idle_work.this_thread()
    idle.clear()
    logic = _PickledStateLogic(appender, None)
    logic.on_item(1)
    assert idle.run(budget=1.0) == 0 and logic.pickled is None
    assert pickle.loads(logic.snapshot()) == [1]
    idle.clear()


def test_a_flow_that_drops_its_snapshots_pickles_no_state() -> None:
    idle = idle_work.this_thread()
    idle.clear()
    with snapshots_dropped(True):
        logic = _PickledStateLogic(appender, None)
        assert logic.on_item(1)[0] == [1] and logic.on_item(2)[0] == [2]
        assert idle.run(budget=1.0, now=time.monotonic() + idle_work.QUIET_SECONDS) == 0
        assert logic.snapshot() == b"" and logic.state == [1, 2]
    kept = _PickledStateLogic(appender, None)  # outside the block: snapshots are kept
    kept.on_item(3)
    assert pickle.loads(kept.snapshot()) == [3]
    idle.clear()
