"""``basketflow features``: live values of an entity (``features ENTITY``) and the feature
registry (``features list``, ``features describe VIEW``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from basketflow.cli.output import out, print_json, when
from basketflow.config import Settings

if TYPE_CHECKING:
    from basketflow.app.features import FeatureRow

#: Features whose values are epoch seconds, shown as dates.
TIME_FEATURES = ("first_purchase", "last_purchase", "started")


class _FeaturesGroup(click.Group):
    """`features ENTITY` reads live values; `features list|describe` read the registry."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        if args and args[0] not in self.commands:
            args.insert(0, "get")
        return super().resolve_command(ctx, args)


@click.group(cls=_FeaturesGroup, invoke_without_command=False)
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
def features_get(settings: Settings, entity: str, views: tuple[str, ...], as_json: bool) -> None:
    """Live feature values of one entity from the online store.

    ENTITY is a customer id (guests: guest-<invoice>) for the customer and basket views,
    or a stock code with --view product.
    """
    from basketflow.app import features as app
    from basketflow.app.services import resolve
    settings = resolve(settings)
    try:
        found = app.online_features(settings, entity, views)
    except app.UnknownView as exc:
        raise click.BadParameter(str(exc), param_hint="--view") from exc
    if as_json:
        print_json(found.to_json())
        return
    if not any(found.views.values()):
        raise click.ClickException(f"no features for {entity!r} in the online store: has the "
                                   "flow run (`basketflow run`), and is the id right?")
    for view, row in found.views.items():
        print_view(view, row)


@features.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the registry as JSON.")
@click.pass_obj
def features_list(settings: Settings, as_json: bool) -> None:
    """Every feature view: entity, version, windows, features, where values live."""
    from basketflow.app.features import describe_views
    views = describe_views(settings.prefix)
    if as_json:
        print_json([v.to_json() for v in views])
        return
    table = Table(title="feature views")
    for col in ("view", "entity", "version", "windows (days)", "features", "online", "offline"):
        table.add_column(col)
    for v in views:
        table.add_row(v.name, v.entity, v.version, ",".join(map(str, v.windows_days)) or "-",
                      str(len(v.features)), v.online, v.offline)
    out.print(table)


@features.command("describe")
@click.argument("view")
@click.option("--json", "as_json", is_flag=True, help="Print the view as JSON.")
@click.pass_obj
def features_describe(settings: Settings, view: str, as_json: bool) -> None:
    """One feature view in full: every feature with its type and description."""
    from basketflow.app.features import UnknownView, describe_view
    try:
        info = describe_view(view, settings.prefix)
    except UnknownView as exc:
        raise click.BadParameter(str(exc), param_hint="VIEW") from exc
    if as_json:
        print_json(info.to_json())
        return
    out.print(f"[bold]{view}[/] (entity {info.entity}, version {info.version}): "
              f"{info.description}")
    out.print(f"online: {info.online}   offline: {info.offline}   "
              f"TTL: {info.ttl_seconds or 'none'}")
    table = Table()
    for col in ("feature", "type", "description"):
        table.add_column(col)
    for f in info.features:
        table.add_row(f.name, f.dtype, f.description)
    out.print(table)


def print_view(view: str, row: FeatureRow | None) -> None:
    """One view's values as a table, times shown as dates."""
    if not row:
        out.print(f"[bold]{view}[/]: no values")
        return
    table = Table(title=f"{view} (as of {when(row.event_time)}, version {row.version})")
    table.add_column("feature")
    table.add_column("value", justify="right")
    for name, value in row.values.items():
        shown = when(value) if name in TIME_FEATURES else value
        table.add_row(name, str(shown))
    out.print(table)
