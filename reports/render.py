"""The daily report on paper: Markdown, HTML with PNG charts beside it, and JSON.

Why this shape: each section of the report (see ``basketflow.reports.daily.SECTIONS``) has one *view*
here that turns its figures into a few neutral blocks (tables, paragraphs, charts); the
Markdown and HTML writers only know blocks. So the two formats always show the same
tables, and a new section needs one view and nothing else. Charts are drawn only for HTML,
with matplotlib's Agg canvas (no display, no pyplot global state), as PNG files in the
report's folder, referenced by relative path.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from basketflow.reports.daily import METRICS, RATIOS, TOP_PRODUCTS_PER_CATEGORY, TOTAL_METRICS

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure

NEW_PRODUCTS_SHOWN = 20
#: Changes smaller than this (percent, or percentage points for shares) show as "=".
STEADY = 0.05


# --------------------------------------------------------------------------- blocks


@dataclass(frozen=True)
class Delta:
    """A figure's change against a base: shown as an arrow and a percentage (pp for shares).

    ``up_is_good`` colours the HTML by what the move means for the business: green when
    it is good, red when bad, grey when it is neither (None) or there is no move.
    """

    value: float
    base: float | None
    kind: str
    up_is_good: bool | None = True

    def text(self) -> str:
        """``▲ 12.3%``, ``▼ 1.5 pp``, ``= 0.0%``, ``▲ new`` or ``–`` (nothing to compare)."""
        if self.base is None:
            return "–"
        if self.kind == "share":
            change, unit = (self.value - self.base) * 100, " pp"
        elif self.base == 0:
            return "=" if self.value == 0 else ("▲ new" if self.value > 0 else "▼ new")
        else:
            change, unit = (self.value - self.base) / abs(self.base) * 100, "%"
        if abs(change) < STEADY:
            return f"= 0.0{unit}"
        return f"{'▲' if change > 0 else '▼'} {abs(change):.1f}{unit}"

    def mood(self) -> str:
        """``good``, ``bad`` or ``flat``: the CSS class of the HTML cell."""
        if self.base is None or self.value == self.base or self.up_is_good is None:
            return "flat"
        return "good" if (self.value > self.base) == self.up_is_good else "bad"


Cell = str | Delta


@dataclass(frozen=True)
class Table:
    """Rows of cells under column headers; ``align`` holds one ``l`` or ``r`` per column.

    ``groups``, when given, labels runs of columns above their headers, as ``(label,
    columns spanned)`` (an empty label over columns of their own): HTML shows them as a
    header row, Markdown as a prefix of each column's header.
    """

    columns: Sequence[str]
    rows: Sequence[Sequence[Cell]]
    align: str
    groups: Sequence[tuple[str, int]] = ()

    def headers(self) -> list[str]:
        """The column headers with their group's label in front (for plain text).

        >>> Table(("Category", "Today", "vs previous day"), [], "lrr",
        ...       (("", 1), ("Revenue", 2))).headers()
        ['Category', 'Revenue: Today', 'Revenue: vs previous day']
        """
        labels = [label for label, span in self.groups for _ in range(span)]
        return [f"{g}: {c}" if g else c
                for c, g in zip(self.columns, labels or [""] * len(self.columns))]


@dataclass(frozen=True)
class Heading:
    """A sub-heading inside a section."""

    text: str


@dataclass(frozen=True)
class Paragraph:
    """A sentence or two of text."""

    text: str


@dataclass(frozen=True)
class Chart:
    """A PNG chart (HTML only): its file name in the report folder, a title, how to draw it."""

    file: str
    title: str
    draw: Callable[[MplFigure], None] = field(compare=False)


Block = Table | Heading | Paragraph | Chart


# --------------------------------------------------------------------------- formatting


def fmt(value: float | None, kind: str) -> str:
    """A figure for people: ``£1,234.50``, ``1,234``, ``12.3%``; ``–`` for None."""
    if value is None:
        return "–"
    if kind == "money":
        return f"-£{-value:,.2f}" if value < 0 else f"£{value:,.2f}"
    if kind == "share":
        return f"{value * 100:.1f}%"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


#: What the two changes of a figure compare, as column headers.
VS_PREVIOUS = "vs previous day"
VS_AVERAGE = "vs 7-day average"
FIGURE_COLUMNS = ("Figure", "Today", "Previous day", VS_PREVIOUS, "7-day average", VS_AVERAGE)

#: Figures for which a rise is bad for the business (coloured red when they rise).
RISING_IS_BAD = frozenset({
    "cancelled_value", "guest_line_share", "guest_revenue_share", "non_product_lines", "non_product_value", "cancellation_lines", "adjustment_lines",
    "zero_price_lines",
})


def figure_row(label: str, figure: dict[str, Any], kind: str,
               up_is_good: bool | None = True) -> list[Cell]:
    """One row of a figure table: today, previous day, 7-day average and both changes."""
    value, previous, average = figure["value"], figure["previous"], figure["avg_7d"]
    return [label, fmt(value, kind), fmt(previous, kind),
            Delta(value, previous, kind, up_is_good), fmt(average, kind),
            Delta(value, average, kind, up_is_good)]


def figure_table(rows: Sequence[list[Cell]]) -> Table:
    """A table of figure rows (see :func:`figure_row`)."""
    return Table(FIGURE_COLUMNS, rows, "lrrrrr")


def _share(part: float, whole: float) -> str:
    """``part`` as a percentage of ``whole`` (``–`` when the whole is 0)."""
    return f"{part / whole * 100:.1f}%" if whole else "–"


# --------------------------------------------------------------------------- section views


def metric_row(name: str, figure: dict[str, Any]) -> list[Cell]:
    """A figure row of a metric or ratio by name: its label, kind, and whether a rise is
    good (:data:`RISING_IS_BAD`)."""
    label, kind = ((METRICS[name].label, METRICS[name].kind) if name in METRICS
                   else (RATIOS[name][0], "share"))
    return figure_row(label, figure, kind, up_is_good=name not in RISING_IS_BAD)


def view_totals(section: dict[str, Any]) -> list[Block]:
    """Revenue, units, orders and cancelled value of the day."""
    return [figure_table([metric_row(n, section[n]) for n in TOTAL_METRICS])]


def view_product_categories(section: dict[str, Any]) -> list[Block]:
    """Category tables, top products per category, first-time products, two charts."""
    categories = section["categories"]
    total = sum(c["revenue"]["value"] for c in categories)
    blocks: list[Block] = [
        Heading("Revenue by category"),
        Table(("Category", "Revenue", "Share", VS_PREVIOUS, VS_AVERAGE),
              [[c["label"], fmt(c["revenue"]["value"], "money"),
                _share(c["revenue"]["value"], total),
                Delta(c["revenue"]["value"], c["revenue"]["previous"], "money"),
                Delta(c["revenue"]["value"], c["revenue"]["avg_7d"], "money")]
               for c in categories], "lrrrr"),
        Chart("revenue_by_category.png", "Revenue by category: today and 7-day average",
              lambda fig: _bars_vs_average(fig, [c["label"] for c in categories],
                                           [c["revenue"] for c in categories])),
        Heading("Units, orders and cancellations by category"),
        Table(("Category", "Today", VS_AVERAGE, "Today", VS_AVERAGE, "Today", VS_AVERAGE),
              [[c["label"],
                *_value_and_trend(c["units"], "count"),
                *_value_and_trend(c["orders"], "count"),
                *_value_and_trend(c["cancelled_value"], "money", up_is_good=False)]
               for c in categories], "lrrrrrr",
              (("", 1), ("Units", 2), ("Orders", 2), ("Cancelled value", 2))),
        Heading(f"Top {TOP_PRODUCTS_PER_CATEGORY} products of each category"),
        Table(("Category", "#", "Stock code", "Description", "Revenue", "Units"),
              [[c["label"] if i == 1 else "", str(i), p["stock_code"], p["description"],
                fmt(p["revenue"], "money"), fmt(p["units"], "count")]
               for c in categories for i, p in enumerate(c["top_products"], start=1)],
              "lrllrr"),
    ]
    if section["top_products"]:
        blocks.append(Chart("top_products.png", "Top products of the day by revenue",
                            lambda fig: _top_products(fig, section["top_products"])))
    return blocks + _new_products(section["new_products"])


def _value_and_trend(figure: dict[str, Any], kind: str, up_is_good: bool = True) -> list[Cell]:
    """A figure's value and its change against the 7-day average."""
    return [fmt(figure["value"], kind),
            Delta(figure["value"], figure["avg_7d"], kind, up_is_good)]


