"""A declared view's hot paths as generated Python functions, for the generic engine
(:mod:`basketflow.features.declared_state`): new partials, folding one event into an
hourly tile, the lifetime partials and the latest invoice's, and a row's values.

The engine runs these per event and per row: one function with the view's conditions,
expressions and aggregations written out in it makes no Python call per feature (a
call per aggregation and event, and per feature, tile and row, was where its time went).
Each aggregation keeps one *partial* (:func:`empty_text`), to which an event adds
(:func:`update_lines`); a window merges its tiles' partials in hour order
(:func:`accumulator`) and a value is read from a partial (:func:`value_text`).

>>> from basketflow.schemas.declare import E, agg
>>> spend = agg.sum(E.value, where=E.is_product)
>>> conditions = {text: f"c{i}" for i, text in enumerate(conditions_of([spend]))}
>>> print("\\n".join(update_lines(spend, "t[0]", conditions)))
if c0:
    v = (e.quantity * e.unit_price)
    t[0] += v
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import count
from typing import Any

from basketflow.schemas.declare import (
    NULLABLE,
    Agg,
    Binary,
    Const,
    Expr,
    Field,
    IsIn,
    Not,
    fixed_python,
)

_INDENT = "    "


def _indented(lines: list[str]) -> list[str]:
    return [_INDENT + line for line in lines]


def merge_picked(function: str, a: Any, b: Any) -> Any:
    """Of two (event order, value) partials of ``first`` or ``last``, the earliest (first)
    or latest (last): what generated code calls."""
    if a is None:
        return b
    if b is None:
        return a
    return (min if function == "first" else max)(a, b, key=lambda picked: picked[0])


def round_or_null(value: float | None, decimals: int) -> float | None:
    """``value`` rounded to ``decimals``, a null as it is: what generated code calls."""
    return None if value is None else round(value, decimals)


def exact_rounded(units: int, exact: int, decimals: int) -> float:
    """A whole number of units of ``10**-exact`` rounded half to even to ``decimals``
    (at most ``exact``) in whole numbers, as a float: no binary fraction decides a tie,
    so every place that sums the same units gives the same value. What generated code
    calls for an exact sum.

    >>> exact_rounded(125, 3, 2), exact_rounded(135, 3, 2), exact_rounded(-125, 3, 2)
    (0.12, 0.14, -0.12)
    """
    step = 10 ** (exact - decimals)
    kept, rest = divmod(units, step)
    if 2 * rest > step or (2 * rest == step and kept % 2):
        kept += 1
    return kept / 10 ** decimals


def never_null(expr: Expr) -> bool:
    """Whether ``expr`` has a value for every event (no nullable field, no division), so
    generated code need not test it for null."""
    if isinstance(expr, Binary):
        return expr.op != "/" and never_null(expr.left) and never_null(expr.right)
    if isinstance(expr, Field):
        return expr.name not in NULLABLE
    return isinstance(expr, (Const, Not, IsIn))


def truth_text(expr: Expr) -> str:
    """Python text of whether the condition ``expr`` holds: its own text, but ``&``,
    ``|`` and ``~`` as Python's own operators on truth (a condition's value as a feature
    is a bool, which its text makes with a call per operand; a test needs none)."""
    if isinstance(expr, Binary) and expr.op in ("&", "|"):
        joined = "and" if expr.op == "&" else "or"
        return f"({truth_text(expr.left)} {joined} {truth_text(expr.right)})"
    if isinstance(expr, Not):
        return f"(not {truth_text(expr.inner)})"
    return expr.python


def condition_text(agg: Agg) -> str | None:
    """The Python text of whether an aggregation's condition holds (None: none)."""
    return None if agg.where is None else truth_text(agg.where)


def conditions_of(aggs: list[Agg]) -> list[str]:
    """The distinct conditions' texts of ``aggs`` and their parts, in first-use order."""
    out: list[str] = []
    for a in aggs:
        for text in [condition_text(a), *conditions_of(list(a.parts))]:
            if text is not None and text not in out:
                out.append(text)
    return out


