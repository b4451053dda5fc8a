"""Benchmark of the daily report over the offline store built from the whole real file.

What it measures (the targets of issue 5): one day's report (target under 5 s on this
machine), split into computing the figures and writing each format, then a month of
daily reports (``--from``/``--to`` over a month, every format), with the total time.

The data directory is made first, in a temporary directory deleted at the end, the way a
deployment makes it, from the real Kaggle extract (``../shared/data`` beside the
repository, or the path given as the first argument): the backfill writes the events and
feature logs, customer categories are fitted on the data up to 2011-06-30 and assigned,
and the backfill is run again over the stored events with the scoring step on, which
writes the score log (the customer-category section reads all of them). Without the file
the benchmark says so and exits (status 0). An existing data directory made that way can
be given instead (``--data-dir D``): it is read, never changed.

    python benchmarks/daily_report.py [PATH.csv.gz | --data-dir D]
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import duckdb

from basketflow.flows.backfill import file_events, offline_events, run_backfill
from basketflow.flows.live import FeatureOutputs, RunOptions
from basketflow.flows.scoring import ScoringConfig
from basketflow.reports.daily import ReportRun, days_between
from basketflow.reports.daily_files import run_reports
from basketflow.reports.render import write_report
from basketflow.reports.segments import assign_customers, fit_segments, load_labels
from benchmarks.machine import REAL_DATA, describe

SEGMENTS_UNTIL = date(2011, 6, 30)
ONE_DAY = date(2011, 9, 30)
MONTH = (date(2011, 9, 1), date(2011, 9, 30))
ALL_FORMATS = {"md", "html", "json"}


def build_data_dir(source: Path, data: Path) -> None:
    """Backfill, fit and assign customer categories, backfill again with scoring; print
    each step's time."""
    offline = data / "offline"
    options = RunOptions(snapshot_seconds=3600)
    started = time.perf_counter()
    stats = run_backfill(file_events(source, [0]), FeatureOutputs(None, "bf", offline),
                         options)
    print(f"  backfill: {stats.offline_rows:,} events, {stats.feature_rows:,} feature rows "
          f"({time.perf_counter() - started:.1f} s)", flush=True)
    started = time.perf_counter()
    segmentation = fit_segments(data, SEGMENTS_UNTIL)
    labels = assign_customers(data)
    print(f"  segment fit --until {SEGMENTS_UNTIL} (k={segmentation.k}) and assign: "
          f"{len(labels):,} customers ({time.perf_counter() - started:.1f} s)", flush=True)
    started = time.perf_counter()
    scoring = ScoringConfig(load_labels(data), segmentation.version, None)
    run_backfill(offline_events(offline),
                 FeatureOutputs(None, "bf", offline, store_events=False, scoring=scoring),
                 options)
    [(scores,)] = duckdb.sql("SELECT count(*) FROM read_parquet("
                             f"'{offline}/scores/date=*/*.parquet')").fetchall()
    print(f"  backfill with scoring: {scores:,} score rows "
          f"({time.perf_counter() - started:.1f} s)", flush=True)


def one_day(root: Path, out: Path) -> None:
    """Time one day's report: figures, then each format; print the headline figures."""
    started = time.perf_counter()
    with ReportRun(root, [ONE_DAY]) as run:
        report = run.report(ONE_DAY)
    computed = time.perf_counter()
    timings = {}
    for fmt in ("md", "json", "html"):
        t = time.perf_counter()
        write_report(report, out, {fmt})
        timings[fmt] = time.perf_counter() - t
    total = time.perf_counter() - started
    s = report["sections"]
    print(f"\nOne day ({ONE_DAY}, first report of the process, imports included):")
    print(f"  figures  {computed - started:6.2f} s")
    for fmt, seconds in timings.items():
        print(f"  {fmt:<8} {seconds:6.2f} s")
    print(f"  total    {total:6.2f} s   (target < 5 s: {'met' if total < 5 else 'MISSED'})")
    print(f"  revenue £{s['totals']['revenue']['value']:,.2f}, "
          f"orders {s['totals']['orders']['value']}, "
          f"units {s['totals']['units']['value']:,}, "
          f"active customers {s['customers_countries']['active_customers']['value']}, "
          f"new products {s['product_categories']['new_products']['count']['value']}, "
          f"lines {s['data_quality']['lines']['value']:,}")
    customers = s["customer_categories"]
    if customers["available"]:
        new, moves = customers["new_customers"], customers["moves"]
        accuracy = new["accuracy"]["value"] if new["accuracy"] else None
        print(f"  customer categories {len(customers['categories']) - 1}, new customers "
              f"{new['count']['value']} ({new['predicted']['value']} predicted, "
              f"{new['right']['value']} of {new['labelled']['value']} right, accuracy "
              f"{accuracy}), moved {moves['moved']['value'] if moves['available'] else '-'}"
              f" of {moves.get('compared', '-')}")


def one_month(root: Path, out: Path) -> None:
    """Time a month of daily reports: the figures alone, then every format with progress."""
    days = days_between(*MONTH)

    def progress(done: int, total: int, day: date) -> None:
        if done % 5 == 0 or done == total:
            print(f"  {done}/{total} days ({day}) {time.perf_counter() - started:.1f} s",
                  flush=True)

    print(f"\nA month ({MONTH[0]} to {MONTH[1]}):")
    started = time.perf_counter()
    with ReportRun(root, days) as run:
        for day in run.days:
            run.report(day)
    print(f"  figures only (no file written): {time.perf_counter() - started:.2f} s")
    print("  every format (md, html with charts, json):")
    started = time.perf_counter()
    reports = run_reports(root, days, out, ALL_FORMATS, on_progress=progress)
    total = time.perf_counter() - started
    trading = [r for r in reports if r["status"] == "trading"]
    revenue = sum(r["sections"]["totals"]["revenue"]["value"] for r in trading)
    print(f"  total    {total:6.2f} s for {len(reports)} days ({len(trading)} trading), "
          f"{total / len(reports):.2f} s per day")
    print(f"  month revenue £{revenue:,.2f}")


def main() -> None:
    args = sys.argv[1:]
    given = Path(args[1]) if args[:1] == ["--data-dir"] and len(args) == 2 else None
    source = Path(args[0]) if args and given is None else REAL_DATA
    if given is None and not source.is_file():
        print(f"skipped: the real data file {source} is absent (give its path as argument)")
        return
    print(f"Machine: {describe()}, DuckDB {duckdb.__version__}")
    with tempfile.TemporaryDirectory(prefix="basketflow-report-") as tmp:
        data = given or Path(tmp) / "data"
        if given is None:
            print(f"Building the data directory from {source.name}:")
            build_data_dir(source, data)
        else:
            print(f"Data directory {data}")
        one_day(data / "offline", Path(tmp) / "reports-one")
        one_month(data / "offline", Path(tmp) / "reports-month")


if __name__ == "__main__":
    main()
