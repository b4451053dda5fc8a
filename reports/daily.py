"""The daily batch report: every figure of one day, computed from the offline store alone.

Why batch and why here: the business wants one report per day on product categories,
customers and data quality, and it must work while the flow is stopped, so it reads
only the Parquet offline store (``events/`` and, when present, ``dead/``), with DuckDB.

How it is organised:

- **Definitions** (:data:`METRICS`, :data:`RATIOS`, :data:`TERMS`): each figure is defined
  once, as a SQL aggregate plus the sentence that explains it; the sentences go into the
  report (``definitions``) and the Markdown footnotes.
- **A run** (:class:`ReportRun`): the work shared by the days of one invocation, done once:
  the events of the days asked for and of the 7 trading days before each are loaded into
  one table, with their product category (the taxonomy applied to the distinct stock lines,
  registered as a small lookup table, not a per-row UDF), each customer's first purchase
  day and each product's first day in the store (one scan of two or three columns of every
  partition up to the last day asked for); per-day series of every figure are computed
  with one ``GROUP BY date`` query per grouping and cached.
- **Customer categories** (:mod:`basketflow.reports.customer_categories`): the current
  segmentation's labels are a small lookup table joined to the events (column
  ``customer_category``); the new customers' first baskets are joined to the score log
  of the loaded days once; moves assign categories from profiles up to two trading days,
  cached per day. Without a segmentation the section says what to run.
- **Sections** (:data:`SECTIONS`): a list of builders, each taking one day
  (:class:`DayScope`) and returning a plain dict of figures. The report is those dicts
  under ``sections``, so a new section is one more builder here and one more view in
  ``basketflow.reports.render``.

Every figure is reported against the previous trading day and the trailing average as
``{"value", "previous", "avg_7d"}``; :data:`TERMS` says what those mean.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from statistics import fmean
from typing import Any

from basketflow.errors import BasketflowError
from basketflow.reports.customer_categories import (
    TOP_TRANSITIONS,
    UNLABELLED,
    CurrentCategories,
    load_current,
    moves,
    unavailable,
)
from basketflow.models.registry import champion_clock, registry_dir
from basketflow.offline_uri import StoreDir
from basketflow.reports.drift import DriftError, drift_report
from basketflow.reports.offline_query import OfflineQuery
from basketflow.reports.profiles import ProfileError
from basketflow.reports.quality import check_day
from basketflow.schemas.expectations import ExpectationSet, configured
from basketflow.schemas.taxonomy import Taxonomy, load_taxonomy
from basketflow.sinks.offline_layout import CorruptFile, as_root, events_dir

TRAILING_DAYS = 7
TOP_PRODUCTS_PER_CATEGORY = 5
TOP_PRODUCTS = 10
TOP_COUNTRIES = 10
FORMATS = ("md", "html", "json")
#: The group key of day totals in :meth:`ReportRun.series`.
TOTAL = "*"

Figure = dict[str, Any]
Series = dict[date, float]


class ReportError(BasketflowError, ValueError):
    """A report cannot be made as asked; the message says what to do instead."""


class UnreadableDays(ReportError):
    """Days whose stored files cannot be read: the other days were reported without
    them; the message names each day's first damaged file and what to do."""

    def __init__(self, bad: dict[date, CorruptFile], written: int) -> None:
        days = "; ".join(f"{day.isoformat()} ({error.path}: {error.reason})"
                         for day, error in bad.items())
        super().__init__(
            f"could not read {days}; the reports of the other {written} day(s) were "
            "written without these days' rows: run `basketflow check --repair`, restore "
            "the rows as it says, then report again")
        self.days = list(bad)


# --------------------------------------------------------------------------- definitions

SALE_LINE = "NOT is_cancellation AND NOT is_adjustment"
REVENUE_LINE = f"{SALE_LINE} AND is_product"
LINE_VALUE = "quantity * unit_price"


@dataclass(frozen=True)
class Metric:
    """One figure: its label, its SQL aggregate over table ``events``, its kind, its meaning.

    ``kind`` is ``money`` (rounded to pence), ``count`` (whole) or ``share`` (0..1).
    """

    label: str
    sql: str
    kind: str
    meaning: str


