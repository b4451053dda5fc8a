"""``basketflow generate`` and ``replay``: synthetic transactions, and a file into Kafka."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from basketflow.config import Settings

if TYPE_CHECKING:
    from basketflow.producers.replay import ReplaySummary


@dataclass(frozen=True)
class Generated:
    """A synthetic file written: where, how many data lines, from which seed."""

    path: Path
    rows: int
    seed: int

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {"path": str(self.path), "rows": self.rows, "seed": self.seed}


def generate(path: Path, rows: int, seed: int, *, mkdir: bool = False) -> Generated:
    """Write ``rows`` synthetic lines in the Kaggle format; the same seed writes the same
    file, byte for byte. Its folder must exist unless ``mkdir``
    (:func:`basketflow.app.paths.output_path`)."""
    from basketflow.app.paths import output_path
    from basketflow.producers.synthetic import write_csv
    return Generated(path, write_csv(output_path(path, mkdir), rows=rows, seed=seed), seed)


def replay(settings: Settings, path: Path, *, speedup: float | None = None,
           rate: float | None = None, limit: int | None = None, topic: str | None = None,
           partitions: int = 3,
           on_progress: Callable[[int, int], None] | None = None) -> ReplaySummary:
    """Replay a Kaggle file into ``topic`` (default: the settings' topic), rejected lines
    to the dead-letter topic; ``on_progress(lines, bytes read)`` as it goes. ``settings``
    must have the broker's address (:func:`basketflow.app.services.resolve`)."""
    from basketflow.app.paths import input_file
    input_file(path)  # before the Kafka client is imported
    from basketflow.producers.replay import replay as do_replay
    assert settings.kafka_bootstrap, "resolve addresses first"
    return do_replay(path, settings.kafka_bootstrap, topic or settings.topic,
                     settings.dead_topic, partitions=partitions, speedup=speedup, rate=rate,
                     limit=limit, on_progress=on_progress)