def _new_products(new: dict[str, Any]) -> list[Block]:
    """The products sold for the first time (the first few, the rest in the JSON)."""
    count = new["count"]
    blocks: list[Block] = [Heading(f"Products sold for the first time: {count['value']} "
                                   f"(previous day {fmt(count['previous'], 'count')}, "
                                   f"7-day avg {fmt(count['avg_7d'], 'count')})")]
    if new["store_starts_today"]:
        blocks.append(Paragraph("The store starts on this day, so every product is new."))
    products = new["products"]
    if products:
        blocks.append(Table(("Stock code", "Description", "Category", "Revenue", "Units"),
                            [[p["stock_code"], p["description"], p["label"],
                              fmt(p["revenue"], "money"), fmt(p["units"], "count")]
                             for p in products[:NEW_PRODUCTS_SHOWN]], "lllrr"))
    if len(products) > NEW_PRODUCTS_SHOWN:
        blocks.append(Paragraph(f"… and {len(products) - NEW_PRODUCTS_SHOWN} more "
                                "(all of them in report.json)."))
    return blocks


def view_customers_countries(section: dict[str, Any]) -> list[Block]:
    """Customers and guest shares, then revenue by country (top ones and the rest)."""
    rows = [metric_row(n, section[n])
            for n in ("active_customers", "new_customers", "returning_customers",
                      "guest_line_share", "guest_revenue_share")]
    countries = [(c["country"], c["revenue"]) for c in section["countries"]]
    other = section["other_countries"]
    if other["count"]:
        countries.append((f"Other countries ({other['count']})", other["revenue"]))
    total = sum(figure["value"] for _, figure in countries)
    return [
        figure_table(rows),
        Heading("Revenue by country"),
        Table(("Country", "Revenue", "Share", VS_PREVIOUS, VS_AVERAGE),
              [[name, fmt(f["value"], "money"), _share(f["value"], total),
                Delta(f["value"], f["previous"], "money"),
                Delta(f["value"], f["avg_7d"], "money")] for name, f in countries],
              "lrrrr"),
        Chart("revenue_by_country.png", "Revenue by country: today and 7-day average",
              lambda fig: _bars_vs_average(fig, [n for n, _ in countries],
                                           [f for _, f in countries])),
    ]