METRICS: dict[str, Metric] = {
    "revenue": Metric(
        "Revenue", f"sum({LINE_VALUE}) FILTER (WHERE {REVENUE_LINE})", "money",
        "sum of quantity × unit price over the revenue lines: product lines of invoices "
        "that are neither cancellations (C…) nor bad-debt adjustments (A…); zero-price "
        "lines are included (value 0)."),
    "units": Metric(
        "Units", f"sum(quantity) FILTER (WHERE {REVENUE_LINE})", "count",
        "sum of quantities over the revenue lines (zero-price stock write-offs with a "
        "negative quantity included)."),
    "orders": Metric(
        "Orders", f"count(DISTINCT invoice) FILTER (WHERE {REVENUE_LINE})", "count",
        "distinct invoices with at least one revenue line (per category: with a revenue "
        "line in that category)."),
    "cancelled_value": Metric(
        "Cancelled value", f"sum(abs({LINE_VALUE})) FILTER (WHERE is_cancellation)", "money",
        "sum of |quantity × unit price| over cancellation lines (invoice C…), products "
        "and non-product lines alike."),
    "active_customers": Metric(
        "Active customers", f"count(DISTINCT customer_id) FILTER (WHERE {SALE_LINE})",
        "count",
        "distinct customer ids (guests excluded) with a line on a non-cancelled, "
        "non-adjustment invoice that day."),
    "new_customers": Metric(
        "New customers",
        f"count(DISTINCT customer_id) FILTER (WHERE {SALE_LINE} AND first_purchase = date)",
        "count",
        "active customers whose first purchase in the whole store is on that day."),
    "returning_customers": Metric(
        "Returning customers",
        f"count(DISTINCT customer_id) FILTER (WHERE {SALE_LINE} AND first_purchase < date)",
        "count",
        "active customers who had purchased on an earlier day; new + returning = active."),
    "guest_lines": Metric(
        "Guest lines", "count(*) FILTER (WHERE customer_id IS NULL)", "count",
        "stored lines without a customer id."),
    "guest_revenue": Metric(
        "Guest revenue",
        f"sum({LINE_VALUE}) FILTER (WHERE {REVENUE_LINE} AND customer_id IS NULL)", "money",
        "revenue of lines without a customer id."),
    "new_products": Metric(
        "Products sold for the first time",
        f"count(DISTINCT stock_code) FILTER (WHERE {REVENUE_LINE} AND first_seen = date)",
        "count",
        "stock codes with a revenue line that day and no line of any kind on an earlier "
        "day in the store."),
    "lines": Metric(
        "Lines stored", "count(*)", "count",
        "invoice lines stored in the offline store for that day (valid events)."),
    "non_product_lines": Metric(
        "Non-product lines", "count(*) FILTER (WHERE NOT is_product)", "count",
        "lines whose stock code is not merchandise (postage, fees, manual lines, "
        "discounts, vouchers…)."),
    "non_product_value": Metric(
        "Non-product value", f"sum({LINE_VALUE}) FILTER (WHERE NOT is_product)", "money",
        "net quantity × unit price of the non-product lines (cancelled ones negative)."),
    "cancellation_lines": Metric(
        "Cancellation lines", "count(*) FILTER (WHERE is_cancellation)", "count",
        "lines of invoices starting with C."),
    "adjustment_lines": Metric(
        "Adjustment lines", "count(*) FILTER (WHERE is_adjustment)", "count",
        "lines of bad-debt adjustment invoices (starting with A)."),
    "zero_price_lines": Metric(
        "Zero-price lines", "count(*) FILTER (WHERE unit_price = 0)", "count",
        "lines with a unit price of 0 (free items, stock write-offs)."),
}

#: Shares: (numerator metric, denominator metric); 0 when the denominator is 0.
RATIOS: dict[str, tuple[str, str, str, str]] = {
    "guest_line_share": ("Guest share of lines", "guest_lines", "lines",
                         "guest lines / lines stored."),
    "guest_revenue_share": ("Guest share of revenue", "guest_revenue", "revenue",
                            "guest revenue / revenue."),
}

