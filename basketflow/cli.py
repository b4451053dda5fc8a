"""``basketflow``: the one command of the feature store.

Every subcommand resolves its servers the same way (the environment first, then what
``basketflow up`` started), prints what it did for people, and with ``--json`` prints
one JSON document for scripts. Errors say what to do and exit with status 1.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timezone
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from basketflow.config import Settings, load_settings

if TYPE_CHECKING:
    from basketflow.reports.segments import Segmentation

console = Console(stderr=True, emoji=False, highlight=False)
out = Console(emoji=False, highlight=False)

def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that are the user's to fix: shown as one clear line, no traceback."""
    from basketflow.app.services import ServicesError
    from basketflow.kafka import BrokerUnavailable
    from basketflow.models.classifier import CheckpointError
    from basketflow.producers.csv_source import BadInputFile
    from basketflow.reports.profiles import ProfileError
    from basketflow.reports.segments import SegmentationError
    from basketflow.sinks.offline_store import StoreUnwritable
    from basketflow.sinks.online_store import RedisUnavailable
    return (BrokerUnavailable, ServicesError, BadInputFile, RedisUnavailable, CheckpointError,
            SegmentationError, ProfileError, StoreUnwritable)


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the project's own errors into a ClickException (message, exit status 1)."""
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except _user_errors() as exc:
            raise click.ClickException(str(exc)) from exc
    return wrapper


def print_json(data: Any) -> None:
    """One JSON document on stdout."""
    click.echo(json.dumps(data, indent=2, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Offline store, recovery snapshots and embedded servers' state "
                   "[env BASKETFLOW_DATA_DIR; default ./data].")
@click.option("-v", "--verbose", is_flag=True, help="Log more (debug level).")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None, verbose: bool) -> None:
    """basketflow: a real-time feature store for online retail.

    Transactions are replayed into Kafka; a Bytewax dataflow keeps customer and basket
    features in Redis (online) and appends every event to Parquet (offline).

    \b
    Typical session:
      basketflow up                         start the embedded broker and Redis
      basketflow generate --rows 50000 --out sample.csv
      basketflow replay sample.csv          send it to Kafka
      basketflow run --stop-at-end          the dataflow, until the topic's end
      basketflow features 17850             one customer's live features
      basketflow status                     servers, lag, stores
      basketflow down
    Or all of it at once: basketflow demo
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    ctx.obj = load_settings(data_dir)


def resolved(settings: Settings) -> Settings:
    """The settings with server addresses (env, or the embedded servers of ``up``)."""
    from basketflow.app.services import resolve
    return resolve(settings)


# ------------------------------------------------------------------ services


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the addresses as JSON.")
@click.pass_obj
@friendly
def up(settings: Settings, as_json: bool) -> None:
    """Start the embedded Kafka-protocol broker and Redis-protocol server.

    They run in the background on free loopback ports until `basketflow down`; their
    addresses are kept in the data directory. A server set by KAFKA_BOOTSTRAP_SERVERS or
    REDIS_URL is used as it is and not started.
    """
    from basketflow.app import services
    addresses = services.up(settings)
    if as_json:
        print_json(addresses)
        return
    for name, address in addresses.items():
        out.print(f"{name:7} {address}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print what was stopped as JSON.")
@click.pass_obj
@friendly
def down(settings: Settings, as_json: bool) -> None:
    """Stop the embedded servers started by `basketflow up`."""
    from basketflow.app import services
    stopped = services.down(settings)
    if as_json:
        print_json({"stopped": stopped})
    else:
        out.print("stopped: " + (", ".join(stopped) or "nothing was running"))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the whole status as JSON.")
@click.pass_obj
@friendly
def status(settings: Settings, as_json: bool) -> None:
    """Servers, topics with the flow's offsets and lag, and rows in both stores."""
    from basketflow.app import services
    from basketflow.app.status import collect_status
    try:
        settings = services.resolve(settings)
    except services.ServicesNotRunning:
        pass  # status reports what is missing instead of failing
    report = collect_status(settings)
    if as_json:
        print_json(report)
    else:
        _print_status(report)


