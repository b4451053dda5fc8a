"""Coverage and speed of the product taxonomy on the real data.

    python benchmarks/taxonomy_coverage.py [PATH]

PATH is a Kaggle-format CSV (plain or .gz, ISO-8859-1); default: the extract in
``../shared/data`` beside the repository. Prints:

- coverage: the share of product revenue (quantity x price over non-cancelled lines whose
  stock code is a product) and of product lines that land in a named category, not `other`;
- revenue and line share per category (no named category should hold more than ~30%);
- the top 15 descriptions left in `other`, by revenue (where to add patterns next);
- classification speed, calls per second, cold (no cache) and cached, over the file's
  distinct (stock code, description) pairs;
- the machine: platform, Python version, CPU count.

Exits with a clear message (status 0) when the data file is absent.
"""

from __future__ import annotations

import csv
import os
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from basketflow.producers.csv_source import open_text  # noqa: E402
from basketflow.schemas.taxonomy import OTHER, Taxonomy, load_taxonomy, measure_coverage  # noqa: E402

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "online_retail_2010-12_to_2011-09.csv.gz"
TARGET = 0.90


def read_rows(path: Path) -> Iterator[list[str]]:
    """Rows of a Kaggle CSV (header skipped), plain or gzipped, ISO-8859-1."""
    with open_text(path) as (text, _raw):
        reader = csv.reader(text)
        next(reader, None)
        yield from reader


def speed(tax: Taxonomy, pairs: list[tuple[str, str]], rounds: int = 5) -> tuple[float, float]:
    """(cold, cached) calls per second over ``pairs``; the best of ``rounds`` runs each."""
    def best(fn) -> float:
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            for code, desc in pairs:
                fn(code, desc)
            times.append(time.perf_counter() - t0)
        return len(pairs) / min(times)

    cold = best(tax.classify_uncached)
    for code, desc in pairs:  # warm the cache
        tax.category_of(code, desc)
    cached = best(tax.category_of)
    return cold, cached


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else DEFAULT_DATA
    if not path.exists():
        print(f"SKIPPED: data file {path} is absent; pass the path of a Kaggle-format CSV.")
        return 0
    tax = load_taxonomy()
    print(f"taxonomy {tax.version}: {len(tax.categories)} categories "
          f"({len(tax.categories) - 2} named + non_product + other)")
    print(f"data     {path}")

    t0 = time.perf_counter()
    rows = list(read_rows(path))
    cov = measure_coverage(rows, tax)
    elapsed = time.perf_counter() - t0
    print(f"         {len(rows):,} rows, {cov.lines:,} product lines "
          f"(non-cancelled), {cov.skipped_rows:,} unparsable, measured in {elapsed:.1f} s\n")

    verdict = "OK" if cov.revenue_share >= TARGET else f"BELOW TARGET {TARGET:.0%}"
    print(f"coverage of product revenue: {cov.revenue_share:6.2%}  "
          f"({cov.covered_revenue:,.0f} of {cov.revenue:,.0f})  {verdict}")
    print(f"coverage of product lines:   {cov.line_share:6.2%}  "
          f"({cov.covered_lines:,} of {cov.lines:,})")
    print(f"revenue placed by a weak pattern only (generic word): "
          f"{cov.weak_revenue / cov.revenue:6.2%}\n")

    print(f"{'category':24} {'label':28} {'revenue':>8} {'lines':>8}")
    for c in tax.categories:
        rev = cov.revenue_by_category.get(c.name, 0.0)
        lines = cov.lines_by_category.get(c.name, 0)
        flag = "  <- above 30%" if c.name != OTHER and rev > 0.30 * cov.revenue else ""
        print(f"{c.name:24} {c.label:28} {rev / cov.revenue:8.2%} "
              f"{lines / max(cov.lines, 1):8.2%}{flag}")

    print("\ntop 15 descriptions in 'other' by revenue:")
    for desc, rev in cov.top_uncovered(15):
        print(f"  {rev:12,.2f}  {desc or '<empty>'}")

    pairs = sorted({(r[1], r[2]) for r in rows if len(r) >= 3})
    cold, cached = speed(tax, pairs)
    print(f"\nspeed over {len(pairs):,} distinct (code, description) pairs:")
    print(f"  cold   {cold:12,.0f} calls/s  ({1e6 / cold:6.2f} us/call)")
    print(f"  cached {cached:12,.0f} calls/s  ({1e6 / cached:6.2f} us/call)")
    print(f"\nmachine: {platform.platform()}, Python {platform.python_version()} "
          f"({platform.python_implementation()}), {os.cpu_count()} CPUs, "
          f"{platform.processor() or platform.machine()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
