"""``basketflow report`` and ``categories``: daily reports from the offline store, and the
product taxonomy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from basketflow.config import Settings

if TYPE_CHECKING:
    from basketflow.reports.drift import DriftReport
    from basketflow.schemas.taxonomy import Taxonomy


@dataclass(frozen=True)
class ReportFiles:
    """The files written for one day's report."""

    day: date | str | None
    files: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {"day": self.day, "files": self.files}


def report_days(day: date | None, first: date | None, last: date | None) -> list[date]:
    """The days to report on: ``day``, or every day from ``first`` to ``last``.

    >>> report_days(None, date(2011, 1, 30), date(2011, 2, 1))[-1]
    datetime.date(2011, 2, 1)
    """
    from basketflow.reports.daily import days_between
    if day is not None:
        return [day]
    assert first is not None and last is not None
    return days_between(first, last)


def reports_folder(settings: Settings, out_dir: Path | None = None,
                   mkdir: bool = False) -> Path:
    """Where reports go: ``out_dir`` (its parent folder must exist unless ``mkdir``, see
    :func:`basketflow.app.paths.output_path`), by default ``<data-dir>/reports``; the
    folder itself is made when the first report is written."""
    from basketflow.app.paths import output_path
    if out_dir is None:
        return settings.data_dir / "reports"
    return output_path(out_dir, mkdir, folder=True)


def daily_reports(settings: Settings, days: list[date], out_dir: Path, formats: str,
                  on_progress: Callable[[int, int, date], None] | None = None,
                  ) -> list[ReportFiles]:
    """Report on each day, writing ``<out_dir>/<YYYY-MM-DD>/report.<format>`` for each of
    the comma-separated ``formats``; ``on_progress(done, total, day)`` after each day.
    :class:`~basketflow.reports.daily.ReportError` for an unknown format or a day outside
    the stored data; :class:`~basketflow.project_file.ProjectFileError` for a bad value
    of the project's data-quality expectations."""
    from basketflow.reports.daily import parse_formats
    from basketflow.reports.daily_files import run_reports
    from basketflow.schemas.expectations import configured
    expectations = configured(settings.expectations)
    results = run_reports(settings.offline_dir, days, out_dir, parse_formats(formats),
                          on_progress=on_progress, data_dir=settings.data_dir,
                          expectations=expectations)
    return [ReportFiles(r.get("day") or r.get("date"), r.get("files", [])) for r in results]


def drift(settings: Settings, day: date, reference: tuple[date, date] | None = None
          ) -> DriftReport:
    """Each feature's drift on ``day`` against ``reference`` (default: the champion
    model's last 28 days of training, else the 28 days before), from the offline store
    (:mod:`basketflow.reports.drift`)."""
    from basketflow.models.registry import champion_clock, registry_dir
    from basketflow.reports.drift import drift_report
    champion = None if reference else champion_clock(registry_dir(settings.data_dir))
    return drift_report(settings.offline_dir, day, reference, champion)


def taxonomy() -> Taxonomy:
    """The product taxonomy: its version and categories."""
    from basketflow.schemas.taxonomy import load_taxonomy
    return load_taxonomy()
