"""How well is a customer's category known from the first basket? (``basketflow evaluate``)

The protocol, for a split date ``D``:

- **Categories** are fitted (:func:`basketflow.reports.segments.fit`, not saved) on the profiles of
  the baskets before ``D`` only.
- **Labels**: every customer's profile over *all* their baskets, assigned to those
  categories. **Training customers** have their first basket before ``D``, **test
  customers** on or after ``D``.
- **Every prediction uses only the customer's first basket**: the prediction made when it
  closes, from the basket and customer views at the basket's last feature row.
- **Models**: (a) the majority category of the training customers; (b) a scikit-learn
  random forest trained on a point-in-time training set (:func:`get_historical_features`
  at each training customer's first-basket end, through the classifier's own
  :func:`~basketflow.models.classifier.classifier_features`); (c) the River model as the flow runs
  it: the flow's own feature and scoring steps replay the stored events in event-time
  order, learning from closed baskets of training customers only, and the test
  customer's score is the last one of the first basket.
- **Figures** on the test customers, overall and for those with at least two baskets (a
  one-basket customer's label is computed from the very basket the prediction sees, which
  flatters every model): accuracy and macro-F1 (over the categories present in the truth
  or the predictions), coverage (share with a prediction; none counts as wrong), and the
  River model's confusion matrix.

**A known limit of the protocol**: frequency is counted over each customer's whole
history, so training customers (up to the data's end, months after the categories were
fitted) drift into the frequent category, while test customers, whose history is at most
the months after the split, rarely reach it. The majority class of the training
customers can therefore be a category the test customers are hardly ever in (the
majority baseline's accuracy is then near 0), and the forest, trained on those labels
from first baskets alone, predicts it far more often than the River model, which learns
from every basket with the customer's history as features (docs/PERFORMANCE.md has the
figures at split 2011-07-01).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from basketflow.flows.scoring import ScoringConfig
from basketflow.models.classifier import classifier_features
from basketflow.reports.historical import (
    ViewRequest,
    get_historical_features,
    output_column,
    read_view_log,
)
from basketflow.reports.profiles import ProfileError, check_until, customer_profiles
from basketflow.reports.segments import Segmentation, fit
from basketflow.reports.training import replay_scoring
from basketflow.schemas.events import GUEST_PREFIX
from basketflow.schemas.features import BASKET, CUSTOMER
from basketflow.offline_uri import StoreDir
from basketflow.sinks.offline_layout import feature_log_files, files_by_day, files_of, scores_dir

#: What a customer without a prediction is counted as (always wrong).
NO_PREDICTION = "(no prediction)"


@dataclass
class ModelFigures:
    """One model's figures on the test customers (all, and with 2+ baskets)."""

    model: str
    accuracy: float
    macro_f1: float
    accuracy_2plus: float
    macro_f1_2plus: float
    coverage: float


@dataclass
class Evaluation:
    """The outcome of :func:`evaluate`."""

    split: date
    segmentation: Segmentation
    train_customers: int
    test_customers: int
    test_customers_2plus: int
    models: list[ModelFigures]
    confusion: pd.DataFrame  # River, test customers: rows truth, columns predicted

    def to_json(self) -> dict[str, Any]:
        """Every figure, for ``--json``."""
        return {
            "split": self.split.isoformat(), "segmentation_version": self.segmentation.version,
            "categories": self.segmentation.names, "train_customers": self.train_customers,
            "test_customers": self.test_customers,
            "test_customers_2plus_baskets": self.test_customers_2plus,
            "models": [vars(m) for m in self.models],
            "river_confusion": {"labels": list(self.confusion.columns),
                                "truth_rows": self.confusion.values.tolist(),
                                "row_labels": list(self.confusion.index)},
        }


def first_baskets(offline_dir: Path) -> pd.DataFrame:
    """Each registered customer's first basket: ``invoice`` and ``ended`` (event time of its
    last basket-view row), indexed by customer id; the log is read as every reader of it
    reads it (:func:`basketflow.reports.historical.read_view_log`: current version only)."""
    request = ViewRequest(BASKET, ("invoice", "started"), "customer_id")
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        log = read_view_log(con, request, feature_log_files(offline_dir, "basket"))
        con.register("basket_log", log)
        frame = con.sql(f"""
            WITH baskets AS (
                SELECT entity_id AS customer_id, invoice, min(started) AS started,
                       max(ts) AS ended
                FROM basket_log WHERE NOT starts_with(entity_id, '{GUEST_PREFIX}')
                GROUP BY ALL)
            SELECT customer_id, first(invoice ORDER BY started, invoice) AS invoice,
                   first(ended ORDER BY started, invoice) AS ended
            FROM baskets GROUP BY customer_id ORDER BY customer_id""").to_arrow_table()
    return frame.to_pandas().set_index("customer_id")


def river_predictions(offline_dir: Path, labels: dict[str, str], labels_version: str,
                      firsts: pd.DataFrame, on_batch: Callable[[int], None]) -> pd.Series:
    """The River model's score at the end of each customer's first basket (see the module
    docstring); missing where it made none."""
    with tempfile.TemporaryDirectory() as tmp:
        replay_scoring(offline_dir, ScoringConfig(labels, labels_version), Path(tmp),
                       on_batch)
        files = [str(p) for p in files_of(files_by_day(scores_dir(Path(tmp))))]
        with duckdb.connect() as con:
            scores = con.sql("""
                SELECT entity_id AS customer_id, invoice,
                       arg_max(category, (ts, seq)) AS category, count(*) AS n
                FROM read_parquet($files, hive_partitioning=false)
                GROUP BY ALL""", params={"files": files}).to_arrow_table().to_pandas() if files \
                else pd.DataFrame(columns=["customer_id", "invoice", "category"])
    first = firsts.reset_index()[["customer_id", "invoice"]]
    merged = first.merge(scores, on=["customer_id", "invoice"], how="left")
    return merged.set_index("customer_id")["category"]