def view_customer_categories(section: dict[str, Any]) -> list[Block]:
    """Customers and revenue per customer category with a chart, new customers' predicted
    categories against their labels, moves between categories; or why there are none."""
    if not section["available"]:
        return [Paragraph(section["message"])]
    seg = section["segmentation"]
    categories = section["categories"]
    registered = section["registered"]
    blocks: list[Block] = [
        Paragraph(f"Customer categories fitted on purchases up to {seg['until']}; "
                  f"{seg['labelled_customers']:,} customers have one. Guests have none and "
                  "are not counted here."),
        Heading("Active customers and revenue by customer category"),
        Table(("Category", "Today", VS_PREVIOUS, VS_AVERAGE, "Today", "Share", VS_PREVIOUS,
               VS_AVERAGE),
              [[c["name"], fmt(c["active_customers"]["value"], "count"),
                Delta(c["active_customers"]["value"], c["active_customers"]["previous"],
                      "count"),
                Delta(c["active_customers"]["value"], c["active_customers"]["avg_7d"],
                      "count"),
                fmt(c["revenue"]["value"], "money"),
                _share(c["revenue"]["value"], registered["revenue"]["value"]),
                Delta(c["revenue"]["value"], c["revenue"]["previous"], "money"),
                Delta(c["revenue"]["value"], c["revenue"]["avg_7d"], "money")]
               for c in categories]
              + [["All registered customers",
                  fmt(registered["active_customers"]["value"], "count"),
                  Delta(registered["active_customers"]["value"],
                        registered["active_customers"]["previous"], "count"),
                  Delta(registered["active_customers"]["value"],
                        registered["active_customers"]["avg_7d"], "count"),
                  fmt(registered["revenue"]["value"], "money"), "100.0%",
                  Delta(registered["revenue"]["value"], registered["revenue"]["previous"],
                        "money"),
                  Delta(registered["revenue"]["value"], registered["revenue"]["avg_7d"],
                        "money")]],
              "lrrrrrrr", (("", 1), ("Active customers", 3), ("Revenue", 4))),
        Chart("revenue_by_customer_category.png",
              "Revenue by customer category: today and 7-day average",
              lambda fig: _bars_vs_average(fig, [c["name"] for c in categories],
                                           [c["revenue"] for c in categories])),
    ]
    return blocks + _predictions(section["new_customers"]) + _moves(section["moves"])


