"""``basketflow score``, ``segment fit|assign|show`` and ``evaluate``: live scores, customer
categories, and how well the models know them."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich import box

from basketflow.cli.output import (
    FullHelpGroup,
    console,
    mkdir_option,
    out,
    print_json,
    progress_bar,
    table,
    when,
)
from basketflow.config import Settings

if TYPE_CHECKING:
    from basketflow.reports.segments import Segmentation


@click.command()
@click.argument("customer_id")
@click.option("--top", type=click.IntRange(min=1), default=5, show_default=True,
              help="Categories to show, most likely first.")
@click.option("--json", "as_json", is_flag=True, help="Print the score as JSON.")
@click.pass_obj
def score(settings: Settings, customer_id: str, top: int, as_json: bool) -> None:
    """The live category score of a customer (guests: guest-<invoice>), from Redis.

    The flow's classifier scores every basket update: the most likely customer category,
    every category's probability, the model version, and the basket and event time the
    features came from.
    """
    from basketflow.app.features import live_score
    from basketflow.app.services import REDIS, resolve
    value = live_score(resolve(settings, (REDIS,)), customer_id)
    if as_json:
        print_json({"customer": customer_id, "score": value.to_json() if value else None})
    if value is None:  # with --json too: the same exit status as the text
        raise click.ClickException(
            f"no live score for {customer_id!r}: is the id right, has the flow run "
            "(`basketflow run`), and has a segmentation labelled customers for the model to "
            "learn from (`basketflow segment fit`, then `segment assign`, then run the flow)?")
    if as_json:
        return
    probabilities = table("category", "probability>",
                          title=f"{customer_id}: {value.category} (basket {value.invoice} "
                                f"as of {when(value.event_time)}, model {value.model_version})")
    ranked = sorted(value.probabilities.items(), key=lambda kv: -kv[1])
    for name, p in ranked[:top]:
        probabilities.add_row(name, f"{p:.3f}")
    out.print(probabilities)


@click.group(cls=FullHelpGroup)
def segment() -> None:
    """Customer categories: fit them from the feature log, label customers, show them.

    \b
      basketflow backfill --from data.csv.gz   the feature log, if no flow ran
      basketflow segment fit --until 2011-06-30
      basketflow segment assign                label every customer (CURRENT)
      basketflow segment show
    """


#: How many customer categories to fit (shared by `segment fit` and `evaluate`).
categories_option = click.option(
    "--k", type=click.IntRange(8, 12), default=None,
    help="Number of categories [default: the best silhouette among 8..12].")


@segment.command("fit")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), required=True,
              help="Last day (inclusive) of the baskets the categories learn from.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="KMeans seed: same data and seed, same categories and version.")
@categories_option
@click.option("--json", "as_json", is_flag=True, help="Print the fitted segmentation as JSON.")
@click.pass_obj
def segment_fit(settings: Settings, until: datetime, seed: int, k: int | None,
                as_json: bool) -> None:
    """Learn customer categories from purchase profiles up to --until, save them as a
    versioned artifact under <data-dir>/segments/ and make them CURRENT."""
    from dataclasses import asdict

    from basketflow.app.models import fit
    with console.status("fitting customer categories") as status:
        seg = fit(settings, until.date(), seed=seed, k=k,
                  progress=lambda step: status.update(step))
    if as_json:
        print_json(asdict(seg))
        return
    out.print(f"fitted segmentation {seg.version}: {seg.k} categories over "
              f"{seg.customers:,} customers ({seg.data_range[0]} .. {seg.data_range[1]}), "
              f"seed {seg.seed}" + (f", silhouette {seg.silhouette}" if seg.silhouette else ""))
    print_segments(seg)


@segment.command("assign")
@click.option("--version", "version", default=None,
              help="Segmentation version [default: CURRENT, the latest fitted].")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Profile baskets up to this day (inclusive) [default: all].")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Also write the labels to this .csv or .parquet file.")
@mkdir_option
@click.option("--json", "as_json", is_flag=True, help="Print the counts per category as JSON.")
@click.pass_obj
def segment_assign(settings: Settings, version: str | None, until: datetime | None,
                   out_path: Path | None, mkdir: bool, as_json: bool) -> None:
    """Label every registered customer with a category; labels go to
    <data-dir>/segments/<version>/labels.parquet (and --out)."""
    from basketflow.app.models import UnwritableOutput, assign
    with console.status("profiling and labelling customers"):
        try:
            done = assign(settings, version, until.date() if until else None, out_path,
                          mkdir)
        except UnwritableOutput as exc:
            raise click.BadParameter(str(exc), param_hint="--out") from exc
    if as_json:
        print_json(done.to_json())
        return
    out.print(f"labelled {done.customers:,} customers with segmentation {done.version} -> "
              f"{done.labels}" + (f" and {out_path}" if out_path else ""))
    for name, n in done.categories.items():
        out.print(f"  {n:6,}  {name}")


@segment.command("show")
@click.option("--version", "version", default=None,
              help="Segmentation version [default: CURRENT, the latest fitted].")
@click.option("--json", "as_json", is_flag=True, help="Print the segmentation as JSON.")
@click.pass_obj
def segment_show(settings: Settings, version: str | None, as_json: bool) -> None:
    """The categories of a segmentation: name, customers, share and profile."""
    from dataclasses import asdict

    from basketflow.app.models import show
    seg = show(settings, version)
    if as_json:
        print_json(asdict(seg))
        return
    out.print(f"segmentation {seg.version}: fitted {seg.fitted_at} on baskets up to "
              f"{seg.until} ({seg.data_range[0]} .. {seg.data_range[1]}), seed {seg.seed}, "
              f"features {seg.feature_versions}")
    print_segments(seg)


def print_segments(seg: Segmentation) -> None:
    """A segmentation's categories as a table."""
    categories = table("category", "customers>", "share>", "profile",
                       title=f"customer categories ({seg.version})")
    for name, p in zip(seg.names, seg.profiles):
        buys = ", ".join(f"{c['label']} {c['share']:.0%}" for c in p["top_categories"])
        categories.add_row(name, f"{p['customers']:,}", f"{p['share_of_customers']:.1%}",
                      f"median: {p['baskets_median']:g} basket(s), worth "
                      f"{p['basket_value_median']:,.0f}, {p['lines_per_basket_median']:g} "
                      f"lines; buys {buys}")
    out.print(categories)


