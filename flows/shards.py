"""Shards of the entities, for a backfill split over several processes.

A backfill over N processes gives each one shard: every process reads all the events,
and process ``i`` keeps the customers (guests: invoices) and the products whose stable
hash is ``i`` modulo N. It folds only those entities' features and writes only their
feature log rows and online values; it stores offline the events of the event days whose
number is ``i`` modulo N. So the processes write disjoint rows and never wait on each
other. The hash is CRC-32 of the id's UTF-8 bytes: Python's own ``hash`` of a string
differs from process to process.

>>> shards = [EntityShard(i, 2) for i in range(2)]
>>> [[s.owns(c) for s in shards] for c in ("17850", "12347", "85123A", "22423")]
[[False, True], [True, False], [False, True], [True, False]]
"""

from __future__ import annotations

from zlib import crc32

from schemas.events import Transaction
from sinks.offline_store import SECONDS_PER_DAY


class EntityShard:
    """Shard ``index`` of ``count``: which customers and products one process keeps."""

    __slots__ = ("index", "count", "_owned")

    def __init__(self, index: int, count: int) -> None:
        if not 0 <= index < count:
            raise ValueError(f"shard {index} of {count} does not exist")
        self.index = index
        self.count = count
        #: Each id's answer, kept: the ids repeat (about 30,000 distinct in the real file).
        self._owned: dict[str, bool] = {}

    def owns(self, entity: str) -> bool:
        """Whether this shard keeps the entity (a customer, guest invoice or product id)."""
        owned = self._owned.get(entity)
        if owned is None:
            owned = self._owned[entity] = crc32(entity.encode()) % self.count == self.index
        return owned

    def day_events(self, events: list[Transaction]) -> list[Transaction]:
        """The events of this shard's event days (day number modulo the shard count), in
        order: the offline event store is partitioned by day, so each day's files are
        written by one process, as many as one process would write."""
        index, count = self.index, self.count
        return [e for e in events if e.ts // SECONDS_PER_DAY % count == index]

    def customer_events(self, events: list[Transaction]) -> list[Transaction]:
        """The events of this shard's customers, in order."""
        owns = self.owns
        return [e for e in events if owns(e.entity_id)]

    def product_lines(self, events: list[Transaction]) -> list[Transaction]:
        """The product lines of this shard's products, in order."""
        owns = self.owns
        return [e for e in events if e.is_product and owns(e.stock_code)]

    def __repr__(self) -> str:
        return f"EntityShard({self.index}, {self.count})"