def _predictions(new: dict[str, Any]) -> list[Block]:
    """New customers with the category predicted at the end of their first basket."""
    blocks: list[Block] = [Heading("New customers and their predicted category")]
    if not new["scores_recorded"]:
        return blocks + [Paragraph(
            f"{new['count']['value']} new customers; no live predictions were recorded (the "
            "flow predicts once customer categories are fitted and assigned).")]
    rows = [figure_row("New customers", new["count"], "count"),
            figure_row("With a live prediction", new["predicted"], "count"),
            figure_row("Predicted and labelled", new["labelled"], "count"),
            figure_row("Predicted right", new["right"], "count")]
    if new["accuracy"] is not None:
        rows.append(figure_row("Accuracy", new["accuracy"], "share"))
    blocks.append(figure_table(rows))
    if new["accuracy"] is None:
        blocks.append(Paragraph("No new customer of the day has both a prediction and a "
                                "label: no accuracy."))
    if new["by_predicted"]:
        blocks.append(Table(("Predicted category", "Customers", VS_AVERAGE, "Labelled",
                             "Right"),
                            [[p["category"], *_value_and_trend(p["count"], "count"),
                              fmt(p["labelled"], "count"), fmt(p["right"], "count")]
                             for p in new["by_predicted"]], "lrrrr"))
    return blocks


def _moves(moves: dict[str, Any]) -> list[Block]:
    """How many active customers changed category, and the most frequent changes."""
    blocks: list[Block] = [Heading("Customers who moved between categories")]
    if not moves["available"]:
        return blocks + [Paragraph(moves["message"])]
    moved = moves["moved"]
    blocks.append(Paragraph(
        f"{moved['value']} of the {moves['compared']} active customers with earlier purchases "
        "changed category: the category assigned from their profile up to the previous "
        "trading day differs from the one assigned from their profile up to today "
        f"(previous day: {fmt(moved['previous'], 'count')} moved)."))
    if moves["transitions"]:
        blocks.append(Table(("From", "To", "Customers"),
                            [[t["from"], t["to"], fmt(t["count"], "count")]
                             for t in moves["transitions"]], "llr"))
    if moves["transition_kinds"] > len(moves["transitions"]):
        blocks.append(Paragraph(f"… and {moves['transition_kinds'] - len(moves['transitions'])}"
                                " rarer transitions."))
    return blocks


