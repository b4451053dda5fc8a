"""An operator that joins a stream's lists into fewer, larger ones, for a while at most.

The product step pays per product per batch (each product touched computes all its
window values, is written to Redis and logged once per batch), and a product's lines come
from every customer. A flow that keeps up with a tailed topic polls small batches, so
without joining nearly every product line would pay that alone, and the product step
would hold back the customer steps and the scores that run on the same worker. Joined for
a while (0.25 s in ``basketflow.flows.live``), a product's lines of that while are folded
together: its values are computed once, its online value and log row written once.
Bytewax's own ``collect``
restarts its timeout at every item, so a steady stream never times out; here the wait
starts with the first item.

>>> from datetime import timedelta
>>> import bytewax.operators as op
>>> from bytewax.dataflow import Dataflow
>>> from bytewax.testing import TestingSink, TestingSource, run_main
>>> flow = Dataflow("join")
>>> lists = op.input("in", flow, TestingSource([[1, 2], [3], [4, 5, 6], [7]]))
>>> out = []
>>> op.output("out", coalesce("join", lists, timedelta(seconds=5), max_items=3), TestingSink(out))
>>> run_main(flow)
>>> out
[[1, 2, 3], [4, 5, 6], [7]]
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TypeVar

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import StatefulLogic

T = TypeVar("T")

_KEY = "all"


class _CoalesceLogic(StatefulLogic[list[T], list[T], list[T]]):
    """The items joined so far, and when they must go at the latest."""

    def __init__(self, max_wait: timedelta, max_items: int, resumed: list[T] | None) -> None:
        self.max_wait = max_wait
        self.max_items = max_items
        self.items: list[T] = resumed or []
        # Items resumed from a snapshot have waited already: let them go at once.
        self.due: datetime | None = datetime.now(timezone.utc) if self.items else None

    def on_item(self, value: list[T]) -> tuple[list[list[T]], bool]:
        if not self.items:
            self.due = datetime.now(timezone.utc) + self.max_wait
        self.items.extend(value)
        if len(self.items) >= self.max_items:
            return [self.items], StatefulLogic.DISCARD
        return [], StatefulLogic.RETAIN

    def on_notify(self) -> tuple[list[list[T]], bool]:
        return ([self.items] if self.items else []), StatefulLogic.DISCARD

    def on_eof(self) -> tuple[list[list[T]], bool]:
        return self.on_notify()

    def notify_at(self) -> datetime | None:
        return self.due

    def snapshot(self) -> list[T]:
        return list(self.items)  # the items themselves are immutable


@operator
def coalesce(step_id: str, up: Stream[list[T]], max_wait: timedelta,
             max_items: int) -> Stream[list[T]]:
    """Join consecutive lists into one, emitted once it holds ``max_items`` items or its
    first item has waited ``max_wait``, and at the end of the input.

    Items keep their order. The lists waiting are in the recovery snapshot, so a crash
    loses none. Every list goes through one worker (the joining is cheap; key the output
    to spread the work after it). Items must be immutable: a snapshot copies the list,
    not the items.

    :arg step_id: Unique ID.
    :arg up: A stream of lists.
    :arg max_wait: How long the first item of a joined list may wait for more.
    :arg max_items: Emit as soon as the joined list holds this many items.
    :returns: A stream of the joined lists.
    """
    keyed = op.key_on("key", up, lambda _items: _KEY)
    joined = op.stateful("join", keyed, lambda resumed: _CoalesceLogic(
        max_wait, max_items, resumed))
    return op.key_rm("unkey", joined)