def empty_text(agg: Agg) -> str:
    """The expression of the partial of no events (a new one each time it runs: a
    distinct-values partial is a set a tile adds to)."""
    if agg.function == "ratio":
        return f"({empty_text(agg.parts[0])}, {empty_text(agg.parts[1])})"
    return {"sum": "0", "count": "0", "count_distinct": "set()", "share": "{}",
            "mean": "(0, 0)"}.get(agg.function, "None")


def empties_source(name: str, aggs: list[Agg]) -> str:
    """The source of ``name()``: a list of new partials of ``aggs``."""
    return f"def {name}():\n{_INDENT}return [{', '.join(map(empty_text, aggs))}]"


def update_lines(agg: Agg, slot: str, conditions: dict[str, str],
                 names: Iterator[int] | None = None) -> list[str]:
    """Statements adding the event ``e`` to the partial at ``slot`` (an assignable
    expression), gated by the aggregation's condition (its variable in ``conditions``:
    condition text -> name). A null value adds nothing, except to first and last,
    which keep the event's order with it."""
    names = names if names is not None else count()
    function = agg.function
    if function == "ratio":
        top, bottom = f"_p{next(names)}", f"_p{next(names)}"
        body = [f"{top}, {bottom} = {slot}",
                *update_lines(agg.parts[0], top, conditions, names),
                *update_lines(agg.parts[1], bottom, conditions, names),
                f"{slot} = ({top}, {bottom})"]
    elif function == "count":
        body = [f"{slot} += 1"]
    elif function in ("first", "last"):  # _merge_picked's choice, written out
        assert agg.of is not None
        body = ["_o = _event_order(e)", f"_q = {slot}",
                f"if _q is None or _o {'<' if function == 'first' else '>'} _q[0]:",
                f"{_INDENT}{slot} = (_o, {agg.of.python})"]
    else:
        assert agg.of is not None
        if function == "share":  # the group's sum, started at 0.0 as a float sum
            assert agg.by is not None
            added = [f"g = {agg.by.python}", f"{slot}[g] = {slot}.get(g, 0.0) + v"]
        else:
            added = {"sum": [f"{slot} += v"],
                     "count_distinct": [f"{slot}.add(v)"],
                     "mean": [f"{slot} = ({slot}[0] + v, {slot}[1] + 1)"],
                     "min": [f"if {slot} is None or v < {slot}:", f"{_INDENT}{slot} = v"],
                     "max": [f"if {slot} is None or v > {slot}:", f"{_INDENT}{slot} = v"],
                     }[function]
        if agg.exact is not None:  # never null: checked by the declaration
            body = [f"v = {fixed_python(agg.of, agg.exact)}", *added]
        else:
            body = [f"v = {agg.of.python}", *(added if never_null(agg.of)
                                              else ["if v is not None:", *_indented(added)])]
    where = condition_text(agg)
    return body if where is None else [f"if {conditions[where]}:", *_indented(body)]


def fold_source(windowed: list[Agg], lifetime: list[Agg], conditions: list[str]) -> str:
    """The source of ``fold(tile, lifetime, e)``: the event ``e`` added to the partials
    of the windowed aggregations in ``tile`` and of the lifetime ones in ``lifetime``;
    it returns every condition's truth, in the order of ``conditions`` (their texts)."""
    names = {text: f"c{i}" for i, text in enumerate(conditions)}
    body = [f"{name} = {text}" for text, name in names.items()]
    for slots, aggs in (("tile", windowed), ("lifetime", lifetime)):
        for i, a in enumerate(aggs):
            body += update_lines(a, f"{slots}[{i}]", names)
    body.append(f"return ({''.join(name + ', ' for name in names.values())})")
    return "\n".join(["def fold(tile, lifetime, e):", *_indented(body)])


