"""``basketflow init``: a new project (``basketflow.yaml`` and a feature repository)."""

from __future__ import annotations

from pathlib import Path

import click

from basketflow.cli.output import out, print_json


@click.command()
@click.argument("folder", type=click.Path(path_type=Path), default=".", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def init(folder: Path, as_json: bool) -> None:
    """Start a project in FOLDER (default: here; created if missing).

    \b
    Writes FOLDER/basketflow.yaml (servers, offline store, key prefix, feature
    repository, allowed lateness: today's defaults, each with a comment) and
    FOLDER/features/ with the built-in views' declarations as a starting point.
    Every basketflow command run in FOLDER or below it reads the project file, as git
    finds its repository; environment variables override it. Nothing that exists is
    overwritten.
    """
    from basketflow.app.project import init_project
    made = init_project(folder)
    if as_json:
        print_json(made.to_json())
        return
    out.print(f"wrote {made.project_file}")
    out.print(f"wrote {made.repository}/: "
              f"{', '.join(p.name for p in made.declarations)} (the built-in views)")
    out.print(f"next: cd {folder} and edit basketflow.yaml, or add a view in "
              f"{made.repository.name}/", soft_wrap=True)
