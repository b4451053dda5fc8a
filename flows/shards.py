"""Shards of the work of a backfill split over several processes.

Every process of a split backfill reads all the events and keeps one shard
(:func:`plan`): a shard of the customers (guests: invoices), or a shard of the products
together with a shard of the event days. It folds only its entities' features, writes
only their feature log rows and online values, and stores offline only the events of its
days; so the processes write disjoint rows and never wait on each other.

Customers and products go to different processes rather than both being split by entity
in every process: each view's rows of a day are then written by as few processes as
there are shards of its entity kind (no more feature-log files than with one process,
with two), and a process has no steps of the other kind at all (its flow folds only its
kind, :attr:`basketflow.flows.live.FeatureOutputs.entities`, and only a product shard
stores events). The events go with the products because the products' steps are the
lighter ones, which balances the two kinds of process best (the measured split is in
docs/PERFORMANCE.md).

An entity's shard is the CRC-32 of its id's UTF-8 bytes modulo the shard count (Python's
own ``hash`` of a string differs from process to process); a day's is its number modulo.

>>> [str(s) for s in plan(2)], [str(s) for s in plan(5)]
(['customer 0/1', 'product 0/1'], ['customer 0/3', 'customer 1/3', 'customer 2/3', 'product 0/2', 'product 1/2'])
>>> customers = plan(4)[:2]
>>> [[s.owns(c) for s in customers] for c in ("17850", "12347")]
[[False, True], [True, False]]
"""

from __future__ import annotations

from zlib import crc32

from basketflow.schemas.events import Transaction
from basketflow.sinks.offline_store import SECONDS_PER_DAY

CUSTOMER = "customer"
PRODUCT = "product"


def shard_of(entity: str, shards: int) -> int:
    """An entity's shard of ``shards``: the CRC-32 of its id's UTF-8 bytes, the same in
    every process (Python's ``hash`` of a string is not).

    >>> shard_of("17850", 2), shard_of("17850", 4)
    (1, 1)
    """
    return crc32(entity.encode()) % shards


class EntityShard:
    """Shard ``index`` of ``count`` of one entity kind (``customer`` or ``product``): what
    one process of a split backfill keeps."""

    __slots__ = ("kind", "index", "count", "_owned")

    def __init__(self, kind: str, index: int, count: int) -> None:
        if kind not in (CUSTOMER, PRODUCT) or not 0 <= index < count:
            raise ValueError(f"no {kind} shard {index} of {count}")
        self.kind = kind
        self.index = index
        self.count = count
        #: Each id's answer, kept: the ids repeat (about 30,000 distinct in the real file).
        self._owned: dict[str, bool] = {}

    def owns(self, entity: str) -> bool:
        """Whether the entity (a customer, guest invoice or product id) is in this shard."""
        owned = self._owned.get(entity)
        if owned is None:
            owned = self._owned[entity] = shard_of(entity, self.count) == self.index
        return owned

    def day_events(self, events: list[Transaction]) -> list[Transaction]:
        """The events to store offline, in order: those of this (product) shard's event
        days (the store is partitioned by day, so each day's files are written by one
        process)."""
        index, count = self.index, self.count
        if count == 1:
            return events
        return [e for e in events if e.ts // SECONDS_PER_DAY % count == index]

    def customer_events(self, events: list[Transaction]) -> list[Transaction]:
        """The events of this (customer) shard's customers, in order."""
        if self.count == 1:
            return events
        owns = self.owns
        return [e for e in events if owns(e.entity_id)]

    def product_lines(self, events: list[Transaction]) -> list[Transaction]:
        """The product lines of this (product) shard's products, in order."""
        if self.count == 1:
            return [e for e in events if e.is_product]
        owns = self.owns
        return [e for e in events if e.is_product and owns(e.stock_code)]

    def __str__(self) -> str:
        return f"{self.kind} {self.index}/{self.count}"

    def __repr__(self) -> str:
        return f"EntityShard({self.kind!r}, {self.index}, {self.count})"


def plan(processes: int) -> list[EntityShard]:
    """The shards of ``processes`` (at least 2) processes: half of them (rounded down)
    for the products and the events, the others for the customers, whose steps cost
    more (two views' values and rows)."""
    if processes < 2:
        raise ValueError(f"a split backfill needs at least 2 processes, not {processes}")
    products = processes // 2
    customers = processes - products
    return [EntityShard(CUSTOMER, i, customers) for i in range(customers)] + \
        [EntityShard(PRODUCT, i, products) for i in range(products)]
