"""The daily reports of many days, each written as files: the job behind
``basketflow report``. It builds each day's report (:mod:`basketflow.reports.daily`) and
writes it (:mod:`basketflow.reports.render`), so the builder and the renderer need not
know each other's callers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from basketflow.reports.daily import ReportRun, UnreadableDays, parse_formats
from basketflow.reports.render import write_report
from basketflow.reports.report_index import write_index
from basketflow.schemas.expectations import ExpectationSet


def run_reports(offline_dir: Path, days: list[date], out_dir: Path, formats: set[str],
                on_progress: Callable[[int, int, date], None] | None = None,
                data_dir: Path | None = None, expectations: ExpectationSet | None = None
                ) -> list[dict[str, Any]]:
    """Report on each day and write ``<out_dir>/<YYYY-MM-DD>/report.{md,html,json}``,
    then ``<out_dir>/index.html`` listing every day reported there.

    Days are reported in date order, once each; ``on_progress(done, total, day)`` is called
    after each. Returns each day's report dict plus ``files`` (the paths written; not in
    ``report.json`` itself). Raises :class:`ReportError` before writing anything when a
    format is unknown or a day lies outside the stored data, and :class:`UnreadableDays`
    after writing the other days' reports when a stored day up to the last one asked
    for cannot be read (that day has no report; the others are made without its rows).
    ``expectations``: the data-quality expectations checked (default: the defaults).
    """
    parse_formats(",".join(formats))
    results = []
    with ReportRun(offline_dir, days, data_dir=data_dir, expectations=expectations) as run:
        for done, day in enumerate(run.days, start=1):
            if day not in run.unreadable:
                report = run.report(day)
                files = write_report(report, Path(out_dir), formats)
                results.append({**report, "files": [str(p) for p in files]})
            if on_progress is not None:
                on_progress(done, len(run.days), day)
    if results:
        write_index(Path(out_dir))
    bad = {d: e for d, e in run.unreadable.items() if d <= run.days[-1]}
    if bad:
        raise UnreadableDays(bad, len(results))
    return results
