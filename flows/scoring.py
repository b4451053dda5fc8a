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

- **measures** each closed labelled basket before learning it: the model's prediction
  of it against its label, prequential (:mod:`basketflow.models.prequential`).

Every ``register_every`` learnt baskets the model is registered as a new version in the
data directory's model registry (:mod:`basketflow.models.registry`), with its lineage
(parent version, baskets learnt, the event-time clock it had consumed, labels, feature
view versions) and its metrics; the champion alias follows these versions until a person
chooses one by hand. The step starts from the champion (when it is a model of the
current labels and features; else the newest such version; else a fresh model), and
watches the champion: a version promoted or rolled back to while the flow runs is
adopted within :data:`WATCH_SECONDS`: the scores from then on are its, and the learning
continues from it. Continuing a version, the step does not learn again a basket that
closed by the version's event-time clock (the version learnt it: a flow reading the topic
from its start after ``basketflow models train`` learns each basket once). A version that fails its checks is refused with a log line, and the
step keeps its model.

A ``challenger`` alias is scored in shadow: each basket update gets the challenger
version's prediction too (its weights as registered: it does not learn), emitted as a
:class:`~basketflow.schemas.records.ShadowScoreRow` that the flow writes to the offline
shadow score log only, marked with the alias and version, never to Redis or the API.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from basketflow.models.classifier import BasketClassifier, classifier_features
from basketflow.models.prequential import Prequential
from basketflow.models.aliases import CHALLENGER, CHAMPION
from basketflow.models.registry import (
    DEFAULT_KEEP,
    Lineage,
    Registry,
    RegistryError,
    Version,
)
from basketflow.schemas.records import FeatureUpdate, ScoreRow, ShadowScoreRow

log = logging.getLogger("basketflow.scoring")

#: The single key every customer update is routed to: one model for all customers.
MODEL_KEY = "model"
DEFAULT_GAP_SECONDS = 3600
UNLABELLED = "unlabelled"
#: How often (wall-clock seconds) the step looks for a champion chosen by hand.
WATCH_SECONDS = 0.2


@dataclass(frozen=True)
class ScoringConfig:
    """What the scoring step needs: the labels of the current segmentation (customer ->
    category; may be empty), their version, the model registry's directory (None: none;
    nothing registered, no champion watched), the event-time gap that closes a basket,
    how many learnt baskets make a new version, and how many versions the registry's
    retention keeps besides those chosen by hand."""

    labels: Mapping[str, str] = field(default_factory=dict)
    labels_version: str = UNLABELLED
    registry: Path | None = None
    gap_seconds: int = DEFAULT_GAP_SECONDS
    register_every: int = 100
    keep: int = DEFAULT_KEEP
    #: Called with the state after each update (``basketflow models train`` keeps the
    #: last: the model learnt from history); None for the live flow.
    on_state: Callable[[ScoringState], None] | None = None
    #: The next offset of each partition the live flow has read
    #: (``offset:<topic>:<partition>``), updated in place by the flow
    #: (:func:`basketflow.flows.live.build_live_flow`), recorded in each version's
    #: lineage; None outside a Kafka-fed flow.
    offsets: dict[str, int] | None = None


@dataclass(frozen=True)
class Shadow:
    """The model an alias other than the champion names, scored in shadow."""

    alias: str
    version: int
    model: BasketClassifier


@dataclass
class _OpenBasket:
    invoice: str
    x: dict[str, Any]
    last_ts: int


