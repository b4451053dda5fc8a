"""The hand-written ``ProductState`` (and the folder over it,
:class:`HandWrittenProductFolder`) that computed the built-in ``product`` view before
the generic engine did (as it was, unchanged): the reference the engine's values, change
moments and logged tiles must equal to the bit (``test_builtin_views.py``), and the
benchmarks' baseline."""

from __future__ import annotations

from typing import Any

from basketflow.features.feature_state import (
    _BUYERS_WINDOW,
    _CANCELLED_SHARE,
    _DISTINCT_BUYERS,
    _REVENUE,
    _UNITS,
    HOUR,
    MILLI,
    PRODUCT_CHANGE_HOURS,
    hour_end,
    last_ended_hour,
    revenue,
    share,
)
from basketflow.features.entity_features import PRODUCT_REWRITE_S, ProductFolder
from basketflow.schemas.events import Transaction
from basketflow.schemas.records import FeatureUpdate, LogRow
from basketflow.schemas.features import PRODUCT
from tests.features.hand_written_tiles import _cutoffs, _nested_sums

#: How far past the longest window a product's tiles and buyers may age before they are
#: dropped, all at once (its windows and the names of its features are the package's).
_EVICT_SLACK_HOURS = 7 * 24
#: The product's windows in days, shortest first: its tiles are summed over each.
_PRODUCT_DAYS = PRODUCT.windows_days
#: Hours of tiles a product needs: its longest window, and a day more.
_PRODUCT_KEPT_HOURS = max(_PRODUCT_DAYS) * 24 + 24
_CHANGE_HOURS_LONGEST_FIRST = tuple(sorted(PRODUCT_CHANGE_HOURS, reverse=True))


class ProductState:
    """Demand for one product: hourly tiles of ``[units, revenue in thousandths, lines,
    cancelled lines]`` and the customers who bought it in each hour.

    Its values change only at the end of an hour: the hour's tile enters every window, and
    tiles leave windows. So it is read as of hour ends: at the end of hour ``h`` its values
    are exactly the window rule at that moment, whatever order its lines arrived in (they
    come from every partition, interleaved). Its feature log keeps its tiles
    (:meth:`tile_row`), one row per hour with lines, from which ``historical`` sums any
    window.
    """

    __slots__ = ("tiles", "buyers", "max_ts")

    def __init__(self) -> None:
        self.tiles: dict[int, list[int]] = {}
        self.buyers: dict[int, set[str]] = {}
        self.max_ts = 0

    def update(self, e: Transaction) -> None:
        """Fold one line of this product in (in any order)."""
        ts = e.ts
        hour = ts // HOUR
        tile = self.tiles.get(hour)
        if tile is None:
            tile = self.tiles[hour] = [0, 0, 0, 0]
        quantity = e.quantity
        tile[0] += quantity
        tile[1] += quantity * round(e.unit_price * MILLI)
        tile[2] += 1
        if e.is_cancellation:
            tile[3] += 1
        elif customer := e.customer_id:
            buyers = self.buyers.get(hour)
            if buyers is None:
                buyers = self.buyers[hour] = set()
            buyers.add(customer)
        if ts > self.max_ts:
            self.max_ts = ts

    def evict(self, written_through: int, rewritable_s: int) -> None:
        """Drop the tiles and buyers no row can need any more: the rows are written up to
        ``written_through``, and a line may still arrive ``rewritable_s`` behind it (its
        rows are written again, over the windows before it)."""
        oldest = (written_through - rewritable_s) // HOUR - _PRODUCT_KEPT_HOURS
        if self.tiles and min(self.tiles) < oldest - _EVICT_SLACK_HOURS:
            self.tiles = {h: t for h, t in self.tiles.items() if h >= oldest}
            self.buyers = {h: b for h, b in self.buyers.items() if h >= oldest}

    def values(self, as_of: int) -> dict[str, Any]:
        """Every feature of :data:`basketflow.schemas.features.PRODUCT` as of ``as_of``,
        in its declared order, summed from the tiles and buyers."""
        cuts = _cutoffs(as_of, _PRODUCT_DAYS)
        last_hour = as_of // HOUR
        sums = _nested_sums(self.tiles.items(), cuts, last_hour, 4)
        cut = cuts[_BUYERS_WINDOW]
        buyers = set().union(*(b for h, b in self.buyers.items() if cut <= h <= last_hour))
        return _product_values(sums, len(buyers))

    def last_change(self, until: int) -> int | None:
        """The last hour end at or before ``until`` at which the values changed (a tile
        entered every window at its hour's end, or left one a span later); None if none.

        >>> p = ProductState()
        >>> p.tiles = {10: [1, 1000, 1, 0]}
        >>> p.last_change(11 * HOUR), p.last_change(40 * HOUR) // HOUR, p.last_change(9 * HOUR)
        (39599, 34, None)
        """
        last = last_ended_hour(until)
        latest = -1
        for hour in self.tiles:
            for after in _CHANGE_HOURS_LONGEST_FIRST:  # the latest change of this tile
                moment = hour + after
                if moment <= last:
                    if moment > latest:
                        latest = moment
                    break
        return None if latest < 0 else hour_end(latest)

    def tile_row(self, hour: int) -> dict[str, Any]:
        """What the feature log keeps of one hour: the tile and its buyers (sorted), from
        which any window at any hour end is summed (``historical``)."""
        units, revenue, lines, cancelled = self.tiles[hour]
        return {"units": units, "revenue_milli": revenue, "lines": lines,
                "cancelled_lines": cancelled, "buyers": sorted(self.buyers.get(hour, ()))}


def _product_values(sums: list[list[int]], buyers: int) -> dict[str, Any]:
    """A product's features, in declared order, from each window's ``[units, revenue in
    thousandths, lines, cancelled lines]`` and the distinct buyers of its buyers' window."""
    out: dict[str, Any] = {}
    for name, w in _UNITS:
        out[name] = sums[w][0]
    for name, w in _REVENUE:
        out[name] = revenue(sums[w][1])
    for name, _ in _DISTINCT_BUYERS:
        out[name] = buyers
    for name, w in _CANCELLED_SHARE:
        out[name] = share(sums[w][3], sums[w][2])
    return out


class HandWrittenProductFolder(ProductFolder):
    """The product's folder as it was before the engine: the same rules over a
    hand-written ``ProductState``."""

    def __init__(self) -> None:
        super().__init__()
        self.product = ProductState()  # type: ignore[assignment]

    def _log_hours(self, entity: str, hours: list[int], update: FeatureUpdate) -> None:
        for hour in hours:
            update.rows.append(LogRow("product", entity, hour_end(hour), self.seq,
                                      self.product.tile_row(hour)))  # type: ignore[attr-defined]

    def _evict(self, written_through: int) -> None:
        self.product.evict(written_through, PRODUCT_REWRITE_S)  # type: ignore[attr-defined]
