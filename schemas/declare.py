"""Feature views declared, not coded: what a feature repository's files are written in.

A view names its entity, optionally a filter of events, and its features. A feature is an
aggregation (``agg.sum``, ``count``, ``count_distinct``, ``mean``, ``min``, ``max``,
``last``, ``first``, or ``ratio`` of two of them) of an expression of event fields
(:data:`E`), over event-time windows (``days(1, 7)``, ``hours(6)``), over the entity's
whole history (``LIFETIME``, the default) or over its current basket
(``LATEST_INVOICE``: the lines of the customer's latest purchase invoice in event time;
``CURRENT_INVOICE``: the purchase lines since one of another invoice, in arrival order). A
request-time
feature (:class:`DaysSince`) is computed when it is read, from a stored time.

>>> view = View("customer_xmas", entity="customer_id",
...             description="Christmas spend of a customer", features=[
...     Feature("xmas_spend", agg.sum(E.value, where=E.product_category == "christmas_seasonal"),
...             windows=days(14), decimals=2, description="Christmas spend, {window}"),
...     Feature("last_line", agg.max(E.time), description="event time of the latest line"),
...     DaysSince("days_since_last_line", source="last_line",
...               description="days from the latest line to the read's as-of time")])
>>> compiled = view.compile()
>>> compiled.feature_names
('xmas_spend_14d', 'last_line', 'days_since_last_line')
>>> compiled.computed[2]
"xmas_spend: sum(value) where (product_category == 'christmas_seasonal') over 14d, 2 decimals"

Every mistake is a :class:`DeclarationError` naming the file and line of the declaration
that makes it, raised when the declaration is made:

>>> try:
...     Feature("bad", agg.sum(E.country))
... except DeclarationError as exc:
...     print(str(exc).split(": ", 1)[1])
sum of country: country is a str; sum takes a number

**Semantics** (what the plain-Python reference :meth:`View.reference` computes, and
what any engine must return): the events of a window at time ``t`` are those of the
entity, passing the view's and the aggregation's filters, with event time in the window
rule's range (the ``W*24`` hourly tiles ending with ``t``'s hour, up to ``t``); ``sum``,
``count`` and ``count_distinct`` of no events are 0, the others None; ``count_distinct``
leaves nulls out;
``first``/``last`` take the value of the earliest/latest event in event time (of several
in one second, by invoice, then event id: :func:`event_order`); ``ratio`` is None (or
``if_zero``) when its denominator is 0; ``decimals`` rounds the result.
"""

from __future__ import annotations

import keyword
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from basketflow.errors import BasketflowError
from basketflow.schemas.events import Transaction
from basketflow.schemas.feature_view import (
    Feature as PlainFeature,
)
from basketflow.schemas.feature_view import (
    FeatureView,
    RequestTimeFeature,
    WindowedFeature,
)
from basketflow.schemas.taxonomy import load_taxonomy

HOUR = 3600
DAY = 86_400
#: The entities a view may be keyed by, and how an event names its entity.
ENTITIES: dict[str, Callable[[Transaction], str]] = {
    "customer_id": lambda e: e.entity_id,
    "stock_code": lambda e: e.stock_code,
}
#: When a view's values are read: at each event (customer views), or as of the last hour
#: end (the product view: its lines come from every partition, in any order).
VALUES_AT = ("event", "hour_end")


class DeclarationError(BasketflowError):
    """A feature declaration that cannot be used; the message names its file and line."""


def _where() -> str:
    """``FILE line N`` of the declaration being made: the first caller outside this
    module (and the ``__init__`` dataclasses generate, whose file is ``<string>``)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename in (__file__, "<string>"):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return "<unknown> line ?"
    return f"{frame.f_code.co_filename} line {frame.f_lineno}"


def _fail(where: str, message: str) -> DeclarationError:
    """The error of a declaration made at ``where``."""
    return DeclarationError(f"{where}: {message}")


# ------------------------------------------------------------------ expressions

_NUMBERS = ("int", "float", "epoch_s")


class Expr:
    """An expression of event fields: built from :data:`E` with ``+ - * /``,
    comparisons, ``&``, ``|``, ``~`` and :meth:`isin`; has a canonical text (what the
    version digests), a dtype and a plain-Python value of an event.

    >>> (E.quantity * E.unit_price > 10).text
    '((quantity * unit_price) > 10)'
    """

    text: str
    #: Python source of the same value over an event ``e`` (:func:`compiled`).
    python: str
    dtype: str
    fields: frozenset[str]

    def value(self, event: Transaction) -> Any:
        """The expression's value for one event."""
        raise NotImplementedError

    def _binary(self, op: str, other: Any, swap: bool = False) -> Expr:
        right = other if isinstance(other, Expr) else Const.of(other, _where())
        left, right = (right, self) if swap else (self, right)
        return Binary(op, left, right, _where())

    def __add__(self, other: Any) -> Expr: return self._binary("+", other)
    def __radd__(self, other: Any) -> Expr: return self._binary("+", other, True)
    def __sub__(self, other: Any) -> Expr: return self._binary("-", other)
    def __rsub__(self, other: Any) -> Expr: return self._binary("-", other, True)
    def __mul__(self, other: Any) -> Expr: return self._binary("*", other)
    def __rmul__(self, other: Any) -> Expr: return self._binary("*", other, True)
    def __truediv__(self, other: Any) -> Expr: return self._binary("/", other)
    def __rtruediv__(self, other: Any) -> Expr: return self._binary("/", other, True)
    def __lt__(self, other: Any) -> Expr: return self._binary("<", other)
    def __le__(self, other: Any) -> Expr: return self._binary("<=", other)
    def __gt__(self, other: Any) -> Expr: return self._binary(">", other)
    def __ge__(self, other: Any) -> Expr: return self._binary(">=", other)
    def __eq__(self, other: Any) -> Expr: return self._binary("==", other)  # type: ignore[override]
    def __ne__(self, other: Any) -> Expr: return self._binary("!=", other)  # type: ignore[override]
    def __and__(self, other: Any) -> Expr: return self._binary("&", other)
    def __or__(self, other: Any) -> Expr: return self._binary("|", other)
    def __invert__(self) -> Expr: return Not(self, _where())
    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        raise _fail(_where(), f"{self.text} is an expression, not a truth value: combine "
                              "conditions with & | ~, not and / or / not")

    def isin(self, values: Iterable[Any]) -> Expr:
        """True when the expression's value is one of ``values``."""
        return IsIn(self, tuple(values), _where())


