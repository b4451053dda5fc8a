"""Cost and prequential accuracy of the online basket classifier on the real data.

    python benchmarks/classifier.py [--limit N] [--pipeline NAME ...] [--rounds R]
                                    [--gap-minutes M] [PATH]

PATH is a Kaggle-format CSV (default: the real extract in ../shared/data). The events of
customers with an id are folded through :class:`basketflow.features.entity_features.CustomerFolder` in
event-time order, one fold per customer and event time, exactly as the live flow folds
them, so every basket update gives the (basket, customer) values the live flow would see.
Each update is turned into :func:`basketflow.models.classifier.classifier_features` and scored; a
basket closes, and the model learns from it, at the customer's next invoice or once the
stream's event time is ``--gap-minutes`` past the basket's last update (default 60).

**Labels are a proxy** until the batch segmentation exists: a customer's label is the
dominant product category of their purchase value over the whole file (the five most
common ones by name, the rest as "other categories"), with "high spend" or "low spend"
(total purchase value above or below the median customer's), e.g.
``christmas_seasonal, high spend``: 12 labels, about as many as the segmentation's 8 to
12 categories, which matters since a one-vs-rest model's cost grows with the number of
classes. It uses the future (the whole file), as the real segmentation labels do; it is
only there to give the model a realistic number of classes and realistic signals.

Compared by default: the live model (:data:`basketflow.models.classifier.DEFAULT_PIPELINE`) and the
River pipeline it replaced (``ovr_adagrad``), over the same features; ``--pipeline`` picks
others (all of :data:`basketflow.models.classifier.PIPELINES` are River pipelines but the default).
The pipelines run in turn, ``--rounds`` times (default 3), so a busy machine slows each
about equally.

Prints, per pipeline and round: predict and learn cost per call in microseconds (p50, p99,
mean; targets: predict <= 50 us, learn <= 100 us), prequential accuracy and macro-F1 on
each basket's last update (the prediction made before the model learnt from that basket),
overall, on customers' first baskets and on later ones, beside the prequential majority
class; then the pipelines side by side (median over rounds of each figure, and the ratio
to the live model); the feature computation's cost; and the machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter, OrderedDict, defaultdict
from dataclasses import dataclass, field
from itertools import groupby, islice
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import REAL_DATA, describe  # noqa: E402

from basketflow.features.entity_features import CustomerFolder  # noqa: E402
from basketflow.models.classifier import (  # noqa: E402
    DEFAULT_PIPELINE,
    PIPELINES,
    BasketClassifier,
    classifier_features,
)
from basketflow.producers.csv_source import read_events  # noqa: E402
from basketflow.schemas.events import Transaction  # noqa: E402
from basketflow.config import DEFAULT_ALLOWED_LATENESS_S  # noqa: E402
from basketflow.schemas.taxonomy import load_taxonomy  # noqa: E402

#: The River pipeline the live model replaced, compared with it by default.
REPLACED_PIPELINE = "ovr_adagrad"


@dataclass(frozen=True, slots=True)
class Update:
    """One basket update: whose, which invoice, when, and the model's input."""

    customer: str
    invoice: str
    ts: int
    x: dict


def read_customer_events(path: Path, limit: int | None) -> list[Transaction]:
    """The valid events with a customer id among the first ``limit`` lines, by event time."""
    lines = islice(read_events(path), limit)
    events = [e for e in lines if isinstance(e, Transaction) and e.customer_id]
    events.sort(key=lambda e: e.ts)  # stable: file order within an event time
    return events


def proxy_labels(events: list[Transaction], top: int = 5) -> dict[str, str]:
    """Customer -> "<dominant product category>, high|low spend" (see the module doc).

    Only the ``top`` categories that dominate the most customers keep their name; the
    others become ``other categories``, so there are at most ``2 * (top + 1)`` labels, as
    many as the segmentation's 8 to 12 categories.
    """
    category_of = load_taxonomy().category_of
    by_category: dict[str, Counter[str]] = defaultdict(Counter)
    for e in events:
        if e.is_product and not e.is_cancellation and not e.is_adjustment:
            by_category[e.customer_id][category_of(e.stock_code, e.description)] += \
                e.quantity * e.unit_price
    dominant = {c: v.most_common(1)[0][0] for c, v in by_category.items()}
    named = {c for c, _ in Counter(dominant.values()).most_common(top)}
    totals = {c: sum(v.values()) for c, v in by_category.items()}
    median = statistics.median(totals.values())
    return {c: f"{d if d in named else 'other categories'}, "
               f"{'high' if totals[c] > median else 'low'} spend" for c, d in dominant.items()}