def fold_latest_source(latest: list[Agg], conditions: list[str]) -> str:
    """The source of ``fold_latest(partials, met, e)``: the event ``e`` added to the
    partials of the latest invoice's aggregations, ``met`` the truth of each of
    ``conditions`` (what ``fold`` returned)."""
    names = {text: f"c{i}" for i, text in enumerate(conditions)}
    body = [f"{''.join(name + ', ' for name in names.values())}= met"] if names else []
    for i, a in enumerate(latest):
        body += update_lines(a, f"partials[{i}]", names)
    return "\n".join(["def fold_latest(partials, met, e):", *_indented(body or ["pass"])])


def value_text(agg: Agg, ref: str, part: Callable[[str, int], str]) -> str:
    """The expression of the value of the partial ``ref``; ``part(ref, k)`` is the
    expression of its ``k``-th part (a ratio's, a mean's sum and count)."""
    function = agg.function
    if function == "ratio":
        top = value_text(agg.parts[0], part(ref, 0), part)
        bottom = value_text(agg.parts[1], part(ref, 1), part)
        return f"({agg.if_zero!r} if not {bottom} else ({top} or 0) / {bottom})"
    if function == "count_distinct":
        return f"len({ref})"
    if function == "mean":
        return f"({part(ref, 0)} / {part(ref, 1)} if {part(ref, 1)} else None)"
    if function in ("first", "last"):
        return f"(None if {ref} is None else {ref}[1])"
    return ref


def item(ref: str, k: int) -> str:
    """The ``k``-th part of a partial held as a tuple."""
    return f"{ref}[{k}]"


def variable(ref: str, k: int) -> str:
    """The ``k``-th part of an accumulator held in variables of its own."""
    return f"{ref}_{k}"


@dataclass
class Accumulator:
    """A window's partial of an aggregation as local variables, merged tile by tile:
    ``starts`` begin it; per window, ``opens`` begin the window's own tiles' share,
    ``merges`` merge in one tile and ``closes`` add the share to the partial."""

    starts: list[str]
    opens: list[str]
    merges: list[str]
    closes: list[str]

    def __add__(self, other: Accumulator) -> Accumulator:
        return Accumulator(self.starts + other.starts, self.opens + other.opens,
                           self.merges + other.merges, self.closes + other.closes)


def accumulator(agg: Agg, name: str, tile: str) -> Accumulator:
    """A window's partial of ``agg`` as local variables named from ``name`` (a mean's and a
    ratio's parts: :func:`variable`), merging in the partial ``tile`` (an expression; a
    tuple's parts: :func:`item`). A sum or count adds the tiles of each stretch between
    two windows' starts in hour order, then that stretch's total to the partial: the
    order in which the built-in views' state classes add floats, so sums are the same to
    the last bit."""
    function = agg.function
    if function in ("ratio", "mean"):
        parts = agg.parts if function == "ratio" else (
            Agg("sum", None, None, "float"), Agg("count", None, None, "int"))
        out = Accumulator([], [], [], [])
        for k, p in enumerate(parts):
            out += accumulator(p, variable(name, k), item(tile, k))
        return out
    if function in ("sum", "count"):
        return Accumulator([f"{name} = 0"], [f"{name}_s = 0"], [f"{name}_s += {tile}"],
                           [f"{name} += {name}_s"])
    if function == "count_distinct":
        return Accumulator([f"{name} = set()"], [], [f"{name} |= {tile}"], [])
    if function in ("first", "last"):
        return Accumulator([f"{name} = None"], [],
                           [f"{name} = _merge_picked({function!r}, {name}, {tile})"], [])
    better = "<" if function == "min" else ">"
    return Accumulator([f"{name} = None"], [], [
        f"p = {tile}", f"if p is not None and ({name} is None or p {better} {name}):",
        f"{_INDENT}{name} = p"], [])


