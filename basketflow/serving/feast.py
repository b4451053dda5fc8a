"""Feast's feature-server shapes for ``POST /get-online-features``, so code written for
``feast serve`` reads basketflow unchanged.

In: ``{"features": ["view:feature", ...], "entities": {"<join key>": [ids...]},
"full_feature_names": false}``. Out: ``metadata.feature_names`` (the join key, then
each feature, named ``feature`` or with ``full_feature_names`` ``view__feature``) and
``results``, column-major: one ``{"values", "statuses", "event_timestamps"}`` per name,
a value per entity in the order asked. A status is ``PRESENT``, ``NULL_VALUE`` (the
entity's view has values, this one is null) or ``NOT_FOUND`` (no values of the view for
the entity); the join key's own column is ``PRESENT`` at ``1970-01-01T00:00:00Z``, as
Feast answers.

>>> from basketflow.app.features import FeatureRow, OnlineFeatures
>>> row = FeatureRow("customer", "17850", {"spend_30d": 12.5}, 1317376800, "v1")
>>> found = [OnlineFeatures("17850", {"customer": row}, 1317376800, "clock"),
...          OnlineFeatures("1", {"customer": None}, None, None)]
>>> body = response([17850, 1], "customer_id", [("customer", "spend_30d")], found, False)
>>> body["metadata"]["feature_names"], body["results"][1]
(['customer_id', 'spend_30d'], {'values': [12.5, None], 'statuses': ['PRESENT', 'NOT_FOUND'], \
'event_timestamps': ['2011-09-30T10:00:00Z', '1970-01-01T00:00:00Z']})
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from basketflow.app.features import OnlineFeatures

PRESENT, NULL_VALUE, NOT_FOUND = "PRESENT", "NULL_VALUE", "NOT_FOUND"
EPOCH = "1970-01-01T00:00:00Z"


def timestamp(ts: int | None) -> str:
    """Epoch seconds as Feast writes an event timestamp (UTC, ``Z``).

    >>> timestamp(1291191960), timestamp(None)
    ('2010-12-01T08:26:00Z', '1970-01-01T00:00:00Z')
    """
    if ts is None:
        return EPOCH
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def response(ids: Sequence[Any], join_key: str, features: Sequence[tuple[str, str]],
             found: Sequence[OnlineFeatures], full_names: bool) -> dict[str, Any]:
    """Feast's response for the ``(view, feature)`` pairs of each entity in ``found``
    (in the order of ``ids``, which the join key's column echoes as given)."""
    names = [join_key] + [f"{view}__{name}" if full_names else name
                          for view, name in features]
    results = [{"values": list(ids), "statuses": [PRESENT] * len(ids),
                "event_timestamps": [EPOCH] * len(ids)}]
    for view, name in features:
        values, statuses, stamps = [], [], []
        for one in found:
            row = one.views.get(view)
            value = None if row is None else row.values.get(name)
            values.append(value)
            statuses.append(NOT_FOUND if row is None else PRESENT if value is not None
                            else NULL_VALUE)
            stamps.append(timestamp(row.event_time if row is not None else None))
        results.append({"values": values, "statuses": statuses, "event_timestamps": stamps})
    return {"metadata": {"feature_names": names}, "results": results}