@click.command()
@click.option("--split", type=click.DateTime(["%Y-%m-%d"]), required=True,
              help="Categories are fitted before this day; customers whose first basket is "
                   "on or after it are the test customers.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the categories and the random forest.")
@categories_option
@click.option("--json", "as_json", is_flag=True, help="Print every figure as JSON.")
@click.pass_obj
def evaluate(settings: Settings, split: datetime, seed: int, k: int | None,
             as_json: bool) -> None:
    """How well each model knows a customer's category from the first basket alone.

    Categories from the baskets before --split; every customer labelled from all their
    baskets; test customers are those whose first basket is on or after --split. Models:
    the majority category, a random forest on a point-in-time training set, and the River
    model as the flow runs it (the flow's scoring step over the stored events, learning
    from training customers only). Accuracy and macro-F1 overall and on test customers
    with 2+ baskets, and the River model's confusion matrix.
    """
    from basketflow.app.models import evaluate as run_evaluation
    events = [0]
    with console.status("evaluating") as status:
        def step(text: str) -> None:
            status.update(text)

        def counted(n: int) -> None:
            events[0] += n
            status.update(f"River replay: {events[0]:,} events")

        result = run_evaluation(settings, split.date(), seed=seed, k=k,
                                progress=step, on_batch=counted)
    if as_json:
        print_json(result.to_json())
        return
    out.print(f"split {result.split}: segmentation {result.segmentation.version} "
              f"({len(result.segmentation.names)} categories), {result.train_customers:,} "
              f"training customers, {result.test_customers:,} test customers "
              f"({result.test_customers_2plus:,} with 2+ baskets)")
    scores = table("model", "accuracy>", "macro-F1>", "accuracy 2+>", "macro-F1 2+>",
                   "coverage>", title="first-basket predictions on the test customers")
    for m in result.models:
        scores.add_row(m.model, f"{m.accuracy:.3f}", f"{m.macro_f1:.3f}",
                      f"{m.accuracy_2plus:.3f}", f"{m.macro_f1_2plus:.3f}", f"{m.coverage:.1%}")
    out.print(scores)
    matrix = table("#>", "true category",
                   *(f"{i + 1}>" for i, _ in enumerate(result.confusion.columns)),
                   title="River confusion matrix (rows: true category; columns: predicted, "
                         "in the same order)")
    matrix.box = box.SIMPLE_HEAD  # up to 12 count columns: no borders between them
    for i, (name, row) in enumerate(result.confusion.iterrows()):
        matrix.add_row(str(i + 1), str(name), *(str(v) for v in row))
    out.print(matrix)


@click.command()
@click.option("--entities", type=click.Path(dir_okay=True, path_type=Path), default=None,
              help="CSV or Parquet with customer_id and, unless --at, timestamp.")
@click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Instead of --entities: every customer with an event that day (at its "
                   "end, unless --at).")
@click.option("--at", default=None,
              help="One time for every row: a date (its last second, UTC) or an ISO 8601 "
                   "time.")
@click.option("--model", default=None,
              help="A model (as the scores show it): its newest registered version for "
                   "every row [default: the version live at each row's time].")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              required=True, help="Output file, .parquet.")
@mkdir_option
@click.option("--json", "as_json", is_flag=True, help="Print a summary as JSON.")
@click.pass_obj
def predict(settings: Settings, entities: Path | None, day: datetime | None, at: str | None,
            model: str | None, out_path: Path, mkdir: bool, as_json: bool) -> None:
    """Batch predictions: each customer's category at a time, from the basket and
    customer values of the offline store then, by the model live then.

    \b
      basketflow predict --entities customers.csv --at 2011-09-30 --out p.parquet
      basketflow predict --date 2011-09-30 --out p.parquet
    """
    from basketflow.app.predictions import predict as run_predictions
    if (entities is None) == (day is None):
        raise click.UsageError("give one of --entities FILE and --date D")
    with ExitStack() as stack:  # the bar starts once the input is read and checked
        bar = progress_bar("predict", in_bytes=False)
        task = bar.add_task("predict", total=None, lines="", start=False)

        def started(total: int) -> None:
            stack.enter_context(bar)
            bar.update(task, total=total)
            bar.start_task(task)

        written = run_predictions(
            settings, out_path, entities=entities, day=day.date() if day else None, at=at,
            model=model, mkdir=mkdir, on_start=started,
            on_rows=lambda n: bar.advance(task, n))
    if as_json:
        print_json(written.to_json())
        return
    predicted = written.rows - written.no_basket - written.no_model
    out.print(f"wrote {written.rows:,} rows to {out_path}: {predicted:,} predicted, "
              f"{written.no_basket:,} without a basket, {written.no_model:,} before the "
              f"first model; {written.rows_per_second:,.0f} rows/s")
