"""``basketflow demo``: everything at once on embedded servers, each step shown as it
happens, in a few lines each (readable at 80 columns), ending with where to look next."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from basketflow.cli.output import out, step, when
from basketflow.config import Settings

if TYPE_CHECKING:
    from basketflow.app.demo import DemoEvent
    from basketflow.app.features import FeatureRow

#: Categories of the segmentation the demo lists (the largest first).
SHOWN_CATEGORIES = 3


@click.command()
@click.option("--rows", type=click.IntRange(min=100), default=50_000, show_default=True,
              help="Synthetic lines to generate.")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--keep-running", is_flag=True,
              help="Leave the embedded servers up at the end, to explore the demo's data "
                   "(stop them with `basketflow --data-dir <data-dir>/demo down`).")
@click.pass_obj
def demo(settings: Settings, rows: int, seed: int, keep_running: bool) -> None:
    """Everything at once on embedded servers: generate, backfill, customer categories,
    replay, run (features and live scores), query, the busiest day's report.

    Uses its own data directory (<data-dir>/demo, emptied first) and its own servers,
    stopped at the end unless --keep-running, so it can run any number of times. The same
    seed prints the same figures (only the timings differ).
    """
    from basketflow.app.demo import run_demo
    run_demo(settings, rows, seed, show, keep_running=keep_running)


def shown_path(path: Path) -> str:
    """A path as the user would type it: relative to the current directory when inside it.

    >>> shown_path(Path.cwd() / "data" / "demo")
    'data/demo'
    >>> shown_path(Path("/elsewhere/demo"))
    '/elsewhere/demo'
    """
    relative = os.path.relpath(path)
    return path.as_posix() if relative.startswith("..") else Path(relative).as_posix()


def show(event: DemoEvent) -> None:
    """One step or result of the demo, as it comes."""
    from basketflow.app.demo import (
        Backfilled,
        CustomerShown,
        Finished,
        FlowRan,
        Replayed,
        ReportWritten,
        Segmented,
        ServersStarted,
        Step,
        Trained,
    )
    match event:
        case Step(text):
            step(text)
        case ServersStarted():
            pass  # their addresses change from run to run; shown only if left running
        case Backfilled(events):
            out.print(f"  {events:,} events -> customer, basket and product feature log")
        case Segmented(segmentation, labelled):
            out.print(f"  {len(segmentation.names)} categories, {labelled:,} customers "
                      f"labelled; the {SHOWN_CATEGORIES} largest:")
            ranked = sorted(zip(segmentation.names, segmentation.profiles),
                            key=lambda np: -np[1]["share_of_customers"])
            for name, profile in ranked[:SHOWN_CATEGORIES]:
                out.print(f"    {profile['share_of_customers']:4.0%}  {name}")
        case Trained(version, baskets):
            out.print(f"  model version {version} learnt {baskets:,} baskets: the "
                      "champion the flow predicts with")
        case Replayed(summary):
            out.print(f"  {summary.sent:,} events sent, {summary.rejected:,} rejected "
                      f"({summary.events_per_second:,.0f} lines/s)")
        case FlowRan(events, seconds, scores):
            out.print(f"  {events:,} events, {scores:,} basket updates scored "
                      f"({events / max(seconds, 1e-9):,.0f} events/s)")
        case CustomerShown(customer, views, score):
            for line in customer_lines(customer, views.get("customer"), views.get("basket")):
                out.print(line)
            if score:
                out.print(f"      score {score.probabilities[score.category]:.2f}: "
                          f"{score.category}")
        case ReportWritten(_day, path):
            out.print(f"  written to {shown_path(path)}")
        case Finished(data_dir, customers, day, report, running):
            if running is not None:
                out.print(f"The servers are left running (broker {running.bootstrap}, "
                          f"redis {running.redis_url}); stop them with `basketflow "
                          f"--data-dir {shown_path(data_dir)} down`.")
            print_next_steps(data_dir, customers, day, report, running is not None)


def customer_lines(customer: str, profile: FeatureRow | None,
                   basket: FeatureRow | None) -> list[str]:
    """One customer's live features in three short lines (the full vector is
    ``basketflow features ID``)."""
    lines = [f"  {customer}"]
    if profile is not None:
        v = profile.values
        lines[0] += (f"  30 days: {v['orders_30d']} orders, {v['spend_30d']:,.2f} spent; "
                     f"{v['lifetime_orders']} orders since {when(v['first_purchase'])[:10]}")
    if basket is not None:
        b = basket.values
        lines.append(f"      last basket {b['invoice']} ({b['country']}, "
                     f"{when(b['started'])[:16]}): {b['lines']} lines, {b['value']:,.2f}")
    return lines


def print_next_steps(data_dir: Path, customers: list[str], day: object, report: Path,
                     running: bool) -> None:
    """Where the demo's data and report are, and the commands to explore them."""
    bf = f"basketflow --data-dir {shown_path(data_dir)}"
    who = " ".join(customers[:1])
    out.print("")
    out.print(f"Next steps: the demo's data is in {shown_path(data_dir)}/ "
              "(offline/: Parquet).")
    out.print(f"  open {shown_path(report)} in a browser")
    if not running:
        out.print(f"  {bf} up   (its features are kept)")
    out.print(f"  {bf} features {who}")
    out.print(f"  {bf} status")
    out.print(f"  {bf} report --date {day}")
    out.print(f"  {bf} down")
    if not running:
        out.print("  basketflow demo --keep-running   leaves the servers up at the end")