def _print_status(report: dict[str, Any]) -> None:
    """The status as tables for a terminal."""
    table = Table(title="services")
    for col in ("name", "address", "mode", "alive", "note"):
        table.add_column(col)
    for name, svc in report["services"].items():
        table.add_row(name, str(svc.get("address")), svc.get("mode", ""),
                      "yes" if svc.get("alive") else "NO", svc.get("error") or "")
    out.print(table)
    flow = report.get("flow", {})
    out.print(f"flow: {flow.get('events')} events processed, latest event time "
              f"{flow.get('event_time')}, updated {flow.get('updated_at')}")
    serve = flow.get("serve") or {}
    if serve.get("updated_at"):
        out.print(f"  its serve part (own process): {serve.get('events')} events, latest "
                  f"event time {serve.get('event_time')}, updated {serve.get('updated_at')}")
    health = flow.get("health") or {}
    if health.get("redis") == "down":
        out.print(f"flow (pid {health.get('pid')}): Redis unreachable since "
                  f"{health.get('since')}, waiting and retrying: {health.get('error')}")
    elif health.get("last_outage_from"):
        out.print(f"flow: last Redis outage from {health['last_outage_from']}, "
                  f"{health.get('last_outage_seconds')} s")
    table = Table(title="topics")
    for col in ("topic", "partition", "high watermark", "flow offset", "lag", "serve offset"):
        table.add_column(col)
    notes: list[str] = []
    for topic, info in report["topics"].items():
        if info.get("error") or not info.get("per_partition"):
            table.add_row(topic, "", "", "", info.get("error") or "no partitions", "")
        for p in info.get("per_partition", []):
            lag = "" if p.get("lag") is None else str(p["lag"])
            note = p.get("note")
            if note and note not in notes:
                notes.append(note)
            mark = f" [{notes.index(note) + 1}]" if note else ""
            serve_offset = p.get("serve_next_offset")
            table.add_row(topic, str(p["partition"]), str(p.get("high_watermark")),
                          str(p.get("next_offset")), lag + mark,
                          "" if serve_offset is None else str(serve_offset))
    out.print(table)
    for i, note in enumerate(notes, 1):
        out.print(f"  [{i}] {note}")
    off = report["offline"]
    out.print(f"offline store {off['dir']}: {off['rows']:,} rows in {off['files']} files, "
              f"{off['partitions']} days ({off.get('first_date')} .. {off.get('last_date')})")
    onl = report["online"]
    keys = ", ".join(f"{v}: {n:,}" for v, n in sorted(onl.get("keys", {}).items()))
    out.print(f"online store: {onl.get('total', 0):,} keys ({keys or 'none'})"
              + (f" [{onl['error']}]" if onl.get("error") else ""))


# ------------------------------------------------------------------ data


@cli.command()
@click.option("--rows", type=click.IntRange(min=1), default=50_000, show_default=True,
              help="Data lines to write.")
@click.option("--seed", type=int, default=7, show_default=True,
              help="Same seed, same file, byte for byte.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("sample.csv"), show_default=True,
              help="Output file; a name ending in .gz is compressed.")
@click.option("--json", "as_json", is_flag=True, help="Print a summary as JSON.")
@friendly
def generate(rows: int, seed: int, out_path: Path, as_json: bool) -> None:
    """Write realistic synthetic transactions in the exact Kaggle data.csv format.

    Customers with repeat visits and preferences, baskets of several lines,
    cancellations, guests, postage and fee lines, ISO-8859-1 text: enough to run the demo
    and the tests without the real data.
    """
    from basketflow.producers.synthetic import write_csv
    written = write_csv(out_path, rows=rows, seed=seed)
    if as_json:
        print_json({"path": str(out_path), "rows": written, "seed": seed})
    else:
        out.print(f"wrote {written:,} lines to {out_path} (seed {seed})")


def _progress_bar(label: str, in_bytes: bool, auto_refresh: bool = True) -> Progress:
    """A progress bar on stderr, counting bytes of a file read or plain units (days, events);
    without ``auto_refresh`` it is drawn only by updates with ``refresh=True``."""
    done = DownloadColumn() if in_bytes else MofNCompleteColumn()
    return Progress(TextColumn(label), BarColumn(), done, TextColumn("{task.fields[lines]}"),
                    TimeRemainingColumn(), console=console, transient=False,
                    auto_refresh=auto_refresh)


@cli.command()
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
@friendly
def replay(settings: Settings, path: Path, speedup: float | None, rate: float | None,
           limit: int | None, topic: str | None, partitions: int, as_json: bool) -> None:
    """Replay a Kaggle transactions file (.csv or .csv.gz) into Kafka, in event-time order.

    Each valid line becomes one JSON message keyed by customer (guests: by invoice);
    each line that cannot be parsed goes to the dead-letter topic with its reason.
    """
    from basketflow.producers.replay import replay as do_replay
    settings = resolved(settings)
    topic = topic or settings.topic
    assert settings.kafka_bootstrap
    size = path.stat().st_size if path.is_file() else 0
    with _progress_bar(f"replay {path.name}", in_bytes=True) as bar:
        task = bar.add_task("replay", total=size, lines="")
        summary = do_replay(
            path, settings.kafka_bootstrap, topic, settings.dead_topic,
            partitions=partitions, speedup=speedup, rate=rate, limit=limit,
            on_progress=lambda n, raw: bar.update(task, completed=raw, lines=f"{n:,} lines"))
        bar.update(task, completed=size)
    if as_json:
        print_json(summary.to_dict())
        return
    out.print(f"sent {summary.sent:,} events to '{topic}', {summary.rejected:,} rejected lines "
              f"to '{settings.dead_topic}', in {summary.seconds:.2f} s "
              f"({summary.events_per_second:,.0f} lines/s)")
    for reason, n in sorted(summary.reasons.items(), key=lambda kv: -kv[1]):
        out.print(f"  rejected {n:,}: {reason}")
    if summary.delivery_errors:
        raise click.ClickException(f"{summary.delivery_errors} messages were not delivered; "
                                   "check the broker and replay again (replays are idempotent)")


# ------------------------------------------------------------------ flow


@cli.command()
@click.option("--stop-at-end", is_flag=True,
              help="Stop once every partition is consumed to its end, instead of tailing.")
