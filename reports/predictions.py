"""Batch predictions (``basketflow predict``): each entity row scored as the live flow
would have scored it at the row's time.

For a row of customer ``e`` at time ``t``:

- the features are the point-in-time values of the ``basket`` and ``customer`` views at
  ``t`` (:func:`~basketflow.reports.historical.get_historical_features`: the latest
  feature-log rows at or before ``t``; the basket is null a day after its last line,
  its view's TTL), made into the model's input by the flow's own
  :func:`~basketflow.models.classifier.classifier_features`;
- the model is the registry version that was live at ``t``
  (:mod:`basketflow.models.registry`): the newest one registered at an event-time clock
  at or before ``t``, or the newest version of the model named.

So a row at the time of a basket line gets the score the flow logged for the basket's
last line at that time, as long as the flow registered a version after every basket it
learnt from (between two versions the live model learns on; a version registered at
the same event time as the basket counts as live for it) and the registry kept them all
(its retention rule prunes old versions: a row then gets the newest version kept from
before its time).

A row without a basket at ``t``, or before the first version, is kept with a null
category; :class:`NoModel` when no row has a model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from basketflow.errors import BasketflowError
from basketflow.models.classifier import CUSTOMER_INPUTS, BasketClassifier, classifier_features
from basketflow.models.registry import Registry, Version
from basketflow.reports.historical import (
    entity_ids,
    get_historical_features,
    output_column,
    read_entities,
    timestamps,
)
from basketflow.schemas.features import BASKET
from basketflow.sinks.offline_layout import event_files
from basketflow.sinks.offline_scan import parquet_source
from basketflow.sinks.offline_store import ensure_readable

ID = "customer_id"
TIMESTAMP = "timestamp"
#: The columns of every prediction, before one ``prob_<category>`` per category.
COLUMNS = (ID, TIMESTAMP, "model_version", "model_learned", "invoice", "category")
_BASKET = tuple(f.name for f in BASKET.stored_features)


class NoModel(BasketflowError, LookupError):
    """No model version to predict with (none at all, none of the named version, or none
    written by any row's time); the message says what makes one."""


@dataclass(frozen=True)
class Predicted:
    """The predictions, in input order, and how many rows had no basket or no model."""

    frame: pd.DataFrame
    no_basket: int
    no_model: int


def named_version(history: Sequence[Version], model: str) -> Version:
    """The newest version of ``model``; :class:`NoModel` listing the known models."""
    mine = [v for v in history if v.model == model]
    if not mine:
        known = sorted({v.model for v in history}) or ["none"]
        raise NoModel(f"no registered version of model {model!r}; known models: "
                      f"{', '.join(known)}")
    return mine[-1]


def live_at(history: Sequence[Version], times: np.ndarray) -> np.ndarray:
    """For each time (epoch seconds), the index in ``history`` (by clock) of the version
    live then: the last registered at or before it; -1 before the first."""
    stamps = np.array([v.lineage.clock for v in history], dtype=np.int64)
    return np.searchsorted(stamps, times, side="right") - 1


def _records(frame: pd.DataFrame, view: str, names: Sequence[str]) -> list[dict[str, Any]]:
    """One view's columns as plain dicts per row (nulls as None, Int64 as int)."""
    columns = frame[[output_column(view, n) for n in names]].astype(object)
    columns = columns.where(columns.notna(), None)
    columns.columns = list(names)
    return columns.to_dict("records")


def _features(offline_dir: Path, ids: pd.Series, times: pd.Series) -> pd.DataFrame:
    """The basket and customer values of every row at its time."""
    rows = pd.DataFrame({ID: ids.to_numpy(), TIMESTAMP: times.to_numpy()})
    asked = [f"basket:{n}" for n in _BASKET] + [f"customer:{n}" for n in CUSTOMER_INPUTS]
    return get_historical_features(offline_dir, rows, asked)


def saved_models(registry: Registry) -> list[Version]:
    """The registry's versions with an event-time clock, by clock then baskets learnt;
    :class:`NoModel` saying what makes one when there is none."""
    history = sorted((v for v in registry.versions() if v.lineage.clock is not None),
                     key=lambda v: (v.lineage.clock, v.lineage.n_learned))
    if not history:
        raise NoModel(f"no model version with an event time in the registry under "
                      f"{registry.directory}: the flow registers one as it learns "
                      "(`basketflow segment fit`, `segment assign`, then `basketflow run`), "
                      "or `basketflow models train`")
    return history


def epoch_seconds(times: pd.Series) -> np.ndarray:
    """UTC datetimes as whole epoch seconds (floored, as the log's times are whole)."""
    return pd.DatetimeIndex(times).as_unit("ns").asi8 // 10**9


def choose_models(history: Sequence[Version], times: pd.Series,
                  version: str | None = None) -> np.ndarray:
    """The index in ``history`` of each row's model: the one live at its time (-1: none
    yet), or the newest of ``version``; :class:`NoModel` when no row has one."""
    if version is not None:
        return np.full(len(times), history.index(named_version(history, version)))
    chosen = live_at(history, epoch_seconds(times))
    if len(chosen) and (chosen < 0).all():
        first = pd.Timestamp(history[0].lineage.clock, unit="s", tz="UTC")
        raise NoModel(f"no model was live at any row's time: the first version was "
                      f"registered at event time {first}")
    return chosen


def predict_rows(offline_dir: Path, registry: Registry, history: Sequence[Version],
                 ids: pd.Series, times: pd.Series, chosen: np.ndarray,
                 on_rows: Callable[[int], None] = lambda n: None) -> Predicted:
    """Score customer ``ids`` at ``times`` (UTC datetimes), each with the model of
    ``history`` at its index in ``chosen`` (:func:`choose_models`); ``on_rows(n)`` as
    rows are done."""
    frame = _features(offline_dir, ids, times)
    seconds = epoch_seconds(frame[TIMESTAMP])
    models: dict[int, BasketClassifier] = {}
    baskets = _records(frame, "basket", _BASKET)
    customers = _records(frame, "customer", CUSTOMER_INPUTS)
    out: list[dict[str, Any]] = []
    no_basket = no_model = 0
    for i, (basket, customer, pick) in enumerate(zip(baskets, customers, chosen.tolist())):
        row: dict[str, Any] = {ID: frame[ID].iat[i], TIMESTAMP: frame[TIMESTAMP].iat[i],
                               "invoice": basket["invoice"]}
        if basket["invoice"] is None:
            no_basket += 1
        elif pick < 0:
            no_model += 1
        else:
            if pick not in models:
                models[pick] = registry.load(history[pick].id)
            x = classifier_features(basket, None if customer["lifetime_orders"] is None
                                    else customer)
            score = models[pick].predict(x, int(seconds[i]))
            if score is not None:
                row |= {"model_version": score.model_version,
                        "model_learned": models[pick].n_learned, "category": score.category}
                row |= {f"prob_{k}": v for k, v in score.probabilities.items()}
        out.append(row)
        if (i + 1) % 1000 == 0:
            on_rows(1000)
    on_rows(len(out) % 1000)
    return Predicted(_frame(out), no_basket, no_model)


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows with :data:`COLUMNS` first, then the categories' probabilities by name."""
    frame = pd.DataFrame(rows, columns=list(dict.fromkeys(
        [*COLUMNS, *sorted({k for r in rows for k in r if k.startswith("prob_")})])))
    frame["model_learned"] = frame["model_learned"].astype("Int64")
    return frame


def customers_of_day(offline_dir: Path, day: date) -> list[str]:
    """Every customer (guests aside) with an event on ``day``, from the offline store."""
    files = event_files(offline_dir, [day])
    if not files:
        return []
    ensure_readable(files)
    with duckdb.connect() as con:
        source = parquet_source(con, files)
        query = (f"SELECT DISTINCT customer_id FROM {source.sql} "
                 "WHERE customer_id IS NOT NULL ORDER BY customer_id")
        return [row[0] for row in con.execute(query, source.params).fetchall()]


def end_of_day(day: date) -> pd.Timestamp:
    """The last second of a UTC day: a prediction "at a date" sees all of that day.

    >>> str(end_of_day(date(2011, 9, 30)))
    '2011-09-30 23:59:59+00:00'
    """
    return pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=1, seconds=-1)


