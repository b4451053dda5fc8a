"""``basketflow features`` and ``entities``: live values of entities (``features ID ...``),
the feature registry (``features list``, ``features describe VIEW``), and the ids that
have live values (``entities``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
from basketflow.cli.output import FullHelpGroup, out, print_json, table, when
from basketflow.config import Settings

if TYPE_CHECKING:
    from basketflow.app.features import FeatureRow, OnlineFeatures

#: Features whose values are epoch seconds, shown as dates.
TIME_FEATURES = ("first_purchase", "last_purchase", "started")


class _FeaturesGroup(FullHelpGroup):
    """`features ENTITY` reads live values; `features list|describe` read the registry."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        if args and args[0] not in self.commands:
            args.insert(0, "get")
        return super().resolve_command(ctx, args)


@click.group(cls=_FeaturesGroup, invoke_without_command=False)
def features() -> None:
    """Live feature values (`features ID [ID ...]`) and the feature registry.

    \b
      basketflow entities --limit 3         customers with live values
      basketflow features 13436 14919       their live values (--json)
      basketflow features 85123A --view product
      basketflow features list [--json]     every view: entity, version
      basketflow features describe customer one view in full
    """


@features.command("get")
@click.argument("entities", nargs=-1, required=True, metavar="ID [ID ...]")
@click.option("--view", "views", multiple=True,
              help="Only these views (repeatable) [default: the customer's views].")
@click.option("--json", "as_json", is_flag=True,
              help="Print the values as JSON (one ID: an object; several: a list).")
@click.pass_obj
def features_get(settings: Settings, entities: tuple[str, ...], views: tuple[str, ...],
                 as_json: bool) -> None:
    """Live feature values of one or more entities from the online store, in one read.

    ID is a customer id (guests: guest-<invoice>) for the views keyed by customer (the
    customer and basket views, and the feature repository's own), or a stock code with
    --view product; `basketflow entities` lists some. An ID without
    values is an error (exit status 1, with --json too), after the others are shown.
    The read is as of the flow's event-time clock (`as_of`), where request-time
    features (days_since_last_purchase) are computed.
    """
    from basketflow.app import features as app
    from basketflow.app.services import REDIS, resolve
    try:
        app.check_views(views, settings)
    except app.UnknownView as exc:
        raise click.BadParameter(str(exc), param_hint="--view") from exc
    found = app.many_online_features(resolve(settings, (REDIS,)), entities, views)
    missing = [f.entity for f in found if not any(f.views.values())]
    if as_json:
        docs = [f.to_json() for f in found]
        print_json(docs[0] if len(docs) == 1 else docs)
    else:
        for one in found:
            if one.entity in missing:
                continue
            if len(found) > 1:
                out.rule(f"[bold]{one.entity}[/]")
            print_as_of(one)
            for view, row in one.views.items():
                print_view(view, row)
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise click.ClickException(
            f"no features for {shown} in the online store: is the id right (`basketflow "
            "entities` lists some), and has the flow run (`basketflow run`)?")


@click.command()
@click.option("--view", default="customer", show_default=True,
              help="The view whose entities to list (customer, basket, product).")
