"""``basketflow run``: the live dataflow, topic -> features in Redis and events in Parquet."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import click

from basketflow.cli.output import end_at_once, out, print_json
from basketflow.flows.stopping import stop_on_signals

if TYPE_CHECKING:
    from basketflow.app.run import Cluster, FlowOptions, RunFigures
    from basketflow.config import Settings


@click.command()
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
              help="Run only this part of the flow, in this process (with --processes N: "
                   "as a cluster of N): serve (customer and basket features, live scores) or "
                   "store (offline events, dead letters, product features). By default both "
                   "run, each in a process of its own.")
@click.option("--one-process", is_flag=True,
              help="Run both parts in this one process (recovery snapshots in "
                   "<data>/recovery/<topic>): less memory, but the store part's work then "
                   "delays live scores.")
@click.option("--from-start", is_flag=True,
              help="Discard the flow's recovery state for this topic and read it from its "
                   "beginning (after the topic was recreated, e.g. by a restarted embedded "
                   "broker). Offline and online stores are kept; their writes are idempotent.")
@click.option("--reset-offsets", type=click.Choice(["earliest", "latest"]), default=None,
              help="Keep the flow's state but read every partition from its first message "
                   "(earliest) or from its end (latest) instead of the stored offsets.")
@click.option("--rebuild-state", is_flag=True,
              help="Discard the flow's recovery state for this topic (after `run` named it "
                   "damaged) and make it again from the offline store, up to where the "
                   "store ends in each partition; then read on from the topic there.")
@click.option("--metrics-port", type=click.IntRange(0, 65534), default=0, show_default=True,
              metavar="PORT", help="Serve Prometheus metrics (and Bytewax's own, and the "
              "flow's graph at /dataflow) on this port, 0: none. Two processes: the serve "
              "part on PORT, the store part on PORT+1; more: each on the next port, the "
              "serve part's first.")
@click.option("--processes", type=click.IntRange(min=1), default=2, show_default=True,
              help="Processes on this host. 1: the whole flow in this one process (as "
                   "--one-process); 2: the serve and the store part in a process each; more: "
                   "each part a Bytewax cluster whose processes share the topic's partitions "
                   "(the serve part the larger half). With --part: that part's cluster.")
@click.option("--whole-flow", is_flag=True,
              help="With --processes N: run the whole flow in each of N processes, one "
                   "Bytewax cluster (recovery state as --one-process), instead of a cluster "
                   "per part.")
@click.option("--process-id", type=click.IntRange(min=0), default=None, metavar="I",
              help="Run this process as process I of a Bytewax cluster across hosts "
                   "(with --addresses, the same list on every host; Bytewax's -i): of the "
                   "whole flow, or of the part --part names.")
@click.option("--addresses", default=None, metavar="HOST:PORT,...",
              help="Every process of the cluster, in process-id order (Bytewax's -a).")
@click.option("--json", "as_json", is_flag=True, help="Print the run's figures as JSON at the end.")
@click.pass_context
def run(ctx: click.Context, stop_at_end: bool, workers: int, recovery: bool,
        snapshot_interval: float, backup_interval: float, max_batch: int,
        part: str | None, one_process: bool, from_start: bool, reset_offsets: str | None,
        rebuild_state: bool, metrics_port: int, processes: int, whole_flow: bool,
        process_id: int | None, addresses: str | None, as_json: bool) -> None:
    """Run the dataflow: topic -> features in Redis and events in Parquet.

    \b
    Two processes by default, each reading the topic:
      serve  customer and basket features, live scores -> Redis; logs -> Parquet
      store  events, dead letters, product features -> Parquet and Redis

    The store's work never holds back a live score. Stopping or killing this
    command stops both. --processes N (more than 2) makes each part a Bytewax
    cluster whose processes share the topic's partitions (--whole-flow: one
    cluster of the whole flow); --process-id and --addresses run one process of
    a cluster across hosts. When one process dies, all stop.

    Without --stop-at-end it runs until stopped (Ctrl-C); with recovery on (snapshots in
    <data>/recovery/<topic>/<part>), the next run, also after a crash or kill -9, resumes
    from the last snapshot: sinks are idempotent, so nothing is lost or doubled. A full
    disk or an unwritable data directory stops it with one error line; free space or fix
    the directory and run it again. Stored offsets that no longer fit the topic (it was
    recreated, or lost messages) stop it with one error line: then run it with
    --from-start or --reset-offsets. A damaged recovery state stops it too: run it with
    --rebuild-state to make the state again from the offline store.
    """
    if part is not None and one_process:
        raise click.UsageError("--part runs one part and --one-process runs both in one "
                               "process: give one of them")
    if from_start and reset_offsets:
        raise click.UsageError("--from-start discards the state and --reset-offsets keeps "
                               "it: give one of them")
    processes = _processes(ctx, part, one_process, processes, whole_flow, process_id)
    cluster = _cluster(processes, process_id, addresses)
    from basketflow.app.run import FlowOptions, plan_clusters
    clusters = () if process_id is not None else plan_clusters(part, processes, whole_flow)
    if rebuild_state:
        _check_rebuild(from_start, reset_offsets, recovery,
                       process_id is not None or any(c.processes > 1 for c in clusters))
    with stop_on_signals():  # first thing: a Ctrl-C while starting stops it cleanly too
        figures = _run(ctx, part, clusters, FlowOptions(
            stop_at_end, workers, recovery, snapshot_interval, backup_interval, max_batch,
            from_start, reset_offsets, metrics_port, process_id, cluster, rebuild_state))
    if as_json:
        print_json(figures.to_json())
    else:
        rebuilt = (f"; {figures.from_store:,} of them the offline store's, the state rebuilt"
                   if figures.from_store else "")
        out.print(f"{'stopped: ' if figures.stopped else ''}"
                  f"processed {figures.events:,} events ({figures.events_per_second:,} /s"
                  f"{rebuilt}), "
                  f"{figures.dead_letters:,} dead letters, "
                  f"{figures.offline_rows_written:,} new offline rows, "
                  f"{figures.online_writes:,} online writes"
                  f"{'; the next run resumes where this one stopped' if figures.stopped else ''}")
    end_at_once()  # its flows, their writers and its children have all ended


def _check_rebuild(from_start: bool, reset_offsets: str | None, recovery: bool,
                   cluster: bool) -> None:
    """Refuse, in one error line, the options ``--rebuild-state`` cannot go with."""
    from basketflow.errors import BasketflowError
    if from_start or reset_offsets:
        raise BasketflowError(
            f"--rebuild-state makes the state again from the offline store and "
            f"{'--from-start' if from_start else '--reset-offsets'} reads the topic from "
            "elsewhere: give one of them")
    if not recovery:
        raise BasketflowError("--rebuild-state makes the flow's recovery state: it goes "
                              "without --no-recovery")
    if cluster:
        raise BasketflowError("--rebuild-state rebuilds the state of one process of each "
                              "part in one host's data directory: run it with --processes "
                              "2 or 1 and without --process-id, then start the cluster")


def _processes(ctx: click.Context, part: str | None, one_process: bool, processes: int,
               whole_flow: bool, process_id: int | None) -> int:
    """The count of processes on this host the options ask for, checked together: one
    for ``--one-process``, and for ``--part`` or ``--process-id`` unless ``--processes``
    was given."""
    given = ctx.get_parameter_source("processes") is not click.core.ParameterSource.DEFAULT
    if one_process and given and processes > 1:
        raise click.UsageError("--one-process runs the flow in one process: give it or "
                               "--processes")
    if whole_flow and not given:
        raise click.UsageError("--whole-flow runs the flow as one cluster of --processes N: "
                               "give the count")
    if whole_flow and part is not None:
        raise click.UsageError("--whole-flow runs both parts and --part one: give one of them")
    alone = part is not None or process_id is not None
    return 1 if one_process or (alone and not given) else processes


def _cluster(processes: int, process_id: int | None,
             addresses: str | None) -> tuple[str, ...]:
    """Check the options of a process of a cluster across hosts; the cluster's addresses
    (none unless ``--process-id``)."""
    if process_id is not None and processes > 1:
        raise click.UsageError("--processes starts processes on this host, --process-id runs "
                               "one process of a cluster across hosts: give one of them")
    if (process_id is None) != (addresses is None):
        raise click.UsageError("--process-id and --addresses go together")
    if addresses is None:
        return ()
    listed = tuple(a.strip() for a in addresses.split(","))
    if any(not a.rpartition(":")[2].isdigit() or not a.rpartition(":")[0]
           for a in listed):
        raise click.UsageError(f"--addresses {addresses!r}: give HOST:PORT,HOST:PORT,...")
    assert process_id is not None
    if process_id >= len(listed):
        raise click.UsageError(f"--process-id {process_id} is not in --addresses: ids go "
                               f"from 0 to {len(listed) - 1}")
    return listed


def _run(ctx: click.Context, part: str | None, clusters: tuple[Cluster, ...],
         options: FlowOptions) -> RunFigures:
    """The run itself: child processes (parts, clusters), or one part or both in this
    process (alone, or as one process of a cluster across hosts: no ``clusters``)."""
    from basketflow.app.flow_processes import PartFailed, gated
    from basketflow.app.run import run_children, run_in_process
    verbose = logging.getLogger().isEnabledFor(logging.DEBUG)
    if len(clusters) > 1 or any(c.processes > 1 for c in clusters):
        settings = _resolved(ctx.obj)  # the registry is checked as the children start
        try:
            figures = run_children(settings, options, clusters, verbose)
        except PartFailed as exc:
            raise SystemExit(exc.status) from exc  # its error is on standard error already
    else:
        from basketflow.app.registry import ensure_applied
        from basketflow.app.services import resolve
        if not gated():  # else the run that started this process checked it
            ensure_applied(ctx.obj)  # before the servers are asked for: the first to fix
        figures = run_in_process(resolve(ctx.obj), part, options)
    return figures


def _resolved(settings: Settings) -> Settings:
    """``settings`` with the servers' addresses; when the servers are not running, a
    registry that is out of date is said instead (it is the first thing to fix)."""
    from basketflow.app.registry import ensure_applied
    from basketflow.app.services import ServicesNotRunning, resolve
    try:
        return resolve(settings)
    except ServicesNotRunning:
        ensure_applied(settings)
        raise
