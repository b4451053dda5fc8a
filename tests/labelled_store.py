"""A store the classifier can learn from, shared by the tests of scoring, the registry
and batch predictions: 12,000 generated lines backfilled into the offline store, and
customer categories fitted and assigned."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from basketflow.config import Settings
from basketflow.flows.backfill import file_events, run_backfill
from basketflow.flows.live import FeatureOutputs, RunOptions
from basketflow.producers.synthetic import write_csv
from basketflow.reports.segments import assign_customers, fit_segments


def labelled(settings: Settings, tmp_path: Path) -> Path:
    """A file of 12,000 lines, its offline store and labelled customers; the file."""
    source = tmp_path / "events.csv"
    write_csv(source, rows=12_000, seed=4, start=date(2011, 1, 1), end=date(2011, 6, 30))
    run_backfill(file_events(source, [0]), FeatureOutputs(None, settings.prefix,
                                                          settings.offline_dir),
                 RunOptions(snapshot_seconds=3600))
    fit_segments(settings.data_dir, date(2011, 4, 30), k=8)
    assign_customers(settings.data_dir)
    return source
