"""The scoring steps: learn in one place, predict everywhere.

The live customer-category classifier runs in two steps of the dataflow:

- **predict** (keyed by customer like the customer feature step, so each worker predicts
  for the customers whose features it folds, with no item sent elsewhere): it keeps a
  labelled customer's open basket (:mod:`basketflow.flows.open_baskets`) and, for every
  basket row of the customer feature updates (every event time of a customer carries a
  ``basket`` row and a ``customer`` row, see :mod:`basketflow.features.entity_features`),
  emits a :class:`ScoreRow` of the basket so far made with the process's champion
  (:mod:`basketflow.flows.predictor`; to Redis as the customer's live score, and to the
  offline score log), the challenger's as a
  :class:`~basketflow.schemas.records.ShadowScoreRow` (offline shadow score log only), and
  each labelled basket that closed as a :class:`~basketflow.flows.open_baskets.ClosedBasket`;
- **learn** (keyed by :data:`MODEL_KEY`: one learner): measures, learns and registers
  versions from the closed baskets only (:mod:`basketflow.flows.learner`).

So every worker predicts with the same published version: a flow of 2 workers scores
what a flow of 1 scores, given the same versions. Scores come from registered versions,
not the learner's weights of the moment: they move on every ``register_every`` baskets
learnt (and at a promote or rollback).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from basketflow.config import DEFAULT_REGISTER_EVERY
from basketflow.flows.learner import Learner, initial_model
from basketflow.flows.open_baskets import BasketUpdate, ClosedBasket, OpenBasket, fold_basket
from basketflow.flows.predictor import Predictor, Shadow
from basketflow.models.classifier import BasketClassifier
from basketflow.models.registry import DEFAULT_KEEP, Registry
from basketflow.schemas.records import FeatureUpdate, ScoreRow, ShadowScoreRow

#: The single key of the learner: one model learns from every customer's baskets.
MODEL_KEY = "model"
DEFAULT_GAP_SECONDS = 3600
UNLABELLED = "unlabelled"

#: What the predict step emits.
Predicted = ScoreRow | ShadowScoreRow | ClosedBasket


@dataclass(frozen=True)
class ScoringConfig:
    """What the scoring steps need: the labels of the current segmentation (customer ->
    category; may be empty), their version, the model registry's directory (None: none;
    nothing registered, no champion watched), the event-time gap that closes a basket,
    how many learnt baskets make a new version, and how many versions the registry's
    retention keeps besides those chosen by hand."""

    labels: Mapping[str, str] = field(default_factory=dict)
    labels_version: str = UNLABELLED
    registry: Path | None = None
    gap_seconds: int = DEFAULT_GAP_SECONDS
    register_every: int = DEFAULT_REGISTER_EVERY
    keep: int = DEFAULT_KEEP
    #: Called with the learner after each closed basket (``basketflow models train``
    #: keeps the last: the model learnt from history); None for the live flow.
    on_state: Callable[[Learner], None] | None = None
    #: A replay of history in one flow, one epoch (the backfill, ``models train``,
    #: ``evaluate``): one step, keyed by :data:`MODEL_KEY`, folds, learns and predicts in
    #: event order, predicting with the model as the learner last published it, so its
    #: figures do not depend on wall-clock timing (:meth:`ScoringSteps.replay`).
    replay: bool = False
    #: The next offset of each partition the live flow has read
    #: (``offset:<topic>:<partition>``), updated in place by the flow
    #: (:func:`basketflow.flows.live.build_live_flow`), recorded in each version's
    #: lineage; None outside a Kafka-fed flow.
    offsets: dict[str, int] | None = None


@dataclass
class ReplayState:
    """A replay's one scoring state: each labelled customer's open basket, the learner,
    and the model it published last (None: none yet)."""

    learner: Learner
    published: BasketClassifier | None
    baskets: dict[str, OpenBasket] = field(default_factory=dict)


class ScoringSteps:
    """The mappers of the predict and learn steps of one flow (``pickled_flat_map``
    mappers), sharing the process's :class:`~basketflow.flows.predictor.Predictor`.

    The learner's starting model and the champion are read (and checked) here, when the
    flow is built, so a version that fails its checks stops the start with a clear error
    rather than inside a worker.
    """

    def __init__(self, config: ScoringConfig) -> None:
        self.config = config
        self.registry = None if config.registry is None else Registry(config.registry,
                                                                      config.keep)
        self.start, self.version = initial_model(config.labels_version, self.registry)
        # a connection of its own: SQLite's data_version, by which the predictor sees a
        # new version, does not move for the commits of the connection that made them
        self.predictor = Predictor(
            None if config.registry is None else Registry(config.registry, config.keep),
            self.start.version)

    def predict(self, state: OpenBasket | None, update: FeatureUpdate,
                ) -> tuple[OpenBasket | None, list[Predicted]]:
        """Fold one customer update into the basket the customer is filling; score each
        basket row with the champion (and the challenger, in shadow); pass the closed
        baskets on."""
        state, updates, closed = fold_basket(state, update,
                                             self.config.labels.get(update.entity),
                                             self.config.gap_seconds)
        champion, shadow = self.predictor.models()
        return state, [*self._scores(updates, champion, shadow), *closed]

    @staticmethod
    def _scores(updates: list[BasketUpdate], champion: BasketClassifier | None,
                shadow: Shadow | None) -> list[Predicted]:
        """The champion's score of each basket update, and the challenger's in shadow."""
        out: list[Predicted] = []
        for basket in updates:
            if champion is not None and (score := champion.predict(basket.x, basket.ts)):
                out.append(ScoreRow(basket.entity, basket.invoice, basket.ts, basket.seq,
                                    score))
            if shadow is not None and (other := shadow.model.predict(basket.x, basket.ts)):
                out.append(ShadowScoreRow(ScoreRow(basket.entity, basket.invoice, basket.ts,
                                                   basket.seq, other),
                                          shadow.alias, shadow.version))
        return out

    def learn(self, state: Learner | None, basket: ClosedBasket,
              ) -> tuple[Learner, list[None]]:
        """Learn one closed basket (it registers the model's versions)."""
        state = state or Learner(copy.deepcopy(self.start), self.version)
        if self.registry is not None and self.registry.changed():
            state.adopt_hand_chosen(self.registry)
        state.learn(basket, self.registry, self.config.register_every, self.config.offsets)
        if self.config.on_state is not None:
            self.config.on_state(state)
        return state, []

    def replay(self, state: ReplayState | None, update: FeatureUpdate,
               ) -> tuple[ReplayState, list[Predicted]]:
        """The replay's one step (:attr:`ScoringConfig.replay`): the basket rules of the
        predict step, the learner's learning of each closed basket, then the update's
        predictions made with the model the learner published last."""
        config = self.config
        state = state or ReplayState(Learner(copy.deepcopy(self.start), self.version),
                                     None if self.version is None
                                     else copy.deepcopy(self.start))
        basket, updates, closed = fold_basket(state.baskets.pop(update.entity, None),
                                              update, config.labels.get(update.entity),
                                              config.gap_seconds)
        if basket is not None:
            state.baskets[update.entity] = basket
        for row in updates:
            state.learner.saw(row.ts)
        for done in closed:
            if state.learner.learn(done, self.registry, config.register_every,
                                   config.offsets):
                state.published = copy.deepcopy(state.learner.model)
        if config.on_state is not None:
            config.on_state(state.learner)
        return state, self._scores(updates, state.published, self.predictor.models()[1])
