"""Request-time features: one function, :func:`basketflow.schemas.features.days_since`,
and its column form for training sets, which must give the same values row by row."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from basketflow.reports.historical import days_since_column
from basketflow.schemas.features import (
    CUSTOMER,
    Feature,
    RequestTimeFeature,
    days_since,
    registry,
)

SECONDS = st.integers(min_value=0, max_value=2**40)


def test_days_since_rounds_as_before_and_is_none_without_a_time() -> None:
    assert days_since(100 * 86_400, 60 * 86_400) == 40.0
    assert days_since(3 * 3600 + 36, 0) == 0.1254  # 0.12541666...
    assert days_since(108, 0) == round(108 / 86_400, 4)  # a tie in decimal: Python's rule
    assert days_since(5, None) is None


@given(st.lists(st.tuples(SECONDS, st.one_of(st.none(), SECONDS)), min_size=1, max_size=200))
def test_the_column_form_equals_the_function_on_random_rows(rows: list[tuple[int, int | None]],
                                                           ) -> None:
    as_of = np.array([a for a, _ in rows], dtype=np.int64)
    got = days_since_column(as_of, pa.array([t for _, t in rows], pa.int64())).to_pylist()
    assert got == [days_since(a, t) for a, t in rows]


@given(st.lists(st.integers(min_value=0, max_value=2**33), min_size=1, max_size=200))
def test_the_column_form_equals_the_function_half_way_between_two_results(
        units: list[int]) -> None:
    """Whole seconds ``108 + 216 k`` are exactly half way between two 4-decimal results,
    where rounding ``days * 1e4`` in floating point alone often differs from Python's."""
    since = np.array([108 + 216 * k for k in units], dtype=np.int64)
    got = days_since_column(since, pa.chunked_array([pa.array(np.zeros(len(units), np.int64))]))
    assert got.to_pylist() == [days_since(int(s), 0) for s in since]


def test_a_request_time_feature_is_served_not_stored() -> None:
    assert "days_since_last_purchase" in CUSTOMER.feature_names
    assert "days_since_last_purchase" not in CUSTOMER.stored_names
    assert CUSTOMER.feature_names[-2:] == ("days_since_first_purchase",
                                           "days_since_last_purchase")
    served = CUSTOMER.served({"first_purchase": 0, "last_purchase": 86_400 * 2},
                             86_400 * 3 + 4320)
    assert (served["days_since_first_purchase"], served["days_since_last_purchase"]) == \
        (3.05, 1.05)
    assert [v.request_time_features for v in registry().values()][1:] == [(), ()]


def test_a_request_time_feature_needs_a_stored_time_of_its_view() -> None:
    since = RequestTimeFeature("days_since_x", "float", "days since x", "lifetime_orders")
    with pytest.raises(ValueError, match="days_since_x.*'lifetime_orders'"):
        replace(CUSTOMER, declared=CUSTOMER.declared + (since,))
    with pytest.raises(ValueError, match="'nothing'"):
        replace(CUSTOMER, declared=CUSTOMER.declared + (replace(since, source="nothing"),))


def test_the_version_digests_request_time_features_too() -> None:
    since = RequestTimeFeature("days_since_y", "float", "days since y", "first_purchase")
    assert replace(CUSTOMER, declared=CUSTOMER.declared + (since,)).version != \
        CUSTOMER.version
    plain = replace(CUSTOMER, declared=CUSTOMER.declared + (Feature("y", "int", "y"),))
    assert "request_time" in CUSTOMER.definition()
    assert "request_time" not in registry()["basket"].definition()
    assert plain.version != CUSTOMER.version