@click.option("-w", "--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Bytewax workers (threads) in this process.")
@click.option("--recovery/--no-recovery", default=True, show_default=True,
              help="Keep Bytewax recovery snapshots so a restart resumes where it stopped.")
@click.option("--snapshot-interval", type=click.FloatRange(min=0.1), default=10.0,
              show_default=True, help="Seconds between recovery snapshots (epochs): a "
              "restart after a crash re-reads at most this much of the topic.")
@click.option("--backup-interval", type=click.FloatRange(min=0), default=0.0,
              show_default=True, help="Seconds a superseded snapshot is kept before it is "
              "deleted; set it to how often you copy <data>/recovery elsewhere, so a copy "
              "is always consistent (Bytewax backup_interval).")
@click.option("--max-batch", type=click.IntRange(min=1), default=20_000, show_default=True,
              help="Most messages taken per poll of a partition: larger batches cost less CPU "
                   "per event while a backlog is read; a flow that keeps up gets small ones.")
@click.option("--part", type=click.Choice(["serve", "store"]), default=None,
              help="Run only this part of the flow, in this process: serve (customer and "
                   "basket features, live scores) or store (offline events, dead letters, "
                   "product features). By default both run, each in a process of its own.")
@click.option("--one-process", is_flag=True,
              help="Run both parts in this one process (recovery snapshots in "
                   "<data>/recovery/<topic>): less memory, but the store part's work then "
                   "delays live scores.")
@click.option("--json", "as_json", is_flag=True, help="Print the run's figures as JSON at the end.")
@click.pass_context
@friendly
def run(ctx: click.Context, stop_at_end: bool, workers: int, recovery: bool,
        snapshot_interval: float, backup_interval: float, max_batch: int,
        part: str | None, one_process: bool, as_json: bool) -> None:
    """Run the dataflow: topic -> features in Redis and events in Parquet.

    \b
    Two processes by default, each reading the topic:
      serve  customer and basket features and live scores -> Redis, their logs -> Parquet
      store  events, dead letters, product features -> Parquet and Redis
    so the store's work never holds back a live score. Stopping or killing this command
    stops both.

    Without --stop-at-end it runs until stopped (Ctrl-C); with recovery on (snapshots in
    <data>/recovery/<topic>/<part>), the next run, also after a crash or kill -9, resumes
    from the last snapshot: sinks are idempotent, so nothing is lost or doubled. A full
    disk or an unwritable data directory stops it with one error line; free space or fix
    the directory and run it again.
    """
    if part is not None and one_process:
        raise click.UsageError("--part runs one part and --one-process runs both in one "
                               "process: give one of them")
    settings = resolved(ctx.obj)
    if part is None and not one_process:
        figures = _run_parts(ctx, settings)
    else:
        figures = _run_in_process(settings, part, stop_at_end, workers, recovery,
                                  snapshot_interval, backup_interval, max_batch)
    if as_json:
        print_json(figures)
    else:
        out.print(f"processed {figures['events']:,} events ({figures['events_per_second']:,} /s), "
                  f"{figures['dead_letters']:,} dead letters, "
                  f"{figures['offline_rows_written']:,} new offline rows, "
                  f"{figures['online_writes']:,} online writes")


def _run_in_process(settings: Settings, part: str | None, stop_at_end: bool, workers: int,
                    recovery: bool, snapshot_interval: float, backup_interval: float,
                    max_batch: int) -> dict[str, Any]:
    """Run one part of the flow (None: both) in this process; return its figures."""
    from basketflow.flows.live import PARTS, SERVE, RunOptions, run_live
    from basketflow.reports.segments import scoring_config
    recovery_dir = settings.recovery_dir / settings.topic
    options = RunOptions(workers=workers, snapshot_seconds=snapshot_interval,
                         backup_seconds=backup_interval,
                         recovery_dir=(recovery_dir / part if part else recovery_dir)
                         if recovery else None)
    stats = run_live(settings, stop_at_end=stop_at_end, options=options, max_batch=max_batch,
                     parts=(part,) if part else PARTS,
                     scoring=scoring_config(settings.data_dir) if part in (None, SERVE) else None)
    return {"events": stats.events, "dead_letters": stats.dead_letters,
            "offline_rows_written": stats.offline_rows, "online_writes": stats.online_writes,
            "seconds": round(stats.seconds, 3),
            "events_per_second": round(stats.events / stats.seconds, 1) if stats.seconds else 0}


def _run_parts(ctx: click.Context, settings: Settings) -> dict[str, Any]:
    """Run each part of the flow as a child process with this command's options; return
    their figures, combined. A failed part's error is already on standard error."""
    from basketflow.app.flow_processes import (
        PartFailed,
        child_env,
        combined_figures,
        start_part,
        supervise,
    )
    from basketflow.flows.live import PARTS, prepare_run
    prepare_run(settings)  # here once: one error, not one per part
    params = ctx.params
    args = [*(["--stop-at-end"] if params["stop_at_end"] else []),
            "--workers", str(params["workers"]),
            "--recovery" if params["recovery"] else "--no-recovery",
            "--snapshot-interval", str(params["snapshot_interval"]),
            "--backup-interval", str(params["backup_interval"]),
            "--max-batch", str(params["max_batch"])]
    env = child_env(settings)
    verbose = logging.getLogger().isEnabledFor(logging.DEBUG)
    children = {part: start_part(part, args, env, verbose) for part in PARTS}
    try:
        return combined_figures(supervise(children))
    except PartFailed as exc:
        if exc.status < 0:  # killed by a signal: it printed nothing
            raise click.ClickException(
                f"the {exc.part} part of the flow was killed by "
                f"{signal.Signals(-exc.status).name}, and the other part stopped; run the "
                "same command again: both resume from their last snapshots") from exc
        raise SystemExit(exc.status) from exc  # its error is on standard error already


