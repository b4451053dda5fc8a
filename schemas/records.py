"""Typed records that cross a boundary between the parts of the data's path: what the
feature step hands the sinks and the scoring step, and what the scoring step hands the
sinks. They live here, below every part that makes or takes them, so imports point one
way (see the layers in ``pyproject.toml``).

Tuples where there is one per event or per log row (``NamedTuple`` is a plain tuple to
build and to index, and the Parquet writers take its fields by position), slotted
dataclasses for the rest.

>>> row = LogRow("customer", "17850", 1291191960, 3, {"spend_1d": 15.3})
>>> row.view, row.seq
('customer', 3)
>>> LateEvent("f:9", "17850", 1291100000, 1291191960).behind_s
91960
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple


class LogRow(NamedTuple):
    """One row of a view's feature log: the values of ``entity`` as of event time ``ts``,
    after ``seq`` events of the entity."""

    view: str
    entity: str
    ts: int
    seq: int
    values: dict[str, Any]


class LateEvent(NamedTuple):
    """An event left out of the features: ``ts`` was more than the allowed lateness before
    ``entity_ts``, the entity's latest event time (for a guest whose state may have been
    dropped, the flow's clock before the batch: see
    :mod:`basketflow.features.entity_features`)."""

    event_id: str
    entity: str
    ts: int
    entity_ts: int

    @property
    def behind_s(self) -> int:
        """How far behind the entity's latest event time it was, in seconds."""
        return self.entity_ts - self.ts


class Work(NamedTuple):
    """What the feature step gets for one entity: its events of a batch (none when only
    the clock woke it), the flow's event-time clock after that batch, and ``since``, the
    clock before it (what a new guest's events are checked against: see
    :mod:`basketflow.features.entity_features`)."""

    entity: str
    events: list[Any]  # list[Transaction]: schemas.events is not imported here
    clock: int
    since: int = 0


@dataclass(slots=True)
class FeatureUpdate:
    """What one batch of one entity's events changed: the latest values of each view that
    moved and the event time they are as of (``times``; a view that did not move with the
    entity's last events keeps the time it last moved, whatever the batch), the log rows,
    and the late events."""

    entity: str
    ts: int
    values: dict[str, dict[str, Any]]
    rows: list[LogRow] = field(default_factory=list)
    late: list[LateEvent] = field(default_factory=list)
    times: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Score:
    """A prediction: the most likely category, every category's probability, the model
    version that made it, and the event time of the features it used."""

    category: str
    probabilities: dict[str, float]
    model_version: str
    ts: int


@dataclass(frozen=True, slots=True)
class ScoreRow:
    """One prediction: the entity's basket ``invoice`` scored at event time ``ts`` after
    ``seq`` events of the entity (the feature rows it was made from)."""

    entity: str
    invoice: str
    ts: int
    seq: int
    score: Score


@dataclass(frozen=True, slots=True)
class ShadowScoreRow:
    """A prediction made in shadow by the model registry's version ``version``, which
    ``alias`` (the challenger) names: kept in the offline shadow score log only, never in
    the online store or the API."""

    row: ScoreRow
    alias: str
    version: int
