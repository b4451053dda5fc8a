"""``basketflow models list|show|promote|rollback|diff|train``: the model registry."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from basketflow.cli.output import FullHelpGroup, console, out, print_json, table, when
from basketflow.config import Settings
from basketflow.models.aliases import ALIASES, CHAMPION

alias_option = click.option("--alias", type=click.Choice(ALIASES), default=CHAMPION,
                            show_default=True, help="The alias to move.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print it as JSON.")


@click.group(cls=FullHelpGroup)
def models() -> None:
    """The model registry: every version of the live classifier, its lineage and
    metrics; the champion (what the flow and `serve` score with) promoted and rolled back.

    \b
      basketflow models list
      basketflow models show 12
      basketflow models promote 9     the flow and serve use it within a second
      basketflow models rollback      the champion back to the version before
      basketflow models diff 9 12
      basketflow models train --until 2011-09-30
      basketflow models export --mlflow sqlite:///mlflow.db
    """


def _figure(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _short(created: str) -> str:
    """An ISO time as ``YYYY-MM-DD HH:MM``."""
    return created[:16].replace("T", " ")


@models.command("list")
@json_option
@click.pass_obj
def list_command(settings: Settings, as_json: bool) -> None:
    """Every version kept: created, baskets learnt, event-time clock, prequential
    accuracy and log loss over the rolling window, drift detections, aliases."""
    from basketflow.app.model_registry import list_versions
    rows = list_versions(settings)
    if as_json:
        print_json([r.to_json() for r in rows])
        return
    if not rows:
        out.print("no model versions yet: the flow registers them as it learns "
                  "(`basketflow segment fit`, `segment assign`, then `basketflow run`), or "
                  "`basketflow models train`")
        return
    shown = table("ver>", "created (UTC)", "learnt>", "clock", "acc>", "loss>", "drift>",
                  "alias", title="model versions (acc, loss: rolling prequential)")
    for row in rows:
        v, rolling = row.version, row.version.metrics.get("rolling", {})
        shown.add_row(str(v.id), _short(v.created), f"{v.lineage.n_learned:,}",
                      when(v.lineage.clock)[:10] if v.lineage.clock else "-",
                      _figure(rolling.get("accuracy")), _figure(rolling.get("log_loss")),
                      str(v.metrics.get("drift", {}).get("detections", 0)),
                      ", ".join(row.aliases))
    out.print(shown)


@models.command("show")
@click.argument("version", type=int)
@json_option
@click.pass_obj
def show_command(settings: Settings, version: int, as_json: bool) -> None:
    """One version: lineage (parent, baskets learnt, Kafka offsets and event-time clock
    consumed, labels, feature views, code), metrics per category, drift detections."""
    from basketflow.app.model_registry import show
    row = show(settings, version)
    if as_json:
        print_json(row.to_json())
        return
    v, lineage = row.version, row.version.lineage
    out.print(f"version {v.id}" + (f" ({', '.join(row.aliases)})" if row.aliases else "")
              + f": model {v.model}, from {lineage.source}")
    out.print(f"  created {_short(v.created)} UTC; parent: "
              f"{lineage.parent if lineage.parent is not None else 'none (fresh)'}")
    out.print(f"  baskets learnt: {lineage.n_learned:,}; clock: {when(lineage.clock)}")
    out.print(f"  segmentation: {lineage.segmentation}; feature views: "
              + ", ".join(f"{k} {val}" for k, val in sorted(lineage.feature_views.items())))
    if lineage.offsets:
        out.print("  offsets: " + ", ".join(f"{k.removeprefix('offset:')}={n}"
                                             for k, n in sorted(lineage.offsets.items())))
    out.print("  code: " + ", ".join(f"{k} {val}" for k, val in sorted(lineage.code.items())))
    out.print(f"  artifact: sha256 {v.sha256[:16]}..., {v.bytes:,} bytes")
    drift = v.metrics.get("drift", {})
    out.print(f"  drift detections ({drift.get('detector', 'ADWIN')}): "
              f"{drift.get('detections', 0)}")
    out.print(_metrics_table(v.metrics, f"prequential metrics (rolling: last "
                                        f"{v.metrics.get('window', '-')} baskets)"))


def _metrics_table(metrics: dict[str, Any], title: str) -> Any:
    """Baskets, accuracy and log loss since the start and rolling, overall and per
    category."""
    shown = table("category", "baskets>", "acc>", "loss>", "acc roll>", "loss roll>",
                  title=title)
    rows = [("all", metrics)] + sorted(metrics.get("per_category", {}).items())
    for name, m in rows:
        start, rolling = m.get("since_start", {}), m.get("rolling", {})
        shown.add_row(name, f"{start.get('baskets', 0):,}", _figure(start.get("accuracy")),
                      _figure(start.get("log_loss")), _figure(rolling.get("accuracy")),
                      _figure(rolling.get("log_loss")))
    return shown


@models.command("promote")
@click.argument("version", type=int)
@alias_option
@json_option
@click.pass_obj
def promote_command(settings: Settings, version: int, alias: str, as_json: bool) -> None:
    """Point the champion (or --alias challenger) at VERSION, in one transaction; the
    running flow and `basketflow serve` use it within a second."""
    from basketflow.app.model_registry import promote
    moved = promote(settings, version, alias)
    if as_json:
        print_json(moved.to_json())
        return
    out.print(f"{alias}: version {moved.before if moved.before is not None else 'none'} "
              f"-> {moved.after}")


@models.command("rollback")
@alias_option
@json_option
@click.pass_obj
def rollback_command(settings: Settings, alias: str, as_json: bool) -> None:
    """Put the champion (or --alias) back to the version it named before, in one
    transaction; again, one step further back."""
    from basketflow.app.model_registry import rollback
    moved = rollback(settings, alias)
    if as_json:
        print_json(moved.to_json())
        return
    out.print(f"{alias}: version {moved.before} -> {moved.after}")


@models.command("diff")
@click.argument("first", type=int)
@click.argument("second", type=int)
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Held-out baskets: those closed on or after this day [default: after "
                   "the later version's event-time clock].")
@json_option
@click.pass_obj
def diff_command(settings: Settings, first: int, second: int, since: datetime | None,
                 as_json: bool) -> None:
    """Two versions side by side: lineage, prequential metrics (each measured on the
    baskets it met as it learnt), and both scored on the same held-out baskets of
    labelled customers, overall and per category."""
    from basketflow.app.model_registry import diff
    compared = diff(settings, first, second, since.date() if since else None)
    if as_json:
        print_json(compared.to_json())
        return
    a, b = compared.first, compared.second
    va, vb = a.version, b.version
    shown = table("", f"version {va.id}>", f"version {vb.id}>",
                  title=f"version {va.id} vs {vb.id}")
    pairs = [("model", va.model, vb.model),
             ("aliases", ", ".join(a.aliases) or "-", ", ".join(b.aliases) or "-"),
             ("parent", _any(va.lineage.parent), _any(vb.lineage.parent)),
             ("baskets learnt", f"{va.lineage.n_learned:,}", f"{vb.lineage.n_learned:,}"),
             ("clock", when(va.lineage.clock), when(vb.lineage.clock)),
             ("segmentation", va.lineage.segmentation, vb.lineage.segmentation),
             ("drift detections", str(va.metrics.get("drift", {}).get("detections", 0)),
              str(vb.metrics.get("drift", {}).get("detections", 0)))]
    for scope in ("since_start", "rolling"):
        for figure in ("baskets", "accuracy", "log_loss"):
            pairs.append((f"{figure} ({scope.replace('_', ' ')})",
                          *(_any(v.metrics.get(scope, {}).get(figure)) for v in (va, vb))))
    for category in sorted(set(va.metrics.get("per_category", {}))
                           | set(vb.metrics.get("per_category", {}))):
        pairs.append((f"accuracy: {category}", *(_any(
            v.metrics.get("per_category", {}).get(category, {}).get("since_start", {})
            .get("accuracy")) for v in (va, vb))))
    for name, left, right in pairs:
        shown.add_row(name, left, right)
    out.print(shown)
    if compared.held_out is None:
        out.print(f"held-out: {compared.note}")
        return
    held, ids = compared.held_out, (va.id, vb.id)
    figures = [held["versions"][i] for i in ids]
    same = table("", f"version {va.id}>", f"version {vb.id}>",
                 title=f"the same {held['baskets']:,} held-out baskets, closed after "
                       f"{when(held['since'])}")
    for figure in ("accuracy", "log_loss"):
        same.add_row(figure, *(_any(f["since_start"][figure]) for f in figures))
    for category in sorted(set(figures[0]["per_category"]) | set(figures[1]["per_category"])):
        same.add_row(f"accuracy: {category}", *(_any(
            f["per_category"].get(category, {}).get("accuracy")) for f in figures))
    out.print(same)


def _any(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "-" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


@models.command("train")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Last day (inclusive) of the events learnt from [default: all].")
@json_option
@click.pass_obj
def train_command(settings: Settings, until: datetime | None, as_json: bool) -> None:
    """Learn the current segmentation's classifier from the offline store's events, by
    the flow's own feature and scoring steps, and register it as a version; it becomes
    the champion when there is none or the champion learnt other labels."""
    from basketflow.app.model_registry import train
    events = [0]
    with console.status("training: replaying the offline store's events") as status:
        def counted(n: int) -> None:
            events[0] += n
            status.update(f"training: {events[0]:,} events replayed")

        done = train(settings, until.date() if until else None, counted)
    if as_json:
        print_json(done.to_json())
        return
    v = done.version.version
    rolling = v.metrics.get("rolling", {})
    out.print(f"registered version {v.id}: {v.lineage.n_learned:,} baskets learnt up to "
              f"{when(v.lineage.clock)}, rolling accuracy {_figure(rolling.get('accuracy'))}, "
              f"log loss {_figure(rolling.get('log_loss'))}")
    out.print("it is the champion now" if done.promoted else
              f"the champion is unchanged: `basketflow models promote {v.id}` makes it "
              "the champion")


@models.command("export")
@click.option("--mlflow", "uri", required=True, metavar="URI",
              help="The MLflow tracking and registry store: sqlite:///PATH, "
              "http://HOST:PORT, or a folder.")
@click.option("--name", default=None, metavar="NAME", help="The registered model "
              "[default: basketflow-basket-classifier].")
@json_option
@click.pass_obj
def export_command(settings: Settings, uri: str, name: str | None, as_json: bool) -> None:
    """Write every kept version to MLflow as a registered model version: its metrics,
    its lineage as basketflow.* tags, a pyfunc model, and the champion and challenger
    aliases. Versions exported before are left as they are, so it can run again at any
    time. Needs MLflow: pip install 'basketflow[mlflow]'."""
    from basketflow.app.model_registry import export_mlflow
    with console.status("exporting to MLflow") as status:
        def shown(item: Any) -> None:
            status.update(f"exporting to MLflow: version {item.version} done")

        done = export_mlflow(settings, uri, name, shown)
    if as_json:
        print_json([item.to_json() for item in done])
        return
    written = [item for item in done if item.written]
    out.print(f"{len(written)} version(s) written to MLflow, {len(done) - len(written)} "
              "there already")
    for item in done:
        named = f" ({', '.join(item.aliases)})" if item.aliases else ""
        out.print(f"  version {item.version}{named} -> MLflow version {item.mlflow_version}"
                  f"{'' if item.written else ', already there'}")