#: Words of the report that are not figures: (label, meaning).
TERMS: dict[str, tuple[str, str]] = {
    "previous": ("Δ prev", "change against the previous trading day (the latest earlier "
                           "day with events in the store)."),
    "avg_7d": ("Δ 7-day", f"change against the mean of the figure over the {TRAILING_DAYS} "
                          "previous trading days (fewer at the start of the data); days "
                          "without trading are skipped, not counted as 0."),
    "category": ("Category", "product category of a line, from its stock code and "
                             "description (schemas/taxonomy.py); non-product lines are in "
                             "'Not a product'."),
    "top_products": ("Top products", "products (stock code, with the alphabetically first "
                                     "description seen that day) ranked by revenue, ties "
                                     "by stock code."),
    "customer_category": (
        "Customer category", "the customer's label in the current segmentation (`basketflow "
        "segment assign`); registered customers without a label are 'unlabelled'; guests "
        "are not counted. Active customers and revenue per category add up to the "
        "registered customers' (guest revenue excluded)."),
    "predicted_category": (
        "Predicted category", "for a new customer (first purchase that day), the live "
        "classifier's score at the end of their first basket: the last score-log row "
        "(greatest event time, then sequence) of their first invoice of the day. Right: "
        "the prediction equals the customer's label; accuracy = right / predicted "
        "customers with a label."),
    "moves": (
        "Moved customers", "customers active that day, with purchases before it, whose "
        "category assigned by the current segmentation from their profile up to the "
        "previous trading day differs from the one assigned from their profile up to that "
        "day (profiles: reports/profiles.py). Compared with the previous trading day only: "
        "each day costs two passes over the feature log, so no 7-day average."),
    "late_events": (
        "Late events", "events of that day (their own event time) that arrived after "
        "their customer had moved on by more than the allowed lateness: kept in the "
        "offline store, left out of the online values (late/ in the offline store)."),
    "rejected": ("Rejected lines", "dead letters of the day (lines or messages that were "
                                   "not valid events), by reason; their day is the line's "
                                   "invoice date when it could be read, else the day they "
                                   "were received."),
}

#: Metrics grouped per use.
TOTAL_METRICS = ("revenue", "units", "orders", "cancelled_value")
CUSTOMER_METRICS = ("active_customers", "new_customers", "returning_customers",
                    "guest_lines", "lines", "guest_revenue", "revenue")
QUALITY_METRICS = ("lines", "non_product_lines", "non_product_value", "cancellation_lines",
                   "adjustment_lines", "zero_price_lines")


def definitions() -> dict[str, str]:
    """Every figure and term: ``"Label: meaning"`` by name, as written into each report."""
    out = {name: f"{m.label}: {m.meaning}" for name, m in METRICS.items()}
    out.update({name: f"{label}: {meaning}" for name, (label, _, _, meaning) in RATIOS.items()})
    out.update({name: f"{label}: {meaning}" for name, (label, meaning) in TERMS.items()})
    return out


def _round(value: float, kind: str) -> float | int:
    """A figure as reported: pence for money, whole for counts, 4 decimals for shares."""
    if kind == "count":
        return int(value)
    return round(float(value), 2 if kind == "money" else 4)


# --------------------------------------------------------------------------- one run