#: Each event field: its dtype, its meaning, and its value of an event.
_category_of = load_taxonomy().category_of
FIELDS: dict[str, tuple[str, str, str]] = {
    "value": ("float", "quantity * unit price (cancellations negative)",
              "e.quantity * e.unit_price"),
    "quantity": ("int", "units of the line (cancellations negative)", "e.quantity"),
    "unit_price": ("float", "price of one unit", "e.unit_price"),
    "product_category": ("str", "the product's category in the taxonomy",
                         "_category_of(e.stock_code, e.description)"),
    "country": ("str", "the customer's country", "e.country"),
    "hour": ("int", "hour of the day of the event (0-23, UTC)", f"e.ts % {DAY} // {HOUR}"),
    "weekday": ("int", "weekday of the event (0 = Monday)", f"(e.ts // {DAY} + 3) % 7"),
    "is_cancellation": ("bool", "a cancellation line (invoice C...)", "e.is_cancellation"),
    "is_adjustment": ("bool", "an adjustment line (invoice A...)", "e.is_adjustment"),
    "is_product": ("bool", "a product (not postage, fee or manual line)", "e.is_product"),
    "invoice": ("str", "the invoice number", "e.invoice"),
    "stock_code": ("str", "the product's stock code", "e.stock_code"),
    "customer_id": ("str", "the customer (null for guests)", "e.customer_id"),
    "time": ("epoch_s", "event time (epoch seconds)", "e.ts"),
}
#: The fields that may be null.
NULLABLE = frozenset(("customer_id",))


def _div(a: Any, b: Any) -> Any:
    """``a / b``, None when ``b`` is 0."""
    return a / b if b else None


#: What compiled expressions may call.
_COMPILED_NAMES = {"_category_of": _category_of, "_div": _div}


def compiled(expr: Expr) -> Callable[[Transaction], Any]:
    """The expression as one Python function of an event (what an engine runs; its
    values are :meth:`Expr.value`'s).

    >>> from basketflow.schemas.events import parse_row
    >>> compiled(E.value * 2 > 5)(parse_row(["1", "A", "x", "2", "12/1/2010 8:26", "1.5",
    ...                                      "17850", "UK"], "f:2"))
    True
    """
    return eval(f"lambda e: {expr.python}", dict(_COMPILED_NAMES))  # noqa: S307 (our own text)


def compiled_function(source: str, name: str, names: Mapping[str, Any]) -> Callable[..., Any]:
    """The function ``name`` that ``source`` defines: Python text an engine builds from
    expressions' :attr:`Expr.python`, run with what they may call and ``names``."""
    scope = {**_COMPILED_NAMES, **names}
    exec(source, scope)  # noqa: S102 (our own text)
    return scope[name]  # type: ignore[no-any-return]


