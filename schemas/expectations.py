"""Data-quality expectations of the events, declared beside their contract
(:mod:`basketflow.schemas.events`): what a day of valid lines should look like.

The contract decides what is an event at all (a line that breaks it is a dead letter);
an expectation is softer: a valid line may break it, and a day fails the expectation when
more of its lines do than the expectation allows (``max_share`` of the lines it applies
to; 0: none may). Each is declared as two SQL conditions over an event's stored columns
(``invoice``, ``stock_code``, ``description``, ``quantity``, ``unit_price``,
``customer_id``, ``country``, ``is_product``, ``is_cancellation``, ``is_adjustment``, and
``occurrence``: the line's place among identical lines of its invoice, 1 for the first):
the lines it applies to (``applies``) and the lines that break it (``breaks``).
:mod:`basketflow.reports.quality` checks them per day, and the daily report lists the
failures.

Their bounds and shares are parameters (:data:`DEFAULTS`, what ``basketflow init``
writes) that a deployment sets under the project file's ``expectations`` key:
:func:`configured` checks each value given there, naming its file and line, and builds
the expectations; their :attr:`ExpectationSet.digest` goes into the report, so a reader
knows which expectations a day was checked against.

>>> [e.name for e in EXPECTATIONS][:3]
['quantity_range', 'price_range', 'known_country']
>>> tighter = configured([ExpectationSetting("guest_share", "max_share", 0.3, "FILE line 9")])
>>> tighter.changed, tighter.digest != configured([]).digest
(['guest_share.max_share: 0.3 (default 0.4)'], True)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from basketflow.project_file import ExpectationSetting, ProjectFileError

#: The countries of the shop's customers (the Kaggle file's, with ``Unspecified``).
COUNTRIES = (
    "Australia", "Austria", "Bahrain", "Belgium", "Brazil", "Canada", "Channel Islands",
    "Cyprus", "Czech Republic", "Denmark", "EIRE", "European Community", "Finland",
    "France", "Germany", "Greece", "Hong Kong", "Iceland", "Israel", "Italy", "Japan",
    "Lebanon", "Lithuania", "Malta", "Netherlands", "Norway", "Poland", "Portugal", "RSA",
    "Saudi Arabia", "Singapore", "Spain", "Sweden", "Switzerland", "USA",
    "United Arab Emirates", "United Kingdom", "Unspecified")
#: A catalogue stock code: five digits and at most two letters (``85123A``, ``15056BL``).
STOCK_CODE_PATTERN = "^[0-9]{5}[A-Za-z]{0,2}$"
MAX_QUANTITY = 10_000
MAX_PRODUCT_PRICE = 5_000.0

#: Each expectation's parameters at their defaults: what a day is checked against unless
#: the project file sets them (``max_share``: the share of its lines allowed to break it).
DEFAULTS: dict[str, dict[str, Any]] = {
    "quantity_range": {"max_quantity": MAX_QUANTITY, "max_share": 0.0},
    "price_range": {"max_price": MAX_PRODUCT_PRICE, "max_share": 0.0},
    "known_country": {"countries": list(COUNTRIES), "max_share": 0.0},
    "guest_share": {"max_share": 0.40},
    "unknown_stock_codes": {"pattern": STOCK_CODE_PATTERN, "max_share": 0.02},
    "duplicate_lines": {"max_share": 0.01},
}


@dataclass(frozen=True)
class Expectation:
    """One expectation: its name, what a line that breaks it is (``description``), the
    SQL conditions of the lines it applies to and of those that break it, and the share
    of them allowed to."""

    name: str
    description: str
    applies: str
    breaks: str
    max_share: float = 0.0


def _quoted(values: Iterable[str]) -> str:
    """SQL string literals, each quote doubled (DuckDB's strings know no other escape)."""
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def build(values: dict[str, dict[str, Any]]) -> tuple[Expectation, ...]:
    """The expectations with every parameter of ``values`` (checked ones: see
    :func:`configured`), in the order of :data:`DEFAULTS`."""
    q, p, c = values["quantity_range"], values["price_range"], values["known_country"]
    s = values["unknown_stock_codes"]
    return (
        Expectation("quantity_range", f"quantity beyond ±{q['max_quantity']:,}",
                    "TRUE", f"abs(quantity) > {q['max_quantity']}", q["max_share"]),
        Expectation("price_range", f"product line priced below 0 or above "
                    f"{p['max_price']:,.0f}", "is_product",
                    f"unit_price < 0 OR unit_price > {float(p['max_price'])!r}",
                    p["max_share"]),
        Expectation("known_country", "country not among the shop's", "TRUE",
                    f"country NOT IN ({_quoted(c['countries'])})", c["max_share"]),
        Expectation("guest_share", "guest line (no customer id)", "TRUE",
                    "customer_id IS NULL", values["guest_share"]["max_share"]),
        Expectation("unknown_stock_codes", "product line whose stock code is not of the "
                    "catalogue's form" + (" (five digits, up to two letters)"
                                          if s["pattern"] == STOCK_CODE_PATTERN
                                          else f" ({s['pattern']})"), "is_product",
                    f"NOT regexp_matches(stock_code, {_quoted([s['pattern']])})",
                    s["max_share"]),
        Expectation("duplicate_lines", "line identical to an earlier line of its invoice",
                    "TRUE", "occurrence > 1", values["duplicate_lines"]["max_share"]),
    )


EXPECTATIONS: tuple[Expectation, ...] = build(DEFAULTS)


@dataclass(frozen=True)
class ExpectationSet:
    """The expectations a deployment checks: every parameter's value, the ones the
    project set otherwise than the default (in words), and the expectations built."""

    values: dict[str, dict[str, Any]]
    changed: list[str]
    expectations: tuple[Expectation, ...]

    @property
    def digest(self) -> str:
        """12 hex digits of SHA-256 over what is checked (each expectation's conditions
        and share allowed): equal digests, equal checks."""
        text = json.dumps([e.__dict__ for e in self.expectations], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _count(value: Any) -> bool:
    """A whole number of 1 or more (a YAML boolean is not one)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _amount(value: Any) -> bool:
    """A number above 0."""
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _share(value: Any) -> bool:
    """A share: a number from 0 to 1."""
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1


def _texts(value: Any) -> bool:
    """A non-empty list of non-empty texts."""
    return (isinstance(value, list | tuple) and bool(value)
            and all(isinstance(v, str) and v.strip() for v in value))


def _pattern(value: Any) -> bool:
    """A regular expression DuckDB's RE2 reads (the report runs it there; RE2 has no
    look-around or back-references, which Python's ``re`` would take)."""
    if value == STOCK_CODE_PATTERN:  # the default: known good, no engine to start
        return True
    if not isinstance(value, str) or not value:
        return False
    import duckdb
    try:
        duckdb.connect().execute("SELECT regexp_matches('', ?)", [value])
    except duckdb.Error:
        return False
    return True


#: Each parameter: its check and what it must be (for the error).
PARAMETERS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "max_quantity": (_count, "a whole number of 1 or more"),
    "max_price": (_amount, "a number above 0"),
    "countries": (_texts, "a non-empty list of country names"),
    "pattern": (_pattern, "a regular expression of RE2's syntax (DuckDB's: no "
                          "look-around, no back-references)"),
    "max_share": (_share, "a share from 0 to 1 (0.05 is 5%)"),
}


def configured(settings: Iterable[ExpectationSetting]) -> ExpectationSet:
    """The expectations with the project file's values over the defaults; a
    :class:`ProjectFileError` naming the file, line and key of the first bad one."""
    values = {name: dict(params) for name, params in DEFAULTS.items()}
    changed = []
    for s in settings:
        key = f"expectations.{s.expectation}.{s.parameter}"
        if s.expectation not in DEFAULTS:
            raise ProjectFileError(f"{s.where}: unknown expectation {s.expectation!r}; "
                                   f"the expectations are {', '.join(DEFAULTS)}")
        if s.parameter not in DEFAULTS[s.expectation]:
            raise ProjectFileError(f"{s.where}: {s.expectation} has no parameter "
                                   f"{s.parameter!r}; it has "
                                   f"{', '.join(DEFAULTS[s.expectation])}")
        check, must = PARAMETERS[s.parameter]
        if not check(s.value):
            raise ProjectFileError(f"{s.where}: {key!r} must be {must}, not {s.value!r}")
        value = _normal(s.parameter, s.value)
        values[s.expectation][s.parameter] = value
        default = DEFAULTS[s.expectation][s.parameter]
        if value != default:
            changed.append(f"{s.expectation}.{s.parameter}: " + (
                f"{_change(default, value)} on the default" if isinstance(value, list)
                else f"{value} (default {default})"))
    return ExpectationSet(values, changed, build(values))


def differences(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]
                ) -> list[str]:
    """Each parameter whose value differs, as ``name.parameter: old -> new`` (a
    parameter one side lacks shows as ``none``).

    >>> differences(DEFAULTS, configured([ExpectationSetting(
    ...     "duplicate_lines", "max_share", 0, "FILE line 3")]).values)
    ['duplicate_lines.max_share: 0.01 -> 0.0']
    """
    found = []
    for name in {**old, **new}:
        before, after = old.get(name, {}), new.get(name, {})
        for parameter in {**before, **after}:
            was, now = before.get(parameter, "none"), after.get(parameter, "none")
            if was != now:
                found.append(f"{name}.{parameter}: {_change(was, now)}")
    return found


def _change(was: Any, now: Any) -> str:
    """``old -> new``; for two lists, the values added and removed.

    >>> _change(["France", "RSA"], ["France", "Atlantis"])
    '+Atlantis, -RSA'
    """
    if isinstance(was, list) and isinstance(now, list):
        return ", ".join([f"+{v}" for v in now if v not in was]
                         + [f"-{v}" for v in was if v not in now]) or "reordered"
    return f"{_shown(was)} -> {_shown(now)}"


def _normal(parameter: str, value: Any) -> Any:
    """A checked value in its default's form (amounts and shares as floats, lists as
    lists), so equal settings build equal expectations and digests."""
    if parameter in ("max_price", "max_share"):
        return float(value)
    return list(value) if isinstance(value, tuple) else value


def _shown(value: Any) -> str:
    """A parameter's value in a line of text (a list by its length and first items)."""
    if isinstance(value, list):
        return f"{len(value)} values ({', '.join(value[:3])}{', ...' if len(value) > 3 else ''})"
    return str(value)
