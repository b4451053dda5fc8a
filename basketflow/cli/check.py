"""``basketflow check``: verify the offline store and the recovery state; ``--repair``
sets damaged files aside in ``<data>/quarantine/`` and says how to restore them."""

from __future__ import annotations

import click
from rich.table import Table

from basketflow.cli.output import out, print_json, progress_bar
from basketflow.config import Settings


@click.command()
@click.option("--repair", is_flag=True,
              help="Move damaged files to <data>/quarantine/ (keeping their paths) and say "
                   "how to restore what they held; give stored events of the old id form "
                   "their ids from content.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.pass_obj
def check(settings: Settings, repair: bool, as_json: bool) -> None:
    """Verify every file of the offline store (whole Parquet, with its log's columns),
    the recovery state (SQLite integrity, partitions agreeing on where to resume), that
    both hold event ids made from content, and every model version (HMAC, sha256).

    Exit status 0 when nothing is damaged or everything damaged was set aside, 1 when
    damaged files remain."""
    from basketflow.app.check import EVENT_IDS, DamagedFiles
    from basketflow.app.check import check as run_check
    with progress_bar("check", in_bytes=False) as bar:
        task = bar.add_task("check", total=None, lines="")
        result = run_check(settings, repair, on_progress=lambda done, total: bar.update(
            task, completed=done, total=total, lines="files"))
    if as_json:
        print_json(result.to_json())
    else:
        out.print(f"checked {result.offline_files:,} offline files, "
                  f"{result.recovery_partitions:,} recovery partitions and "
                  f"{result.model_versions:,} model versions under {settings.data_dir}")
        if result.findings:
            table = Table(title="damaged" + (" (moved to quarantine, or migrated)"
                                             if result.repaired else ""))
            table.add_column("file", overflow="fold")
            table.add_column("problem", overflow="fold")
            for f in result.findings:
                where = f.path.relative_to(settings.data_dir)
                table.add_row(str(where.parent / shortened(where.name)), f.reason)
            out.print(table)
            for kind, restore in dict.fromkeys((f.kind, f.restore) for f in result.findings):
                done = kind == EVENT_IDS and result.repaired
                out.print(restore if done else f"to restore: {restore}", soft_wrap=False)
        else:
            out.print("nothing damaged")
    if result.findings and not result.repaired:
        raise DamagedFiles(len(result.findings))


def shortened(name: str, keep: int = 24) -> str:
    """A long file name with its middle left out, so a table fits 80 columns.

    >>> shortened("part-0fca0b9c9ab64ddbbc86d88d89d08c6d.parquet")
    'part-0fca0b9c…6d.parquet'
    """
    if len(name) <= keep:
        return name
    return name[:13] + "…" + name[-(keep - 14):]