def view_data_quality(section: dict[str, Any]) -> list[Block]:
    """Lines stored, rejected, non-product, cancellation, adjustment and zero-price lines."""
    rejected = section["rejected"]
    rows = [figure_row(METRICS["lines"].label, section["lines"], "count", up_is_good=None)]
    if rejected["recorded"]:
        rows.append(figure_row("Rejected lines", rejected["total"], "count", up_is_good=False))
    rows.append(figure_row("Late events", section["late_events"], "count", up_is_good=False))
    rows += [metric_row(n, section[n])
             for n in ("non_product_lines", "non_product_value", "cancellation_lines",
                       "adjustment_lines", "zero_price_lines")]
    blocks: list[Block] = [figure_table(rows), Heading("Rejected lines by reason")]
    if not rejected["recorded"] or not rejected["by_reason"]:
        blocks.append(Paragraph("No rejected lines that day."))
    else:
        blocks.append(Table(("Reason", "Lines"),
                            [[r["reason"], fmt(r["count"], "count")]
                             for r in rejected["by_reason"]], "lr"))
    return blocks + _expectations(section)


def _expectations(section: dict[str, Any]) -> list[Block]:
    """The expectations checked on the day's lines (which: their digest, and the values
    the project set), and each failure with examples."""
    results = section["expectations"]
    blocks: list[Block] = [
        Heading("Expectations"),
        Paragraph("Each expectation names the lines that break it; a day fails it when "
                  "their share of the lines it applies to is over the share allowed."),
        *_which_expectations(section),
        Table(("Lines that break it", "Lines", "Breaking", "Share", "Allowed", "Result"),
              [[r["description"], fmt(r["lines"], "count"), fmt(r["breaking"], "count"),
                f"{r['share']:.2%}", _allowed(r["max_share"]),
                "passed" if r["passed"] else "FAILED"] for r in results], "lrrrrl")]
    for r in results:
        if not r["passed"]:
            lines = "; ".join(
                f"invoice {x['invoice']} {x['stock_code']} x{x['quantity']} at "
                f"{x['unit_price']} ({x['country']})" for x in r["examples"])
            blocks.append(Paragraph(f"Failed, {r['description']}: {r['breaking']:,} of "
                                    f"{r['lines']:,} lines (allowed {_allowed(r['max_share'])}), "
                                    f"e.g. {lines}."))
    return blocks


def _which_expectations(section: dict[str, Any]) -> list[Block]:
    """Which expectations the day was checked against: their digest and the values the
    project file set (none in a report made before expectations were set per project)."""
    if "expectations_digest" not in section:
        return []
    changed = section["expectations_changed"]
    return [Paragraph(f"Checked against expectations {section['expectations_digest']}: "
                      + ("the defaults." if not changed else "the defaults but, as the "
                         "project file sets, " + "; ".join(changed) + "."))]


def _allowed(share: float) -> str:
    """A share allowed as a percentage with the digits it was set with (1.5%, not 2%).

    >>> _allowed(0.015), _allowed(0.4), _allowed(0.0)
    ('1.5%', '40%', '0%')
    """
    return f"{share * 100:.4g}%"


#: What each drift measure is called for a reader.
DRIFT_MEASURES = {"psi": "stability index", "js": "Jensen-Shannon distance",
                  "ks": "Kolmogorov-Smirnov test", "chi2": "chi-square test"}


def _reference_from(source: str) -> str:
    """How the report names the reference window's source (see
    :func:`basketflow.reports.drift.choose_reference`)."""
    if source.startswith("champion version"):
        return f"the last 28 days the {source} learnt from"
    return source


