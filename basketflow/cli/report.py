"""``basketflow report`` and ``categories``: daily reports from the offline store, and the
product taxonomy."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import click
from basketflow.cli.output import mkdir_option, out, print_json, progress_bar, shown, table
from basketflow.config import Settings


@click.command()
@click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="The day to report on.")
@click.option("--from", "first", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="First day of a range (one report per day).")
@click.option("--to", "last", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Last day of a range.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Folder the reports are written to (one folder per day and "
                                 "an index.html) [default: <data-dir>/reports].")
@mkdir_option
@click.option("--format", "formats", default="md,html,json", show_default=True,
              help="Comma-separated: md, html (with PNG charts), json.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@click.pass_obj
def report(settings: Settings, day: datetime | None, first: datetime | None,
           last: datetime | None, out_dir: Path | None, mkdir: bool, formats: str,
           as_json: bool) -> None:
    """The daily report on product categories, customers and data quality, computed from
    the offline store alone (works while the flow is stopped).

    Customer categories come from the current segmentation (`segment fit`, `segment
    assign`) and the score log; without them that section says what to run."""
    from basketflow.app.reports import daily_reports, report_days, reports_folder
    if day is not None and (first or last):
        raise click.UsageError("give --date, or --from and --to, not both")
    if day is None and not (first and last):
        raise click.UsageError("give --date D, or --from D1 --to D2")
    days = report_days(day and day.date(), first and first.date(), last and last.date())
    out_dir = reports_folder(settings, out_dir, mkdir)
    with progress_bar("report", in_bytes=False) as bar:
        task = bar.add_task("report", total=len(days), lines="")
        results = daily_reports(settings, days, out_dir, formats,
                                on_progress=lambda done, total, d: bar.update(
                                    task, completed=done, lines=str(d)))
    if as_json:
        print_json([r.to_json() for r in results])
        return
    out.print(f"wrote in {shown(out_dir)}/:")
    for r in results:
        names = [Path(f).name for f in r.files]
        pages = [n for n in names if n.startswith("report.")]
        charts = len(names) - len(pages)
        out.print(f"  {r.day}/  " + ", ".join(pages)
                  + (f" and {charts} chart{'s' if charts != 1 else ''}" if charts else ""))
    out.print(f"  index.html  (every day reported in {shown(out_dir)})")


def _window(_ctx: click.Context, _param: click.Parameter, text: str | None
            ) -> tuple[date, date] | None:
    """``FIRST:LAST`` as two dates (None: not given)."""
    if text is None:
        return None
    try:
        first, last = (datetime.strptime(part, "%Y-%m-%d").date() for part in text.split(":"))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not FIRST:LAST, two dates such as "
                                 "2011-09-01:2011-09-30") from None
    if first > last:
        raise click.BadParameter(f"{text!r} ends before it starts")
    return first, last


@click.command()
@click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]), required=True,
              help="The day whose distributions are compared.")
@click.option("--reference", type=str, default=None, callback=_window,
              metavar="FIRST:LAST", help="The reference window, inclusive "
              "[default: the champion model's last 28 days of training, if they end "
              "before --date; else the 28 days before --date].")
@click.option("--all", "show_all", is_flag=True, help="List every feature, not only those "
              "that moved (warn or alert).")
@click.option("--json", "as_json", is_flag=True, help="Print every feature's drift as JSON.")
@click.pass_obj
def drift(settings: Settings, day: datetime, reference: tuple[date, date] | None,
          show_all: bool, as_json: bool) -> None:
    """How far each feature's distribution on --date moved from the reference window:
    the customer, basket and product views of the feature log, and the live model's
    predicted-category mix.

    \b
    numbers     population stability index on the reference's deciles
                (0.1 warn, 0.25 alert)
    categories  Jensen-Shannon distance (0.1 warn, 0.2 alert)
    small days  under 100 values: Kolmogorov-Smirnov or chi-square,
                p < 0.05 warn, p < 0.01 alert
    """
    from basketflow.app.reports import drift as measure
    found = measure(settings, day.date(), reference)
    if as_json:
        print_json(found.to_json())
        return
    first, last = found.reference
    moved = [f for f in found.features if f.status != "ok"]
    out.print(f"drift on {found.day} against {first} .. {last} ({found.reference_from})")
    out.print(f"{len(moved)} of {len(found.features)} features moved")
    shown_rows = found.features if show_all else moved
    if shown_rows:
        rows = table("view:feature", "by", "value>", "p>", "status", "day n>", "ref n>")
        for f in shown_rows:
            rows.add_row(f"{f.view}:{f.feature}", f.method, f"{f.score:.4f}",
                         "" if f.p_value is None else f"{f.p_value:.2g}", f.status,
                         f"{f.day_n:,}", f"{f.reference_n:,}")
        out.print(rows)
    if found.empty:
        out.print(f"no values to compare: {', '.join(found.empty)}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the taxonomy as JSON.")
def categories(as_json: bool) -> None:
    """The product taxonomy: each category, what it holds and the words that decide it."""
    from basketflow.app.reports import taxonomy
    loaded = taxonomy()
    explained = loaded.explain()
    if as_json:
        print_json({"version": loaded.version, "categories": explained})
        return
    shown_table = table("category", "label", "description",
                        title=f"product categories (taxonomy {loaded.version})")
    for c in explained:
        shown_table.add_row(str(c.get("name")), str(c.get("label")), str(c.get("description")))
    out.print(shown_table)