# ------------------------------------------------------------------ serving


class _FeaturesGroup(click.Group):
    """`features ENTITY` reads live values; `features list|describe` read the registry."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        if args and args[0] not in self.commands:
            args.insert(0, "get")
        return super().resolve_command(ctx, args)


@cli.group(cls=_FeaturesGroup, invoke_without_command=False)
def features() -> None:
    """Live feature values (`features ENTITY`) and the feature registry.

    \b
      basketflow features 17850               one customer's live values
      basketflow features 85123A --view product
      basketflow features list [--json]       every view, its entity, version, features
      basketflow features describe customer   one view in full
    """


@features.command("get")
@click.argument("entity")
@click.option("--view", "views", multiple=True,
              help="Only these views (repeatable) [default: the customer's views].")
@click.option("--json", "as_json", is_flag=True, help="Print the values as JSON.")
@click.pass_obj
@friendly
def features_get(settings: Settings, entity: str, views: tuple[str, ...], as_json: bool) -> None:
    """Live feature values of one entity from the online store.

    ENTITY is a customer id (guests: guest-<invoice>) for the customer and basket views,
    or a stock code with --view product.
    """
    from basketflow.schemas.features import registry
    from basketflow.sinks.online_store import open_online_store
    settings = resolved(settings)
    known = registry()
    unknown = [v for v in views if v not in known]
    if unknown:
        raise click.BadParameter(f"unknown view(s) {', '.join(unknown)}; known: "
                                 f"{', '.join(known)}", param_hint="--view")
    assert settings.redis_url
    store = open_online_store(settings.redis_url, settings.prefix)
    default = tuple(n for n, v in known.items() if v.entity == "customer_id")
    values = store.read_vectors(list(views or default), [entity])[0]
    if as_json:
        print_json({"entity": entity, "views": values})
        return
    if not any(values.values()):
        raise click.ClickException(f"no features for {entity!r} in the online store: has the "
                                   "flow run (`basketflow run`), and is the id right?")
    for view, vals in values.items():
        _print_view(view, vals)


@features.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the registry as JSON.")
@click.pass_obj
def features_list(settings: Settings, as_json: bool) -> None:
    """Every feature view: entity, version, windows, features, where values live."""
    from basketflow.schemas.features import describe, registry
    from basketflow.sinks.offline_layout import feature_log_pattern
    views = [describe(v, settings.prefix, feature_log_pattern(v.name))
             for v in registry().values()]
    if as_json:
        print_json(views)
        return
    table = Table(title="feature views")
    for col in ("view", "entity", "version", "windows (days)", "features", "online", "offline"):
        table.add_column(col)
    for v in views:
        table.add_row(str(v["name"]), str(v["entity"]), str(v["version"]),
                      ",".join(map(str, v["windows_days"])) or "-", str(len(v["features"])),
                      str(v["online"]), str(v["offline"]))
    out.print(table)


@features.command("describe")
@click.argument("view")
@click.option("--json", "as_json", is_flag=True, help="Print the view as JSON.")
@click.pass_obj
def features_describe(settings: Settings, view: str, as_json: bool) -> None:
    """One feature view in full: every feature with its type and description."""
    from basketflow.schemas.features import describe, registry
    from basketflow.sinks.offline_layout import feature_log_pattern
    known = registry()
    if view not in known:
        raise click.BadParameter(f"unknown view {view!r}; known: {', '.join(known)}",
                                 param_hint="VIEW")
    info = describe(known[view], settings.prefix, feature_log_pattern(view))
    if as_json:
        print_json(info)
        return
    out.print(f"[bold]{view}[/] (entity {info['entity']}, version {info['version']}): "
              f"{info['description']}")
    out.print(f"online: {info['online']}   offline: {info['offline']}   "
              f"TTL: {info['ttl_seconds'] or 'none'}")
    table = Table()
    for col in ("feature", "type", "description"):
        table.add_column(col)
    for f in info["features"]:  # type: ignore[union-attr]
        table.add_row(f["name"], f["dtype"], f["description"])
    out.print(table)


def _print_view(view: str, vals: dict[str, Any] | None) -> None:
    """One view's values as a table, times shown as dates."""
    if not vals:
        out.print(f"[bold]{view}[/]: no values")
        return
    table = Table(title=f"{view} (as of {_when(vals.get('_ts'))}, version {vals.get('_version')})")
    table.add_column("feature")
    table.add_column("value", justify="right")
    for name, value in vals.items():
        if not name.startswith("_"):
            shown = _when(value) if name in ("first_purchase", "last_purchase", "started") else value
            table.add_row(name, str(shown))
    out.print(table)


