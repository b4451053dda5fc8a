"""``basketflow backfill`` and ``historical``: the feature log from history, and
point-in-time training sets from it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from basketflow.cli.output import mkdir_option, out, print_json, progress_bar
from basketflow.config import Settings

if TYPE_CHECKING:
    from basketflow.app.backfill import BackfillFigures


@click.command()
@click.option("--from", "source", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A Kaggle file (.csv or .csv.gz) to compute features from.")
@click.option("--from-offline", is_flag=True,
              help="Recompute from the events already in the offline store.")
@click.option("--materialize", is_flag=True,
              help="Also write the latest values to the online store (Redis).")
@click.option("--allowed-lateness", type=click.IntRange(min=0), default=None,
              help="Seconds an event may lag its customer's latest event [default: "
                   "the project file's allowed_lateness, else 3600].")
@click.option("--processes", type=click.IntRange(min=1), default=None,
              help="Processes to split the customers and products over, each reading all "
                   "the events [default: the CPUs, at most 4].")
@click.option("--views", "views", default=None, metavar="NAME[,NAME]",
              help="Only these views of the feature repository's own (with --from-offline): "
                   "their whole feature log, computed from the stored events.")
@click.option("--json", "as_json", is_flag=True, help="Print the run's figures as JSON.")
@click.pass_obj
def backfill(settings: Settings, source: Path | None, from_offline: bool, materialize: bool,
             allowed_lateness: int | None, processes: int | None, views: str | None,
             as_json: bool) -> None:
    """Compute the feature log from history with the live flow's own feature code.

    Writes features/<view>/ in the offline store (and, from a file, the events too);
    with --materialize also the latest values to Redis. No Kafka needed. The work is
    split over --processes: the customers in some, the products and the events to store
    in the others; the stores end the same as with one process.

    With --views NAME --from-offline, the feature repository's own view NAME (declared
    in basketflow.yaml's feature_repository, recorded by basketflow apply) gets its
    whole history from the stored events instead, replacing its feature log.
    """
    from basketflow.app.backfill import plan_backfill, run_backfill
    if (source is None) == (not from_offline):
        raise click.UsageError("give exactly one of --from PATH or --from-offline")
    if views is not None:
        if source is not None or materialize:
            raise click.UsageError("--views computes views from the offline store only: "
                                   "give --from-offline, without --from or --materialize")
        _backfill_views(settings, [v.strip() for v in views.split(",") if v.strip()], as_json)
        return
    plan = plan_backfill(settings, source, materialize=materialize,
                         allowed_lateness=allowed_lateness, processes=processes)
    total = plan.total_bytes
    # Refreshed at each batch rather than by a thread of its own: the other processes
    # are forked, and a thread may hold a lock (the terminal's) at that moment.
    with progress_bar("backfill", in_bytes=bool(total), auto_refresh=False) as bar:
        task = bar.add_task("backfill", total=total or None, lines="")
        figures = run_backfill(plan, lambda done: bar.update(
            task, completed=plan.bytes_read[0] if total else done, lines=f"{done:,} events",
            refresh=True))
        bar.update(task, completed=total or figures.events, refresh=True)
    if as_json:
        print_json(figures.to_json())
    else:
        print_backfilled(figures, from_file=source is not None)


def _backfill_views(settings: Settings, names: list[str], as_json: bool) -> None:
    """``backfill --views``: the repository's own views from the offline store."""
    from basketflow.app.view_backfill import backfill_views
    with progress_bar("backfill", in_bytes=False) as bar:
        task = bar.add_task("backfill", total=None, lines="")
        figures = backfill_views(settings, names, lambda done: bar.update(
            task, completed=done, lines=f"{done:,} events"))
    if as_json:
        print_json(figures.to_json())
        return
    out.print(f"read {figures.events:,} stored events in {figures.seconds:.1f} s")
    for name, rows in figures.rows.items():
        out.print(f"  {name}: {rows:,} feature-log rows of {figures.entities[name]:,} "
                  "entities (the log replaced)")


def print_backfilled(figures: BackfillFigures, from_file: bool) -> None:
    """What a backfill did, a line per store, saying why a count is 0 when it is."""
    out.print(f"backfilled {figures.events:,} events in {figures.seconds:.1f} s with "
              f"{figures.processes} process{'es' if figures.processes > 1 else ''} "
              f"({figures.events_per_second:,.0f} events/s)")
    again = ("already there from an earlier run over the same events: a backfill writes "
             "each row once, so running it again adds nothing")
    rows = figures.feature_rows
    out.print(f"  feature log: {rows:,} new rows" + (f" ({again})" if not rows and
                                                     figures.events else ""))
    if from_file:
        new = figures.offline_rows_written
        out.print(f"  offline events: {new:,} new" + (" (already stored)" if not new and
                                                       figures.events else ""))
    out.print(f"  online store: {figures.online_writes:,} writes"
              + ("" if figures.online_writes else " (give --materialize to write the latest "
                 "values to Redis)"))
    if figures.late_events:
        out.print(f"  late events: {figures.late_events:,} (later than --allowed-lateness "
                  "behind their entity's latest event; left out of the features)")


@click.command()
@click.option("--entities", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              required=True, help="CSV or Parquet with the entity id column and `timestamp`.")
@click.option("--features", "feature_list", required=True,
              help="Comma-separated view:feature names, e.g. customer:spend_30d,basket:value.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              required=True, help="Output file, .csv or .parquet.")
@mkdir_option
@click.option("--entity-column", default=None,
              help="Entity id column [default: the view's entity, e.g. customer_id].")
@click.option("--json", "as_json", is_flag=True, help="Print a summary as JSON.")
@click.pass_obj
def historical(settings: Settings, entities: Path, feature_list: str, out_path: Path,
               mkdir: bool, entity_column: str | None, as_json: bool) -> None:
    """A point-in-time training set: each row gets the latest values at or before its
    timestamp, never after (from the offline feature log)."""
    from basketflow.app.backfill import historical as write_training_set
    names = [f.strip() for f in feature_list.split(",") if f.strip()]
    try:
        written = write_training_set(settings, entities, names, out_path,
                                     entity_column=entity_column, mkdir=mkdir)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        print_json(written.to_json())
    else:
        out.print(f"wrote {written.rows:,} rows x {len(names)} features to {out_path}")

