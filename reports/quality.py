"""The data-quality expectations (:mod:`basketflow.schemas.expectations`) checked on one
day of the offline event store, for the daily report's data-quality section.

One query over the day's events counts, for every expectation, the lines it applies to
and those that break it (each line's ``occurrence`` among identical lines of its invoice
is numbered first); a day fails an expectation when the breaking share is over its
``max_share``, and up to :data:`EXAMPLES` breaking lines are listed for each failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from basketflow.reports.offline_query import OfflineQuery
from basketflow.schemas.expectations import EXPECTATIONS, Expectation

EXAMPLES = 3
#: The columns that make two lines of an invoice identical.
IDENTITY = "invoice, stock_code, description, quantity, unit_price, ts, customer_id, country"


@dataclass(frozen=True)
class ExpectationResult:
    """An expectation on one day: the lines it applies to, how many break it, their
    share, the share allowed, whether the day passes, and some breaking lines."""

    name: str
    description: str
    lines: int
    breaking: int
    share: float
    max_share: float
    passed: bool
    examples: list[dict[str, Any]] = field(default_factory=list)


def _lines(view: str) -> str:
    """The day's lines of ``view`` with their ``occurrence`` (parameter ``$day``)."""
    return (f"WITH lines AS (SELECT *, row_number() OVER (PARTITION BY {IDENTITY} "
            f"ORDER BY event_id) AS occurrence FROM {view} WHERE date = $day) ")


def check_day(query: OfflineQuery, view: str, day: date,
              expectations: tuple[Expectation, ...] = EXPECTATIONS) -> list[ExpectationResult]:
    """Check every expectation on ``day``'s events of the DuckDB view ``view``."""
    counts = ", ".join(f"count(*) FILTER (WHERE ({e.applies})), "
                       f"count(*) FILTER (WHERE ({e.applies}) AND ({e.breaks}))"
                       for e in expectations)
    row = query.rows(_lines(view) + f"SELECT {counts} FROM lines", {"day": day})[0]
    results = []
    for i, e in enumerate(expectations):
        lines, breaking = int(row[2 * i]), int(row[2 * i + 1])
        share = breaking / lines if lines else 0.0
        passed = share <= e.max_share
        examples = [] if passed else [
            dict(zip(("invoice", "stock_code", "quantity", "unit_price", "customer_id",
                      "country"), r))
            for r in query.rows(
                _lines(view) + "SELECT invoice, stock_code, quantity, unit_price, "
                f"customer_id, country FROM lines WHERE ({e.applies}) AND ({e.breaks}) "
                f"ORDER BY invoice, stock_code, event_id LIMIT {EXAMPLES}", {"day": day})]
        results.append(ExpectationResult(e.name, e.description, lines, breaking,
                                         round(share, 6), e.max_share, passed, examples))
    return results
