"""``basketflow run``: the live dataflow, in this process or as one child process per part.

By default each part of the flow (serve, store) runs in a process of its own, started
with this run's options, so the store's work never delays a live score; a run in this
process runs one part or both. A run holds the lock of each part it runs
(:mod:`basketflow.app.run_lock`), so a second run on the same data and topic is refused,
and stops cleanly on SIGINT or SIGTERM (:mod:`basketflow.flows.stopping`): its figures
then say ``stopped``, and the next run resumes where it stopped.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from subprocess import Popen
from typing import TYPE_CHECKING, Any

from basketflow.app.flow_processes import PartFailed, describe, is_process
from basketflow.app.run_lock import ENV_HELD_BY, covered_by_parent, run_lock
from basketflow.config import Settings
from basketflow.errors import BasketflowError
from basketflow.security import private_dir

if TYPE_CHECKING:
    from basketflow.flows.rebuild import StoredSource
    from basketflow.flows.scoring import ScoringConfig


class PartKilled(BasketflowError):
    """A part or process of the flow was killed by a signal (it printed nothing); the
    message names it and says how to resume."""

    def __init__(self, failed: PartFailed) -> None:
        others = ("the other processes stopped; run the same command again: the cluster "
                  "resumes from its last snapshot" if is_process(failed.part) else
                  "the other part stopped; run the same command again: both resume from "
                  "their last snapshots")
        super().__init__(f"{describe(failed.part)} of the flow was killed by "
                         f"{signal.Signals(-failed.status).name}, and {others}")
        self.part = failed.part


@dataclass(frozen=True)
class FlowOptions:
    """How to run the flow: the options of ``basketflow run`` a child process gets too."""

    stop_at_end: bool = False
    workers: int = 1
    recovery: bool = True
    snapshot_interval: float = 10.0
    backup_interval: float = 0.0
    max_batch: int = 20_000
    #: Discard the flow's recovery state for the topic first (done once, by the parent).
    from_start: bool = False
    #: ``earliest`` or ``latest``: read from there instead of from the stored offsets.
    reset_offsets: str | None = None
    #: The port of the Prometheus metrics (0: none); two processes use it and the next.
    metrics_port: int = 0
    #: This process's place in a cluster across hosts: its id in ``addresses``.
    process_id: int | None = None
    addresses: tuple[str, ...] = ()
    #: Make the flow's recovery state again from the offline store as the flow starts
    #: (:mod:`basketflow.flows.rebuild`): each part's process its own.
    rebuild_state: bool = False

    def as_args(self) -> list[str]:
        """These options as ``basketflow run`` arguments, for a child process.

        >>> FlowOptions(stop_at_end=True).as_args()[:3]
        ['--stop-at-end', '--workers', '1']
        """
        return [*(["--stop-at-end"] if self.stop_at_end else []),
                "--workers", str(self.workers),
                "--recovery" if self.recovery else "--no-recovery",
                "--snapshot-interval", str(self.snapshot_interval),
                "--backup-interval", str(self.backup_interval),
                "--max-batch", str(self.max_batch),
                *(["--reset-offsets", self.reset_offsets] if self.reset_offsets else []),
                *(["--rebuild-state"] if self.rebuild_state else []),
                *(["--metrics-port", str(self.metrics_port)] if self.metrics_port else [])]


@dataclass(frozen=True)
class RunFigures:
    """What a run did; ``stopped`` when a signal stopped it before its end; ``parts`` holds
    each child process's own figures (a run in this process has none)."""

    events: int
    dead_letters: int
    offline_rows_written: int
    online_writes: int
    seconds: float
    events_per_second: float
    stopped: bool = False
    parts: dict[str, RunFigures] | None = field(default=None)
    #: Messages taken from the offline store's copies (``--rebuild-state``), not the topic.
    from_store: int = 0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunFigures:
        """The figures a child process printed with ``--json``."""
        return cls(data.get("events", 0), data.get("dead_letters", 0),
                   data.get("offline_rows_written", 0), data.get("online_writes", 0),
                   data.get("seconds", 0.0), data.get("events_per_second", 0),
                   data.get("stopped", False), from_store=data.get("from_store", 0))

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``, in field order (``parts`` only when there are some)."""
        data: dict[str, Any] = {
            "events": self.events, "dead_letters": self.dead_letters,
            "offline_rows_written": self.offline_rows_written,
            "online_writes": self.online_writes, "seconds": self.seconds,
            "events_per_second": self.events_per_second, "stopped": self.stopped}
        if self.from_store:
            data["from_store"] = self.from_store
        if self.parts is not None:
            data["parts"] = {part: figures.to_json() for part, figures in self.parts.items()}
        return data


def run_in_process(settings: Settings, part: str | None, options: FlowOptions) -> RunFigures:
    """Run one part of the flow (None: both) in this process, with recovery snapshots in
    ``<data>/recovery/<topic>[/<part>]``; ``settings`` must have both addresses (and
    the feature registry checked: ``ensure_applied``, as ``basketflow run`` does first)."""
    from basketflow.app.flow_processes import gated, wait_at_gate
    from basketflow.flows import stopping
    from basketflow.flows.live import PARTS, SERVE, RunOptions, run_live
    parts = (part,) if part else PARTS
    scoring = _scoring(settings) if SERVE in parts else None
    checked = gated()
    if checked:  # its libraries are imported: wait for the checks of the run that started it
        wait_at_gate()
    recovery_dir = settings.recovery_dir / settings.topic
    run_options = RunOptions(workers=options.workers, snapshot_seconds=options.snapshot_interval,
                             backup_seconds=options.backup_interval,
                             recovery_dir=(recovery_dir / part if part else recovery_dir)
                             if options.recovery else None,
                             reset_offsets=options.reset_offsets,
                             process_id=options.process_id, addresses=options.addresses,
                             prepare_recovery=options.process_id is None
                             or (options.process_id == 0 and not covered_by_parent()),
                             checked=checked)
    private_dir(settings.data_dir)  # one made before this release may be 0755
    with stopping.stop_on_signals(), run_lock(settings.data_dir, settings.topic, parts,
                                              options.process_id):
        if options.from_start and run_options.prepare_recovery and run_options.recovery_dir:
            shutil.rmtree(run_options.recovery_dir, ignore_errors=True)
        source = (rebuilt(settings, options, run_options.recovery_dir, checked)
                  if options.rebuild_state and run_options.recovery_dir else None)
        stats = run_live(settings, stop_at_end=options.stop_at_end, options=run_options,
                         allowed_lateness=settings.allowed_lateness,
                         max_batch=options.max_batch, parts=parts,
                         scoring=scoring,
                         metrics_port=options.metrics_port or None, source=source)
    return RunFigures(stats.events, stats.dead_letters, stats.offline_rows, stats.online_writes,
                      round(stats.seconds, 3),
                      round(stats.events / stats.seconds, 1) if stats.seconds else 0,
                      stopping.requested(), from_store=source.copies if source else 0)


def rebuilt(settings: Settings, options: FlowOptions, recovery_dir: Path,
            checked: bool) -> StoredSource:
    """The live flow's source that makes its state in ``recovery_dir`` again from the
    offline store (:mod:`basketflow.flows.rebuild`). Unless the run that started this
    process did (``checked``), the checks a run makes before its flow starts come first,
    so a bad store or an unreachable server is named before the state is discarded."""
    from basketflow.flows.rebuild import discard_for_rebuild, rebuilding
    if not checked:
        from basketflow.flows.preflight import prepare_run
        prepare_run(settings)
        discard_for_rebuild(settings, [recovery_dir])
    return rebuilding(settings, options.stop_at_end, options.max_batch)


def _scoring(settings: Settings) -> ScoringConfig | None:
    """The serve part's scoring set-up (read without pandas: see
    :mod:`basketflow.reports.segment_files`); the store part has none."""
    from basketflow.reports.segment_files import scoring_config
    return scoring_config(settings.data_dir)


@dataclass(frozen=True)
class Cluster:
    """Processes of this host that run the same parts of the flow: one process, or a
    Bytewax cluster of ``processes`` whose workers share the topic's partitions. Its
    recovery state is ``<data>/recovery/<topic>/<part>`` for one part, and
    ``<data>/recovery/<topic>`` for the whole flow, whatever its size."""

    parts: tuple[str, ...]
    processes: int = 1

    def recovery_dir(self, settings: Settings) -> Path:
        """Where this cluster's recovery partitions are."""
        topic_dir = settings.recovery_dir / settings.topic
        return topic_dir / self.parts[0] if len(self.parts) == 1 else topic_dir

    def children(self) -> list[tuple[str, list[str]]]:
        """Each process's name and its ``basketflow run`` arguments (the cluster's
        loopback addresses chosen now).

        >>> Cluster(("serve",)).children()
        [('serve', ['--part', 'serve'])]
        >>> [name for name, _args in Cluster(("store",), 2).children()]
        ['store process 0', 'store process 1']
        """
        part = ["--part", self.parts[0]] if len(self.parts) == 1 else []
        if self.processes == 1:
            return [(self.parts[0], part)]
        from basketflow.app.flow_processes import loopback_addresses
        addresses = ",".join(loopback_addresses(self.processes))
        prefix = f"{self.parts[0]} " if part else ""
        return [(f"{prefix}process {i}", [*part, "--process-id", str(i),
                                          "--addresses", addresses])
                for i in range(self.processes)]


