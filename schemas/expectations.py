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

>>> [e.name for e in EXPECTATIONS][:3]
['quantity_range', 'price_range', 'known_country']
"""

from __future__ import annotations

from dataclasses import dataclass

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


def _quoted(values: tuple[str, ...]) -> str:
    """SQL string literals (the values are this module's constants, never input)."""
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


EXPECTATIONS: tuple[Expectation, ...] = (
    Expectation("quantity_range", f"quantity beyond ±{MAX_QUANTITY:,}",
                "TRUE", f"abs(quantity) > {MAX_QUANTITY}"),
    Expectation("price_range", f"product line priced below 0 or above "
                f"{MAX_PRODUCT_PRICE:,.0f}", "is_product",
                f"unit_price < 0 OR unit_price > {MAX_PRODUCT_PRICE}"),
    Expectation("known_country", "country not among the shop's", "TRUE",
                f"country NOT IN ({_quoted(COUNTRIES)})"),
    Expectation("guest_share", "guest line (no customer id)", "TRUE",
                "customer_id IS NULL", 0.40),
    Expectation("unknown_stock_codes", "product line whose stock code is not of the "
                "catalogue's form (five digits, up to two letters)", "is_product",
                f"NOT regexp_matches(stock_code, '{STOCK_CODE_PATTERN}')", 0.02),
    Expectation("duplicate_lines", "line identical to an earlier line of its invoice",
                "TRUE", "occurrence > 1", 0.01),
)
