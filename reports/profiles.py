"""Customer purchase profiles: one row per registered customer, from the feature log alone.

Why: customer categories (:mod:`basketflow.reports.segments`) describe customers by how they buy, and
that description must come from the registered features (what the live flow serves), never
from a second computation over raw events. A profile is built from two views' logs
(the files :func:`basketflow.sinks.offline_layout.feature_log_files` lists, current version
only, as :func:`basketflow.reports.historical.read_view_log` reads them):

- ``basket``: of every invoice, the **last** row on or before ``until`` (the greatest
  ``(ts, seq)`` of that customer and invoice) is the whole basket, the closed basket. Its
  ``value``, ``items``, ``lines`` and ``share_<category>`` columns give the basket
  statistics; ``started`` its time. Cancellations are not in baskets (the basket view
  leaves them out).
- ``customer``: the last row on or before ``until`` gives the lifetime values then
  (``lifetime_spend`` net of cancellations, ``lifetime_orders``).

Only registered customers are profiled: guests (entity ids ``guest-<invoice>``) are one
basket each and have no identity to put in a category. ``until`` is an inclusive day
(every row with event time before the next midnight, UTC); None means every row.

The columns of a profile (see :data:`PROFILE_COLUMNS`):

- ``baskets``: closed baskets; ``active_months``: distinct calendar months with one;
  ``baskets_per_active_month`` = baskets / active_months; ``days_between_baskets``: days
  from the first basket's start to the last's, over ``baskets - 1`` (NaN for one basket);
- ``basket_value_mean`` / ``basket_value_median`` in money, ``log_basket_value_mean`` /
  ``log_basket_value_median`` of ``ln(1 + max(value, 0))`` per basket, ``items_mean``,
  ``lines_mean`` and their log means ``log_items_mean``, ``log_lines_mean`` (same rule);
- ``share_<category>``: spend-weighted mean of the baskets' shares (each basket weighs its
  value, negative values count as 0; when every basket is worth 0, a plain mean), so the
  shares of a customer are the shares of the customer's whole spend on products;
- ``lifetime_spend``, ``lifetime_orders``: the customer view at ``until``;
- ``first_basket``, ``last_basket``: start times (UTC) of the first and last baskets.

Floats are rounded to :data:`DECIMALS` decimals, so the same log always gives the same
profiles (see there).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from basketflow.errors import BasketflowError
from basketflow.reports.historical import ViewRequest, read_view_log
from basketflow.schemas.events import GUEST_PREFIX
from basketflow.schemas.features import registry
from basketflow.sinks.offline_layout import (
    as_root,
    feature_log_days,
    feature_log_dir,
    feature_log_files,
)

#: The basket view's category share features, in registry order.
SHARE_COLUMNS: tuple[str, ...] = tuple(f for f in registry()["basket"].feature_names
                                       if f.startswith("share_"))
PROFILE_COLUMNS: tuple[str, ...] = (
    "baskets", "active_months", "baskets_per_active_month", "days_between_baskets",
    "basket_value_mean", "basket_value_median", "log_basket_value_mean",
    "log_basket_value_median", "items_mean", "lines_mean", "log_items_mean",
    "log_lines_mean", *SHARE_COLUMNS, "lifetime_spend", "lifetime_orders",
    "first_basket", "last_basket")


#: Floats are rounded to this many decimals: DuckDB sums in parallel, in whatever order its
#: threads finish, so the last bits of a mean vary from run to run; rounded, the same log
#: gives the same profiles, and the same profiles the same categories and version.
DECIMALS = 9


class ProfileError(BasketflowError, ValueError):
    """The feature log cannot give profiles (none yet, or nothing in the asked range)."""


def day_end(until: date) -> datetime:
    """The first instant after the inclusive day ``until`` (next midnight, UTC)."""
    return datetime.combine(until + timedelta(days=1), time(), tzinfo=timezone.utc)


def log_days(offline_dir: Path, view: str = "basket") -> tuple[date, date] | None:
    """First and last day partitions of a view's feature log (None: no log yet)."""
    days = feature_log_days(offline_dir, view)
    return (days[0], days[-1]) if days else None


def check_until(offline_dir: Path, until: date | None) -> tuple[date, date]:
    """The log's day range; raise ProfileError when there is no log or ``until`` is outside.

    ``until`` before the first day would profile nobody; after the last day it would claim
    data that does not exist yet (a backfill or the flow has not run that far).
    """
    span = log_days(offline_dir)
    if span is None:
        raise ProfileError(f"no basket feature log under {feature_log_dir(offline_dir, 'basket')}: run "
                           "`basketflow backfill --from FILE` (or the flow) first")
    if until is not None and not span[0] <= until <= span[1]:
        raise ProfileError(f"--until {until} is outside the feature log, which spans "
                           f"{span[0]} .. {span[1]}: give a day in that range")
    return span


def _log(con: duckdb.DuckDBPyConnection, offline_dir: Path, view: str, features: tuple[str, ...],
         until: date | None, customers: bool) -> None:
    """Register a view's current-version log rows up to ``until`` as table ``<view>_all``
    (only the ids of table ``wanted`` when ``customers``)."""
    request = ViewRequest(registry()[view], features, "customer_id")
    table = read_view_log(con, request, feature_log_files(offline_dir, view, until))
    con.register(f"{view}_raw", table)
    cutoff = "" if until is None else f"AND ts < TIMESTAMPTZ '{day_end(until).isoformat()}'"
    chosen = "AND entity_id IN (SELECT customer_id FROM wanted)" if customers else ""
    con.execute(f"CREATE TEMP TABLE {view}_all AS SELECT * FROM {view}_raw "
                f"WHERE NOT starts_with(entity_id, '{GUEST_PREFIX}') {cutoff} {chosen}")


