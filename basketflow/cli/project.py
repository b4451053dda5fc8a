"""``basketflow init``, ``plan`` and ``apply``: a new project (``basketflow.yaml`` and a
feature repository), and its views recorded in the registry."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from basketflow.cli.output import out, print_json, table, when
from basketflow.config import Settings

if TYPE_CHECKING:
    from basketflow.app.registry import Plan


@click.command()
@click.argument("folder", type=click.Path(path_type=Path), default=".", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def init(folder: Path, as_json: bool) -> None:
    """Start a project in FOLDER (default: here; created if missing).

    Writes FOLDER/basketflow.yaml (servers, offline store, key prefix, feature
    repository, allowed lateness: today's defaults, each with a comment) and
    FOLDER/features/ with the built-in views' declarations as a starting point.
    Every basketflow command run in FOLDER or below it reads the project file, as
    git finds its repository; environment variables override it. Nothing that
    exists is overwritten.
    """
    from basketflow.app.project import init_project
    made = init_project(folder)
    if as_json:
        print_json(made.to_json())
        return
    out.print(f"wrote {made.project_file}")
    out.print(f"wrote {made.repository}/: "
              f"{', '.join(p.name for p in made.declarations)} (the built-in views)")
    goto = "" if made.project_file.parent == Path.cwd().resolve() else f"cd {folder}, "
    out.print(f"next: {goto}edit basketflow.yaml, add a view in {made.repository.name}/, "
              "then basketflow plan")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.pass_obj
def plan(settings: Settings, as_json: bool) -> None:
    """What `basketflow apply` would record: each view of the feature repository against
    the registry as last applied.

    Each view is new, changed (old -> new version), removed or unchanged, with what
    it needs: a backfill when its stored values or their computation changed,
    nothing when only what a read returns changed (descriptions, TTL, request-time
    features). The repository is basketflow.yaml's feature_repository (without one:
    the built-in views); the registry lives in the offline store. It also lists the
    data-quality expectations basketflow.yaml sets otherwise than last applied. Exit
    status 0 either way.
    """
    from basketflow.app.registry import plan as make_plan
    made = make_plan(settings)
    if as_json:
        print_json(made.to_json())
        return
    print_plan(made)
    if made.differs or made.expectations:
        out.print("to record it: basketflow apply")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print what was applied as JSON.")
@click.pass_obj
def apply(settings: Settings, as_json: bool) -> None:
    """Record the feature repository's views and versions in the registry (in the
    offline store), as `basketflow plan` shows them; runs and backfills are refused
    while the two disagree.

    `features list` and `describe` then show the views; `backfill --views NAME
    --from-offline` computes the history of a view of the repository's own, the next
    `run` computes it live, and `features`, the HTTP API and `historical` read it."""
    from basketflow.app.registry import apply as apply_registry
    made = apply_registry(settings)
    if as_json:
        print_json(made.to_json())
        return
    print_plan(made)
    out.print(f"applied: {made.registry}")
    builtin = [v for v in made.backfill_views if v not in made.own_backfill_views]
    if builtin:
        out.print(f"history of {', '.join(builtin)}: basketflow backfill --from-offline")
    if made.own_backfill_views:
        names = ",".join(made.own_backfill_views)
        out.print(f"history of {names}: basketflow backfill --views {names} --from-offline")


def print_uncomputed(made: Plan) -> None:
    """Say which declared views nothing computes yet (issue #21's generic engine)."""
    if made.uncomputed_views:
        out.print(f"not computed yet: {', '.join(made.uncomputed_views)} (the generic "
                  "engine does not compute values as of hour ends yet; see docs/DESIGN.md, "
                  "\"Known not to work yet\")")


def print_plan(made: Plan) -> None:
    """The plan as a table: view, change, versions, what it needs."""
    source = made.repository or "the built-in views (no feature_repository)"
    against = (f"as applied {when(made.applied_at)}" if made.applied_at is not None
               else "the built-in views (nothing applied yet)")
    out.print(f"repository: {source}\nregistry:   {against}")
    shown = table("view", "change", "version", "needs")
    for c in made.changes:
        version = (c.new_version if c.change in ("new", "unchanged") else
                   c.old_version if c.change == "removed" else
                   f"{c.old_version} -> {c.new_version}")
        needs = "a backfill" if c.needs == "backfill" else "nothing"
        shown.add_row(c.view, c.change if c.change != "changed" else c.what, version, needs)
    out.print(shown)
    for change in made.expectations:
        out.print(f"expectation {change}")
    print_uncomputed(made)