def plan_clusters(part: str | None, processes: int, whole_flow: bool) -> tuple[Cluster, ...]:
    """What ``basketflow run`` runs on this host: ``processes`` processes for one part
    (``part``), for the whole flow in each (``whole_flow``, or one process), or shared by
    the two parts, the serve part taking the larger half. On 2 cores the two parts in a
    process each are the fastest (docs/PERFORMANCE.md, "A cluster"): they exchange
    nothing, where a cluster of the whole flow pickles about half of every keyed step's
    items to the other process.

    >>> plan_clusters(None, 2, False)
    (Cluster(parts=('serve',), processes=1), Cluster(parts=('store',), processes=1))
    >>> plan_clusters(None, 5, False)
    (Cluster(parts=('serve',), processes=3), Cluster(parts=('store',), processes=2))
    >>> plan_clusters(None, 3, True), plan_clusters("store", 2, False)
    ((Cluster(parts=('serve', 'store'), processes=3),), (Cluster(parts=('store',), processes=2),))
    """
    from basketflow.flows.parts import PARTS
    if part is not None:
        return (Cluster((part,), processes),)
    if whole_flow or processes == 1:
        return (Cluster(PARTS, processes),)
    serve = (processes + 1) // 2
    return tuple(Cluster((name,), count) for name, count in zip(PARTS, (serve, processes - serve)))


