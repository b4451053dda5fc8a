"""``basketflow generate`` and ``replay``: synthetic transactions, and a file into Kafka."""

from __future__ import annotations

from pathlib import Path

import click

from basketflow.cli.output import mkdir_option, out, print_json, progress_bar
from basketflow.config import Settings


@click.command()
@click.option("--rows", type=click.IntRange(min=1), default=50_000, show_default=True,
              help="Data lines to write.")
@click.option("--seed", type=int, default=7, show_default=True,
              help="Same seed, same file, byte for byte.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("sample.csv"), show_default=True,
              help="Output file; a name ending in .gz is compressed.")
@mkdir_option
@click.option("--json", "as_json", is_flag=True, help="Print a summary as JSON.")
def generate(rows: int, seed: int, out_path: Path, mkdir: bool, as_json: bool) -> None:
    """Write realistic synthetic transactions in the exact Kaggle data.csv format.

    Customers with repeat visits and preferences, baskets of several lines,
    cancellations, guests, postage and fee lines, ISO-8859-1 text: enough to run the demo
    and the tests without the real data.
    """
    from basketflow.app.data import generate as write
    written = write(out_path, rows, seed, mkdir=mkdir)
    if as_json:
        print_json(written.to_json())
    else:
        out.print(f"wrote {written.rows:,} lines to {out_path} (seed {seed})")


@click.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--speedup", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds of event time played per wall second [default: as fast as possible].")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="At most this many events per second.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Stop after N lines.")
@click.option("--topic", default=None, help="Events topic [default: BASKETFLOW_TOPIC or transactions].")
@click.option("--partitions", type=click.IntRange(min=1), default=3, show_default=True,
              help="Partitions of the topic when it has to be created.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
def replay(settings: Settings, path: Path, speedup: float | None, rate: float | None,
           limit: int | None, topic: str | None, partitions: int, as_json: bool) -> None:
    """Replay a Kaggle transactions file (.csv or .csv.gz) into Kafka, in event-time order.

    Each valid line becomes one JSON message keyed by customer (guests: by invoice);
    each line that cannot be parsed goes to the dead-letter topic with its reason.
    """
    from basketflow.app.data import replay as send
    from basketflow.app.services import BROKER, resolve
    settings = resolve(settings, (BROKER,))
    size = path.stat().st_size if path.is_file() else 0
    with progress_bar("replay", in_bytes=True) as bar:
        task = bar.add_task("replay", total=size, lines="")
        summary = send(settings, path, speedup=speedup, rate=rate, limit=limit, topic=topic,
                       partitions=partitions, on_progress=lambda n, raw: bar.update(
                           task, completed=raw, lines=f"{n:,} lines"))
        bar.update(task, completed=size)
    if as_json:
        print_json(summary.to_dict())
        return
    out.print(f"sent {summary.sent:,} events to '{summary.topic}', {summary.rejected:,} "
              f"rejected lines to '{summary.dead_topic}', in {summary.seconds:.2f} s "
              f"({summary.events_per_second:,.0f} lines/s)")
    for reason, n in sorted(summary.reasons.items(), key=lambda kv: -kv[1]):
        example = summary.examples.get(reason, reason)
        out.print(f"  rejected {n:,}: {example}" if n == 1 else
                  f"  rejected {n:,} like: {example}", markup=False)
    if summary.delivery_errors:
        raise click.ClickException(f"{summary.delivery_errors} messages were not delivered; "
                                   "check the broker and replay again (replays are idempotent)")
