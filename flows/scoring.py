"""The scoring step: the live customer-category classifier inside the dataflow.

One :class:`BasketClassifier` serves every customer, so the step is keyed by one constant
key (one worker holds the model; its state is in Bytewax's recovery snapshots like any
other). It consumes the customer feature updates, in which every event time of a
customer carries a ``basket`` row and a ``customer`` row (see
:mod:`basketflow.features.entity_features`), and for each basket row:

- **predicts**: the category of the basket so far, from :func:`classifier_features` of
  the two rows, emitted as a :class:`ScoreRow` (to Redis as the customer's live score, and
  to the offline score log);
- **closes baskets**: a basket closes when the customer's next invoice starts, or when no
  line of it arrived for ``gap_seconds`` of event time (the newest event time the step has
  seen minus the basket's last update); guests never come back, so the gap is what closes
  their baskets;
- **learns** from a closed basket when its customer has a label in the current
  segmentation (``basketflow segment assign``), from the basket's last features.

The model is also checkpointed to a file every ``checkpoint_every`` learnt baskets (with
its checksum; see :func:`basketflow.models.classifier.save_checkpoint`), so a flow started without
recovery state, or a new flow, resumes from it. Each checkpoint records the event time it
was written at (the newest the step has seen, the update's own when a basket closes on
the customer's next invoice) and is kept in the models' history, so ``basketflow
predict`` finds the weights that were live at any past time. A checkpoint of another model version (new
labels, new features) is set aside with a log line; a corrupt one stops the start with
:class:`~basketflow.models.classifier.CheckpointError`.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from basketflow.models.classifier import (
    BasketClassifier,
    classifier_features,
    load_checkpoint,
    read_checkpoint_meta,
    save_checkpoint,
)
from basketflow.schemas.records import FeatureUpdate, Score, ScoreRow

log = logging.getLogger("basketflow.scoring")

#: The single key every customer update is routed to: one model for all customers.
MODEL_KEY = "model"
DEFAULT_GAP_SECONDS = 3600
UNLABELLED = "unlabelled"


@dataclass(frozen=True)
class ScoringConfig:
    """What the scoring step needs: the labels of the current segmentation (customer ->
    category; may be empty), their version, where to checkpoint the model (None: never),
    the event-time gap that closes a basket, and how often to checkpoint."""

    labels: Mapping[str, str] = field(default_factory=dict)
    labels_version: str = UNLABELLED
    checkpoint: Path | None = None
    gap_seconds: int = DEFAULT_GAP_SECONDS
    checkpoint_every: int = 100


@dataclass
class _OpenBasket:
    invoice: str
    x: dict[str, Any]
    last_ts: int


class ScoringState:
    """The model and the baskets still open, ordered by their last update."""

    def __init__(self, model: BasketClassifier) -> None:
        self.model = model
        self.open: dict[str, _OpenBasket] = {}
        self.newest_ts = 0
        self.unsaved = 0

    def score(self, update: FeatureUpdate, config: ScoringConfig) -> list[ScoreRow]:
        """Fold one customer's feature update in: close, learn, predict (module rules)."""
        out: list[ScoreRow] = []
        customer_rows = {(ts, seq): values for view, _e, ts, seq, values in update.rows
                         if view == "customer"}
        for view, entity, ts, seq, basket in update.rows:
            if view != "basket":
                continue
            x = classifier_features(basket, customer_rows.get((ts, seq)))
            self.newest_ts = max(self.newest_ts, ts)  # a checkpoint written now is of ts
            previous = self.open.pop(entity, None)
            if previous is not None and previous.invoice != basket["invoice"]:
                self._close(entity, previous, config)
            self.open[entity] = _OpenBasket(basket["invoice"], x, ts)
            score = self.model.predict(x, ts)
            if score is not None:
                out.append(ScoreRow(entity, basket["invoice"], ts, seq, score))
        self._close_idle(config)
        return out

    def _close_idle(self, config: ScoringConfig) -> None:
        """Close the baskets idle for the gap (oldest first; stops at the first live one)."""
        horizon = self.newest_ts - config.gap_seconds
        while self.open:
            entity, basket = next(iter(self.open.items()))
            if basket.last_ts >= horizon:
                break
            del self.open[entity]
            self._close(entity, basket, config)

    def _close(self, entity: str, basket: _OpenBasket, config: ScoringConfig) -> None:
        """A basket is complete: learn from it if its customer is labelled."""
        label = config.labels.get(entity)
        if label is None:
            return
        self.model.learn(basket.x, label)
        self.unsaved += 1
        if config.checkpoint is not None and self.unsaved >= config.checkpoint_every:
            save_checkpoint(self.model, config.checkpoint, self.newest_ts)
            self.unsaved = 0


def initial_model(config: ScoringConfig) -> BasketClassifier:
    """The model to start from: the checkpoint when it holds this model version, else a
    fresh one. A corrupt checkpoint raises :class:`CheckpointError` (never unpickled)."""
    fresh = BasketClassifier(config.labels_version)
    path = config.checkpoint
    if path is None or not path.exists():
        return fresh
    meta = read_checkpoint_meta(path)
    if meta["version"] != fresh.version:
        log.warning("checkpoint %s holds model %s, not %s (labels or features changed): "
                    "starting a fresh model", path, meta["version"], fresh.version)
        return fresh
    model = load_checkpoint(path, expected_version=fresh.version)
    log.info("model %s restored from %s (%d baskets learnt)", model.version, path,
             model.n_learned)
    return model


def scoring_step(config: ScoringConfig) -> Callable[
        [ScoringState | None, FeatureUpdate], tuple[ScoringState, list[ScoreRow]]]:
    """A ``pickled_flat_map`` mapper over customer updates keyed by :data:`MODEL_KEY`.

    The starting model is read (and checked) here, when the flow is built, so a bad
    checkpoint stops the start with a clear error rather than inside a worker.
    """
    start = initial_model(config)

    def mapper(state: ScoringState | None, update: FeatureUpdate,
               ) -> tuple[ScoringState, list[ScoreRow]]:
        state = state or ScoringState(copy.deepcopy(start))
        return state, state.score(update, config)

    return mapper