class ReportRun:
    """The shared work of reporting on some days of one offline store (see module doc).

    Raises :class:`ReportError` when a day lies outside the stored data. Use it as a
    context manager (it holds a DuckDB connection).
    """

    def __init__(self, offline_dir: StoreDir, days: Iterable[date],
                 taxonomy: Taxonomy | None = None, data_dir: Path | None = None,
                 expectations: ExpectationSet | None = None) -> None:
        #: The data-quality expectations the days are checked against (the defaults
        #: unless the project file sets them).
        self.expectations = expectations or configured([])
        self.query = OfflineQuery(offline_dir)
        #: Days left out because a file of theirs cannot be read (see ``UnreadableDays``).
        self.unreadable = self.query.drop_unreadable()
        self.taxonomy = taxonomy or load_taxonomy()
        #: Customer categories of ``data_dir`` (default: a local offline store's parent,
        #: as in ``Settings``: ``<data>/offline`` beside ``<data>/segments``).
        data_dir = Path(data_dir) if data_dir is not None else as_root(offline_dir).parent
        self.categories: CurrentCategories = load_current(data_dir)
        #: The champion model's version and clock: the drift section's reference.
        self.champion = champion_clock(registry_dir(data_dir))
        self.days = sorted(set(days))
        self.stored = self.query.days
        self._series: dict[tuple[tuple[str, ...], str | None], dict[str, dict[str, Series]]]
        self._series = {}
        self._rejected: dict[date, dict[str, int]] | None = None
        self._late: dict[date, int] | None = None
        self._predictions: dict[date, list[tuple[str, str | None, str | None]]] | None = None
        self._moves: dict[date, dict[str, Any]] = {}
        try:
            self._check_days()
            self.trailing = {day: self._trailing_days(day) for day in self.days}
            window = {d for day in self.days if day in self.query.event_files
                      for d in (day, *self.trailing[day])}
            if window:
                self._load_events(window)
            self.query.dead_letters_view("dead_letters", window | set(self.days))
            self.query.late_events_view("late_events", window | set(self.days))
            self.query.scores_view("scores", window)
        except Exception:
            self.query.con.close()
            raise

    def __enter__(self) -> ReportRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.query.con.close()

    def _check_days(self) -> None:
        """Refuse no day, an empty store, and days before or after the stored data."""
        where = events_dir(self.query.offline_dir)
        stored = sorted({*self.stored, *self.unreadable})
        if not self.days:
            raise ReportError("no day to report on: give a date (or a range of dates)")
        if not stored:
            raise ReportError(
                f"the offline store {where} holds no events yet: replay data and run the "
                "flow first (basketflow replay FILE; basketflow run --stop-at-end), or "
                "point --data-dir at a store that has some")
        first, last = stored[0], stored[-1]
        outside = [d for d in self.days if not first <= d <= last]
        if outside:
            raise ReportError(
                f"no data for {outside[0].isoformat()}: the offline store {where} holds "
                f"events from {first.isoformat()} to {last.isoformat()}; choose dates in "
                "that range")

    def _trailing_days(self, day: date) -> tuple[date, ...]:
        """The up to :data:`TRAILING_DAYS` stored days before ``day``, latest first."""
        end = bisect_left(self.stored, day)
        return tuple(reversed(self.stored[max(0, end - TRAILING_DAYS):end]))

    def _load_events(self, window: set[date]) -> None:
        """Table ``events``: the window's events with category, first purchase, first seen."""
        q = self.query
        q.events_view("window_events", window)
        q.events_view("history", [d for d in self.stored if d <= max(window)])
        q.execute("CREATE TEMP TABLE customer_first AS SELECT customer_id, "
                  "min(date) AS first_purchase FROM history "
                  f"WHERE customer_id IS NOT NULL AND {SALE_LINE} GROUP BY customer_id")
        q.execute("CREATE TEMP TABLE product_first AS SELECT stock_code, "
                  "min(date) AS first_seen FROM history GROUP BY stock_code")
        lines = q.rows("SELECT DISTINCT stock_code, description FROM window_events")
        q.create_table("categories", {
            "stock_code": [code for code, _ in lines],
            "description": [text for _, text in lines],
            "category": [self.taxonomy.category_of(code, text or "") for code, text in lines],
        })
        labels = self.categories.labels
        q.create_table("customer_labels", {"customer_id": list(labels),
                                           "label": list(labels.values())})
        q.execute(
            "CREATE TEMP TABLE events AS SELECT e.*, c.category, cf.first_purchase, "
            "pf.first_seen, CASE WHEN e.customer_id IS NOT NULL THEN "
            f"coalesce(cl.label, '{UNLABELLED}') END AS customer_category "
            "FROM window_events e "
            "JOIN categories c ON c.stock_code = e.stock_code "
            "AND c.description IS NOT DISTINCT FROM e.description "
            "LEFT JOIN customer_first cf ON cf.customer_id = e.customer_id "
            "LEFT JOIN product_first pf ON pf.stock_code = e.stock_code "
            "LEFT JOIN customer_labels cl ON cl.customer_id = e.customer_id")

    def series(self, names: Sequence[str], by: str | None = None,
               ) -> dict[str, dict[str, Series]]:
        """Per group key (``TOTAL`` without ``by``), per metric: its value on every loaded day.

        One query for all loaded days, cached: a month of reports asks it once.
        """
        key = (tuple(names), by)
        if key not in self._series:
            columns = ", ".join(f"coalesce({METRICS[n].sql}, 0)" for n in names)
            group = by or f"'{TOTAL}'"
            rows = self.query.rows(f"SELECT date, {group} AS key, {columns} FROM events "
                                   "GROUP BY ALL")
            out: dict[str, dict[str, Series]] = defaultdict(lambda: defaultdict(dict))
            for day, group_key, *values in rows:
                for name, value in zip(names, values):
                    out[group_key][name][day] = value
            self._series[key] = out
        return self._series[key]

    def rejected(self) -> dict[date, dict[str, int]]:
        """Dead letters per day and reason, for the days loaded (cached)."""
        if self._rejected is None:
            self._rejected = defaultdict(dict)
            for day, reason, count in self.query.rows(
                    "SELECT date, reason, count(*) FROM dead_letters GROUP BY ALL"):
                self._rejected[day][reason] = count
        return self._rejected

    def late_events(self) -> dict[date, int]:
        """Late events per day (their own event date), for the days loaded (cached)."""
        if self._late is None:
            self._late = dict(self.query.rows(
                "SELECT date, count(DISTINCT event_id) FROM late_events GROUP BY date"))
        return self._late

    def predictions(self) -> dict[date, list[tuple[str, str | None, str | None]]]:
        """Per loaded day, each new customer's (id, predicted category or None, label or
        None), by id: the prediction at the end of the first basket (module doc; cached)."""
        if self._predictions is None:
            rows = self.query.rows(f"""
                WITH first_baskets AS (
                    SELECT date, customer_id, arg_min(invoice, (ts, invoice)) AS invoice
                    FROM events WHERE customer_id IS NOT NULL AND {SALE_LINE}
                      AND first_purchase = date GROUP BY ALL),
                last_scores AS (
                    SELECT s.entity_id, s.invoice, s.category FROM scores s
                    SEMI JOIN first_baskets f
                      ON f.customer_id = s.entity_id AND f.invoice = s.invoice
                    QUALIFY row_number() OVER (PARTITION BY s.entity_id, s.invoice
                                               ORDER BY s.ts DESC, s.seq DESC) = 1)
                SELECT f.date, f.customer_id, s.category, l.label FROM first_baskets f
                LEFT JOIN last_scores s ON s.entity_id = f.customer_id
                     AND s.invoice = f.invoice
                LEFT JOIN customer_labels l ON l.customer_id = f.customer_id
                ORDER BY f.date, f.customer_id""")
            self._predictions = defaultdict(list)
            for day, customer, predicted, label in rows:
                self._predictions[day].append((customer, predicted, label))
        return self._predictions

    def moves(self, day: date) -> dict[str, Any] | None:
        """Customers active on ``day`` (a run day or the one before it) who moved between
        categories since the previous trading day (see
        :func:`basketflow.reports.customer_categories.moves`); None on the store's first day.

        The first call does every day of the run at once: one read of the feature log for
        the customers active on those days, profiled up to each day concerned.
        """
        if not self._moves:
            self._all_moves()
        return self._moves.get(day)

    def _all_moves(self) -> None:
        """Moves of every run day and of the trading day before each, cached."""
        previous = {d: t[0] for d in self.days if (t := self.trailing[d])}
        days = {m for d, p in previous.items() if d in self.query.event_files for m in (d, p)}
        before = {m: t[0] for m in days if (t := self._trailing_days(m))}
        if not before:
            return
        active: dict[date, set[str]] = defaultdict(set)
        for day, customer in self.query.rows(
                "SELECT DISTINCT date, customer_id FROM events WHERE customer_id IS NOT NULL "
                f"AND {SALE_LINE} AND list_contains($days, date)", {"days": sorted(before)}):
            active[day].add(customer)
        untils = sorted(set(before) | set(before.values()))
        assigned = self.categories.assigned(self.query.offline_dir, untils,
                                            set().union(*active.values()))
        self._moves = {m: moves(active[m], assigned[b], assigned[m])
                       for m, b in before.items()}

    def report(self, day: date) -> dict[str, Any]:
        """The whole report of one of the run's days, as a plain JSON-ready dict."""
        base = {
            "date": day.isoformat(),
            "weekday": day.strftime("%A"),
            "store": {"path": str(self.query.offline_dir),
                      "first_day": self.stored[0].isoformat(),
                      "last_day": self.stored[-1].isoformat()},
        }
        if day not in self.query.event_files:
            return {**base, **self._no_trading(day)}
        scope = DayScope(self, day, self.trailing[day])
        return {
            **base,
            "status": "trading",
            "comparison": {"previous_day": _iso(scope.previous),
                           "trailing_days": [d.isoformat() for d in scope.trailing]},
            "sections": {s.key: {"title": s.title, **s.build(scope)} for s in SECTIONS},
            "definitions": definitions(),
        }

    def _no_trading(self, day: date) -> dict[str, Any]:
        """The short report of a day inside the data with no event stored."""
        before = bisect_left(self.stored, day)
        rejected = self.rejected().get(day, {})
        return {
            "status": "no_trading",
            "message": f"No trading on {day.strftime('%A')} {day.isoformat()}: no sale "
                       "was recorded that day.",
            "previous_trading_day": _iso(self.stored[before - 1] if before else None),
            "next_trading_day": _iso(self.stored[before] if before < len(self.stored)
                                     else None),
            "rejected_lines": sum(rejected.values()) if self.query.has_dead_letters else None,
        }