def view_drift(section: dict[str, Any]) -> list[Block]:
    """How many features moved from the reference window (the champion model's last 28
    days of training, else the 28 days before), the ones that moved most, and a chart of
    them; or why drift could not be measured."""
    if not section["available"]:
        return [Paragraph(section["message"])]
    first, last = section["reference"]
    counts = section["counts"]
    moved = section["most_moved"]
    blocks: list[Block] = [
        Paragraph(f"How far today's customer, basket and product figures and the model's "
                  f"predicted categories moved from {first} .. {last} "
                  f"({_reference_from(section.get('reference_from', 'the 28 days before'))}): "
                  f"{counts['alert']} alert, {counts['warn']} warning, {counts['ok']} "
                  "steady. A stability index over 0.1 is a warning and over 0.25 an "
                  "alert; a distance over 0.1 a warning and over 0.2 an alert; on a day "
                  "with under 100 values a test decides (p under 0.05 a warning, under "
                  "0.01 an alert)."),
        Table(("Feature", "Measure", "Value", "p-value", "Status"),
              [[f"{f['view']}: {f['feature']}", DRIFT_MEASURES[f["method"]],
                f"{f['score']:.3f}", "" if f["p_value"] is None else f"{f['p_value']:.2g}",
                f["status"]] for f in moved], "llrrl"),
    ]
    if moved:
        blocks.append(Chart("drift.png", "Features that moved most (red: alert, orange: "
                            "warning)", lambda fig: _drift_bars(fig, moved)))
    return blocks


#: The view of each section of ``basketflow.reports.daily.SECTIONS``, by key.
VIEWS: dict[str, Callable[[dict[str, Any]], list[Block]]] = {
    "totals": view_totals,
    "product_categories": view_product_categories,
    "customer_categories": view_customer_categories,
    "customers_countries": view_customers_countries,
    "data_quality": view_data_quality,
    "drift": view_drift,
}


# --------------------------------------------------------------------------- charts


def _bars_vs_average(fig: MplFigure, labels: Sequence[str],
                     figures: Sequence[dict[str, Any]]) -> None:
    """Horizontal bars of today's value, beside the 7-day average, largest at the top."""
    ax = fig.subplots()
    positions = range(len(labels))[::-1]
    today = [f["value"] for f in figures]
    average = [f["avg_7d"] or 0 for f in figures]
    ax.barh([p + 0.2 for p in positions], today, height=0.4, label="today", color="#1f77b4")
    ax.barh([p - 0.2 for p in positions], average, height=0.4, label="7-day average",
            color="#bbbbbb")
    ax.set_yticks(list(positions), labels)
    ax.xaxis.set_major_formatter(lambda x, _: f"£{x:,.0f}")
    ax.legend(loc="lower right")
    ax.grid(axis="x", alpha=0.3)


def _drift_bars(fig: MplFigure, features: Sequence[dict[str, Any]]) -> None:
    """Horizontal bars of each feature's measure, coloured by its status, most moved on
    top."""
    ax = fig.subplots()
    colours = {"alert": "#d62728", "warn": "#ff7f0e", "ok": "#bbbbbb"}
    positions = range(len(features))[::-1]
    ax.barh(list(positions), [f["score"] for f in features],
            color=[colours[f["status"]] for f in features])
    ax.set_yticks(list(positions), [f"{f['view']}: {f['feature']} ({f['method']})"
                                    for f in features])
    ax.grid(axis="x", alpha=0.3)


def _top_products(fig: MplFigure, products: Sequence[dict[str, Any]]) -> None:
    """Horizontal bars of the day's best-selling products, coloured by category."""
    ax = fig.subplots()
    labels = sorted({p["label"] for p in products})
    colours = {label: f"C{i % 10}" for i, label in enumerate(labels)}
    positions = range(len(products))[::-1]
    ax.barh(list(positions), [p["revenue"] for p in products],
            color=[colours[p["label"]] for p in products])
    ax.set_yticks(list(positions),
                  [f"{p['stock_code']} {p['description'][:32]}" for p in products])
    ax.xaxis.set_major_formatter(lambda x, _: f"£{x:,.0f}")
    ax.grid(axis="x", alpha=0.3)
    from matplotlib.patches import Patch
    ax.legend(handles=[Patch(color=colours[label], label=label) for label in labels],
              loc="lower right", fontsize="small")