def _logs_until(con: duckdb.DuckDBPyConnection, until: date | None) -> None:
    """Views ``basket_log`` and ``customer_log``: the rows of ``<view>_all`` up to ``until``."""
    cutoff = "" if until is None else f"WHERE ts < TIMESTAMPTZ '{day_end(until).isoformat()}'"
    for view in ("basket", "customer"):
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view}_log AS SELECT * FROM {view}_all "
                    f"{cutoff}")


def _profile_sql() -> str:
    """Closed baskets -> one profile row per customer (see the module docstring)."""
    weight = "greatest(value, 0)"
    shares = ",\n".join(
        f"CASE WHEN sum({weight}) > 0 THEN sum({s} * {weight}) / sum({weight}) "
        f"ELSE avg({s}) END AS {s}" for s in SHARE_COLUMNS)
    return f"""
    WITH closed AS (
        SELECT * FROM basket_log
        QUALIFY row_number() OVER (PARTITION BY entity_id, invoice
                                   ORDER BY ts DESC, seq DESC) = 1),
    lifetime AS (
        SELECT entity_id, lifetime_spend, lifetime_orders FROM customer_log
        QUALIFY row_number() OVER (PARTITION BY entity_id ORDER BY ts DESC, seq DESC) = 1),
    profiles AS (
        SELECT entity_id AS customer_id,
               count(*) AS baskets,
               count(DISTINCT date_trunc('month', to_timestamp(started))) AS active_months,
               avg(value) AS basket_value_mean,
               median(value) AS basket_value_median,
               avg(ln(1 + {weight})) AS log_basket_value_mean,
               median(ln(1 + {weight})) AS log_basket_value_median,
               avg(items) AS items_mean,
               avg(lines) AS lines_mean,
               avg(ln(1 + greatest(items, 0))) AS log_items_mean,
               avg(ln(1 + lines)) AS log_lines_mean,
               {shares},
               min(started) AS first_started,
               max(started) AS last_started
        FROM closed GROUP BY entity_id)
    SELECT p.*, l.lifetime_spend, l.lifetime_orders
    FROM profiles p LEFT JOIN lifetime l ON l.entity_id = p.customer_id
    ORDER BY p.customer_id"""


def customer_profiles(offline_dir: Path, until: date | None = None) -> pd.DataFrame:
    """One purchase profile per registered customer with a basket on or before ``until``.

    Index ``customer_id`` (text, sorted), columns :data:`PROFILE_COLUMNS`. Raises
    ProfileError when there is no basket feature log; an empty frame when no registered
    customer has a basket in range.
    """
    return profiles_at(offline_dir, [until])[until]


def profiles_at(offline_dir: Path, untils: Sequence[date | None],
                customers: Collection[str] | None = None) -> dict[date | None, pd.DataFrame]:
    """:func:`customer_profiles` at several days, reading the feature log once; with
    ``customers``, only theirs (a profile depends on its customer's rows alone, so each is
    the same as in the full computation). For the daily report, which compares a few
    hundred customers' categories at consecutive days.
    """
    offline_dir = as_root(offline_dir)
    check_until(offline_dir, None)  # raises when there is no log at all
    last = None if not untils or None in untils else max(d for d in untils if d)
    out: dict[date | None, pd.DataFrame] = {}
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        if customers is not None:
            con.register("wanted", pa.table({"customer_id": pa.array(sorted(customers),
                                                                     pa.string())}))
        _log(con, offline_dir, "basket",
             ("invoice", "lines", "items", "value", "started", *SHARE_COLUMNS), last,
             customers is not None)
        _log(con, offline_dir, "customer", ("lifetime_spend", "lifetime_orders"), last,
             customers is not None)
        for until in untils:
            _logs_until(con, until)
            out[until] = _finish(con.sql(_profile_sql()).df())
    return out


def _finish(frame: pd.DataFrame) -> pd.DataFrame:
    """The profile query's rows -> the profile frame (derived columns, types, rounding)."""
    frame = frame.set_index("customer_id")
    frame["active_months"] = frame["active_months"].astype("int64")
    frame["baskets"] = frame["baskets"].astype("int64")
    frame["baskets_per_active_month"] = frame["baskets"] / frame["active_months"]
    span_days = (frame["last_started"] - frame["first_started"]) / 86_400
    frame["days_between_baskets"] = (span_days / (frame["baskets"] - 1)).where(
        frame["baskets"] > 1)
    frame["first_basket"] = pd.to_datetime(frame["first_started"], unit="s", utc=True)
    frame["last_basket"] = pd.to_datetime(frame["last_started"], unit="s", utc=True)
    frame["lifetime_orders"] = frame["lifetime_orders"].astype("Int64")
    floats = frame.select_dtypes("float64").columns
    frame[floats] = frame[floats].round(DECIMALS)
    return frame[list(PROFILE_COLUMNS)]