def _iso(day: date | None) -> str | None:
    """ISO date, or None."""
    return day.isoformat() if day else None


@dataclass(frozen=True)
class DayScope:
    """One trading day of a run, with the days it is compared against."""

    run: ReportRun
    day: date
    trailing: tuple[date, ...]

    @property
    def previous(self) -> date | None:
        """The previous trading day, or None on the store's first day."""
        return self.trailing[0] if self.trailing else None

    def figure(self, by_date: Mapping[date, float], kind: str) -> Figure:
        """A figure of the day, its previous trading day's value and its trailing mean."""
        previous = self.previous
        return {
            "value": _round(by_date.get(self.day, 0), kind),
            "previous": _round(by_date.get(previous, 0), kind) if previous else None,
            "avg_7d": (round(fmean(by_date.get(d, 0) for d in self.trailing),
                             4 if kind == "share" else 2) if self.trailing else None),
        }

    def figures(self, metrics: Mapping[str, Series], names: Sequence[str]) -> dict[str, Figure]:
        """Figures of ``names`` from one group's series (a missing series is all zeros)."""
        return {n: self.figure(metrics.get(n, {}), METRICS[n].kind) for n in names}

    def ratio(self, metrics: Mapping[str, Series], name: str) -> Figure:
        """A share from :data:`RATIOS`, computed per day and then compared."""
        _, numerator, denominator, _ = RATIOS[name]
        top, bottom = metrics.get(numerator, {}), metrics.get(denominator, {})
        shares = {d: (top.get(d, 0) / v if v else 0.0) for d, v in bottom.items()}
        return self.figure(shares, "share")

    def products(self) -> list[dict[str, Any]]:
        """The day's products per category: revenue and units, best first."""
        rows = self.run.query.rows(
            f"SELECT category, stock_code, min(description), sum({LINE_VALUE}) AS revenue, "
            f"sum(quantity) FROM events WHERE date = $day AND {REVENUE_LINE} "
            "GROUP BY category, stock_code ORDER BY round(revenue, 2) DESC, stock_code",
            {"day": self.day})
        return [{"category": c, "stock_code": s, "description": d,
                 "revenue": _round(r, "money"), "units": int(u)} for c, s, d, r, u in rows]

    def new_products(self) -> list[dict[str, Any]]:
        """Products sold on the day and never seen on an earlier day, best first."""
        rows = self.run.query.rows(
            "SELECT stock_code, min(description), arg_min(category, description), "
            f"sum({LINE_VALUE}) AS revenue, sum(quantity) FROM events "
            f"WHERE date = $day AND {REVENUE_LINE} AND first_seen = date "
            "GROUP BY stock_code ORDER BY round(revenue, 2) DESC, stock_code", {"day": self.day})
        return [{"stock_code": s, "description": d, "category": c,
                 "revenue": _round(r, "money"), "units": int(u)} for s, d, c, r, u in rows]