class Field(Expr):
    """One event field."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.text = name
        self.dtype = FIELDS[name][0]
        self.fields = frozenset((name,))
        self.python = f"({FIELDS[name][2]})"
        self._get = eval(f"lambda e: {self.python}", dict(_COMPILED_NAMES))  # noqa: S307

    def value(self, event: Transaction) -> Any:
        return self._get(event)


class Const(Expr):
    """A constant: a number, a text or a truth value."""

    def __init__(self, value: Any, dtype: str) -> None:
        self.constant = value
        self.text = repr(value)
        self.python = repr(value)
        self.dtype = dtype
        self.fields = frozenset()

    @staticmethod
    def of(value: Any, where: str) -> Const:
        """The constant of a Python value, or an error naming ``where``."""
        for kind, dtype in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str")):
            if isinstance(value, kind):
                return Const(value, dtype)
        raise _fail(where, f"{value!r} cannot be part of an expression: use numbers, texts, "
                           "True/False and event fields (E.value, ...)")

    def value(self, event: Transaction) -> Any:
        return self.constant


_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "/": lambda a, b: a / b if b else None}
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}
_LOGIC: dict[str, Callable[[Any, Any], Any]] = {
    "&": lambda a, b: bool(a) and bool(b), "|": lambda a, b: bool(a) or bool(b)}


class Binary(Expr):
    """``left op right``, type-checked when it is made."""

    def __init__(self, op: str, left: Expr, right: Expr, where: str) -> None:
        self.op, self.left, self.right = op, left, right
        self.text = f"({left.text} {op} {right.text})"
        self.fields = left.fields | right.fields
        self.dtype = self._dtype(where)
        self._apply = {**_ARITHMETIC, **_COMPARE, **_LOGIC}[op]
        self.python = self._python()

    def _python(self) -> str:
        """Python source of the same value (a null operand gives null, as :meth:`value`)."""
        a, b, op = self.left.python, self.right.python, self.op
        if op in _LOGIC:
            return f"(bool({a}) {'and' if op == '&' else 'or'} bool({b}))"
        plain = f"_div({a}, {b})" if op == "/" else f"({a} {op} {b})"
        nullable = [x.python for x in (self.left, self.right) if x.fields & NULLABLE]
        if nullable:  # only those tested: ``'c1' is None`` is a SyntaxWarning
            return f"(None if {' or '.join(f'{x} is None' for x in nullable)} else {plain})"
        return plain

    def _dtype(self, where: str) -> str:
        op, a, b = self.op, self.left.dtype, self.right.dtype
        if op in _LOGIC:
            if a != "bool" or b != "bool":
                raise _fail(where, f"{self.text}: {op} joins conditions (true/false), not "
                                   f"{a} and {b}")
            return "bool"
        if op in _COMPARE:
            if (a in _NUMBERS) != (b in _NUMBERS) or (a == "str") != (b == "str"):
                raise _fail(where, f"{self.text}: cannot compare a {a} with a {b}")
            return "bool"
        if a not in _NUMBERS or b not in _NUMBERS:
            raise _fail(where, f"{self.text}: {op} takes numbers, not {a} and {b}")
        if op == "/" or "float" in (a, b):
            return "float"
        return "int"

    def value(self, event: Transaction) -> Any:
        left, right = self.left.value(event), self.right.value(event)
        if left is None or right is None:
            return None
        return self._apply(left, right)


class Not(Expr):
    """``~condition``."""

    def __init__(self, inner: Expr, where: str) -> None:
        if inner.dtype != "bool":
            raise _fail(where, f"~{inner.text}: ~ negates a condition, not a {inner.dtype}")
        self.inner = inner
        self.text = f"~{inner.text}"
        self.python = f"(not {inner.python})"
        self.dtype = "bool"
        self.fields = inner.fields

    def value(self, event: Transaction) -> Any:
        return not self.inner.value(event)


class IsIn(Expr):
    """``expr.isin(values)``."""

    def __init__(self, inner: Expr, values: tuple[Any, ...], where: str) -> None:
        if not values:
            raise _fail(where, f"{inner.text}.isin(): give at least one value")
        self.constants = tuple(Const.of(v, where) for v in values)
        self.inner, self.values = inner, frozenset(values)
        self.text = f"{inner.text} in ({', '.join(c.text for c in self.constants)})"
        self.python = f"({inner.python} in ({''.join(c.python + ', ' for c in self.constants)}))"
        self.dtype = "bool"
        self.fields = inner.fields

    def value(self, event: Transaction) -> Any:
        return self.inner.value(event) in self.values


class _Fields:
    """The event fields as expressions: ``E.value``, ``E.is_cancellation``, ..."""

    def __getattr__(self, name: str) -> Field:
        if name.startswith("__"):
            raise AttributeError(name)
        if name not in FIELDS:
            raise _fail(_where(), f"E.{name}: no such event field; the fields are "
                                  f"{', '.join(FIELDS)}")
        return Field(name)

    def __dir__(self) -> list[str]:
        return list(FIELDS)


E = _Fields()


# ------------------------------------------------------------------ aggregations

@dataclass(frozen=True, eq=False)
class Agg:
    """An aggregation of an expression over a set of events (see ``agg``)."""

    function: str
    of: Expr | None
    where: Expr | None
    dtype: str
    parts: tuple[Agg, ...] = ()
    if_zero: float | None = None
    #: An exact sum's decimals: each event's value in whole units of ``10**-exact``
    #: (:func:`fixed_python`), summed as integers.
    exact: int | None = None
    #: A share's groups (an expression) and the group whose share it is (a constant).
    by: Expr | None = None
    key: Const | None = None

    @property
    def text(self) -> str:
        """Canonical text: what the version digests."""
        if self.function == "ratio":
            zero = "" if self.if_zero is None else f", if_zero={self.if_zero!r}"
            return f"ratio({self.parts[0].text}, {self.parts[1].text}{zero})"
        if self.function == "share":
            assert self.of is not None and self.by is not None and self.key is not None
            where = f" where {self.where.text}" if self.where is not None else ""
            return f"share({self.of.text} by {self.by.text} == {self.key.text}){where}"
        inner = self.of.text if self.of is not None else ""
        where = f" where {self.where.text}" if self.where is not None else ""
        exact = f" exact to {self.exact} decimals" if self.exact is not None else ""
        return f"{self.function}({inner}){where}{exact}"

    @property
    def partial_text(self) -> str:
        """Canonical text of its partial: aggregations with the same keep one (the
        shares of one sum by one grouping differ only in the group read)."""
        if self.function != "share":
            return self.text
        assert self.of is not None and self.by is not None
        where = f" where {self.where.text}" if self.where is not None else ""
        return f"share({self.of.text} by {self.by.text}){where}"

    @property
    def fields(self) -> frozenset[str]:
        """Every event field it reads."""
        used = frozenset().union(*(e.fields for e in (self.of, self.where, self.by)
                                   if e is not None))
        return used.union(*(p.fields for p in self.parts))

    def value(self, events: Sequence[Transaction]) -> Any:
        """The aggregation over ``events`` (in the order they were folded in)."""
        if self.function == "ratio":
            top, bottom = (p.value(events) for p in self.parts)
            return self.if_zero if not bottom else (top or 0) / bottom
        chosen = [e for e in events if self.where is None or self.where.value(e)]
        if self.function == "count":
            return len(chosen)
        assert self.of is not None
        of = self.of
        if self.function in ("first", "last"):
            if not chosen:
                return None
            pick = min if self.function == "first" else max
            return of.value(pick(chosen, key=event_order))
        if self.function == "share":
            assert self.by is not None and self.key is not None
            groups: dict[Any, float] = {}
            for e in chosen:
                if (v := of.value(e)) is not None:
                    group = self.by.value(e)
                    groups[group] = groups.get(group, 0.0) + v
            return share_of(groups, self.key.constant)
        if self.exact is not None:
            units = eval(f"lambda e: {fixed_python(of, self.exact)}",  # noqa: S307 (ours)
                         dict(_COMPILED_NAMES))
            return Fraction(sum(units(e) for e in chosen), 10 ** self.exact)
        values = [v for v in (of.value(e) for e in chosen) if v is not None]
        if self.function == "sum":
            return sum(values)
        if self.function == "count_distinct":
            return len(set(values))
        if not values:
            return None
        if self.function == "mean":
            return sum(values) / len(values)
        return min(values) if self.function == "min" else max(values)


def event_order(e: Transaction) -> tuple[int, str, str]:
    """What ``first`` and ``last`` order events by: event time, then (of several in one
    second) invoice and event id, so the same events give the same value in whatever
    order they are folded in."""
    return e.ts, e.invoice, e.event_id


#: How a float field's value is written in whole units of ``10**-digits`` (its Python
#: text of an event ``e``, given ``10**digits``): the value's unit price is rounded to
#: them, then multiplied by the whole quantity, so a line's value is exact.
_FIXED_FIELDS: dict[str, Callable[[int], str]] = {
    "value": lambda scale: f"(e.quantity * round(e.unit_price * {scale}))",
    "unit_price": lambda scale: f"round(e.unit_price * {scale})",
}


def share_of(groups: dict[Any, float], key: Any) -> float:
    """The share of the group ``key`` among ``groups`` (group -> sum): over the sum of
    the groups' sums in their order, 0.0 when it is not positive: the reference's
    (the engine's generated values write it out, each total summed once per row).

    >>> share_of({"a": 1.5, "b": 0.5}, "a"), share_of({"a": 1.0}, "b"), share_of({}, "a")
    (0.75, 0.0, 0.0)
    """
    total = sum(groups.values())
    return groups.get(key, 0.0) / total if total > 0 else 0.0


def fixed_python(expr: Expr, digits: int) -> str:
    """Python text of ``expr``'s value of an event ``e`` as a whole number of units of
    ``10**-digits``: each float field and constant rounded to those units, whole numbers
    scaled up, so sums of it are exact integers in any order. ``expr`` is checked by
    :func:`_fixed` (no division, no product of two decimals).

    >>> fixed_python(E.value, 3), fixed_python(E.quantity + 1, 2)
    ('(e.quantity * round(e.unit_price * 1000))', '(((e.quantity) + 1) * 100)')
    """
    python, scaled = _fixed(expr, 10 ** digits)
    return python if scaled else f"({python} * {10 ** digits})"


def _fixed(expr: Expr, scale: int) -> tuple[str, bool]:
    """Python text of ``expr`` in whole numbers, and whether it is in units of
    ``1/scale`` (else in ones)."""
    if isinstance(expr, Field):
        if expr.name in _FIXED_FIELDS:
            return _FIXED_FIELDS[expr.name](scale), True
        return expr.python, False
    if isinstance(expr, Const):
        if expr.dtype == "float":
            return repr(round(expr.constant * scale)), True
        return repr(int(expr.constant)), False
    if isinstance(expr, Binary) and expr.op in ("+", "-", "*"):
        (a, a_scaled), (b, b_scaled) = _fixed(expr.left, scale), _fixed(expr.right, scale)
        if expr.op == "*":
            if a_scaled and b_scaled:
                raise DeclarationError(f"{expr.text}: an exact sum cannot multiply two "
                                       "decimals (its units would change)")
            return f"({a} * {b})", a_scaled or b_scaled
        if a_scaled != b_scaled:
            a, b = (a if a_scaled else f"({a} * {scale})", b if b_scaled else f"({b} * {scale})")
        return f"({a} {expr.op} {b})", a_scaled or b_scaled
    raise DeclarationError(f"{expr.text}: an exact sum takes fields, numbers, + - and *")


def _check_of(function: str, of: Any, where: str, numbers: bool) -> Expr:
    """``of`` is an expression (of numbers where ``numbers``)."""
    if not isinstance(of, Expr):
        raise _fail(where, f"{function}({of!r}): give an expression of event fields "
                           f"(E.value, E.quantity, ...), not a {type(of).__name__}")
    if numbers and of.dtype not in ("int", "float", "bool"):
        raise _fail(where, f"{function} of {of.text}: {of.text} is a {of.dtype}; "
                           f"{function} takes a number")
    return of


def _check_where(function: str, condition: Any, where: str) -> Expr | None:
    """``where`` is a condition or None."""
    if condition is None:
        return None
    if not isinstance(condition, Expr) or condition.dtype != "bool":
        shown = condition.text if isinstance(condition, Expr) else repr(condition)
        raise _fail(where, f"{function}(..., where={shown}): where takes a condition of "
                           "event fields (E.is_product, E.country == 'France', ...)")
    return condition


class agg:  # noqa: N801 (a namespace: agg.sum, agg.count, ...)
    """The aggregation functions: ``agg.sum(E.value)``, ``agg.count(where=...)``, ..."""

    @staticmethod
    def sum(of: Expr, where: Expr | None = None, exact: int | None = None) -> Agg:
        """The sum of ``of`` (0 without events). ``exact``: a float sum kept in whole
        units of ``10**-exact`` (each field rounded to them: :func:`fixed_python`), so
        any order of the events gives the same value, rounded half to even to the
        feature's decimals (which it needs, at most ``exact``)."""
        at = _where()
        of = _check_of("sum", of, at, numbers=True)
        if exact is not None:
            if isinstance(exact, bool) or not isinstance(exact, int) or not 0 <= exact <= 9:
                raise _fail(at, f"sum of {of.text}: exact is a whole number of decimals "
                                f"from 0 to 9, not {exact!r}")
            if of.dtype != "float":
                raise _fail(at, f"sum of {of.text}: exact sums a float; {of.text} is a "
                                f"{of.dtype}, summed exactly already")
            try:
                fixed_python(of, exact)
            except DeclarationError as exc:
                raise _fail(at, f"sum of {of.text}: {exc}") from exc
        return Agg("sum", of, _check_where("sum", where, at),
                   "float" if of.dtype == "float" else "int", exact=exact)

    @staticmethod
    def count(where: Expr | None = None) -> Agg:
        """The number of events."""
        return Agg("count", None, _check_where("count", where, _where()), "int")

    @staticmethod
    def count_distinct(of: Expr, where: Expr | None = None) -> Agg:
        """The number of distinct non-null values of ``of``, exact."""
        at = _where()
        return Agg("count_distinct", _check_of("count_distinct", of, at, numbers=False),
                   _check_where("count_distinct", where, at), "int")

    @staticmethod
    def mean(of: Expr, where: Expr | None = None) -> Agg:
        """The mean of ``of`` (None without events)."""
        at = _where()
        return Agg("mean", _check_of("mean", of, at, numbers=True),
                   _check_where("mean", where, at), "float")

    @staticmethod
    def min(of: Expr, where: Expr | None = None) -> Agg:
        """The smallest value of ``of``."""
        return agg._pick("min", of, where, _where())

    @staticmethod
    def max(of: Expr, where: Expr | None = None) -> Agg:
        """The largest value of ``of``."""
        return agg._pick("max", of, where, _where())

    @staticmethod
    def first(of: Expr, where: Expr | None = None) -> Agg:
        """``of`` at the earliest event."""
        return agg._pick("first", of, where, _where())

    @staticmethod
    def last(of: Expr, where: Expr | None = None) -> Agg:
        """``of`` at the latest event."""
        return agg._pick("last", of, where, _where())

    @staticmethod
    def ratio(numerator: Agg, denominator: Agg, if_zero: float | None = None) -> Agg:
        """``numerator / denominator``; ``if_zero`` (default None) when it is 0."""
        at = _where()
        for part in (numerator, denominator):
            if not isinstance(part, Agg) or part.dtype not in ("int", "float"):
                raise _fail(at, "ratio(numerator, denominator): both are numeric "
                                "aggregations (agg.sum(...), agg.count(...), ...)")
            if part.exact is not None:
                raise _fail(at, "ratio(numerator, denominator): a part cannot be an exact "
                                "sum (declare it as a feature and divide features)")
            if part.function == "share":
                raise _fail(at, "ratio(numerator, denominator): a part cannot be a share "
                                "(it is a ratio already)")
        return Agg("ratio", None, None, "float", (numerator, denominator), if_zero)

    @staticmethod
    def share(of: Expr, by: Expr, equals: Any, where: Expr | None = None) -> Agg:
        """The share of the group ``by == equals`` in the sum of ``of``: each group's
        sum (in the order events are folded in) over the sum of the groups' sums (in the
        order groups first appear); 0.0 when that total is not positive. Over
        ``LIFETIME`` or an invoice's window."""
        at = _where()
        of = _check_of("share", of, at, numbers=True)
        by = _check_of("share", by, at, numbers=False)
        key = Const.of(equals, at)
        if key.dtype != by.dtype:
            raise _fail(at, f"share of {of.text} by {by.text}: equals is a {by.dtype}, "
                            f"not {equals!r}")
        return Agg("share", of, _check_where("share", where, at), "float", by=by, key=key)

    @staticmethod
    def _pick(function: str, of: Expr, where: Expr | None, at: str) -> Agg:
        of = _check_of(function, of, at, numbers=False)
        return Agg(function, of, _check_where(function, where, at),
                   "int" if of.dtype == "bool" else of.dtype)


# ------------------------------------------------------------------ windows

@dataclass(frozen=True)
class Window:
    """An event-time window in hours; :data:`LIFETIME`, :data:`LATEST_INVOICE` and
    :data:`CURRENT_INVOICE` are the windows that are not a span of time."""

    hours: int
    label: str

    @property
    def text(self) -> str:
        """Its canonical text: ``7d``, ``6h``, ``lifetime``, ``latest_invoice`` or
        ``current_invoice``."""
        return self.label


LIFETIME = Window(0, "lifetime")
LATEST_INVOICE = Window(-1, "latest_invoice")
#: The purchase lines of the customer's invoice being filled, as lines arrive: a purchase
#: line of another invoice starts a new one (a late line of an older invoice too), and
#: cancellations and adjustments belong to none.
CURRENT_INVOICE = Window(-2, "current_invoice")
#: The windows over one invoice's lines: a customer's, one kind per view.
INVOICE_WINDOWS = (LATEST_INVOICE, CURRENT_INVOICE)


def days(*spans: int) -> tuple[Window, ...]:
    """Windows of whole days: ``days(1, 7, 30)``."""
    at = _where()
    return tuple(Window(24 * d, f"{d}d") for d in _spans(spans, "days", at))


def hours(*spans: int) -> tuple[Window, ...]:
    """Windows in hours: ``hours(6, 12)`` (a multiple of 24 is named in days)."""
    at = _where()
    return tuple(Window(h, f"{h // 24}d" if h % 24 == 0 else f"{h}h")
                 for h in _spans(spans, "hours", at))


def _spans(spans: tuple[int, ...], unit: str, where: str) -> tuple[int, ...]:
    """Whole positive spans, each once."""
    if not spans:
        raise _fail(where, f"{unit}(): give at least one window length")
    for span in spans:
        if isinstance(span, bool) or not isinstance(span, int) or span <= 0:
            raise _fail(where, f"{unit}({', '.join(map(repr, spans))}): each window is a "
                               f"whole number of {unit} > 0, not {span!r}")
    if len(set(spans)) != len(spans):
        raise _fail(where, f"{unit}({', '.join(map(repr, spans))}): a window is given twice")
    return spans


# ------------------------------------------------------------------ features and views

@dataclass(eq=False)
class FeatureDecl:
    """A stored feature: an aggregation over one or more windows (one feature each)."""

    name: str
    aggregation: Agg
    windows: tuple[Window, ...]
    description: str
    decimals: int | None
    where: str

    @property
    def dtype(self) -> str:
        """The type of its values."""
        return self.aggregation.dtype

    def spec(self, divides: tuple[str, str] | None = None) -> str:
        """Canonical text of how it is computed: what the version digests. ``divides``:
        the two features a ratio divides, by name (:meth:`View.ratio_of_features`)."""
        rounding = "" if self.decimals is None else f", {self.decimals} decimals"
        how = self.aggregation.text
        if divides is not None:
            zero = self.aggregation.if_zero
            how = f"ratio({divides[0]}, {divides[1]}" + (
                "" if zero is None else f", if_zero={zero!r}") + ")"
        return f"{self.name}: {how} over {','.join(w.text for w in self.windows)}{rounding}"

    def value(self, events: Sequence[Transaction]) -> Any:
        """The plain-Python value over the events of one window (see the module)."""
        return self.rounded(self.aggregation.value(events))

    def rounded(self, value: Any) -> Any:
        """``value`` rounded to the declared decimals (a null as it is; an exact sum
        half to even, exactly, as a float)."""
        if isinstance(value, Fraction):
            return float(round(value, self.decimals))
        if value is not None and self.decimals is not None:
            value = round(value, self.decimals)
        return value


def Feature(name: str, aggregation: Agg, *,  # noqa: N802 (reads as a declaration)
            windows: Sequence[Window] | Window = LIFETIME, description: str = "",
            decimals: int | None = None) -> FeatureDecl:
    """A stored feature: ``aggregation`` over each of ``windows`` (default: the whole
    history). ``description`` may say ``{window}`` ("last 7 days") and ``{days}``."""
    at = _where()
    _check_name(name, at)
    if not isinstance(aggregation, Agg):
        raise _fail(at, f"feature {name!r}: give an aggregation (agg.sum(E.value), "
                        f"agg.count(), ...), not {aggregation!r}")
    spans = (windows,) if isinstance(windows, Window) else tuple(windows)
    if not spans or not all(isinstance(w, Window) for w in spans):
        raise _fail(at, f"feature {name!r}: windows are days(...), hours(...), LIFETIME, "
                        "LATEST_INVOICE or CURRENT_INVOICE")
    if len(spans) > 1 and any(w.hours <= 0 for w in spans):
        raise _fail(at, f"feature {name!r}: LIFETIME, LATEST_INVOICE and CURRENT_INVOICE "
                        "stand alone, not among other windows")
    if decimals is not None and (aggregation.dtype != "float" or isinstance(decimals, bool)
                                 or not isinstance(decimals, int) or decimals < 0):
        raise _fail(at, f"feature {name!r}: decimals (a whole number >= 0) round floats; "
                        f"its values are {aggregation.dtype}")
    if aggregation.function == "share" and spans[0].hours > 0:
        raise _fail(at, f"feature {name!r}: a share is over LIFETIME or an invoice's "
                        "window, not a span of time")
    exact = aggregation.exact
    if exact is not None and (decimals is None or decimals > exact):
        raise _fail(at, f"feature {name!r}: an exact sum to {exact} decimals is read "
                        f"rounded: give decimals from 0 to {exact}")
    return FeatureDecl(name, aggregation, spans, description, decimals, at)


@dataclass(eq=False)
class DaysSinceDecl:
    """A request-time feature: days from a stored time to the read's as-of time."""

    name: str
    source: str
    description: str
    where: str

    def spec(self) -> str:
        """Canonical text of how it is computed."""
        return f"{self.name}: days_since({self.source})"


def DaysSince(name: str, *, source: str, description: str = "") -> DaysSinceDecl:  # noqa: N802
    """A request-time feature: the days from the stored ``epoch_s`` feature ``source``
    (of the same view, over its whole history) to the read's as-of time."""
    at = _where()
    _check_name(name, at)
    return DaysSinceDecl(name, source, description, at)


def _check_name(name: Any, where: str) -> None:
    """A feature or view name: a lowercase identifier."""
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name) \
            or name != name.lower() or name.startswith("_"):
        raise _fail(where, f"{name!r} is not a valid name: use lowercase letters, digits "
                           "and _, starting with a letter")


