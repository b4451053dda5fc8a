"""What reads the built-in ``product`` view's logged tiles (:func:`product_columns`), and
the time and rounding helpers its folder and readers share; every built-in view is
computed by the generic engine (:mod:`basketflow.features.declared_state`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from basketflow.features.declared_codegen import exact_rounded
from basketflow.schemas.features import PRODUCT, FeatureView

HOUR = 3600
DAY = 86_400


def last_ended_hour(ts: int) -> int:
    """The last hour whose end (its last second) is at or before ``ts``; works on NumPy
    arrays of times too.

    >>> last_ended_hour(7199), last_ended_hour(7200), last_ended_hour(10_799)
    (1, 1, 2)
    """
    return (ts + 1) // HOUR - 1


def hour_end(hour: int) -> int:
    """The last second of ``hour`` (hours since the epoch); works on NumPy arrays too.

    >>> hour_end(1)
    7199
    """
    return hour * HOUR + HOUR - 1


def _windows_of(view: FeatureView, stem: str) -> tuple[tuple[str, int], ...]:
    """Each window of the view's windowed feature ``stem``: the feature's name over it, and
    where its days are in ``view.windows_days`` (the windows a state sums its tiles over).

    >>> _windows_of(PRODUCT, "distinct_buyers")
    (('distinct_buyers_7d', 1),)
    """
    declared = view.windowed(stem)
    return tuple((declared.name(days), view.windows_days.index(days))
                 for days in declared.windows_days)


#: The product's windows in days, shortest first.
_PRODUCT_DAYS = PRODUCT.windows_days
#: Each of the product's windows in hours, shortest first.
PRODUCT_SPAN_HOURS = tuple(days * 24 for days in _PRODUCT_DAYS)
#: Hours after a tile's hour at whose end the product's values change: its own hour's
#: end (it enters every window), and each window's span (it leaves that window).
PRODUCT_CHANGE_HOURS = (0, *PRODUCT_SPAN_HOURS)
_UNITS = _windows_of(PRODUCT, "units")
_REVENUE = _windows_of(PRODUCT, "revenue")
_DISTINCT_BUYERS = _windows_of(PRODUCT, "distinct_buyers")
_CANCELLED_SHARE = _windows_of(PRODUCT, "cancelled_share")
if len({w for _, w in _DISTINCT_BUYERS}) != 1:
    raise ValueError("the product's feature log keeps buyers for one window: declare "
                     "distinct_buyers over one window only")
_BUYERS_WINDOW = _DISTINCT_BUYERS[0][1]
#: The span in hours of the window distinct buyers are counted over.
BUYERS_SPAN_HOURS = PRODUCT_SPAN_HOURS[_BUYERS_WINDOW]
#: Revenue is kept in thousandths of the currency, as whole numbers (the product
#: declaration's exact sum): window sums are exact however they are added and taken away.
MILLI = 1000


def revenue(milli: int) -> float:
    """A value in thousandths as currency, rounded to cents half to even, in whole numbers
    (so the same in every place that sums tiles: no binary fraction decides a tie).

    >>> revenue(125), revenue(135), revenue(-125), revenue(2_554)
    (0.12, 0.14, -0.12, 2.55)
    """
    return exact_rounded(milli, 3, 2)


def share(part: int, whole: int) -> float | None:
    """``part / whole`` to four decimals; None when ``whole`` is 0.

    >>> share(1, 3), share(0, 0)
    (0.3333, None)
    """
    return round(part / whole, 4) if whole else None


def product_columns(sums: Sequence[Sequence[Sequence[int]]],
                    buyers: Sequence[int]) -> dict[str, list[Any]]:
    """The product's features as columns, by the rules of the ``product`` declaration,
    from columns of sums: ``sums[w]`` holds the window ``w``'s (of ``PRODUCT.windows_days``)
    units, revenue in thousandths, lines and cancelled lines, one column each, and
    ``buyers`` the distinct buyers of the buyers' window. What ``historical`` computes
    from the logged tiles.

    >>> columns = product_columns([[[2], [5_100], [1], [0]]] * 3, [1])
    >>> columns["revenue_7d"], columns["cancelled_share_30d"]
    ([5.1], [0.0])
    """
    out: dict[str, list[Any]] = {}
    for name, w in _UNITS:
        out[name] = list(sums[w][0])
    for name, w in _REVENUE:
        out[name] = [revenue(milli) for milli in sums[w][1]]
    for name, _ in _DISTINCT_BUYERS:
        out[name] = list(buyers)
    for name, w in _CANCELLED_SHARE:
        out[name] = [share(c, n) for c, n in zip(sums[w][3], sums[w][2])]
    return out
