"""What every command shares to show its results: the two consoles (progress and steps
on standard error, results on standard output), one JSON document for ``--json``,
progress bars, and readable times."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

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

console = Console(stderr=True, emoji=False, highlight=False)
out = Console(emoji=False, highlight=False)


def print_json(data: Any) -> None:
    """One JSON document on stdout."""
    click.echo(json.dumps(data, indent=2, default=str))


def progress_bar(label: str, in_bytes: bool, auto_refresh: bool = True) -> Progress:
    """A progress bar on stderr, counting bytes of a file read or plain units (days, events);
    without ``auto_refresh`` it is drawn only by updates with ``refresh=True``."""
    done = DownloadColumn() if in_bytes else MofNCompleteColumn()
    return Progress(TextColumn(label), BarColumn(), done, TextColumn("{task.fields[lines]}"),
                    TimeRemainingColumn(), console=console, transient=False,
                    auto_refresh=auto_refresh)


def step(text: str) -> None:
    """Say what is about to happen (on stderr)."""
    console.print(f"[bold cyan]>[/] {text}")


def when(ts: Any) -> str:
    """Epoch seconds -> a readable UTC time; anything else as it is.

    >>> when(1291191960)
    '2010-12-01 08:26 UTC'
    """
    if not isinstance(ts, (int, float)):
        return str(ts)
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