def _when(ts: Any) -> str:
    """Epoch seconds -> a readable UTC time."""
    if not isinstance(ts, (int, float)):
        return str(ts)
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# ------------------------------------------------------------------ history


@cli.command()
@click.option("--from", "source", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A Kaggle file (.csv or .csv.gz) to compute features from.")
@click.option("--from-offline", is_flag=True,
              help="Recompute from the events already in the offline store.")
@click.option("--materialize", is_flag=True,
              help="Also write the latest values to the online store (Redis).")
@click.option("--allowed-lateness", type=click.IntRange(min=0), default=None,
              help="Seconds an event may lag its customer's latest event [default: 3600].")
@click.option("--processes", type=click.IntRange(min=1), default=None,
              help="Processes to split the customers and products over, each reading all "
                   "the events [default: the CPUs, at most 4].")
@click.option("--json", "as_json", is_flag=True, help="Print the run's figures as JSON.")
@click.pass_obj
@friendly
def backfill(settings: Settings, source: Path | None, from_offline: bool, materialize: bool,
             allowed_lateness: int | None, processes: int | None, as_json: bool) -> None:
    """Compute the feature log from history with the live flow's own feature code.

    Writes features/<view>/ in the offline store (and, from a file, the events too);
    with --materialize also the latest values to Redis. No Kafka needed. The work is
    split over --processes: the customers in some, the products and the events to store
    in the others; the stores end the same as with one process.
    """
    import time

    from basketflow.flows.backfill import (
        default_processes,
        file_events,
        offline_events,
        run_backfill,
    )
    from basketflow.flows.live import FeatureOutputs, RunOptions
    from basketflow.schemas.features import DEFAULT_ALLOWED_LATENESS_S
    if (source is None) == (not from_offline):
        raise click.UsageError("give exactly one of --from PATH or --from-offline")
    redis_url = resolved(settings).redis_url if materialize else None
    outputs = FeatureOutputs(redis_url, settings.prefix, settings.offline_dir,
                             store_events=source is not None,
                             allowed_lateness=DEFAULT_ALLOWED_LATENESS_S
                             if allowed_lateness is None else allowed_lateness)
    raw = [0]
    total = source.stat().st_size if source is not None and source.is_file() else 0
    if source is not None and not source.is_file():
        raise click.BadParameter(f"{source}: no such file", param_hint="--from")
    events = file_events(source, raw) if source is not None else offline_events(settings.offline_dir)
    processes = processes or default_processes()
    counted = [0]
    start = time.perf_counter()
    # Refreshed at each batch rather than by a thread of its own: the other processes
    # are forked, and a thread may hold a lock (the terminal's) at that moment.
    with _progress_bar("backfill", in_bytes=bool(total), auto_refresh=False) as bar:
        task = bar.add_task("backfill", total=total or None, lines="")

        def on_batch(done: int) -> None:
            counted[0] = done
            bar.update(task, completed=raw[0] if total else done, lines=f"{done:,} events",
                       refresh=True)

        stats = run_backfill(events, outputs, RunOptions(snapshot_seconds=3600), on_batch,
                             processes=processes)
        bar.update(task, completed=total or counted[0], refresh=True)
    seconds = time.perf_counter() - start
    figures = {"events": counted[0], "feature_rows": stats.feature_rows,
               "offline_rows_written": stats.offline_rows, "online_writes": stats.online_writes,
               "late_events": stats.late_events, "seconds": round(seconds, 2),
               "events_per_second": round(counted[0] / seconds, 1) if seconds else 0,
               "processes": processes}
    if as_json:
        print_json(figures)
    else:
        out.print(f"backfilled {counted[0]:,} events in {seconds:.1f} s with {processes} "
                  f"process{'es' if processes > 1 else ''} "
                  f"({figures['events_per_second']:,} events/s): {stats.feature_rows:,} "
                  f"feature rows, {stats.offline_rows:,} new offline events, "
                  f"{stats.online_writes:,} online writes, {stats.late_events:,} late events")


@cli.command()
@click.option("--entities", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              required=True, help="CSV or Parquet with the entity id column and `timestamp`.")
@click.option("--features", "feature_list", required=True,
              help="Comma-separated view:feature names, e.g. customer:spend_30d,basket:value.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              required=True, help="Output file, .csv or .parquet.")
@click.option("--entity-column", default=None,
              help="Entity id column [default: the view's entity, e.g. customer_id].")
@click.option("--json", "as_json", is_flag=True, help="Print a summary as JSON.")
@click.pass_obj
@friendly
def historical(settings: Settings, entities: Path, feature_list: str, out_path: Path,
               entity_column: str | None, as_json: bool) -> None:
    """A point-in-time training set: each row gets the latest values at or before its
    timestamp, never after (from the offline feature log)."""
    from basketflow.reports.historical import historical_to_file
    names = [f.strip() for f in feature_list.split(",") if f.strip()]
    try:
        rows = historical_to_file(settings.offline_dir, entities, names, out_path,
                                  entity_column=entity_column)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        print_json({"rows": rows, "out": str(out_path), "features": names})
    else:
        out.print(f"wrote {rows:,} rows x {len(names)} features to {out_path}")


@cli.command()
@click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="The day to report on.")
@click.option("--from", "first", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="First day of a range (one report per day).")
@click.option("--to", "last", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Last day of a range.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("reports"), show_default=True, help="Where reports are written.")
@click.option("--format", "formats", default="md,html,json", show_default=True,
              help="Comma-separated: md, html (with PNG charts), json.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@click.pass_obj
@friendly
def report(settings: Settings, day: Any, first: Any, last: Any, out_dir: Path, formats: str,
           as_json: bool) -> None:
    """The daily report on product categories, customers and data quality, computed from
    the offline store alone (works while the flow is stopped).

    Customer categories come from the current segmentation (`segment fit`, `segment
    assign`) and the score log; without them that section says what to run."""
    from basketflow.reports.daily import ReportError, days_between, parse_formats
    from basketflow.reports.daily_files import run_reports
    if day is not None and (first or last):
        raise click.UsageError("give --date, or --from and --to, not both")
    if day is None and not (first and last):
        raise click.UsageError("give --date D, or --from D1 --to D2")
    try:
        days = [day.date()] if day is not None else days_between(first.date(), last.date())
        with _progress_bar("report", in_bytes=False) as bar:
            task = bar.add_task("report", total=len(days), lines="")
            results = run_reports(settings.offline_dir, days, out_dir, parse_formats(formats),
                                  on_progress=lambda done, total, d: bar.update(
                                      task, completed=done, lines=str(d)))
    except ReportError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        print_json([{"day": r.get("day") or r.get("date"), "files": r.get("files")}
                    for r in results])
        return
    for r in results:
        for path in r.get("files", []):
            out.print(f"wrote {path}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the taxonomy as JSON.")
def categories(as_json: bool) -> None:
    """The product taxonomy: each category, what it holds and the words that decide it."""
    from basketflow.schemas.taxonomy import load_taxonomy
    taxonomy = load_taxonomy()
    explained = taxonomy.explain()
    if as_json:
        print_json({"version": taxonomy.version, "categories": explained})
        return
    table = Table(title=f"product categories (taxonomy {taxonomy.version})")
    for col in ("category", "label", "description"):
        table.add_column(col)
    for c in explained:
        table.add_row(str(c.get("name")), str(c.get("label")), str(c.get("description")))
    out.print(table)


# ------------------------------------------------------------------ scores


@cli.command()
@click.argument("customer_id")
@click.option("--top", type=click.IntRange(min=1), default=5, show_default=True,
              help="Categories to show, most likely first.")
@click.option("--json", "as_json", is_flag=True, help="Print the score as JSON.")
@click.pass_obj
@friendly
def score(settings: Settings, customer_id: str, top: int, as_json: bool) -> None:
    """The live category score of a customer (guests: guest-<invoice>), from Redis.

    The flow's classifier scores every basket update: the most likely customer category,
    every category's probability, the model version, and the basket and event time the
    features came from.
    """
    from basketflow.sinks.online_store import open_online_store
    settings = resolved(settings)
    assert settings.redis_url
    value = open_online_store(settings.redis_url, settings.prefix).read_score(customer_id)
    if as_json:
        print_json({"customer": customer_id, "score": value})
        return
    if value is None:
        raise click.ClickException(
            f"no live score for {customer_id!r}: is the id right, has the flow run "
            "(`basketflow run`), and has a segmentation labelled customers for the model to "
            "learn from (`basketflow segment fit`, then `segment assign`, then run the flow)?")
    table = Table(title=f"{customer_id}: {value['category']} (basket {value['invoice']} as of "
                        f"{_when(value['_ts'])}, model {value['model_version']})")
    table.add_column("category")
    table.add_column("probability", justify="right")
    ranked = sorted(value["probabilities"].items(), key=lambda kv: -kv[1])
    for name, p in ranked[:top]:
        table.add_row(name, f"{p:.3f}")
    out.print(table)


# ------------------------------------------------------------------ customer categories


@cli.group()
def segment() -> None:
    """Customer categories: fit them from the feature log, label customers, show them.

    \b
      basketflow backfill --from data.csv.gz    the feature log, if the flow has not run
      basketflow segment fit --until 2011-06-30
      basketflow segment assign                 label every customer (CURRENT version)
      basketflow segment show
    """


#: How many customer categories to fit (shared by `segment fit` and `evaluate`).
categories_option = click.option(
    "--k", type=click.IntRange(8, 12), default=None,
    help="Number of categories [default: the best silhouette among 8..12].")


@segment.command("fit")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), required=True,
              help="Last day (inclusive) of the baskets the categories learn from.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="KMeans seed: same data and seed, same categories and version.")
@categories_option
@click.option("--json", "as_json", is_flag=True, help="Print the fitted segmentation as JSON.")
@click.pass_obj
@friendly
def segment_fit(settings: Settings, until: datetime, seed: int, k: int | None,
                as_json: bool) -> None:
    """Learn customer categories from purchase profiles up to --until, save them as a
    versioned artifact under <data-dir>/segments/ and make them CURRENT."""
    from dataclasses import asdict

    from basketflow.reports.segments import fit_segments
    with console.status("fitting customer categories") as status:
        seg = fit_segments(settings.data_dir, until.date(), seed=seed, k=k,
                           progress=lambda step: status.update(step))
    if as_json:
        print_json(asdict(seg))
        return
    out.print(f"fitted segmentation {seg.version}: {seg.k} categories over "
              f"{seg.customers:,} customers ({seg.data_range[0]} .. {seg.data_range[1]}), "
              f"seed {seg.seed}" + (f", silhouette {seg.silhouette}" if seg.silhouette else ""))
    _print_segments(seg)


@segment.command("assign")
@click.option("--version", "version", default=None,
              help="Segmentation version [default: CURRENT, the latest fitted].")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Profile baskets up to this day (inclusive) [default: all].")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Also write the labels to this .csv or .parquet file.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts per category as JSON.")
