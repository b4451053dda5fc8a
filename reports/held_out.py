"""Model versions compared on the same held-out baskets (``basketflow models diff``).

A version's own metrics are prequential: each was measured on the baskets it met as it
learnt, which differ from one version to the next. To compare two versions on equal
terms, both score the same baskets, ones neither had learnt from: every closed basket of
a labelled customer (guests aside) whose last line is after ``since`` (by default the
later of the two versions' event-time clocks). A basket is scored at its last line, from
the ``basket`` and ``customer`` values then, as the flow scores it when it closes
(:func:`basketflow.reports.predictions.predict_rows`: the point-in-time values made into
the model's input by the flow's own ``classifier_features``), and each prediction is
measured against the customer's label by the flow's own prequential figures
(:class:`~basketflow.models.prequential.Prequential`), so the accuracy and log loss mean
what they mean in ``models show``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from basketflow.models.prequential import Prequential
from basketflow.models.registry import Registry, Version
from basketflow.reports.historical import ViewRequest, read_view_log
from basketflow.reports.predictions import ID, TIMESTAMP, predict_rows
from basketflow.schemas.events import GUEST_PREFIX
from basketflow.schemas.features import BASKET
from basketflow.sinks.offline_layout import feature_log_files


def held_out_baskets(offline_dir: Any, labels: Mapping[str, str], since: int,
                     ) -> pd.DataFrame:
    """Every basket of a labelled customer whose last line is after ``since`` (epoch
    seconds): ``customer_id``, ``invoice``, ``timestamp`` (its last line, UTC) and
    ``label``, by customer then time."""
    request = ViewRequest(BASKET, ("invoice",), "customer_id")
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        log = read_view_log(con, request, feature_log_files(offline_dir, "basket"))
        con.register("basket_log", log)
        frame = con.sql(f"""
            SELECT entity_id AS {ID}, invoice, max(ts) AS {TIMESTAMP}
            FROM basket_log WHERE NOT starts_with(entity_id, '{GUEST_PREFIX}')
            GROUP BY ALL HAVING epoch(max(ts)) > $since
            ORDER BY {ID}, {TIMESTAMP}, invoice""", params={"since": since}).to_arrow_table()
    baskets = frame.to_pandas()
    baskets["label"] = baskets[ID].map(labels)
    return baskets[baskets["label"].notna()].reset_index(drop=True)


def compare(offline_dir: Any, registry: Registry, versions: Sequence[Version],
            labels: Mapping[str, str], since: int) -> dict[str, Any]:
    """Each version's accuracy and log loss (overall and per category) on the held-out
    baskets after ``since``: ``{"since": ..., "baskets": n, "versions": {id: metrics}}``
    (no ``versions`` when there is no such basket)."""
    baskets = held_out_baskets(offline_dir, labels, since)
    out: dict[str, Any] = {"since": since, "baskets": len(baskets), "versions": {}}
    if baskets.empty:
        return out
    for index, version in enumerate(versions):
        predicted = predict_rows(offline_dir, registry, versions, baskets[ID],
                                 baskets[TIMESTAMP], np.full(len(baskets), index)).frame
        quality = Prequential(window=len(baskets))
        probabilities = [c for c in predicted.columns if c.startswith("prob_")]
        for label, row in zip(baskets["label"], predicted[probabilities].itertuples(
                index=False)):
            quality.add({name[len("prob_"):]: p for name, p in zip(probabilities, row)
                         if not pd.isna(p)}, label)
        figures = quality.metrics()
        out["versions"][version.id] = {"since_start": figures["since_start"],
                                       "per_category": {
                                           name: m["since_start"] for name, m in
                                           figures["per_category"].items()}}
    return out
