"""A tiled view's feature log, read as the values it had at the hour ends asked for.

A view whose feature log keeps partial aggregates (``FeatureView.logged``: the product
view's hourly tiles, see :class:`basketflow.features.feature_state.ProductState`) has its
values summed here, in DuckDB, at given hour ends of given entities (its values change
only at hour ends): the same table of ``entity_id, ts, seq`` and features that the
point-in-time join takes from a view that logs its values
(:mod:`basketflow.reports.historical`).

How, per entity, without a row-by-row loop: the tile in effect per hour (highest
``seq``); running sums of each tile column in hour order, so a window ``(m - span, m]``
is the running sum at ``m`` less the one at ``m - span`` (two ASOF joins); distinct
buyers by pieces of cover (a purchase at hour ``h`` counts its buyer in the windows
ending in ``[h, min(next purchase, h + span))``, so pieces of one buyer never overlap)
whose starts and ends are summed the same way. Integer sums are exact; the features are
then made from them by :func:`basketflow.features.feature_state.product_columns`, the
rules the flow uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa

from basketflow.features.feature_state import (
    BUYERS_SPAN_HOURS,
    HOUR,
    PRODUCT_SPAN_HOURS,
    hour_end,
    product_columns,
)
from basketflow.reports.offline_query import arrow_table
from basketflow.offline_uri import StoreDir
from basketflow.schemas.features import FeatureView
from basketflow.sinks.offline_scan import parquet_source


def is_tiled(view: FeatureView) -> bool:
    """Whether the view's feature log keeps tiles rather than values."""
    return bool(view.logged)


def _values_sql(source: str) -> str:
    """Sums per window and distinct buyers at every moment, per entity (see the module)."""
    sums = ", ".join(
        f"CAST(coalesce(s0.c{k}, 0) - coalesce(s{w + 1}.c{k}, 0) AS BIGINT) AS w{w}_{k}"
        for w in range(len(PRODUCT_SPAN_HOURS)) for k in range(4))
    joins = " ".join(
        f"ASOF LEFT JOIN prefix s{w + 1} ON m.e = s{w + 1}.e AND m.m - {span} >= s{w + 1}.h"
        for w, span in enumerate(PRODUCT_SPAN_HOURS))
    return f"""
WITH raw AS (
    SELECT CAST(entity_id AS VARCHAR) AS e,
           CAST(epoch(CAST(ts AS TIMESTAMPTZ)) AS BIGINT) // {HOUR} AS h, seq,
           units, revenue_milli, lines, cancelled_lines, buyers
    FROM {source}
    WHERE version = $version
      AND CAST(entity_id AS VARCHAR) IN (SELECT CAST(entity_id AS VARCHAR) FROM asked)),
tiles AS (SELECT * FROM raw
          QUALIFY row_number() OVER (PARTITION BY e, h ORDER BY seq DESC) = 1),
prefix AS (SELECT e, h,
                  sum(units) OVER w AS c0, sum(revenue_milli) OVER w AS c1,
                  sum(lines) OVER w AS c2, sum(cancelled_lines) OVER w AS c3
           FROM tiles WINDOW w AS (PARTITION BY e ORDER BY h ROWS UNBOUNDED PRECEDING)),
moments AS (SELECT DISTINCT CAST(entity_id AS VARCHAR) AS e, hour AS m FROM asked),
bought AS (SELECT DISTINCT e, h, unnest(buyers) AS b FROM tiles),
pieces AS (SELECT e, h, least(coalesce(lead(h) OVER (PARTITION BY e, b ORDER BY h),
                                       h + {BUYERS_SPAN_HOURS}), h + {BUYERS_SPAN_HOURS}) AS stop
           FROM bought),
deltas AS (SELECT e, p, sum(x) AS x FROM (
               SELECT e, h AS p, 1 AS x FROM pieces
               UNION ALL SELECT e, stop AS p, -1 AS x FROM pieces) GROUP BY e, p),
cover AS (SELECT e, p, sum(x) OVER (PARTITION BY e ORDER BY p ROWS UNBOUNDED PRECEDING) AS n
          FROM deltas)
SELECT m.e AS entity_id, m.m AS hour, {sums}, CAST(coalesce(cover.n, 0) AS BIGINT) AS buyers
FROM moments m
ASOF JOIN prefix s0 ON m.e = s0.e AND m.m >= s0.h
{joins}
ASOF LEFT JOIN cover ON m.e = cover.e AND m.m >= cover.p
ORDER BY m.e, m.m"""


def tiled_values(con: duckdb.DuckDBPyConnection, view: FeatureView, files: Sequence[StoreDir],
                 asked: pa.Table, features: Sequence[str]) -> pa.Table:
    """The values of the ``features`` of each ``asked`` ``(entity_id, hour)`` as of that
    hour's end, from the view's logged tiles (only rows of its current version); an entity
    with no tile at or before the hour has no row. Columns ``entity_id``, ``ts`` (the hour
    end, UTC), ``seq`` (0) and the features."""
    con.register("asked", asked)
    source = parquet_source(con, files)
    found = arrow_table(con, _values_sql(source.sql), {**source.params,
                                                       "version": view.version})
    sums = [[found.column(f"w{w}_{k}").to_pylist() for k in range(4)]
            for w in range(len(PRODUCT_SPAN_HOURS))]
    columns = product_columns(sums, found.column("buyers").to_pylist())
    hours = found.column("hour").to_numpy()
    ends = pa.array(hour_end(hours) * 1_000_000, pa.int64()).cast(
        pa.timestamp("us", tz="UTC"))
    return pa.table({"entity_id": found.column("entity_id"), "ts": ends,
                     "seq": pa.array([0] * found.num_rows, pa.int64()),
                     **{name: columns[name] for name in features}})