@click.pass_obj
@friendly
def segment_assign(settings: Settings, version: str | None, until: datetime | None,
                   out_path: Path | None, as_json: bool) -> None:
    """Label every registered customer with a category; labels go to
    <data-dir>/segments/<version>/labels.parquet (and --out)."""
    from basketflow.reports.historical import write_frame
    from basketflow.reports.segments import (
        LABELS,
        assign_customers,
        load_segmentation,
        segments_dir,
    )
    with console.status("profiling and labelling customers"):
        seg = load_segmentation(settings.data_dir, version)
        labels = assign_customers(settings.data_dir, seg.version,
                                  until.date() if until else None)
        if out_path is not None:
            try:
                write_frame(labels, out_path)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--out") from exc
    counts = {name: int(n) for name, n in
              labels["category"].value_counts().reindex(seg.names, fill_value=0).items()}
    written = segments_dir(settings.data_dir) / seg.version / LABELS
    if as_json:
        print_json({"version": seg.version, "customers": len(labels), "categories": counts,
                    "labels": str(written), "out": str(out_path) if out_path else None})
        return
    out.print(f"labelled {len(labels):,} customers with segmentation {seg.version} -> {written}"
              + (f" and {out_path}" if out_path else ""))
    for name, n in counts.items():
        out.print(f"  {n:6,}  {name}")


