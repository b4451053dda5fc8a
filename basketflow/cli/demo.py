"""``basketflow demo``: everything at once on embedded servers, each step shown as it
happens."""

from __future__ import annotations

import click

from typing import TYPE_CHECKING

from basketflow.cli.features import print_view
from basketflow.cli.models import print_segments
from basketflow.cli.output import console, out, step
from basketflow.cli.servers import print_status
from basketflow.config import Settings

if TYPE_CHECKING:
    from basketflow.app.demo import DemoEvent


@click.command()
@click.option("--rows", type=click.IntRange(min=100), default=50_000, show_default=True,
              help="Synthetic lines to generate.")
@click.option("--seed", type=int, default=7, show_default=True)
@click.pass_obj
def demo(settings: Settings, rows: int, seed: int) -> None:
    """Everything at once on embedded servers: generate, backfill, customer categories,
    replay, run (features and live scores), query, status.

    Uses its own data directory (<data-dir>/demo, emptied first) and its own servers,
    stopped at the end, so it can run any number of times.
    """
    from basketflow.app.demo import run_demo
    run_demo(settings, rows, seed, show)


def show(event: DemoEvent) -> None:
    """One step or result of the demo, as it comes."""
    from basketflow.app.demo import (
        CustomerShown,
        FlowRan,
        Replayed,
        Segmented,
        ServersStarted,
        StatusCollected,
        Step,
        Stopping,
    )
    match event:
        case Step(text):
            step(text)
        case ServersStarted(bootstrap, redis_url):
            out.print(f"  broker {bootstrap}, redis {redis_url}")
        case Segmented(segmentation):
            print_segments(segmentation)
        case Replayed(summary):
            out.print(f"  {summary.sent:,} events sent, {summary.rejected:,} rejected, "
                      f"{summary.events_per_second:,.0f} lines/s")
        case FlowRan(events, seconds, scores):
            out.print(f"  {events:,} events, {events / max(seconds, 1e-9):,.0f} "
                      f"events/s, {scores:,} basket updates scored")
        case CustomerShown(customer, views, score):
            out.print(f"[bold]basketflow features {customer}[/]")
            for view, row in views.items():
                print_view(view, row)
            if score:
                out.print(f"[bold]basketflow score {customer}[/]: {score.category} "
                          f"(p={score.probabilities[score.category]:.2f}, model "
                          f"{score.model_version})")
        case StatusCollected(report):
            out.print("[bold]basketflow status[/]")
            print_status(report)
        case Stopping():
            console.print("stopping the embedded servers")
