"""The models a process predicts with: the champion, and the challenger in shadow.

Every process of the flow (every worker of it) predicts where the customer's update is,
with the champion it loads from the model registry itself: the version the ``champion``
alias names when it is a model of the current labels and features, else the newest such
version (:func:`~basketflow.flows.learner.chosen_version`), else none (no score until the
learner registers one). It looks at the registry at most every :data:`WATCH_SECONDS` of
wall time, and reads it only when it changed, so a version the learner registers, a
promote or a rollback reaches every process within that time plus a batch. A
``challenger`` alias is loaded too: its predictions are made in shadow, for the offline
shadow score log only. A version that fails its checks is logged and kept out; the
process keeps what it had.

Without a registry there is nothing to predict with (a replay of history predicts in its
one step instead: :meth:`basketflow.flows.scoring.ScoringSteps.replay`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from basketflow.flows.learner import chosen_version
from basketflow.models.aliases import CHALLENGER
from basketflow.models.classifier import BasketClassifier
from basketflow.models.registry import Registry, RegistryError

log = logging.getLogger("basketflow.scoring")

#: How often (wall-clock seconds) a process looks whether the registry changed.
WATCH_SECONDS = 0.2


@dataclass(frozen=True)
class Shadow:
    """The model an alias other than the champion names, scored in shadow."""

    alias: str
    version: int
    model: BasketClassifier


class Predictor:
    """The champion (``model``; None while no version of these labels and features
    exists) and the challenger (``shadow``) of one process (module rules)."""

    def __init__(self, registry: Registry | None, model: str) -> None:
        self.registry = registry
        self.model_name = model
        self.version: int | None = None
        self.champion: BasketClassifier | None = None
        self.shadow: Shadow | None = None
        self.next_look = 0.0
        self.lock = threading.Lock()  # the process's workers share one predictor
        if registry is not None:
            self._load_champion(refuse=True)
            self._load_challenger()

    def models(self) -> tuple[BasketClassifier | None, Shadow | None]:
        """The champion and the challenger to predict with now (looked up when due)."""
        if self.registry is None:
            return None, None
        now = time.monotonic()
        if now >= self.next_look:
            with self.lock:
                if now >= self.next_look:
                    self.next_look = now + WATCH_SECONDS
                    if self.registry.changed():
                        self._load_champion()
                        self._load_challenger()
        return self.champion, self.shadow

    def _load_champion(self, refuse: bool = False) -> None:
        """Load the version to predict with when it moved; one that fails its checks is
        raised at start (``refuse``), else logged and passed over."""
        assert self.registry is not None
        pick = chosen_version(self.registry, self.model_name)
        if pick is None or pick.id == self.version:
            return
        try:
            self.champion, self.version = self.registry.load(pick.id), pick.id
        except RegistryError as exc:
            if refuse:
                raise
            log.error("champion not loaded for predictions: %s", exc)
            self.version = pick.id  # not tried again until the alias moves
            return
        log.debug("predicting with version %d (%d baskets learnt)", pick.id,
                 self.champion.n_learned)

    def _load_challenger(self) -> None:
        """Load the challenger when the alias moved (drop it when unset)."""
        assert self.registry is not None
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