def save_chart(chart: Chart, folder: Path) -> Path:
    """Draw a chart with the Agg canvas and save it as a PNG in ``folder``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 5), layout="constrained")
    FigureCanvasAgg(fig)
    chart.draw(fig)
    fig.suptitle(chart.title)
    path = folder / chart.file
    fig.savefig(path, format="png", dpi=100)
    return path


# --------------------------------------------------------------------------- Markdown


def _markdown_table(table: Table) -> list[str]:
    """A Markdown table padded to column widths, so it also reads well as plain text."""
    cells = [[c.text() if isinstance(c, Delta) else c for c in row] for row in table.rows]
    cells = [[c.replace("|", "\\|") for c in row] for row in cells]
    headers = table.headers()
    widths = [max([len(h), 3, *(len(row[i]) for row in cells)])
              for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.rjust(w) if a == "r" else v.ljust(w)
                                 for v, w, a in zip(values, widths, table.align)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if a == "r" else ("-" * (w + 2))
                          for w, a in zip(widths, table.align)) + "|"
    return [line(headers), rule, *(line(row) for row in cells)]


def _markdown_blocks(blocks: Sequence[Block]) -> list[str]:
    """Markdown lines of blocks; charts are left to the HTML report."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Table):
            out += [*_markdown_table(block), ""]
        elif isinstance(block, Heading):
            out += [f"### {block.text}", ""]
        elif isinstance(block, Paragraph):
            out += [block.text, ""]
    return out


def _intro(report: dict[str, Any]) -> str:
    """What the figures are compared with (where they are stored is for the JSON)."""
    comparison = report.get("comparison")
    store = report["store"]
    text = f"The shop's sales of the day; its records run from {store['first_day']} to " \
           f"{store['last_day']}."
    if comparison is None:
        return text
    trailing = comparison["trailing_days"]
    if not trailing:
        return text + " This is the first day of the records: nothing to compare with."
    return (text + f" Each figure is compared with the previous trading day "
            f"({comparison['previous_day']}) and with its average over the {len(trailing)} "
            f"trading days before ({trailing[-1]} to {trailing[0]}).")


#: The "how to read this report" section: what a reader needs, not every definition
#: (those are in report.json, under ``definitions``).
HOW_TO_READ = (
    f"“{VS_PREVIOUS}” compares today with the previous trading day; “{VS_AVERAGE}” with "
    "the average of the 7 trading days before. Days without trading are skipped. "
    "Shares change in percentage points (pp).",
    "Green means the change is good for the business, red that it is bad, grey that there "
    "is no change or it is neither: more revenue is green, a rising guest share or more "
    "cancellations are red.",
    "Revenue counts product lines of invoices that were neither cancelled nor written off "
    "as bad debt; cancellations are shown apart, as cancelled value.",
    "Guests are shoppers without a customer account: they count in revenue, not in "
    "customer figures. A new customer is one buying for the first time.",
    "Products are put in categories by their description. Customer categories group "
    "customers by what and how they buy; a new customer's predicted category is the live "
    "prediction at the end of their first basket.",
    "Every figure's exact definition is in report.json, beside this page.",
)


def _no_trading_lines(report: dict[str, Any]) -> list[str]:
    """The body of the short report of a day without trading."""
    lines = [report["message"], "",
             f"- Previous trading day: {report['previous_trading_day']}",
             f"- Next trading day: {report['next_trading_day']}"]
    rejected = report["rejected_lines"]
    lines.append("- Rejected lines: " + ("none" if not rejected else fmt(rejected, "count")))
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: headings, padded tables, and how to read them."""
    out = [f"# Daily report: {report['weekday']} {report['date']}", "", _intro(report), ""]
    if report["status"] != "trading":
        return "\n".join(out + _no_trading_lines(report)) + "\n"
    for key, section in report["sections"].items():
        out += [f"## {section['title']}", "", *_markdown_blocks(VIEWS[key](section))]
    out += ["## How to read this report", ""]
    out += [f"- {text}" for text in HOW_TO_READ]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- HTML

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { padding: 0.25em 0.75em; border-bottom: 1px solid #ddd; }
th { background: #f4f4f4; text-align: left; }
td.r, th.r { text-align: right; font-variant-numeric: tabular-nums; }
.good { color: #1a7f37; } .bad { color: #c62828; } .flat { color: #777; }
figure { margin: 1em 0 2em; } img { max-width: 100%; }
th.group { background: none; text-align: center; border-bottom: 2px solid #bbb; }
p.intro { color: #444; }
ul.how { font-size: 0.95em; color: #333; max-width: 50em; }
ul.how li { margin: 0.3em 0; }
"""


