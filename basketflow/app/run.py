"""``basketflow run``: the live dataflow, in this process or as one child process per part.

By default each part of the flow (serve, store) runs in a process of its own, started
with this run's options, so the store's work never delays a live score; a run in this
process runs one part or both.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import Any

from basketflow.app.flow_processes import PartFailed
from basketflow.config import Settings
from basketflow.errors import BasketflowError


class PartKilled(BasketflowError):
    """A part of the flow was killed by a signal (it printed nothing); the message says
    how to resume."""

    def __init__(self, failed: PartFailed) -> None:
        super().__init__(
            f"the {failed.part} part of the flow was killed by "
            f"{signal.Signals(-failed.status).name}, and the other part stopped; run the "
            "same command again: both resume from their last snapshots")
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
                "--max-batch", str(self.max_batch)]


@dataclass(frozen=True)
class RunFigures:
    """What a run did; ``parts`` holds each child process's own figures (a run in this
    process has none)."""

    events: int
    dead_letters: int
    offline_rows_written: int
    online_writes: int
    seconds: float
    events_per_second: float
    parts: dict[str, RunFigures] | None = field(default=None)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunFigures:
        """The figures a child process printed with ``--json``."""
        return cls(data.get("events", 0), data.get("dead_letters", 0),
                   data.get("offline_rows_written", 0), data.get("online_writes", 0),
                   data.get("seconds", 0.0), data.get("events_per_second", 0))

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``, in field order (``parts`` only when there are some)."""
        data: dict[str, Any] = {
            "events": self.events, "dead_letters": self.dead_letters,
            "offline_rows_written": self.offline_rows_written,
            "online_writes": self.online_writes, "seconds": self.seconds,
            "events_per_second": self.events_per_second}
        if self.parts is not None:
            data["parts"] = {part: figures.to_json() for part, figures in self.parts.items()}
        return data


def run_in_process(settings: Settings, part: str | None, options: FlowOptions) -> RunFigures:
    """Run one part of the flow (None: both) in this process, with recovery snapshots in
    ``<data>/recovery/<topic>[/<part>]``; ``settings`` must have both addresses."""
    from basketflow.flows.live import PARTS, SERVE, RunOptions, run_live
    from basketflow.reports.segments import scoring_config
    recovery_dir = settings.recovery_dir / settings.topic
    run_options = RunOptions(workers=options.workers, snapshot_seconds=options.snapshot_interval,
                             backup_seconds=options.backup_interval,
                             recovery_dir=(recovery_dir / part if part else recovery_dir)
                             if options.recovery else None)
    stats = run_live(settings, stop_at_end=options.stop_at_end, options=run_options,
                     max_batch=options.max_batch, parts=(part,) if part else PARTS,
                     scoring=scoring_config(settings.data_dir) if part in (None, SERVE) else None)
    return RunFigures(stats.events, stats.dead_letters, stats.offline_rows, stats.online_writes,
                      round(stats.seconds, 3),
                      round(stats.events / stats.seconds, 1) if stats.seconds else 0)


def run_parts(settings: Settings, options: FlowOptions, verbose: bool) -> RunFigures:
    """Run each part of the flow as a child process with these options; return their
    figures, combined. A part that fails raises :class:`PartFailed` (its error is already
    on standard error); one killed by a signal raises :class:`PartKilled`."""
    from basketflow.app.flow_processes import child_env, start_part, supervise
    from basketflow.flows.live import PARTS, prepare_run
    prepare_run(settings)  # here once: one error, not one per part
    env = child_env(settings)
    children = {part: start_part(part, options.as_args(), env, verbose) for part in PARTS}
    try:
        by_part = supervise(children)
        return combined_figures({part: RunFigures.from_json(figures)
                                 for part, figures in by_part.items()})
    except PartFailed as exc:
        if exc.status < 0:
            raise PartKilled(exc) from exc
        raise


def combined_figures(by_part: dict[str, RunFigures]) -> RunFigures:
    """One run's figures from its parts': both read the same events, so ``events`` is the
    larger count; rows and writes add up; the run took as long as its slowest part.

    >>> combined_figures({"serve": RunFigures(0, 0, 5, 7, 2.0, 0),
    ...                   "store": RunFigures(10, 1, 12, 3, 2.5, 4.0)}).events_per_second
    4.0
    """
    parts = list(by_part.values())
    events = max((p.events for p in parts), default=0)
    seconds = max((p.seconds for p in parts), default=0.0)
    return RunFigures(events, sum(p.dead_letters for p in parts),
                      sum(p.offline_rows_written for p in parts),
                      sum(p.online_writes for p in parts), seconds,
                      round(events / seconds, 1) if seconds else 0, by_part)
