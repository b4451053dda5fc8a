"""Benchmark of the daily report over the offline store built from the whole real file.

What it measures (the targets of issue 5): one day's report (target under 5 s on this
machine), split into computing the figures and writing each format, then a month of
daily reports (``--from``/``--to`` over a month, every format), with the total time.

The offline store is built first, in a temporary directory deleted at the end, from the
real Kaggle extract (``../shared/data`` beside the repository, or the path given as the
first argument) through the real reader and store, in chunks of 50,000 events. Without the
file the benchmark says so and exits (status 0).

    python benchmarks/daily_report.py [PATH.csv.gz]
"""

from __future__ import annotations

import itertools
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import duckdb

from producers.csv_source import read_events
from reports.daily import ReportRun, days_between, run_reports
from reports.render import write_report
from schemas.events import Transaction
from sinks.offline_store import ParquetEventStore

REAL_DATA = (Path(__file__).resolve().parents[2] / "shared" / "data"
             / "online_retail_2010-12_to_2011-09.csv.gz")
CHUNK = 50_000
ONE_DAY = date(2011, 9, 30)
MONTH = (date(2011, 9, 1), date(2011, 9, 30))
ALL_FORMATS = {"md", "html", "json"}


def machine() -> str:
    """Platform, Python, CPUs and DuckDB version, for the record."""
    return (f"{platform.platform()}, Python {platform.python_version()}, "
            f"{os.cpu_count()} CPUs, DuckDB {duckdb.__version__}")


def build_store(source: Path, root: Path) -> int:
    """Fill an offline store from the file, chunk by chunk; print a line per chunk."""
    store = ParquetEventStore(root)
    valid = (e for e in read_events(source) if isinstance(e, Transaction))
    written = 0
    started = time.perf_counter()
    while chunk := list(itertools.islice(valid, CHUNK)):
        written += store.append(chunk)
        print(f"  stored {written:,} events ({time.perf_counter() - started:.1f} s)",
              flush=True)
    return written


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
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else REAL_DATA
    if not source.is_file():
        print(f"skipped: the real data file {source} is absent (give its path as argument)")
        return
    print(f"Machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="basketflow-report-") as tmp:
        root = Path(tmp) / "offline"
        print(f"Building the offline store from {source.name}:")
        started = time.perf_counter()
        written = build_store(source, root)
        print(f"  {written:,} events in {time.perf_counter() - started:.1f} s")
        one_day(root, Path(tmp) / "reports-one")
        one_month(root, Path(tmp) / "reports-month")


if __name__ == "__main__":
    main()