def run_children(settings: Settings, options: FlowOptions, clusters: tuple[Cluster, ...],
                 verbose: bool) -> RunFigures:
    """Run every process of ``clusters`` as a child process with these options (each its
    own metrics port: the one given, then the next ones); return their figures, combined.
    The feature registry (``ensure_applied``), the stores, the topics and each cluster's
    recovery partitions are checked here, once, while the children import their
    libraries. A child that fails stops the others and raises :class:`PartFailed` (its
    error is on standard error already); one killed by a signal raises
    :class:`PartKilled`, naming it."""
    from basketflow.app.flow_processes import child_env, gates_opened, start_child
    from basketflow.flows import stopping
    from basketflow.flows.parts import PARTS
    with stopping.stop_on_signals(), run_lock(settings.data_dir, settings.topic, PARTS):
        if options.from_start:
            shutil.rmtree(settings.recovery_dir / settings.topic, ignore_errors=True)
        env = child_env(settings) | {ENV_HELD_BY: str(os.getpid())}
        of_cluster = [cluster.children() for cluster in clusters]
        children = {name: start_child([*args, *_child_options(options, index).as_args()],
                                      env, verbose)
                    for index, (name, args) in enumerate(
                        child for named in of_cluster for child in named)}
        with gates_opened(children):  # the checks while the children import
            _check_for_children(settings, options, clusters)
        if stopping.requested():
            return RunFigures(0, 0, 0, 0, 0.0, 0, stopped=True)
        from basketflow.sinks.compaction import compacting
        with compacting(settings.offline_dir):  # closed days, off the flow's processes
            by_child = supervised(children)
    by_cluster = {"+".join(cluster.parts): cluster_figures(
        {name: by_child[name] for name, _args in named}) if cluster.processes > 1
        else by_child[named[0][0]] for cluster, named in zip(clusters, of_cluster)}
    return (next(iter(by_cluster.values())) if len(by_cluster) == 1
            else combined_figures(by_cluster))