def _feature_rows(offline_dir: Path, firsts: pd.DataFrame) -> list[dict[str, Any]]:
    """Classifier inputs at each customer's first-basket end, from a point-in-time join."""
    features = [f"basket:{f}" for f in BASKET.feature_names] + \
        [f"customer:{f}" for f in CUSTOMER.feature_names]
    entities = pd.DataFrame({"customer_id": firsts.index,
                             "timestamp": firsts["ended"].reset_index(drop=True)})
    frame = get_historical_features(offline_dir, entities, features)
    frame = frame.astype(object).where(frame.notna(), None)
    rows = []
    for record in frame.to_dict("records"):
        basket = {f: record[output_column("basket", f)] for f in BASKET.feature_names}
        customer = {f: record[output_column("customer", f)] for f in CUSTOMER.feature_names}
        rows.append(classifier_features(basket, customer))
    return rows


def batch_predictions(offline_dir: Path, firsts: pd.DataFrame, train: pd.Index,
                      labels: pd.Series, seed: int) -> pd.Series:
    """A random forest trained on the training customers' first baskets, predicting every
    customer of ``firsts``; the string features (the country, and its first-visit copy)
    one-hot encoded."""
    inputs = pd.get_dummies(pd.DataFrame(_feature_rows(offline_dir, firsts),
                                         index=firsts.index), dtype=float)
    model = RandomForestClassifier(n_estimators=300, min_samples_leaf=2, random_state=seed,
                                   n_jobs=-1)
    model.fit(inputs.loc[train].to_numpy(), labels.loc[train].to_numpy())
    return pd.Series(model.predict(inputs.to_numpy()), index=firsts.index)


def _figures(model: str, truth: pd.Series, predicted: pd.Series, two_plus: pd.Index,
             ) -> ModelFigures:
    """Accuracy and macro-F1 of one model on all test customers and on those with 2+."""
    predicted = predicted.reindex(truth.index).fillna(NO_PREDICTION)

    def scores(index: pd.Index) -> tuple[float, float]:
        if len(index) == 0:
            return float("nan"), float("nan")
        t, p = truth.loc[index], predicted.loc[index]
        return (round(float(accuracy_score(t, p)), 4),
                round(float(f1_score(t, p, average="macro", zero_division=0)), 4))

    accuracy, macro_f1 = scores(truth.index)
    accuracy2, macro_f12 = scores(two_plus)
    coverage = round(float((predicted != NO_PREDICTION).mean()), 4)
    return ModelFigures(model, accuracy, macro_f1, accuracy2, macro_f12, coverage)


def evaluate(data_dir: Path, split: date, *, seed: int = 0, k: int | None = None,
             progress: Callable[[str], None] = lambda step: None,
             on_batch: Callable[[int], None] = lambda n: None,
             offline_dir: StoreDir | None = None) -> Evaluation:
    """Run the protocol of the module docstring on the offline store ``offline_dir`` (by
    default the data directory's)."""
    offline = offline_dir or data_dir / "offline"
    first_day, last_day = check_until(offline, None)
    if not first_day < split <= last_day:
        raise ProfileError(f"--split {split} leaves no training or no test customers: the "
                           f"feature log spans {first_day} .. {last_day}; choose a date after "
                           "the first day and on or before the last")
    progress("fitting categories on the baskets before the split")
    segmentation = fit(customer_profiles(offline, split - timedelta(days=1)),
                       split - timedelta(days=1), seed=seed, k=k)
    progress("labelling every customer from all their baskets")
    profiles = customer_profiles(offline)
    labels = segmentation.assign(profiles)
    firsts = first_baskets(offline).loc[labels.index]
    first_start = profiles["first_basket"]
    split_ts = pd.Timestamp(split, tz="UTC")
    train = profiles.index[first_start < split_ts]
    test = profiles.index[first_start >= split_ts]
    two_plus = test[profiles.loc[test, "baskets"] >= 2]
    progress("replaying the stored events through the flow's scoring step (River)")
    river = river_predictions(offline, labels.loc[train].to_dict(),
                                      f"evaluate-{segmentation.version}", firsts, on_batch)
    progress("training the random forest on a point-in-time training set")
    forest = batch_predictions(offline, firsts, train, labels, seed)
    majority = labels.loc[train].mode().sort_values().iloc[0]
    truth = labels.loc[test]
    models = [
        _figures("majority", truth, pd.Series(majority, index=test), two_plus),
        _figures("random_forest", truth, forest, two_plus),
        _figures("river", truth, river, two_plus),
    ]
    shown = segmentation.names + ([NO_PREDICTION] if river.reindex(test).isna().any() else [])
    matrix = confusion_matrix(truth, river.reindex(test).fillna(NO_PREDICTION), labels=shown)
    confusion = pd.DataFrame(np.asarray(matrix)[:len(segmentation.names)],
                             index=segmentation.names, columns=shown)
    return Evaluation(split, segmentation, len(train), len(test), len(two_plus), models,
                      confusion)
