"""The learner: the one place the live classifier learns, and publishes its versions.

The learn step (:mod:`basketflow.flows.scoring`) is keyed by one constant key and gets
only the labelled baskets that closed (:class:`~basketflow.flows.open_baskets.ClosedBasket`,
from every worker's predict step). For each it **measures** the model on the basket
before learning it (prequential, :mod:`basketflow.models.prequential`), then **learns**
it; every ``register_every`` learnt baskets it **registers** the model as a new version in
the model registry (:mod:`basketflow.models.registry`) with its lineage and metrics, and
the champion alias follows these versions until a person chooses one by hand. Predictions
are made elsewhere, with the champion every process loads from the registry
(:mod:`basketflow.flows.predictor`).

The learner starts from the version :func:`chosen_version` picks, and adopts a champion
chosen by hand (promote, rollback) while it runs: its weights to go on learning from (the
baskets learnt since the last version are dropped). Continuing a version, it does not
learn again a basket that closed by the version's event-time clock (the version learnt
it: a flow reading the topic from its start after ``basketflow models train`` learns each
basket once).
"""

from __future__ import annotations

import logging
from typing import Any

from basketflow.flows.open_baskets import ClosedBasket
from basketflow.models.aliases import CHAMPION
from basketflow.models.classifier import BasketClassifier
from basketflow.models.prequential import Prequential
from basketflow.models.registry import Lineage, Registry, RegistryError, Version

log = logging.getLogger("basketflow.scoring")


class Learner:
    """The model, the registry version it continues (``head``; None: unregistered) and
    the event time that version had learnt up to (``learnt_until``: a basket closing by
    then was learnt by it, and is not learnt again), the champion change it adopted last,
    its prequential figures, the newest event time it learnt at, and how many baskets it
    learnt since its last version."""

    def __init__(self, model: BasketClassifier, start: Version | None = None) -> None:
        self.model = model
        self.head = None if start is None else start.id
        self.learnt_until = 0 if start is None else start.lineage.clock or 0
        self.adopted = 0
        self.quality = Prequential()
        self.newest_ts = 0
        self.unsaved = 0

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a snapshot, one of an earlier release too (without a version)."""
        self.__dict__.update({"head": None, "learnt_until": 0, "adopted": 0} | state)
        if "quality" not in state:
            self.quality = Prequential()

    def saw(self, ts: int) -> None:
        """Note an event time the flow consumed: a version registered now is of it."""
        self.newest_ts = max(self.newest_ts, ts)

    def learn(self, basket: ClosedBasket, registry: Registry | None, register_every: int,
              offsets: dict[str, int] | None = None) -> bool:
        """Measure the model on a closed basket, then learn it, unless the version the
        model continues had closed it already (by its clock). Every ``register_every``
        baskets learnt the model is published: registered as a version with the Kafka
        ``offsets`` read so far (when there is a ``registry``); whether it was."""
        self.saw(basket.moment)
        if basket.moment <= self.learnt_until:
            return False
        if self.model.n_learned:
            self.quality.add(self.model.model.predict_proba_one(basket.x), basket.label)
        self.model.learn(basket.x, basket.label)
        self.unsaved += 1
        if self.unsaved < register_every:
            return False
        if registry is not None:
            self.register(registry, "flow", offsets=offsets)
        self.unsaved = 0
        return True

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

    def adopt_hand_chosen(self, registry: Registry) -> None:
        """Adopt a champion chosen by hand since the last adoption; a version of other
        labels or features, or one that fails its checks, is logged and passed over."""
        change = registry.last_change(CHAMPION)
        if change is None or change.id <= self.adopted or change.version == self.head \
                or change.action == "follow":
            return
        self.adopted = change.id
        try:
            model = registry.load(change.version)
            version = registry.get(change.version)
        except RegistryError as exc:
            log.error("champion not adopted by the learner: %s", exc)
            return
        if model.version != self.model.version:
            log.warning("champion %d is model %s, not %s (other labels or features): the "
                        "learner keeps its model", change.version, model.version,
                        self.model.version)
            return
        self.adopt(model, version, change.id)
        log.info("champion %d adopted by the learner (%s, %d baskets learnt)",
                 change.version, model.version, model.n_learned)


def chosen_version(registry: Registry, model: str) -> Version | None:
    """The version of model ``model`` (its labels and features) to start from and to
    predict with: the champion when it is one, else the newest such version, else None."""
    champion = registry.alias(CHAMPION)
    mine = {v.id: v for v in registry.versions() if v.model == model}
    pick = mine.get(champion) if champion is not None else None
    return pick or (mine[max(mine)] if mine else None)


def initial_model(labels_version: str, registry: Registry | None,
                  ) -> tuple[BasketClassifier, Version | None]:
    """The model the learner starts from and its registry version (:func:`chosen_version`;
    a fresh model when there is none). A version that fails its checks raises
    :class:`RegistryError` (never unpickled)."""
    fresh = BasketClassifier(labels_version)
    pick = None if registry is None else chosen_version(registry, fresh.version)
    if registry is None or pick is None:
        return fresh, None
    model = registry.load(pick.id)
    log.debug("model version %d (%s, %d baskets learnt) restored from the registry",
             pick.id, model.version, model.n_learned)
    return model, pick
