"""``basketflow compact``: merge each day's feature-log files into one (see
:mod:`basketflow.sinks.compaction`)."""

from __future__ import annotations

import click

from basketflow.cli.output import out, print_json
from basketflow.config import Settings


@click.command()
@click.option("--view", "views", multiple=True, metavar="NAME",
              help="Compact this view's log only (repeatable); default: every view.")
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
@click.pass_obj
def compact(settings: Settings, views: tuple[str, ...], as_json: bool) -> None:
    """Merge each day's feature-log files into one file per view and day, and move each
    closed month's into one month file (its day files deleted: stored once).

    A live flow writes one small file per flush, and every training set pays for each
    file it reads. The merged rows are the same, so `historical` returns the same
    values; a kill at any point leaves the old files or the new one counted, never
    both, and running it again finishes the work. `basketflow run` also compacts the
    days the flow has moved past, every few minutes.
    """
    from basketflow.sinks.compaction import compact_store
    done = compact_store(settings.offline_dir, list(views) if views else None)
    if as_json:
        print_json({"days": done.days, "months": done.months,
                    "files_replaced": done.files_replaced,
                    "rows": done.rows, "files_deleted": done.files_deleted,
                    "skipped": done.skipped})
        return
    out.print(f"compacted {done.days:,} day(s) of the feature log: {done.files_replaced:,} "
              f"files into {done.days:,} ({done.rows:,} rows); {done.files_deleted:,} old "
              f"files deleted; {done.months:,} closed month(s) moved into a month file")
    for reason in done.skipped:
        out.print(f"left as it was: {reason}", soft_wrap=False)