@dataclass(frozen=True)
class Output:
    """One stored feature of a row: a windowed feature's window (``feature``: its index
    among the windowed, ``hours``: the window's span), a ratio of two stored features
    of one window (``divides``: their names; ``hours``: the window's span), or the value
    of a partial (``partial``: its expression) of ``agg``."""

    name: str
    agg: Agg
    decimals: int | None
    feature: int = -1
    hours: int = 0
    partial: str = ""
    divides: tuple[str, str] = ()


def _rounded(value: str, agg: Agg, decimals: int | None) -> str:
    """The expression of ``value`` rounded to ``decimals`` (None: as it is)."""
    if agg.exact is not None:
        return f"_exact_rounded({value}, {agg.exact}, {decimals})"
    if decimals is None:
        return value
    if agg.function in ("sum", "count", "count_distinct", "share"):  # never null
        return f"round({value}, {decimals})"
    return f"_round_or_null({value}, {decimals})"


def values_source(windowed: list[Agg], spans: tuple[int, ...], outputs: list[Output]) -> str:
    """The source of ``values(tiles, end, starts, lifetime, basket)``: the row's stored
    features in ``outputs``' order. Each windowed feature merges each tile of its longest
    window once, in hour order stretch by stretch, and reads its windows from the
    shortest out: the window of ``spans[k]`` is ``tiles[starts[k]:end]``. A ratio of two
    features divides their stored values."""
    longest = [max((o.hours for o in outputs if o.feature == i), default=0)
               for i in range(len(windowed))]
    accumulators = [accumulator(a, f"a{i}", f"t[{i}]") for i, a in enumerate(windowed)]
    number = {o.name: n for n, o in enumerate(outputs)}
    body = [line for acc in accumulators for line in acc.starts]
    for k, span in enumerate(spans):
        merged = [acc for i, acc in enumerate(accumulators) if longest[i] >= span]
        after = "end" if k == 0 else f"starts[{k - 1}]"
        body += [line for acc in merged for line in acc.opens]
        body += [f"for t in tiles[starts[{k}]:{after}]:",
                 *_indented([line for acc in merged for line in acc.merges])]
        body += [line for acc in merged for line in acc.closes]
        body += [f"o{n} = " + _rounded(value_text(o.agg, f"a{o.feature}", variable),
                                       o.agg, o.decimals)
                 for n, o in enumerate(outputs) if o.feature >= 0 and o.hours == span]
        body += [f"o{n} = " + _rounded(_divided(o, number), o.agg, o.decimals)
                 for n, o in enumerate(outputs) if o.divides and o.hours == span]
    totals = {o.partial: f"tot{k}" for k, o in enumerate(
        o for o in outputs if o.partial and o.agg.function == "share")}
    body += [f"{name} = sum({partial}.values())" for partial, name in totals.items()]
    body += [f"o{n} = " + _rounded(_shared(o, totals[o.partial]) if o.partial in totals
                                   else value_text(o.agg, o.partial, item), o.agg, o.decimals)
             for n, o in enumerate(outputs) if o.partial]
    body.append("return {" + ", ".join(f"{o.name!r}: o{n}" for n, o in enumerate(outputs))
                + "}")
    return "\n".join(["def values(tiles, end, starts, lifetime, basket):",
                      *_indented(body)])


def _shared(output: Output, total: str) -> str:
    """The expression of a share (``share_of`` written out) whose partial's total, summed
    once per row for every share of that partial, is the variable ``total``."""
    assert output.agg.key is not None
    return (f"({output.partial}.get({output.agg.key.python}, 0.0) / {total} "
            f"if {total} > 0 else 0.0)")


def _divided(output: Output, number: dict[str, int]) -> str:
    """The expression of a ratio of two stored features (``output.divides``), from the
    variables their values are in (``number``: name -> its output's number)."""
    top, bottom = (f"o{number[name]}" for name in output.divides)
    return f"({output.agg.if_zero!r} if not {bottom} else ({top} or 0) / {bottom})"