# --------------------------------------------------------------------------- sections


def build_totals(s: DayScope) -> dict[str, Any]:
    """The day's revenue, units, orders and cancelled value over all categories."""
    return s.figures(s.run.series(TOTAL_METRICS)[TOTAL], TOTAL_METRICS)


def build_product_categories(s: DayScope) -> dict[str, Any]:
    """Per category: figures and top products; the day's top products; first-time products."""
    by_category = s.run.series(TOTAL_METRICS, by="category")
    products = s.products()
    categories = []
    for category in s.run.taxonomy.categories:
        figures = s.figures(by_category.get(category.name, {}), TOTAL_METRICS)
        top = [p for p in products if p["category"] == category.name and p["revenue"] > 0]
        categories.append({"name": category.name, "label": category.label, **figures,
                           "top_products": top[:TOP_PRODUCTS_PER_CATEGORY]})
    categories.sort(key=lambda c: -c["revenue"]["value"])
    labels = {c.name: c.label for c in s.run.taxonomy.categories}
    new = s.new_products()
    return {
        "categories": categories,
        "top_products": [{**p, "label": labels[p["category"]]}
                         for p in products if p["revenue"] > 0][:TOP_PRODUCTS],
        "new_products": {
            "count": s.figures(s.run.series(("new_products",))[TOTAL], ("new_products",))[
                "new_products"],
            "store_starts_today": s.previous is None,
            "products": [{**p, "label": labels[p["category"]]} for p in new],
        },
    }