def _html_cell(cell: Cell, align: str) -> str:
    """One <td>; a change gets its mood's colour."""
    cls = "r" if align == "r" else "l"
    if isinstance(cell, Delta):
        return f'<td class="{cls} {cell.mood()}">{html.escape(cell.text())}</td>'
    return f'<td class="{cls}">{html.escape(cell)}</td>'


def _html_blocks(blocks: Sequence[Block], folder: Path, written: list[Path]) -> list[str]:
    """HTML of blocks; each chart is drawn into ``folder`` and its path added to ``written``."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Table):
            head = "".join(f'<th class="{a}">{html.escape(c)}</th>'
                           for c, a in zip(block.columns, block.align))
            if block.groups:
                head = "".join(f'<th class="group" colspan="{span}">{html.escape(g)}</th>'
                               for g, span in block.groups) + "</tr><tr>" + head
            body = "".join("<tr>" + "".join(_html_cell(c, a) for c, a in
                                            zip(row, block.align)) + "</tr>"
                           for row in block.rows)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(block, Heading):
            out.append(f"<h3>{html.escape(block.text)}</h3>")
        elif isinstance(block, Paragraph):
            out.append(f"<p>{html.escape(block.text)}</p>")
        else:
            written.append(save_chart(block, folder))
            out.append(f'<figure><img src="{html.escape(block.file)}" '
                       f'alt="{html.escape(block.title)}"></figure>')
    return out


def render_html(report: dict[str, Any], folder: Path) -> tuple[str, list[Path]]:
    """The report as one HTML page, and the PNG charts it drew into ``folder``."""
    title = f"Daily report: {report['weekday']} {report['date']}"
    out = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
           f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
           f"<h1>{html.escape(title)}</h1>",
           f"<p class=\"intro\">{html.escape(_intro(report))}</p>"]
    charts: list[Path] = []
    if report["status"] != "trading":
        out += [f"<p>{html.escape(line.removeprefix('- '))}</p>"
                for line in _no_trading_lines(report) if line]
    else:
        for key, section in report["sections"].items():
            out.append(f"<h2>{html.escape(section['title'])}</h2>")
            out += _html_blocks(VIEWS[key](section), folder, charts)
        out.append("<h2>How to read this report</h2><ul class=\"how\">")
        out += [f"<li>{html.escape(text)}</li>" for text in HOW_TO_READ]
        out.append("</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n", charts


# --------------------------------------------------------------------------- files


def render_json(report: dict[str, Any]) -> str:
    """The report as JSON: every figure, for machines."""
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


def write_report(report: dict[str, Any], out_dir: Path, formats: set[str]) -> list[Path]:
    """Write ``<out_dir>/<date>/report.{md,html,json}`` (and the HTML's PNGs); list them."""
    folder = out_dir / report["date"]
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if "md" in formats:
        written.append(_write(folder / "report.md", render_markdown(report)))
    if "html" in formats:
        page, charts = render_html(report, folder)
        written += [_write(folder / "report.html", page), *charts]
    if "json" in formats:
        written.append(_write(folder / "report.json", render_json(report)))
    return written


def _write(path: Path, text: str) -> Path:
    """Write UTF-8 text; return the path."""
    path.write_text(text, encoding="utf-8")
    return path