@segment.command("show")
@click.option("--version", "version", default=None,
              help="Segmentation version [default: CURRENT, the latest fitted].")
@click.option("--json", "as_json", is_flag=True, help="Print the segmentation as JSON.")
@click.pass_obj
@friendly
def segment_show(settings: Settings, version: str | None, as_json: bool) -> None:
    """The categories of a segmentation: name, customers, share and profile."""
    from dataclasses import asdict

    from basketflow.reports.segments import load_segmentation
    seg = load_segmentation(settings.data_dir, version)
    if as_json:
        print_json(asdict(seg))
        return
    out.print(f"segmentation {seg.version}: fitted {seg.fitted_at} on baskets up to "
              f"{seg.until} ({seg.data_range[0]} .. {seg.data_range[1]}), seed {seg.seed}, "
              f"features {seg.feature_versions}")
    _print_segments(seg)


def _print_segments(seg: Segmentation) -> None:
    """A segmentation's categories as a table."""
    table = Table(title=f"customer categories ({seg.version})")
    for col in ("category", "customers", "share", "profile"):
        table.add_column(col, justify="right" if col in ("customers", "share") else "left")
    for name, p in zip(seg.names, seg.profiles):
        buys = ", ".join(f"{c['label']} {c['share']:.0%}" for c in p["top_categories"])
        table.add_row(name, f"{p['customers']:,}", f"{p['share_of_customers']:.1%}",
                      f"median: {p['baskets_median']:g} basket(s), worth "
                      f"{p['basket_value_median']:,.0f}, {p['lines_per_basket_median']:g} "
                      f"lines; buys {buys}")
    out.print(table)


@cli.command()
@click.option("--split", type=click.DateTime(["%Y-%m-%d"]), required=True,
              help="Categories are fitted before this day; customers whose first basket is "
                   "on or after it are the test customers.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the categories and the random forest.")