def build_customers_countries(s: DayScope) -> dict[str, Any]:
    """Active, new and returning customers, guest shares, revenue by country."""
    totals = s.run.series(CUSTOMER_METRICS)[TOTAL]
    figures = s.figures(totals, ("active_customers", "new_customers", "returning_customers"))
    by_country = s.run.series(("revenue",), by="country")
    today = sorted(((round(m["revenue"].get(s.day, 0), 2), country)
                    for country, m in by_country.items() if m["revenue"].get(s.day, 0) != 0),
                   key=lambda rc: (-rc[0], rc[1]))
    top = [country for _, country in today[:TOP_COUNTRIES]]
    rest = {d: v - sum(by_country[c]["revenue"].get(d, 0) for c in top)
            for d, v in totals["revenue"].items()}
    return {
        **figures,
        "guest_line_share": s.ratio(totals, "guest_line_share"),
        "guest_revenue_share": s.ratio(totals, "guest_revenue_share"),
        "countries": [{"country": c, "revenue": s.figure(by_country[c]["revenue"], "money")}
                      for c in top],
        "other_countries": {"count": len(today) - len(top),
                            "revenue": s.figure(rest, "money")},
    }


CATEGORY_METRICS = ("active_customers", "revenue")


def build_customer_categories(s: DayScope) -> dict[str, Any]:
    """Active customers and revenue per customer category, new customers' predicted
    categories against their labels, customers who moved between categories."""
    current = s.run.categories
    if current.missing is not None:
        return unavailable(current.missing)
    assert current.segmentation is not None
    by_category = s.run.series(CATEGORY_METRICS, by="customer_category")
    categories = [{"name": name, **s.figures(by_category.get(name, {}), CATEGORY_METRICS)}
                  for name in current.names]
    categories.sort(key=lambda c: (c["name"] == UNLABELLED, -c["revenue"]["value"],
                                   -c["active_customers"]["value"], c["name"]))
    registered = {n: {d: sum(m.get(n, {}).get(d, 0) for k, m in by_category.items()
                             if k is not None) for d in (s.day, *s.trailing)}
                  for n in CATEGORY_METRICS}
    return {
        "available": True,
        "segmentation": {"version": current.segmentation.version,
                         "until": current.segmentation.until,
                         "labelled_customers": len(current.labels)},
        "registered": s.figures(registered, CATEGORY_METRICS),
        "categories": categories,
        "new_customers": _new_customer_predictions(s, current),
        "moves": _moves(s),
    }


def _new_customer_predictions(s: DayScope, current: CurrentCategories) -> dict[str, Any]:
    """New customers, how many were scored, right and the accuracy, per predicted category."""
    predictions = s.run.predictions()
    days = (s.day, *s.trailing)

    def per_day(count: Callable[[list[tuple[str, str | None, str | None]]], float]) -> Series:
        return {d: count(predictions.get(d, [])) for d in days}

    def judged(rows: list[tuple[str, str | None, str | None]]) -> list[bool]:
        return [p == label for _, p, label in rows if p is not None and label is not None]

    today = predictions.get(s.day, [])
    by_predicted = []
    for name in current.names[:-1]:
        mine = [r for r in today if r[1] == name]
        by_predicted.append({
            "category": name,
            "count": s.figure(per_day(lambda rows, n=name: sum(1 for r in rows if r[1] == n)),
                              "count"),
            "labelled": len(judged(mine)), "right": sum(judged(mine))})
    accuracy = {d: (sum(j) / len(j)) for d in days if (j := judged(predictions.get(d, [])))}
    return {
        "scores_recorded": bool(s.run.query.score_files),
        "count": s.figure(per_day(len), "count"),
        "predicted": s.figure(per_day(lambda rows: sum(1 for r in rows if r[1])), "count"),
        "labelled": s.figure(per_day(lambda rows: len(judged(rows))), "count"),
        "right": s.figure(per_day(lambda rows: sum(judged(rows))), "count"),
        "accuracy": _accuracy(s, accuracy),
        "by_predicted": sorted((p for p in by_predicted if p["count"]["value"]),
                               key=lambda p: (-p["count"]["value"], p["category"])),
        "customers": [{"customer_id": c, "predicted": p, "label": label,
                       "right": None if p is None or label is None else p == label}
                      for c, p, label in today],
    }


def _accuracy(s: DayScope, by_date: Mapping[date, float]) -> Figure | None:
    """The share of right predictions, compared only with days that had any to judge;
    None when none of the day's new customers has both a prediction and a label."""
    if s.day not in by_date:
        return None
    trailing = [by_date[d] for d in s.trailing if d in by_date]
    return {"value": round(by_date[s.day], 4),
            "previous": round(by_date[s.previous], 4) if s.previous in by_date else None,
            "avg_7d": round(fmean(trailing), 4) if trailing else None}


