"""River's own conventions checked on the live model class
(:class:`basketflow.models.online_linear.AdaGradOneVsRest`): ``river.checks.check_estimator``
runs these same checks (clone, repr, pickling, learning on River's bundled datasets,
features that appear or vanish, pure predictions, bounded memory), one test each here so a
failure names its check and dataset."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from river import checks

from basketflow.models.online_linear import AdaGradOneVsRest


def _checks() -> list[pytest.param]:
    """Every check River's ``check_estimator`` runs on the model (those the model does not
    skip), named by check and, for a check run once per dataset, by the dataset's place."""
    model = AdaGradOneVsRest()
    params: list[pytest.param] = []
    runs: dict[str, int] = {}
    for check in checks.yield_checks(model):
        if check.__name__ in model._unit_test_skips():
            continue
        runs[check.__name__] = runs.get(check.__name__, -1) + 1
        on_dataset = "dataset" in getattr(check, "keywords", {})
        name = f"{check.__name__}-dataset{runs[check.__name__]}" if on_dataset else check.__name__
        params.append(pytest.param(check, id=name))
    return params


@pytest.mark.parametrize("check", _checks())
def test_river_check(check: Callable[..., None]) -> None:
    """One check on a fresh model, as ``check_estimator`` gives each a clone of its own."""
    check(AdaGradOneVsRest())