class ScoringState:
    """The model, the registry version it continues (``head``; None: unregistered) and
    the event time that version had learnt up to (``learnt_until``: a basket closing by
    then was learnt by it, and is not learnt again), the champion change it adopted last, its prequential
    figures, and the baskets still open, ordered by their last update."""

    def __init__(self, model: BasketClassifier, start: Version | None = None) -> None:
        self.model = model
        self.head = None if start is None else start.id
        self.learnt_until = 0 if start is None else start.lineage.clock or 0
        self.adopted = 0
        self.quality = Prequential()
        self.open: dict[str, _OpenBasket] = {}
        self.newest_ts = 0
        self.unsaved = 0

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a snapshot, one of an earlier release too (without a version)."""
        self.__dict__.update({"head": None, "learnt_until": 0, "adopted": 0} | state)
        if "quality" not in state:
            self.quality = Prequential()

    def score(self, update: FeatureUpdate, config: ScoringConfig,
              registry: Registry | None = None, shadow: Shadow | None = None,
              ) -> list[ScoreRow | ShadowScoreRow]:
        """Fold one customer's feature update in: close, learn, predict, and predict in
        ``shadow`` (module rules)."""
        out: list[ScoreRow | ShadowScoreRow] = []
        customer_rows = {(ts, seq): values for view, _e, ts, seq, values in update.rows
                         if view == "customer"}
        for view, entity, ts, seq, basket in update.rows:
            if view != "basket":
                continue
            x = classifier_features(basket, customer_rows.get((ts, seq)))
            self.newest_ts = max(self.newest_ts, ts)  # a version registered now is of ts
            previous = self.open.pop(entity, None)
            if previous is not None and previous.invoice != basket["invoice"]:
                self._close(entity, previous, config, registry, ts)
            self.open[entity] = _OpenBasket(basket["invoice"], x, ts)
            score = self.model.predict(x, ts)
            if score is not None:
                out.append(ScoreRow(entity, basket["invoice"], ts, seq, score))
            if shadow is not None and (other := shadow.model.predict(x, ts)) is not None:
                out.append(ShadowScoreRow(ScoreRow(entity, basket["invoice"], ts, seq, other),
                                          shadow.alias, shadow.version))
        self._close_idle(config, registry)
        return out

    def _close_idle(self, config: ScoringConfig, registry: Registry | None) -> None:
        """Close the baskets idle for the gap (oldest first; stops at the first live one)."""
        horizon = self.newest_ts - config.gap_seconds
        while self.open:
            entity, basket = next(iter(self.open.items()))
            if basket.last_ts >= horizon:
                break
            del self.open[entity]
            self._close(entity, basket, config, registry, self.newest_ts)

    def _close(self, entity: str, basket: _OpenBasket, config: ScoringConfig,
               registry: Registry | None, moment: int) -> None:
        """A basket is complete at event time ``moment``: measure the model on it, then
        learn from it, if its customer is labelled and the version the model continues
        had not closed it already (by its clock)."""
        label = config.labels.get(entity)
        if label is None or moment <= self.learnt_until:
            return
        if self.model.n_learned:
            self.quality.add(self.model.model.predict_proba_one(basket.x), label)
        self.model.learn(basket.x, label)
        self.unsaved += 1
        if registry is not None and self.unsaved >= config.register_every:
            self.register(registry, "flow", offsets=config.offsets)

    def register(self, registry: Registry, source: str, follow: bool = True,
                 offsets: dict[str, int] | None = None) -> int:
        """Register the model as a new version continuing :attr:`head`, with the Kafka
        ``offsets`` read so far; its id."""
        version = registry.register(self.model, Lineage.of(
            self.model, source, self.head, self.newest_ts or None, offsets),
            self.quality.metrics(), follow=follow)
        self.head, self.unsaved = version.id, 0
        return version.id

    def adopt(self, model: BasketClassifier, version: Version, change: int) -> None:
        """Continue from a registry version chosen by hand (alias change ``change``)."""
        self.model, self.head, self.adopted, self.unsaved = model, version.id, change, 0
        self.learnt_until = version.lineage.clock or 0
        self.quality = Prequential()


def initial_model(config: ScoringConfig, registry: Registry | None,
                  ) -> tuple[BasketClassifier, Version | None]:
    """The model to start from and its registry version: the champion when it is a
    model of these labels and features, else the newest such version, else a fresh one.
    A version that fails its checks raises :class:`RegistryError` (never unpickled)."""
    fresh = BasketClassifier(config.labels_version)
    if registry is None:
        return fresh, None
    champion = registry.alias(CHAMPION)
    mine = {v.id: v for v in registry.versions() if v.model == fresh.version}
    pick = mine.get(champion) if champion is not None else None
    pick = pick or (mine[max(mine)] if mine else None)
    if pick is None:
        return fresh, None
    model = registry.load(pick.id)
    log.info("model version %d (%s, %d baskets learnt) restored from the registry",
             pick.id, model.version, model.n_learned)
    return model, pick


class RegistryWatch:
    """Adopts a champion chosen by hand (promote, rollback) into the scoring state, and
    keeps the challenger's model (:attr:`shadow`), looking at most every
    :data:`WATCH_SECONDS` of wall time and only when the registry changed."""

    def __init__(self, registry: Registry, model: str) -> None:
        self.registry = registry
        self.model = model
        self.next_look = 0.0
        self.shadow: Shadow | None = None

    def apply(self, state: ScoringState) -> None:
        """Look (when due), adopt, follow the challenger; a version that fails its checks
        is logged and kept out."""
        now = time.monotonic()
        if now < self.next_look:
            return
        self.next_look = now + WATCH_SECONDS
        if not self.registry.changed():
            return
        self._challenger()
        self._champion(state)

    def _challenger(self) -> None:
        """Load the challenger when the alias moved (drop it when unset)."""
        challenger = self.registry.alias(CHALLENGER)
        if challenger is None:
            self.shadow = None
            return
        if self.shadow is not None and self.shadow.version == challenger:
            return
        try:
            self.shadow = Shadow(CHALLENGER, challenger, self.registry.load(challenger))
            log.info("challenger %d scored in shadow", challenger)
        except RegistryError as exc:
            log.error("challenger not scored: %s", exc)
            self.shadow = None

    def _champion(self, state: ScoringState) -> None:
        """Adopt a champion chosen by hand since the state's last adoption."""
        change = self.registry.last_change(CHAMPION)
        if change is None or change.id <= state.adopted or change.version == state.head \
                or change.action == "follow":
            return
        try:
            model = self.registry.load(change.version)
            version = self.registry.get(change.version)
        except RegistryError as exc:
            log.error("champion not adopted: %s", exc)
            state.adopted = change.id
            return
        if model.version != self.model:
            log.warning("champion %d is model %s, not %s (other labels or features): the "
                        "flow keeps its model", change.version, model.version, self.model)
        else:
            state.adopt(model, version, change.id)
            log.info("champion %d adopted (%s, %d baskets learnt)", change.version,
                     model.version, model.n_learned)
        state.adopted = change.id


def scoring_step(config: ScoringConfig) -> Callable[
        [ScoringState | None, FeatureUpdate],
        tuple[ScoringState, list[ScoreRow | ShadowScoreRow]]]:
    """A ``pickled_flat_map`` mapper over customer updates keyed by :data:`MODEL_KEY`.

    The starting model is read (and checked) here, when the flow is built, so a version
    that fails its checks stops the start with a clear error rather than inside a worker.
    """
    registry = None if config.registry is None else Registry(config.registry, config.keep)
    start, version = initial_model(config, registry)
    watch = None if registry is None else RegistryWatch(registry, start.version)

    def mapper(state: ScoringState | None, update: FeatureUpdate,
               ) -> tuple[ScoringState, list[ScoreRow | ShadowScoreRow]]:
        state = state or ScoringState(copy.deepcopy(start), version)
        if watch is not None:
            watch.apply(state)
        shadow = None if watch is None else watch.shadow
        scored = state.score(update, config, registry, shadow)
        if config.on_state is not None:
            config.on_state(state)
        return state, scored

    return mapper
