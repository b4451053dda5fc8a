"""A model from history: the flow's own feature and scoring steps over the offline
store's events (``basketflow models train``, and the River model of ``basketflow
evaluate``).

The stored events are replayed in event-time order through the live flow's feature steps
and scoring step (:func:`basketflow.flows.live.add_feature_steps`, by the backfill), in
batches of :data:`REPLAY_BATCH` events, about what a flow tailing the topic takes per
poll: the one model takes each batch customer by customer, so large batches would
reorder its learning and predictions away from what the live flow does. So a model
trained here learns what the live flow would have learnt from the same events, with the
same prequential figures.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from pathlib import Path

from basketflow.errors import BasketflowError
from basketflow.flows.backfill import offline_events, run_backfill
from basketflow.flows.live import FeatureOutputs, RunOptions
from basketflow.flows.learner import Learner
from basketflow.flows.scoring import ScoringConfig
from basketflow.offline_uri import StoreDir
from basketflow.reports.segments import load_labels, load_segmentation
from basketflow.schemas.events import Transaction

#: Events per batch of a replay (see the module docstring).
REPLAY_BATCH = 500


def replay_scoring(offline_dir: Path, scoring: ScoringConfig, out_dir: Path,
                   on_batch: Callable[[int], None], until: date | None = None) -> None:
    """Replay the offline store's events (up to the end of ``until``, if given) through
    the flow's feature and scoring steps; the scores go to ``out_dir``'s score log."""
    events = offline_events(offline_dir)
    if until is not None:
        end = int(datetime.combine(until, time.max, timezone.utc).timestamp())

        def until_end() -> Iterator[Transaction]:
            return itertools.takewhile(lambda e: e.ts <= end, events())
        source: Callable[[], Iterator[Transaction]] = until_end
    else:
        source = events
    run_backfill(source, FeatureOutputs(None, "replay", out_dir, store_events=False,
                                        scoring=scoring),
                 RunOptions(snapshot_seconds=3600), on_batch, batch=REPLAY_BATCH)


@dataclass(frozen=True)
class Trained:
    """A model learnt from history: the scoring state it ended in (model, prequential
    figures, event-time clock) and the segmentation whose labels it learnt."""

    state: Learner
    segmentation: str


class NothingLearnt(BasketflowError, ValueError):
    """The replay taught the model nothing (no labelled customer's basket closed)."""


def train(data_dir: Path, until: date | None = None,
          on_batch: Callable[[int], None] = lambda n: None,
          offline_dir: StoreDir | None = None) -> Trained:
    """The classifier of the current segmentation learnt from the offline store's events
    (up to ``until``; the store ``offline_dir``, by default ``<data_dir>/offline``);
    :class:`NothingLearnt` when no labelled basket closed."""
    segmentation = load_segmentation(data_dir)
    labels = load_labels(data_dir, segmentation.version)
    final: dict[str, Learner] = {}
    scoring = ScoringConfig(labels, segmentation.version,
                            on_state=lambda state: final.__setitem__("state", state))
    with tempfile.TemporaryDirectory() as tmp:
        replay_scoring(offline_dir or data_dir / "offline", scoring, Path(tmp), on_batch,
                       until)
    state = final.get("state")
    if state is None or not state.model.n_learned:
        raise NothingLearnt(
            "the replay taught the model nothing: no basket of a customer labelled by "
            f"segmentation {segmentation.version} closed in the offline store's events"
            + (f" up to {until}" if until else "") + "; run `basketflow segment assign`, "
            "or a later --until")
    return Trained(state, segmentation.version)
