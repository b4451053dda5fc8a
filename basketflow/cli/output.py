"""What every command shares to show its results: the two consoles (progress and steps
on standard error, results on standard output), one JSON document for ``--json``,
progress bars, and readable times. The consoles redact every text before they lay it out
(:class:`RedactingConsole`): a table or a long line folds a value over lines, which would
cut a password in two where the redacting stream under them could no longer see it."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

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

mkdir_option = click.option(
    "--mkdir", is_flag=True,
    help="Create the output's missing folders [default: a missing folder is an error].")

from basketflow.security import redact


class RedactingConsole(Console):
    """A rich console that passes every text it renders (printed, or a table's cell)
    through :func:`~basketflow.security.redact` first."""

    def render_str(self, text: str, **options: Any) -> Text:
        """The text of ``text`` with its secrets masked, laid out as rich would."""
        return super().render_str(redact(text), **options)


console = RedactingConsole(stderr=True, emoji=False, highlight=False)
out = RedactingConsole(emoji=False, highlight=False)

_end_at_once = False


def end_at_once() -> None:
    """Ask the console entry point to end this process as soon as the command returns:
    a flow's process imported pyarrow, Bytewax, redis and numpy, whose teardown by the
    interpreter takes longer than the run of a flow over an empty topic, and
    ``basketflow run`` waits for each of its processes to end. Only for a command whose
    work is all done and written when it returns (its threads joined, its files closed):
    nothing registered to run at exit runs."""
    global _end_at_once
    _end_at_once = True


def ending_at_once() -> bool:
    """Whether the command asked for :func:`end_at_once`."""
    return _end_at_once


def end_now(status: int) -> NoReturn:
    """Flush the output and the logs, then end the process with ``status``."""
    import logging
    import os
    import sys
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


class FullHelpGroup(click.Group):
    """A command group whose help gives each command's first sentence in full, wrapped
    to the terminal (click would cut it with "..." to fit one line of 80 columns)."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, command.get_short_help_str(limit=500))
                for name in self.list_commands(ctx)
                if (command := self.get_command(ctx, name)) is not None and not command.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def table(*columns: str, title: str | None = None) -> Table:
    """A table whose cells wrap and fold, never end in an ellipsis: a value too long for
    an 80-column terminal goes on over lines rather than being cut. A column name ending
    in ``>`` is right-justified (the ``>`` is not shown)."""
    made = Table(title=title)
    for name in columns:
        right = name.endswith(">")
        made.add_column(name.rstrip(">"), justify="right" if right else "left",
                        overflow="fold")
    return made


def print_json(data: Any) -> None:
    """One JSON document on stdout."""
    click.echo(json.dumps(data, indent=2, default=str))


def progress_bar(label: str, in_bytes: bool, auto_refresh: bool = True) -> Progress:
    """A progress bar on stderr, counting bytes of a file read or plain units (days, events);
    without ``auto_refresh`` it is drawn only by updates with ``refresh=True``. Narrow
    enough for an 80-column terminal (a short ``label``, the command's name, and a bar of
    20 columns), so it never wraps."""
    done = DownloadColumn() if in_bytes else MofNCompleteColumn()
    return Progress(TextColumn(label), BarColumn(bar_width=20), done,
                    TextColumn("{task.fields[lines]}"),
                    TimeRemainingColumn(), console=console, transient=False,
                    auto_refresh=auto_refresh)


def step(text: str) -> None:
    """Say what is about to happen (on stderr)."""
    console.print(f"[bold cyan]>[/] {text}")


def shown(path: Path | str) -> str:
    """A path as the user would type it: relative to the working folder when under it.

    >>> shown(Path.cwd() / "data" / "reports")
    'data/reports'
    >>> shown("/elsewhere/x.csv")
    '/elsewhere/x.csv'
    """
    path = Path(path)
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def when(ts: Any) -> str:
    """Epoch seconds -> a readable UTC time; anything else as it is.

    >>> when(1291191960)
    '2010-12-01 08:26 UTC'
    """
    if not isinstance(ts, (int, float)):
        return str(ts)
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