def _moves(s: DayScope) -> dict[str, Any]:
    """Moves of the day and of the previous trading day (see TERMS["moves"])."""
    if s.previous is None:
        return {"available": False, "message": "First day of the data: no earlier profile "
                                               "to compare with."}
    try:
        today = s.run.moves(s.day)
        previous = s.run.moves(s.previous)
    except ProfileError as exc:
        return {"available": False, "message": f"Moves need the feature log: {exc}"}
    assert today is not None  # the day has a previous trading day
    return {
        "available": True,
        "compared": today["compared"],
        "moved": {"value": today["moved"],
                  "previous": previous["moved"] if previous else None, "avg_7d": None},
        "transitions": today["transitions"][:TOP_TRANSITIONS],
        "transition_kinds": len(today["transitions"]),
    }


def build_data_quality(s: DayScope) -> dict[str, Any]:
    """Lines stored, rejected lines by reason, late events, non-product, cancellation and
    adjustment lines, and the data-quality expectations checked on the day's lines."""
    figures = s.figures(s.run.series(QUALITY_METRICS)[TOTAL], QUALITY_METRICS)
    recorded = s.run.query.has_dead_letters
    rejected = s.run.rejected()
    totals = {d: sum(reasons.values()) for d, reasons in rejected.items()}
    by_reason = sorted(rejected.get(s.day, {}).items(), key=lambda rc: (-rc[1], rc[0]))
    return {
        **figures,
        "expectations": [asdict(r) for r in check_day(s.run.query, "window_events", s.day,
                                                      s.run.expectations.expectations)],
        "expectations_digest": s.run.expectations.digest,
        "expectations_changed": s.run.expectations.changed,
        "late_events": s.figure(s.run.late_events(), "count"),
        "rejected": {
            "recorded": recorded,
            "total": s.figure(totals, "count") if recorded else None,
            "by_reason": [{"reason": r, "count": n} for r, n in by_reason],
        },
    }


#: The features of the drift section (most moved first) and of its chart.
DRIFT_SHOWN = 10


def build_drift(s: DayScope) -> dict[str, Any]:
    """How far each feature moved from the champion model's last 28 days of training,
    else the 28 days before (:mod:`basketflow.reports.drift`): how many did, the ones that
    moved most; or why it could not be measured."""
    try:
        found = drift_report(s.run.query.offline_dir, s.day, champion=s.run.champion)
    except (DriftError, CorruptFile) as exc:
        return {"available": False, "message": f"Feature drift could not be measured: {exc}."}
    counts = {status: sum(1 for f in found.features if f.status == status)
              for status in ("alert", "warn", "ok")}
    data = found.to_json()
    return {"available": True, "reference": data["reference"],
            "reference_from": data["reference_from"], "counts": counts,
            "thresholds": data["thresholds"], "most_moved": data["features"][:DRIFT_SHOWN],
            "empty": found.empty}


@dataclass(frozen=True)
class Section:
    """One part of the report: a key (in JSON and for the renderer), a title, a builder."""

    key: str
    title: str
    build: Callable[[DayScope], dict[str, Any]]


#: The report's sections, in order.
SECTIONS: tuple[Section, ...] = (
    Section("totals", "Day totals", build_totals),
    Section("product_categories", "Product categories", build_product_categories),
    Section("customer_categories", "Customer categories", build_customer_categories),
    Section("customers_countries", "Customers and countries", build_customers_countries),
    Section("data_quality", "Data quality", build_data_quality),
    Section("drift", "Feature drift", build_drift),
)


# --------------------------------------------------------------------------- entry points


def daily_report(offline_dir: Path, day: date, data_dir: Path | None = None,
                 expectations: ExpectationSet | None = None) -> dict[str, Any]:
    """Every figure of one day as a plain dict (see :meth:`ReportRun.report`)."""
    with ReportRun(offline_dir, [day], data_dir=data_dir, expectations=expectations) as run:
        return run.report(day)


def parse_formats(text: str) -> set[str]:
    """``"md,html"`` -> {"md", "html"}; ReportError naming the known formats otherwise."""
    formats = {f.strip().lower() for f in text.split(",") if f.strip()}
    unknown = sorted(formats - set(FORMATS))
    if unknown or not formats:
        raise ReportError(f"unknown report format {', '.join(unknown) or '(none)'}: "
                          f"choose among {', '.join(FORMATS)} (comma-separated)")
    return formats


def days_between(first: date, last: date) -> list[date]:
    """Every calendar day from ``first`` to ``last`` inclusive."""
    if first > last:
        raise ReportError(f"--from {first.isoformat()} is after --to {last.isoformat()}: "
                          "give the earlier date first")
    return [first + timedelta(n) for n in range((last - first).days + 1)]