@categories_option
@click.option("--json", "as_json", is_flag=True, help="Print every figure as JSON.")
@click.pass_obj
@friendly
def evaluate(settings: Settings, split: datetime, seed: int, k: int | None,
             as_json: bool) -> None:
    """How well each model knows a customer's category from the first basket alone.

    Categories from the baskets before --split; every customer labelled from all their
    baskets; test customers are those whose first basket is on or after --split. Models:
    the majority category, a random forest on a point-in-time training set, and the River
    model as the flow runs it (the flow's scoring step over the stored events, learning
    from training customers only). Accuracy and macro-F1 overall and on test customers
    with 2+ baskets, and the River model's confusion matrix.
    """
    from basketflow.reports.evaluate import evaluate as run_evaluation
    events = [0]
    with console.status("evaluating") as status:
        def step(text: str) -> None:
            status.update(text)

        def counted(n: int) -> None:
            events[0] += n
            status.update(f"River replay: {events[0]:,} events")

        result = run_evaluation(settings.data_dir, split.date(), seed=seed, k=k,
                                progress=step, on_batch=counted)
    if as_json:
        print_json(result.to_json())
        return
    out.print(f"split {result.split}: segmentation {result.segmentation.version} "
              f"({len(result.segmentation.names)} categories), {result.train_customers:,} "
              f"training customers, {result.test_customers:,} test customers "
              f"({result.test_customers_2plus:,} with 2+ baskets)")
    table = Table(title="first-basket predictions on the test customers")
    for col in ("model", "accuracy", "macro-F1", "accuracy 2+", "macro-F1 2+", "coverage"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for m in result.models:
        table.add_row(m.model, f"{m.accuracy:.3f}", f"{m.macro_f1:.3f}",
                      f"{m.accuracy_2plus:.3f}", f"{m.macro_f1_2plus:.3f}", f"{m.coverage:.1%}")
    out.print(table)
    matrix = Table(title="River confusion matrix (rows: true category; columns: predicted, "
                         "in the same order)")
    matrix.add_column("#", justify="right")
    matrix.add_column("true category")
    for i, _ in enumerate(result.confusion.columns):
        matrix.add_column(str(i + 1), justify="right")
    for i, (name, row) in enumerate(result.confusion.iterrows()):
        matrix.add_row(str(i + 1), str(name), *(str(v) for v in row))
    out.print(matrix)


# ------------------------------------------------------------------ demo


@cli.command()
@click.option("--rows", type=click.IntRange(min=100), default=50_000, show_default=True,
              help="Synthetic lines to generate.")
@click.option("--seed", type=int, default=7, show_default=True)
@click.pass_obj
@friendly
def demo(settings: Settings, rows: int, seed: int) -> None:
    """Everything at once on embedded servers: generate, backfill, customer categories,
    replay, run (features and live scores), query, status.

    Uses its own data directory (<data-dir>/demo, emptied first) and its own servers,
    stopped at the end, so it can run any number of times.
    """
    import shutil

    from basketflow.app.services import embedded_services
    from basketflow.flows.backfill import file_events, run_backfill
    from basketflow.flows.live import FeatureOutputs, RunOptions, run_live
    from basketflow.producers.replay import replay as do_replay
    from basketflow.producers.synthetic import write_csv
    from basketflow.reports.segments import assign_customers, fit_segments, scoring_config
    from basketflow.sinks.online_store import open_online_store

    root = settings.data_dir / "demo"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    with _step("starting the embedded broker and Redis-protocol server"), \
            embedded_services(root) as (bootstrap, redis_url):
        pass_settings = Settings(root, bootstrap, redis_url, settings.topic,
                                 settings.dead_topic, settings.prefix)
        out.print(f"  broker {bootstrap}, redis {redis_url}")
        csv_path = root / "sample.csv"
        with _step(f"generating {rows:,} synthetic lines (seed {seed}) -> {csv_path}"):
            write_csv(csv_path, rows=rows, seed=seed)
        with _step("backfilling the feature log from the file (no Kafka)"):
            run_backfill(file_events(csv_path, [0]), FeatureOutputs(None, pass_settings.prefix,
                                                                     pass_settings.offline_dir),
                         RunOptions(snapshot_seconds=3600))
        with _step("fitting customer categories on the baskets up to 2011-08-31"):
            segmentation = fit_segments(root, DEMO_FIT_UNTIL, seed=seed, k=DEMO_CATEGORIES)
            assign_customers(root)
        _print_segments(segmentation)
        with _step("replaying the lines into Kafka"):
            summary = do_replay(csv_path, bootstrap, pass_settings.topic, pass_settings.dead_topic)
        out.print(f"  {summary.sent:,} events sent, {summary.rejected:,} rejected, "
                  f"{summary.events_per_second:,.0f} lines/s")
        with _step("running the dataflow to the end of the topic (features and live scores)"):
            stats = run_live(pass_settings, stop_at_end=True, options=RunOptions(),
                             scoring=scoring_config(root))
        out.print(f"  {stats.events:,} events, {stats.events / max(stats.seconds, 1e-9):,.0f} "
                  f"events/s, {stats.scores:,} basket updates scored")
        store = open_online_store(redis_url, pass_settings.prefix)
        for customer in _busiest_customers(csv_path, 2):
            out.print(f"[bold]basketflow features {customer}[/]")
            vector = store.read_vectors(["customer", "basket", "score"], [customer])[0]
            for view in ("customer", "basket"):
                _print_view(view, vector[view])
            score = vector["score"]
            if score:
                out.print(f"[bold]basketflow score {customer}[/]: {score['category']} "
                          f"(p={score['probabilities'][score['category']]:.2f}, model "
                          f"{score['model_version']})")
        from basketflow.app.status import collect_status
        out.print("[bold]basketflow status[/]")
        _print_status(collect_status(pass_settings))
        console.print("stopping the embedded servers")


DEMO_FIT_UNTIL = date(2011, 8, 31)
DEMO_CATEGORIES = 8


def _busiest_customers(csv_path: Path, n: int) -> list[str]:
    """The customers with the most lines in a file, to show off in the demo."""
    from collections import Counter

    from basketflow.producers.csv_source import read_events
    from basketflow.schemas.events import Transaction
    counts = Counter(e.customer_id for e in read_events(csv_path)
                     if isinstance(e, Transaction) and e.customer_id)
    return [c for c, _ in counts.most_common(n)]


@contextmanager
def _step(text: str) -> Iterator[None]:
    """Say what is about to happen, and that it is done."""
    console.print(f"[bold cyan]>[/] {text}")
    yield


def main() -> None:
    """Console entry point."""
    cli(prog_name="basketflow")


if __name__ == "__main__":
    main()