def basket_updates(events: list[Transaction]) -> tuple[list[Update], float]:
    """Every basket update the live flow would emit; and the feature cost per update (us)."""
    folders: dict[str, CustomerFolder] = {}
    updates: list[Update] = []
    feature_ns = 0
    for (customer, ts), group in groupby(events, key=lambda e: (e.customer_id, e.ts)):
        folder = folders.setdefault(customer, CustomerFolder())
        update = folder.fold(customer, list(group), DEFAULT_ALLOWED_LATENESS_S)
        if update is None or "basket" not in update.values:
            continue
        basket = update.values["basket"]
        t0 = time.perf_counter_ns()
        x = classifier_features(basket, update.values["customer"])
        feature_ns += time.perf_counter_ns() - t0
        updates.append(Update(customer, basket["invoice"], update.ts, x))
    return updates, feature_ns / 1000 / max(len(updates), 1)


@dataclass
class Result:
    """What one pipeline did over the stream."""

    predict_ns: list[int] = field(default_factory=list)
    learn_ns: list[int] = field(default_factory=list)
    #: (label, predicted or None, majority so far or None, first basket of the customer)
    outcomes: list[tuple[str, str | None, str | None, bool]] = field(default_factory=list)


def run(pipeline: str, updates: list[Update], labels: dict[str, str], gap_s: int) -> Result:
    """Prequential run: predict every update, learn each basket when it closes."""
    model = BasketClassifier(labels_version="proxy", pipeline=pipeline)
    result = Result()
    seen_labels: Counter[str] = Counter()
    open_baskets: OrderedDict[str, tuple[Update, str | None, bool]] = OrderedDict()
    customers_seen: set[str] = set()

    def close(customer: str) -> None:
        u, predicted, first = open_baskets.pop(customer)
        label = labels[customer]
        majority = seen_labels.most_common(1)[0][0] if seen_labels else None
        result.outcomes.append((label, predicted, majority, first))
        t0 = time.perf_counter_ns()
        model.learn(u.x, label)
        result.learn_ns.append(time.perf_counter_ns() - t0)
        seen_labels[label] += 1

    for u in updates:
        while open_baskets:
            oldest = next(iter(open_baskets))
            if open_baskets[oldest][0].ts + gap_s > u.ts:
                break
            close(oldest)
        current = open_baskets.get(u.customer)
        if current is not None and current[0].invoice != u.invoice:
            close(u.customer)
            current = None
        t0 = time.perf_counter_ns()
        score = model.predict(u.x, u.ts)
        result.predict_ns.append(time.perf_counter_ns() - t0)
        first = current[2] if current else u.customer not in customers_seen
        customers_seen.add(u.customer)
        open_baskets[u.customer] = (u, score.category if score else None, first)
        open_baskets.move_to_end(u.customer)
    for customer in list(open_baskets):
        close(customer)
    return result


def macro_f1(pairs: list[tuple[str, str | None]]) -> float:
    """Unweighted mean of per-class F1 over the classes of the true labels."""
    f1s = []
    for c in {label for label, _ in pairs}:
        tp = sum(1 for t, p in pairs if t == c and p == c)
        fp = sum(1 for t, p in pairs if t != c and p == c)
        fn = sum(1 for t, p in pairs if t == c and p != c)
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(f1s) / len(f1s) if f1s else 0.0


def accuracy(pairs: list[tuple[str, str | None]]) -> float:
    return sum(1 for t, p in pairs if t == p) / len(pairs) if pairs else 0.0


def costs(ns: list[int]) -> str:
    """p50 / p99 / mean of call times, in microseconds."""
    us = sorted(n / 1000 for n in ns)
    return (f"p50 {us[len(us) // 2]:6.1f}  p99 {us[int(len(us) * 0.99)]:6.1f}  "
            f"mean {statistics.fmean(us):6.1f} us")