@dataclass(eq=False)
class View:
    """A feature view: an entity, an optional event filter, and its features."""

    name: str
    entity: str
    features: Sequence[FeatureDecl | DaysSinceDecl]
    description: str = ""
    where: Expr | None = None
    ttl_seconds: int | None = None
    values_at: str = "event"
    declared_at: str = field(default="")

    def __post_init__(self) -> None:
        at = self.declared_at = self.declared_at or _where()
        _check_name(self.name, at)
        if self.entity not in ENTITIES:
            raise _fail(at, f"view {self.name!r}: entity {self.entity!r} is not one of "
                            f"{', '.join(ENTITIES)}")
        self.where = _check_where(f"view {self.name}", self.where, at)
        if self.values_at not in VALUES_AT:
            raise _fail(at, f"view {self.name!r}: values_at is one of {', '.join(VALUES_AT)}")
        if self.ttl_seconds is not None and (isinstance(self.ttl_seconds, bool) or not
                                             isinstance(self.ttl_seconds, int)
                                             or self.ttl_seconds <= 0):
            raise _fail(at, f"view {self.name!r}: ttl_seconds is a whole number > 0 or None")
        self.features = tuple(self.features)
        if not self.features:
            raise _fail(at, f"view {self.name!r} declares no features")
        self._check_features(at)

    def _check_features(self, at: str) -> None:
        """Names once each; every request-time feature's source a stored lifetime time;
        an invoice's window a customer's, of one kind per view."""
        seen: dict[str, str] = {}
        invoice_window: Window | None = None
        for f in self.features:
            if not isinstance(f, FeatureDecl | DaysSinceDecl):
                raise _fail(at, f"view {self.name!r}: {f!r} is not a feature: use "
                                "Feature(...) or DaysSince(...)")
            for name in self._names(f):
                if name in seen:
                    raise _fail(f.where, f"view {self.name!r}: feature {name!r} is declared "
                                         f"twice (also at {seen[name]})")
                seen[name] = f.where
            window = f.windows[0] if isinstance(f, FeatureDecl) else None
            if window not in INVOICE_WINDOWS:
                continue
            label = window.label.upper()
            if self.entity != "customer_id":
                raise _fail(f.where, f"feature {f.name!r}: {label} is a customer's "
                                     "window; this view's entity is " + self.entity)
            if invoice_window not in (None, window):
                raise _fail(f.where, f"feature {f.name!r}: {label} and "
                                     f"{invoice_window.label.upper()} in one view: declare "
                                     "one kind of invoice window per view")
            invoice_window = window
        times = {f.name for f in self.features if isinstance(f, FeatureDecl)
                 and f.dtype == "epoch_s" and f.windows[0].hours <= 0}
        for f in self.features:
            if isinstance(f, DaysSinceDecl) and f.source not in times:
                raise _fail(f.where, f"DaysSince {f.name!r}: its source {f.source!r} is not a "
                                     f"stored time (agg.min/max/first/last(E.time)) of view "
                                     f"{self.name!r} over its whole history")

    @staticmethod
    def _names(f: FeatureDecl | DaysSinceDecl) -> tuple[str, ...]:
        """The names a declaration is served under."""
        if isinstance(f, DaysSinceDecl) or f.windows[0].hours <= 0:
            return (f.name,)
        return tuple(f"{f.name}_{w.text}" for w in f.windows)

    @property
    def fields(self) -> frozenset[str]:
        """Every event field the view reads."""
        used = self.where.fields if self.where is not None else frozenset()
        return used.union(*(f.aggregation.fields for f in self.features
                            if isinstance(f, FeatureDecl)))

    def spec(self) -> tuple[str, ...]:
        """How the view is computed, one canonical line per feature (after the view's
        filter and when its values are read)."""
        head = (f"where {self.where.text}" if self.where is not None else "where all",
                f"values at {self.values_at}")
        return head + tuple(self._spec(f) for f in self.features)

    def _spec(self, f: FeatureDecl | DaysSinceDecl) -> str:
        """One feature's line of :meth:`spec`."""
        if isinstance(f, DaysSinceDecl):
            return f.spec()
        parts = self.ratio_of_features(f)
        return f.spec(None if parts is None else (parts[0].name, parts[1].name))

    def ratio_of_features(self, f: FeatureDecl) -> tuple[FeatureDecl, FeatureDecl] | None:
        """The two features of this view the windowed ratio ``f`` divides, when each of
        its parts is aggregated exactly as one of them (not a ratio) is, over every window
        of ``f``: the ratio is then of their stored values, rounded as those are declared
        (``spend_30d / orders_30d`` as served), and keeps no partial of its own. None
        when ``f`` is no such ratio."""
        if f.aggregation.function != "ratio" or f.windows[0].hours <= 0:
            return None
        found: list[FeatureDecl] = []
        for part in f.aggregation.parts:
            match = next((g for g in self.features if isinstance(g, FeatureDecl)
                          and g.aggregation.function != "ratio"
                          and g.aggregation.text == part.text
                          and set(f.windows) <= set(g.windows)), None)
            if match is None:
                return None
            found.append(match)
        return found[0], found[1]

    def reference(self, events: Sequence[Transaction], as_of: int) -> dict[str, Any]:
        """Every stored feature at ``as_of`` of one entity whose events (in the order they
        were folded in) are ``events``, in plain Python by the module's semantics (a view
        read at hour ends: as of the last hour end at or before ``as_of``): the reference
        any engine must equal."""
        if self.values_at == "hour_end":  # as of the last hour end at or before it
            as_of = (as_of + 1) // HOUR * HOUR - 1
        mine = [e for e in events if e.ts <= as_of
                and (self.where is None or self.where.value(e))]
        out: dict[str, Any] = {}
        for f in self.features:
            if isinstance(f, FeatureDecl):
                parts = self.ratio_of_features(f)
                for name, window in zip(self._names(f), f.windows, strict=True):
                    out[name] = (f.value(_in_window(mine, window, as_of)) if parts is None
                                 else None)  # its place kept: the ratio is read below
        for f in self.features:  # ratios of features, once their parts are known
            if isinstance(f, FeatureDecl) and (parts := self.ratio_of_features(f)):
                for name, window in zip(self._names(f), f.windows, strict=True):
                    top, bottom = (out[f"{g.name}_{window.text}"] for g in parts)
                    out[name] = f.rounded(f.aggregation.if_zero if not bottom
                                          else (top or 0) / bottom)
        return out

    def signature(self) -> tuple[str, ...]:
        """Everything the view declares, one line each: two views with the same
        signature are the same view."""
        described = tuple(f"{f.name}: {f.description!r}" for f in self.features)
        return (f"entity {self.entity}", f"description {self.description!r}",
                f"ttl_seconds {self.ttl_seconds}", *self.spec(), *described)

    def compile(self, **engine: Any) -> FeatureView:
        """The :class:`FeatureView` the stores, reads and registry use. A view computed by
        the generic engine digests its :meth:`spec` into its version; ``engine`` gives the
        built-in views what their state classes need instead (``logic_revision``,
        ``logged``), and their computation is not digested."""
        declared = tuple(self._declaration(f) for f in self.features)
        depends_on = load_taxonomy().version if "product_category" in self.fields else ""
        computed = () if engine else self.spec()
        try:
            return FeatureView(name=self.name, entity=self.entity,
                               description=self.description, declared=declared,
                               ttl_seconds=self.ttl_seconds, depends_on=depends_on,
                               computed=computed, **engine)
        except ValueError as exc:
            raise _fail(self.declared_at, str(exc)) from exc

    @staticmethod
    def _declaration(f: FeatureDecl | DaysSinceDecl) -> Any:
        """The registry's form of one declared feature."""
        if isinstance(f, DaysSinceDecl):
            return RequestTimeFeature(f.name, "float", f.description, f.source)
        if f.windows[0].hours <= 0:
            return PlainFeature(f.name, f.dtype, f.description)
        by_days = tuple(w.hours // 24 for w in f.windows if w.text.endswith("d"))
        by_hours = tuple(w.hours for w in f.windows if w.text.endswith("h"))
        return WindowedFeature(f.name, f.dtype, f.description, by_days, by_hours)


def _in_window(events: list[Transaction], window: Window, as_of: int) -> list[Transaction]:
    """The events of ``window`` at ``as_of`` (all at or before it): the window rule's
    hourly tiles, the whole history, the latest purchase invoice's lines, or the current
    invoice's (the purchase lines since the last of another invoice, in arrival order)."""
    if window == LIFETIME:
        return events
    if window == CURRENT_INVOICE:
        current: list[Transaction] = []
        for e in events:
            if e.is_cancellation or e.is_adjustment:
                continue
            if current and e.invoice != current[0].invoice:
                current = []
            current.append(e)
        return current
    if window == LATEST_INVOICE:
        purchases = [e for e in events if not (e.is_cancellation or e.is_adjustment)]
        if not purchases:
            return []
        latest = max(range(len(purchases)), key=lambda i: (purchases[i].ts, i))
        return [e for e in purchases if e.invoice == purchases[latest].invoice]
    first = (as_of // HOUR + 1 - window.hours) * HOUR
    return [e for e in events if e.ts >= first]


def views_in(namespace: dict[str, Any]) -> list[View]:
    """The views a repository file declares: its module-level :class:`View` objects."""
    return [value for value in namespace.values() if isinstance(value, View)]
