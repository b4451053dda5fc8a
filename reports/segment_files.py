"""Saved customer categories, read without the libraries that fit them.

A segmentation's files (see :mod:`basketflow.reports.segments` for what they hold): its
artifact checked against its checksum, its labels, and the serve part's scoring set-up
made from them. Apart from :mod:`basketflow.reports.segments` because that module
brings pandas and scikit-learn's inputs, which the live flow's serve part never needs:
it reads the labels at start, and importing pandas would delay every ``basketflow run``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq

from basketflow.config import register_every
from basketflow.errors import BasketflowError
from basketflow.flows.scoring import ScoringConfig
from basketflow.models.registry import registry_dir

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("basketflow.scoring")

SEGMENTS_DIR = "segments"
ARTIFACT = "segmentation.json"
META = "meta.json"
LABELS = "labels.parquet"
CURRENT = "CURRENT"


class SegmentationError(BasketflowError, ValueError):
    """A segmentation cannot be fitted, found, trusted or applied: the message says why."""


@dataclass
class Segmentation:
    """Fitted customer categories: how to compute them, what they are, where they came from.

    ``centroids`` are in the scaled input space (``(input - center) / scale``);
    ``profiles[i]`` describes category ``names[i]`` (size, share of customers, how often,
    how much, what they buy); ``silhouette`` holds the score of every k tried (k=None).
    """

    version: str
    names: list[str]
    seed: int
    k: int
    fitted_at: str
    until: str
    data_range: list[str]
    feature_versions: dict[str, str]
    taxonomy_version: str
    customers: int
    sizes: list[int]
    profiles: list[dict[str, Any]]
    inputs: list[str]
    center: list[float]
    scale: list[float]
    centroids: list[list[float]]
    silhouette: dict[str, float] = field(default_factory=dict)

    def assign(self, profiles: pd.DataFrame) -> pd.Series:
        """Each profiled customer's category name (the nearest centroid after scaling).

        ``profiles`` as :func:`basketflow.reports.profiles.customer_profiles` returns them; the result
        is indexed like them, named ``category``.
        """
        import numpy as np
        import pandas as pd

        from basketflow.reports.segments import INPUTS, input_matrix
        if list(self.inputs) != list(INPUTS):
            raise SegmentationError(f"segmentation {self.version} was fitted on inputs "
                                    f"{self.inputs}, this code computes {list(INPUTS)}: "
                                    "refit with `basketflow segment fit`")
        if profiles.empty:
            return pd.Series([], index=profiles.index, name="category", dtype=object)
        scaled = (input_matrix(profiles) - np.asarray(self.center)) / np.asarray(self.scale)
        centroids = np.asarray(self.centroids)
        distances = ((scaled[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
        names = np.asarray(self.names, dtype=object)[distances.argmin(axis=1)]
        return pd.Series(names, index=profiles.index, name="category")

    def content(self) -> dict[str, Any]:
        """Everything that defines the fit: what the version is a digest of."""
        data = asdict(self)
        del data["version"], data["fitted_at"]
        return data


def content_version(content: dict[str, Any]) -> str:
    """12 hex digits of the sha256 of the canonical JSON of a fit's content."""
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def segments_dir(data_dir: Path) -> Path:
    """Where every fitted segmentation lives."""
    return Path(data_dir) / SEGMENTS_DIR


def current_version(data_dir: Path) -> str:
    """The version CURRENT names; SegmentationError when nothing was fitted yet."""
    pointer = segments_dir(data_dir) / CURRENT
    if not pointer.is_file():
        raise SegmentationError(f"no customer categories fitted in {segments_dir(data_dir)}: "
                                "run `basketflow segment fit --until DATE` first")
    return pointer.read_text().strip()


def available_versions(data_dir: Path) -> list[str]:
    """Versions with an artifact on disk, sorted."""
    root = segments_dir(data_dir)
    return sorted(p.parent.name for p in root.glob(f"*/{ARTIFACT}")) if root.is_dir() else []


def load_segmentation(data_dir: Path, version: str | None = None) -> Segmentation:
    """A saved segmentation (None: CURRENT), its checksum verified before it is parsed.

    Raises SegmentationError when none was fitted, the version is unknown, or the file does
    not match its recorded sha256 (changed or damaged after it was written).
    """
    version = version or current_version(data_dir)
    directory = segments_dir(data_dir) / version
    if not (directory / ARTIFACT).is_file() or not (directory / META).is_file():
        known = ", ".join(available_versions(data_dir)) or "none"
        raise SegmentationError(f"no segmentation {version!r} in {segments_dir(data_dir)} "
                                f"(known: {known}); `basketflow segment fit` makes one")
    body = (directory / ARTIFACT).read_bytes()
    try:
        expected = json.loads((directory / META).read_text())["sha256"]
    except (ValueError, KeyError) as exc:
        raise SegmentationError(f"{directory / META} is damaged ({exc}); refit with "
                                "`basketflow segment fit`") from exc
    actual = hashlib.sha256(body).hexdigest()
    if actual != expected:
        raise SegmentationError(f"{directory / ARTIFACT} does not match its checksum "
                                f"(sha256 {actual[:12]}..., expected {expected[:12]}...): it "
                                "was changed after fitting; refused. Refit with "
                                "`basketflow segment fit`")
    seg = Segmentation(**json.loads(body))
    if seg.version != version or content_version(seg.content()) != version:
        raise SegmentationError(f"{directory / ARTIFACT} does not hold version {version}: "
                                "refused. Refit with `basketflow segment fit`")
    return seg


def load_labels(data_dir: Path, version: str | None = None) -> dict[str, str]:
    """customer_id -> category from a segmentation's labels.parquet (None: CURRENT)."""
    version = version or current_version(data_dir)
    path = segments_dir(data_dir) / version / LABELS
    if not path.is_file():
        raise SegmentationError(f"no labels for segmentation {version} ({path}): run "
                                f"`basketflow segment assign --version {version}` first")
    table = pq.read_table(path, columns=["customer_id", "category"])
    return dict(zip(table.column(0).to_pylist(), table.column(1).to_pylist()))


def scoring_config(data_dir: Path) -> ScoringConfig | None:
    """The scoring set-up of a data directory: the labels of its current segmentation and
    the model registry beside them, and how often the learner publishes a version
    (``BASKETFLOW_REGISTER_EVERY``); None (no scoring, with a log line saying how to turn
    it on) while no segmentation has labelled any customer."""
    try:
        segmentation = load_segmentation(data_dir)
        labels = load_labels(data_dir, segmentation.version)
    except SegmentationError as exc:
        log.warning("no live scores: %s (the classifier learns from the labels of "
                    "`basketflow segment fit` then `basketflow segment assign`)", exc)
        return None
    return ScoringConfig(labels, segmentation.version, registry_dir(data_dir),
                         register_every=register_every())