@click.option("--limit", type=click.IntRange(min=1), default=10, show_default=True,
              help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print the ids as JSON.")
@click.pass_obj
def entities(settings: Settings, view: str, limit: int, as_json: bool) -> None:
    """Some entity ids the online store has live values of, the most recent first.

    The ids that `basketflow features` can show right now, with the event time of their
    values: read from the online store (the feature log also holds ids that were only
    backfilled, and baskets whose live values have expired).

    \b
      basketflow entities --limit 3
      basketflow entities --view product
    """
    from basketflow.app import features as app
    from basketflow.app.services import REDIS, resolve
    views = app.served_views(settings)
    try:
        app.feature_view(view, views)
    except app.UnknownView as exc:
        raise click.BadParameter(str(exc), param_hint="--view") from exc
    known = app.latest_entities(resolve(settings, (REDIS,)), view, limit)
    if as_json:
        print_json([k.to_json() for k in known])
    if not known:  # with --json too: the same exit status as the text
        raise click.ClickException(f"the online store has no {view} values yet: run the "
                                   "flow (`basketflow run`) or `backfill --materialize`")
    if not as_json:
        shown = table(app.feature_view(view, views).entity, "values as of",
                      title=f"{view}: the {len(known)} most recent")
        for k in known:
            shown.add_row(k.entity, when(k.event_time))
        out.print(shown)


@features.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the registry as JSON.")
@click.pass_obj
def features_list(settings: Settings, as_json: bool) -> None:
    """Every feature view of the registry as applied (basketflow apply; before any, the
    built-in views): entity, version, windows, features, where values live."""
    from basketflow.app.features import describe_views
    listing = describe_views(settings)
    views = listing.views
    if as_json:
        print_json([v.to_json() for v in views])
        return
    views_table = table("view", "entity", "version", "windows (days)", "features>",
                        title="feature views")
    for v in views:
        views_table.add_row(v.name, v.entity, v.version,
                            ",".join(map(str, v.windows_days)) or "-", str(len(v.features)))
    out.print(views_table)
    out.print("where their values live:")
    for v in views:  # below, not as columns: keys and paths are too long for 80 columns
        out.print(f"  {v.name:9} online  {v.online}\n  {'':9} offline {v.offline}")
    out.print(f"registry: {listing.registry}, applied {when(listing.applied_at)}"
              if listing.applied_at is not None else
              "registry: the built-in views (nothing applied yet: basketflow plan, apply)")
    out.print("one view in full: basketflow features describe VIEW")


@features.command("describe")
@click.argument("view")
@click.option("--json", "as_json", is_flag=True, help="Print the view as JSON.")
@click.pass_obj
def features_describe(settings: Settings, view: str, as_json: bool) -> None:
    """One feature view of the registry as applied in full: every feature with its kind,
    type and description."""
    from basketflow.app.features import UnknownView, describe_view
    from basketflow.schemas.features import REQUEST_TIME
    try:
        info = describe_view(view, settings)
    except UnknownView as exc:
        raise click.BadParameter(str(exc), param_hint="VIEW") from exc
    if as_json:
        print_json(info.to_json())
        return
    out.print(f"[bold]{view}[/] (entity {info.entity}, version {info.version}): "
              f"{info.description}")
    out.print(f"online: {info.online}   offline: {info.offline}   "
              f"TTL: {info.ttl_seconds or 'none'}")
    features_table = table("feature", "kind", "type", "description")
    for column in features_table.columns[:3]:  # names whole: the descriptions wrap
        column.no_wrap = True
    for f in info.features:
        features_table.add_row(f.name, info.kinds[f.name], f.dtype, f.description)
    out.print(features_table)
    if REQUEST_TIME in info.kinds.values():
        out.print("windowed and stored features are computed at the entity's events and "
                  "stored; request-time ones when they are read, at the read's as-of "
                  "time (the flow's event-time clock; in `historical`, the row's time)")


def print_as_of(read: OnlineFeatures) -> None:
    """The line saying what time a read answers for, and where that time comes from."""
    from basketflow.app.features import CLOCK
    if read.as_of is None:
        return
    source = ("the flow's event-time clock" if read.as_of_from == CLOCK
              else "its newest values' event time")
    out.print(f"as of {when(read.as_of)} ({source})")


def print_view(view: str, row: FeatureRow | None) -> None:
    """One view's values as a table, times shown as dates."""
    if not row:
        out.print(f"[bold]{view}[/]: no values")
        return
    values = table("feature", "value>",
                   title=f"{view} (as of {when(row.event_time)}, version {row.version})")
    for name, value in row.values.items():
        shown = when(value) if name in TIME_FEATURES else value
        values.add_row(name, str(shown))
    out.print(values)
