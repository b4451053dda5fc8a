"""The joining operator and the sinks' writer thread, each on its own."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.inputs import DynamicSource, StatelessSourcePartition
from bytewax.testing import TestingSink, run_main

from basketflow.flows.coalesce import coalesce
from basketflow.sinks.write_behind import BackgroundWriter


class _Paced(StatelessSourcePartition[list[int]]):
    """Emits lists, sleeping where the script says ``None``."""

    def __init__(self, script: list[list[int] | None]) -> None:
        self.script = list(script)

    def next_batch(self) -> list[list[int]]:
        if not self.script:
            raise StopIteration()
        step = self.script.pop(0)
        if step is None:
            time.sleep(0.5)
            return []
        return [step]


class _Source(DynamicSource[list[int]]):
    def __init__(self, script: list[list[int] | None]) -> None:
        self.script = script

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Paced:
        return _Paced(self.script)


def test_a_joined_list_goes_once_its_first_item_has_waited() -> None:
    """A pause longer than the wait lets the joined lists go before more arrive; the
    wait starts with the first item, not the latest."""
    flow = Dataflow("paced")
    lists = op.input("in", flow, _Source([[1], [2], None, [3, 4], None, [5]]))
    out: list[list[int]] = []
    op.output("out", coalesce("join", lists, timedelta(seconds=0.1), 100), TestingSink(out))
    run_main(flow)
    assert out == [[1, 2], [3, 4], [5]]


def test_the_writer_blocks_the_flow_while_its_queue_is_full() -> None:
    """Backpressure: while a write hangs (a Redis outage), submits past the bound wait."""
    writer = BackgroundWriter("test", max_pending=2)
    release = threading.Event()
    done: list[int] = []
    writer.submit(release.wait)  # taken by the thread at once, then hangs
    time.sleep(0.05)
    writer.submit(lambda: done.append(1))
    writer.submit(lambda: done.append(2))
    blocked = threading.Thread(target=writer.submit, args=(lambda: done.append(3),))
    blocked.start()
    blocked.join(0.2)
    assert blocked.is_alive()  # the queue is full
    release.set()
    blocked.join(5)
    writer.close()
    assert done == [1, 2, 3]


def test_a_failed_write_skips_the_writes_queued_after_it_and_is_raised_once() -> None:
    writer = BackgroundWriter("test")
    done: list[int] = []
    writer.submit(lambda: 1 / 0)
    writer.submit(lambda: done.append(1))
    with pytest.raises(ZeroDivisionError):
        writer.drain()
    writer.submit(lambda: done.append(2))
    writer.close()
    assert done == [2]