def parse_at(text: str) -> pd.Timestamp:
    """``--at``: a date (its last second) or an ISO 8601 time (naive: UTC); ValueError
    otherwise.

    >>> str(parse_at("2011-09-30")), str(parse_at("2011-09-30T08:26"))
    ('2011-09-30 23:59:59+00:00', '2011-09-30 08:26:00+00:00')
    """
    try:
        if len(text) == 10:
            return end_of_day(date.fromisoformat(text))
        moment = pd.Timestamp(datetime.fromisoformat(text))
    except ValueError:
        raise ValueError(f"--at {text!r} is not a date (2011-09-30) or an ISO 8601 time "
                         "(2011-09-30T08:26)") from None
    return moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")


def entity_rows(offline_dir: Path, entities: Path | None, day: date | None,
                at: pd.Timestamp | None, id_column: str = ID) -> tuple[pd.Series, pd.Series]:
    """The ids and UTC times to predict: an entity file's (its ``timestamp`` column, or
    ``at`` for every row) or every customer of ``day`` (at ``at``, or the day's end);
    ValueError naming what is missing or wrong."""
    if entities is None:
        assert day is not None
        ids = pd.Series(customers_of_day(offline_dir, day), dtype=object)
        when = at if at is not None else end_of_day(day)
        return ids, pd.Series([when] * len(ids), dtype="datetime64[ns, UTC]")
    table = read_entities(entities, [id_column])
    if id_column not in table.column_names:
        raise ValueError(f"entity file {entities} has no {id_column!r} column; it has: "
                         f"{', '.join(table.column_names)}")
    frame = table.to_pandas()
    ids = pd.Series(entity_ids(frame[id_column], id_column).to_pylist(), dtype=object)
    if at is not None:
        return ids, pd.Series([at] * len(ids), dtype="datetime64[ns, UTC]")
    if TIMESTAMP not in frame.columns:
        raise ValueError(f"entity file {entities} has no {TIMESTAMP!r} column: add one, "
                         "or give --at")
    stamps = timestamps(frame[TIMESTAMP], TIMESTAMP).to_pandas()
    return ids, pd.Series(stamps, dtype="datetime64[ns, UTC]")