def report(name: str, result: Result, elapsed: float) -> None:
    """Print one pipeline's figures of one round."""
    print(f"\n{name}  ({elapsed:.1f} s for the run)")
    print(f"  predict  {costs(result.predict_ns)}  ({len(result.predict_ns):,} calls; "
          "target p50 <= 50 us)")
    print(f"  learn    {costs(result.learn_ns)}  ({len(result.learn_ns):,} calls; "
          "target p50 <= 100 us)")
    for part, keep in (("all baskets", lambda o: True), ("first baskets", lambda o: o[3]),
                       ("later baskets", lambda o: not o[3])):
        rows = [o for o in result.outcomes if keep(o)]
        m = [(t, p) for t, p, _, _ in rows]
        b = [(t, b) for t, _, b, _ in rows]
        print(f"  {part:14} n={len(rows):6,}  accuracy {accuracy(m):.3f}  "
              f"macro-F1 {macro_f1(m):.3f}   (majority: {accuracy(b):.3f} / "
              f"{macro_f1(b):.3f})")


def p50_us(ns: list[int]) -> float:
    """The median of call times, in microseconds."""
    return statistics.median(ns) / 1000


def side_by_side(results: dict[str, list[Result]], live: str) -> None:
    """Each pipeline's cost (median over rounds) beside the live model's."""
    def cost(name: str, part: str, stat: str) -> float:
        calls = [getattr(r, f"{part}_ns") for r in results[name]]
        values = [p50_us(ns) if stat == "p50" else statistics.fmean(ns) / 1000 for ns in calls]
        return statistics.median(values)

    print(f"\nside by side (us per basket, median of {len(results[live])} rounds; "
          f"x = times the live model {live}):")
    print(f"  {'pipeline':24} {'predict p50':>16} {'predict mean':>16} {'learn p50':>16} "
          f"{'learn mean':>16}")
    for name in results:
        cells = []
        for part in ("predict", "learn"):
            for stat in ("p50", "mean"):
                value, base = cost(name, part, stat), cost(live, part, stat)
                cells.append(f"{value:7.1f} ({value / base:4.1f}x)")
        print(f"  {name:24} " + " ".join(f"{c:>16}" for c in cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", nargs="?", type=Path, default=REAL_DATA)
    parser.add_argument("--limit", type=int, default=None, help="read only the first N lines")
    parser.add_argument("--pipeline", action="append", choices=sorted(PIPELINES),
                        help=f"pipelines to compare (default: {DEFAULT_PIPELINE} and "
                             f"{REPLACED_PIPELINE})")
    parser.add_argument("--rounds", type=int, default=3,
                        help="times each pipeline runs, in turn with the others")
    parser.add_argument("--gap-minutes", type=int, default=60,
                        help="a basket closes this long after its last update")
    args = parser.parse_args(argv)
    if not args.path.exists():
        print(f"SKIPPED: data file {args.path} is absent; pass the path of a Kaggle CSV.")
        return 0
    print(f"machine  {describe()}")
    print(f"data     {args.path}" + (f" (first {args.limit:,} lines)" if args.limit else ""))
    t0 = time.perf_counter()
    events = read_customer_events(args.path, args.limit)
    labels = proxy_labels(events)
    updates, feature_us = basket_updates(events)
    updates = [u for u in updates if u.customer in labels]
    print(f"stream   {len(events):,} customer events -> {len(updates):,} basket updates of "
          f"{len({(u.customer, u.invoice) for u in updates}):,} baskets, "
          f"{len(labels):,} labelled customers, {len(set(labels.values()))} proxy labels "
          f"(built in {time.perf_counter() - t0:.1f} s)")
    print(f"features classifier_features: {feature_us:.1f} us per update (mean)")
    names = list(dict.fromkeys(args.pipeline or [DEFAULT_PIPELINE, REPLACED_PIPELINE]))
    results: dict[str, list[Result]] = {name: [] for name in names}
    for round_ in range(1, args.rounds + 1):
        print(f"\n--- round {round_} of {args.rounds}")
        for name in names:
            t0 = time.perf_counter()
            result = run(name, updates, labels, args.gap_minutes * 60)
            report(name, result, time.perf_counter() - t0)
            results[name].append(result)
    side_by_side(results, names[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