def _check_for_children(settings: Settings, options: FlowOptions,
                        clusters: tuple[Cluster, ...]) -> None:
    """The checks a run makes once for all its children: the registry, the stores, and
    each cluster's recovery state against the topic (made or checked here for a
    Bytewax cluster, whose processes do not: each child of one process does its own)."""
    from basketflow.app.registry import ensure_applied
    from basketflow.flows.preflight import check_topics, prepare_run
    ensure_applied(settings)  # the first thing to fix
    prepare_run(settings)  # here once: one error, not one per child
    if options.rebuild_state:  # each part then rebuilds its own as its flow runs
        from basketflow.flows.rebuild import discard_for_rebuild
        discard_for_rebuild(settings, [c.recovery_dir(settings) for c in clusters])
    if options.recovery:
        for cluster in clusters:
            check_topics(settings, cluster.recovery_dir(settings), cluster.parts,
                         options.reset_offsets)
            if cluster.processes > 1:
                from basketflow.flows.live import prepare_recovery
                prepare_recovery(cluster.recovery_dir(settings))


def supervised(children: dict[str, Popen[bytes]]) -> dict[str, RunFigures]:
    """The figures of each child process, once all have ended; :class:`PartKilled` when
    one was killed by a signal, :class:`PartFailed` when one failed."""
    from basketflow.app.flow_processes import supervise
    try:
        figures = supervise(children)
    except PartFailed as exc:
        if exc.status < 0:
            raise PartKilled(exc) from exc
        raise
    return {name: RunFigures.from_json(data) for name, data in figures.items()}


def cluster_figures(by_process: dict[str, RunFigures]) -> RunFigures:
    """One run's figures from its cluster's processes': each read its own partitions, so
    events, rows and writes add up; the run took as long as its slowest process.

    >>> cluster_figures({"process 0": RunFigures(6, 0, 6, 4, 2.0, 3.0),
    ...                  "process 1": RunFigures(4, 1, 5, 3, 2.5, 1.6)}).events_per_second
    4.0
    """
    return combined_figures(by_process, sum)


def _child_options(options: FlowOptions, index: int) -> FlowOptions:
    """The options of a run's ``index``-th child process: the same, but each its own
    metrics port (the first the one given, the next ones after it).

    >>> _child_options(FlowOptions(metrics_port=9100), 1).metrics_port
    9101
    """
    if not options.metrics_port:
        return options
    return replace(options, metrics_port=options.metrics_port + index)


def combined_figures(by_part: dict[str, RunFigures],
                     events_of: Callable[[Iterable[int]], int] = max) -> RunFigures:
    """One run's figures from its parts': both read the same events, so ``events`` (and
    ``from_store``) is the larger count (``events_of`` the parts' counts); rows and writes
    add up; the run took as long as its slowest part.

    >>> combined_figures({"serve": RunFigures(0, 0, 5, 7, 2.0, 0),
    ...                   "store": RunFigures(10, 1, 12, 3, 2.5, 4.0)}).events_per_second
    4.0
    """
    parts = list(by_part.values())
    events = events_of(p.events for p in parts) if parts else 0
    seconds = max((p.seconds for p in parts), default=0.0)
    return RunFigures(events, sum(p.dead_letters for p in parts),
                      sum(p.offline_rows_written for p in parts),
                      sum(p.online_writes for p in parts), seconds,
                      round(events / seconds, 1) if seconds else 0,
                      any(p.stopped for p in parts), by_part,
                      events_of(p.from_store for p in parts) if parts else 0)
