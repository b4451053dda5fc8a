"""Seeded synthetic order lines in the exact Kaggle "E-Commerce Data" (UCI Online Retail) format.

Why: the pipeline, its tests and its benchmarks need data with the real file's shape and quirks
(cancellations, guests, non-product codes, duplicate lines, zero prices, ISO-8859-1 text with CRLF
line ends) at any size and without the original file. Everything derives from one seed, so the same
seed gives the same file byte for byte.

The model, in three layers:

* a product catalogue (~1,500 products in nine themes, popular ones first) that depends on the seed
  only, so stock codes stay the same whatever the number of rows;
* a pool of customers, each with one country, favourite themes (the customer segments), a visit
  rate and a place on the quantity ladder; a few wholesalers come often and buy in bulk;
* a plan of invoices (what kind, whose, how many lines) whose sizes add up to exactly the rows asked
  for, laid on sorted random minutes of the trading calendar, so rows come out in event-time order
  and invoice numbers rise with time.

>>> rows = list(generate_rows(3, seed=1))
>>> len(rows), all(len(row) == 8 for row in rows)
(3, True)
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import random
from bisect import bisect
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import Enum
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from typing import Any, Generic, NamedTuple, TextIO, TypeVar

T = TypeVar("T")

HEADER = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate",
          "UnitPrice", "CustomerID", "Country")
ENCODING = "ISO-8859-1"
LINE_END = "\r\n"
FIRST_INVOICE = 536365
CUSTOMER_IDS = range(12346, 18288)
#: The real file has 4,372 customers over 541,909 lines.
CUSTOMERS_PER_ROW = 4372 / 541909
MIN_CUSTOMERS = 50
HOME_COUNTRY = "United Kingdom"

#: An invoice line before it becomes a row: stock code, description, quantity, price text.
Line = tuple[str, str, int, str]


class WeightedPicker(Generic[T]):
    """Draws items with fixed relative weights by bisection.

    Why: it is ``random.choices(items, cum_weights=...)[0]`` without that call's per-draw setup,
    which matters on the hot path of half a million rows.
    """

    __slots__ = ("items", "_cumulative", "_total", "_last")

    def __init__(self, items: Sequence[T], weights: Sequence[float]) -> None:
        if not items or len(items) != len(weights):
            raise ValueError("need as many weights as items, and at least one item")
        self.items: tuple[T, ...] = tuple(items)
        self._cumulative = list(accumulate(weights))
        self._total = self._cumulative[-1]
        self._last = len(self.items) - 1

    def pick(self, rng: random.Random) -> T:
        """One item, drawn with probability proportional to its weight."""
        return self.items[bisect(self._cumulative, rng.random() * self._total, 0, self._last)]


def format_price(value: float) -> str:
    """A price the way the Kaggle file writes it: ``2.55``, ``27.5``, ``18``, ``0``, ``-11062.06``."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


# --- the product catalogue -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Product:
    """A catalogue item with its three price texts, formatted once because rows repeat them."""

    code: str
    description: str
    #: Units a trade customer buys in: cheap things come in 12s and 24s, dear ones singly.
    pack: int
    price: str
    #: Trade price at BULK_QUANTITY units or more (the real file discounts large lines).
    bulk_price: str
    #: What online guests pay: roughly twice the trade price, as in the real file.
    guest_price: str


@dataclass(frozen=True)
class Theme:
    """A product family: descriptions are ``style + " " + item``; signature products come first."""

    name: str
    #: Relative demand for the theme among all customers.
    popularity: float
    styles: tuple[str, ...]
    items: tuple[str, ...]
    #: Price points its generated products take.
    prices: tuple[float, ...]
    #: Hand-written (stock code, description, price) best sellers, most popular first.
    signature: tuple[tuple[str, str, float], ...]


THEMES: tuple[Theme, ...] = (
    Theme("home decor", 1.6,
          ("WHITE", "RED", "PINK", "IVORY", "CREAM", "BLUE", "GREEN", "ANTIQUE SILVER", "VINTAGE",
           "RUSTIC", "SHABBY CHIC", "FRENCH", "ZINC", "WOODEN"),
          ("HANGING HEART T-LIGHT HOLDER", "METAL LANTERN", "PHOTO FRAME", "WALL MIRROR", "DOORSTOP",
           "CUSHION COVER", "WICKER HEART", "HEART DECORATION", "WALL CLOCK", "COAT RACK",
           "CUPID HEARTS COAT HANGER", "DRAWER KNOB", "STORAGE TIN", "HOOK HANGER"),
          (0.65, 0.85, 1.25, 1.65, 2.1, 2.55, 2.95, 3.39, 3.75, 4.95, 5.95, 7.95, 9.95, 12.75, 16.95),
          (("85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 2.55),
           ("71053", "WHITE METAL LANTERN", 3.39),
           ("84879", "ASSORTED COLOUR BIRD ORNAMENT", 1.69),
           ("84406B", "CREAM CUPID HEARTS COAT HANGER", 2.75),
           ("22189", "REGENCY MIRROR WITH SHUTTERS", 165.0))),
    Theme("kitchen", 1.3,
          ("SET OF 3", "SET OF 6", "REGENCY", "RETROSPOT", "PANTRY", "VINTAGE", "SPOTTY", "ROSES",
           "GREEN REGENCY", "PINK REGENCY", "STRAWBERRY", "BAKING", "CERAMIC", "ENAMEL"),
          ("CAKE TINS PANTRY DESIGN", "TEACUP AND SAUCER", "CAKESTAND 3 TIER", "TEA SET CERAMIC 11 PC",
           "JAM MAKING SET WITH JARS", "MEASURING SPOONS", "BAKING CASES", "CHOPPING BOARD",
           "OVEN GLOVE", "APRON", "TEA TOWELS", "MUG", "MILK JUG", "STORAGE JAR"),
          (0.42, 0.55, 0.85, 1.25, 1.45, 1.65, 2.1, 2.95, 3.75, 4.25, 4.95, 5.95, 8.5, 12.75),
          (("22423", "REGENCY CAKESTAND 3 TIER", 12.75),
           ("22720", "SET OF 3 CAKE TINS PANTRY DESIGN", 4.95),
           ("22197", "SMALL POPCORN HOLDER", 0.85),
           ("22699", "ROSES REGENCY TEACUP AND SAUCER", 2.95))),
    Theme("bags", 1.1,
          ("JUMBO BAG", "LUNCH BAG", "JUMBO SHOPPER", "CHARLOTTE BAG", "RECYCLING BAG",
           "JUMBO STORAGE BAG", "SHOPPER BAG", "WASHBAG", "PURSE", "TOTE BAG", "PICNIC BAG",
           "BEACH BAG", "DRAWSTRING BAG"),
          ("RED RETROSPOT", "BLACK SKULL", "PINK POLKADOT", "VINTAGE PAISLEY", "APPLES", "SUKI",
           "WOODLAND", "DOILEY", "ALPHABET", "CARS BLUE", "SPACEBOY", "DOLLY GIRL", "VINTAGE LEAF",
           "STRAWBERRY", "PINK PAISLEY", "SCANDINAVIAN"),
          (0.85, 1.25, 1.45, 1.65, 1.95, 2.08, 2.1, 2.55, 2.95, 3.75, 4.95),
          (("85099B", "JUMBO BAG RED RETROSPOT", 1.95),
           ("20725", "LUNCH BAG RED RETROSPOT", 1.65),
           ("20727", "LUNCH BAG BLACK SKULL", 1.65))),
    Theme("christmas", 1.0,
          ("PAPER CHAIN KIT", "CHRISTMAS", "SET OF 6", "ROTATING", "WOODEN", "GLASS", "FELTCRAFT",
           "HANGING", "JINGLE BELL", "VINTAGE", "STAR", "SNOWFLAKE", "SANTA'S"),
          ("50'S CHRISTMAS", "VINTAGE CHRISTMAS", "TREE DECORATION", "BAUBLE", "STOCKING",
           "GINGHAM REINDEER", "ADVENT CALENDAR", "CRACKERS", "TREE T-LIGHT HOLDER", "ANGEL",
           "WREATH", "GARLAND", "NATIVITY SET", "SLEIGH"),
          (0.29, 0.42, 0.65, 0.85, 1.25, 1.65, 2.1, 2.95, 3.75, 4.95, 6.75, 8.5),
          (("22086", "PAPER CHAIN KIT 50'S CHRISTMAS", 2.95),
           ("23084", "RABBIT NIGHT LIGHT", 2.08))),
    Theme("stationery and cards", 1.0,
          ("PACK OF 12", "PACK OF 6", "SET OF 4", "VINTAGE", "RETRO", "ROSES", "SPACEBOY", "DOLLY GIRL",
           "WOODLAND", "ALPHABET", "POLKADOT", "ELEPHANT", "BIRTHDAY"),
          ("GIFT TAGS", "GREETING CARD", "WRAPPING PAPER", "NOTEBOOK", "PENCILS", "MEMO BOARD",
           "STICKERS", "ENVELOPES", "BIRTHDAY CARD", "PARTY INVITES", "SKETCHBOOK", "ERASER",
           "ADDRESS BOOK", "PHOTO ALBUM"),
          (0.29, 0.39, 0.42, 0.55, 0.65, 0.85, 1.25, 1.65, 2.1, 2.55, 4.25),
          (("23497", "£1 GIFT TAGS PACK OF 12", 0.65),
           ("22326", "ROUND SNACK BOXES SET OF4 WOODLAND", 2.95))),
    Theme("candles and lights", 0.9,
          ("MORRIS", "ROSE", "VANILLA", "LAVENDER", "WHITE", "IVORY", "HEART", "STAR", "MOROCCAN",
           "GLASS", "ZINC", "RED", "PINK", "SMALL"),
          ("SCENTED CANDLE", "T-LIGHT HOLDER", "TEA LIGHTS", "PILLAR CANDLE", "LANTERN", "FAIRY LIGHTS",
           "STRING LIGHTS", "NIGHT LIGHT", "CANDLE POT", "VOTIVE HOLDER", "CANDLE RING", "LED CANDLE",
           "CANDLESTICK"),
          (0.29, 0.42, 0.65, 0.85, 1.25, 1.65, 2.1, 2.95, 3.75, 4.95, 6.75, 9.95),
          (("21212", "PACK OF 72 RETROSPOT CAKE CASES", 0.55),
           ("79321", "CHILLI LIGHTS", 4.95))),
    Theme("toys and games", 0.8,
          ("SPACEBOY", "DOLLY GIRL", "CIRCUS PARADE", "WOODLAND", "RED RETROSPOT", "RETRO",
           "VINTAGE", "TRADITIONAL", "MINI", "KIDS", "RABBIT", "DINOSAUR", "PIRATE"),
          ("JIGSAW", "SKITTLES", "SPINNING TOP", "KNITTING KIT", "PAINT SET", "CHILDRENS APRON",
           "TEA SET", "SNAKES AND LADDERS", "PLAYING CARDS", "DOMINOES", "MARBLES", "YOYO",
           "SOFT TOY", "COLOURING PENCILS"),
          (0.42, 0.65, 0.85, 1.25, 1.65, 2.1, 2.55, 3.75, 4.95, 6.75, 9.95),
          (("22630", "DOLLY GIRL LUNCH BOX", 1.95),
           ("21915", "RED HARMONICA IN BOX", 1.25))),
    Theme("jewellery and accessories", 0.6,
          ("DIAMANTE", "CRYSTAL", "PINK", "BLACK", "SILVER", "GOLD", "PEARL", "VINTAGE", "BEADED",
           "FLOWER", "SHELL", "GLASS", "AMBER"),
          ("NECKLACE", "BRACELET", "EARRINGS", "HAIR CLIP", "HAIR BAND", "BROOCH", "RING", "KEYRING",
           "PURSE MIRROR", "COMPACT MIRROR", "HAIR COMB", "CHARM", "HAIRSLIDE", "TIARA"),
          (0.42, 0.65, 0.85, 1.25, 1.65, 2.1, 2.95, 3.75, 4.95),
          (("90209C", "PINK ENAMEL HOOP EARRINGS", 2.95),)),
    Theme("garden", 0.7,
          ("ENGLISH ROSE", "WILD FLOWER", "HERB MARKER", "GARDEN", "ZINC", "BIRD", "RUSTIC", "GREEN",
           "BLUE", "FRENCH", "ENAMEL", "HEN HOUSE", "VICTORIAN"),
          ("BIRD FEEDER", "PLANT POT", "WATERING CAN", "GARDEN SIGN", "THERMOMETER", "KNEELER",
           "SEED TIN", "BIRD HOUSE", "WIND CHIME", "PLANTER", "TROWEL", "GLOVES", "WINDMILL",
           "HOSE TIDY"),
          (0.85, 1.25, 1.65, 2.1, 2.95, 3.75, 4.95, 5.95, 7.95, 9.95, 14.95),
          (("47566", "PARTY BUNTING", 4.95),
           ("47590B", "RED, WHITE AND BLUE BUNTING", 3.75))),
)
PRODUCTS_PER_THEME = 166
#: Within a theme, the product of rank r sells in proportion to 1 / (r + 1) ** POPULARITY_SKEW.
POPULARITY_SKEW = 0.6
EXPENSIVE_SHARE = 0.02
EXPENSIVE_PRICES = (24.95, 29.95, 39.95, 49.95, 79.95, 125.0, 165.0, 295.0)
#: Five-digit stock code blocks of the real catalogue; some codes carry a letter suffix (85123A).
CODE_BLOCKS = ((20600, 23600), (84000, 85300), (35000, 37500), (47000, 48200), (71000, 72900),
               (90000, 90220))
SUFFIX_SHARE = 0.12
SUFFIX_LETTERS = "ABCDEFGLMNPRSW"
#: (price below, pack sizes to choose from).
PACK_SIZES = ((1.0, (10, 12, 12, 24, 25)), (3.0, (4, 6, 6, 10, 12)), (8.0, (1, 2, 3, 4, 6)),
              (math.inf, (1, 1, 2)))
BULK_QUANTITY = 100
BULK_DISCOUNT = 0.85
GUEST_MARKUP = 2.0


@dataclass(frozen=True)
class Catalogue:
    """The products, one weighted shelf per theme (aligned with THEMES), and the overall demand."""

    shelves: tuple[WeightedPicker[Product], ...]
    #: A shelf drawn by overall theme popularity: what a customer without preferences buys.
    any_shelf: WeightedPicker[WeightedPicker[Product]]

    @property
    def products(self) -> tuple[Product, ...]:
        """Every product, theme by theme, most popular first."""
        return tuple(product for shelf in self.shelves for product in shelf.items)


@lru_cache(maxsize=8)
def build_catalogue(seed: int) -> Catalogue:
    """The catalogue for a seed; it uses its own random stream so it never depends on row counts."""
    rng = random.Random(f"catalogue:{seed}")
    codes = {code for theme in THEMES for code, _, _ in theme.signature}
    names = {name for theme in THEMES for _, name, _ in theme.signature}
    shelves = tuple(_stock_shelf(rng, theme, codes, names) for theme in THEMES)
    return Catalogue(shelves, WeightedPicker(shelves, [theme.popularity for theme in THEMES]))


def _stock_shelf(rng: random.Random, theme: Theme, codes: set[str],
                 names: set[str]) -> WeightedPicker[Product]:
    """A theme's products, signature ones first, weighted by a skewed popularity of their rank."""
    fresh = sorted(f"{style} {item}" for style in theme.styles for item in theme.items
                   if f"{style} {item}" not in names)
    chosen = rng.sample(fresh, PRODUCTS_PER_THEME - len(theme.signature))
    names.update(chosen)
    products = [_product(rng, code, name, price) for code, name, price in theme.signature]
    products += [_product(rng, _mint_code(rng, codes), name, _list_price(rng, theme)) for name in chosen]
    return WeightedPicker(products, [1 / (rank + 1) ** POPULARITY_SKEW for rank in range(len(products))])


def _product(rng: random.Random, code: str, description: str, price: float) -> Product:
    """A product with its pack size and its price texts."""
    pack = rng.choice(next(sizes for below, sizes in PACK_SIZES if price < below))
    return Product(code, description, pack, format_price(price),
                   format_price(round(price * BULK_DISCOUNT, 2)),
                   format_price(round(price * GUEST_MARKUP, 2)))


def _mint_code(rng: random.Random, taken: set[str]) -> str:
    """A new stock code from the real code blocks, sometimes with a letter suffix."""
    while True:
        low, high = rng.choice(CODE_BLOCKS)
        code = str(rng.randrange(low, high))
        if rng.random() < SUFFIX_SHARE:
            code += rng.choice(SUFFIX_LETTERS)
        if code not in taken:
            taken.add(code)
            return code


def _list_price(rng: random.Random, theme: Theme) -> float:
    """A price point of the theme, or now and then an expensive piece."""
    return rng.choice(EXPENSIVE_PRICES if rng.random() < EXPENSIVE_SHARE else theme.prices)


# --- customers ------------------------------------------------------------------------------------

#: Countries of registered customers with their relative number of customers: the real file's,
#: with the rarest raised to 3 so that a full-size run shows all 38 countries.
CUSTOMER_COUNTRIES = WeightedPicker(*zip(*(
    (HOME_COUNTRY, 3700), ("Germany", 95), ("France", 87), ("Spain", 31), ("Belgium", 25),
    ("Switzerland", 21), ("Portugal", 19), ("Italy", 15), ("Finland", 12), ("Austria", 11),
    ("Norway", 10), ("Netherlands", 9), ("Australia", 9), ("Denmark", 9), ("Channel Islands", 9),
    ("EIRE", 8), ("Cyprus", 8), ("Sweden", 8), ("Japan", 8), ("Poland", 6), ("USA", 4),
    ("Canada", 4), ("Unspecified", 4), ("Israel", 4), ("Greece", 4), ("Malta", 3),
    ("United Arab Emirates", 3), ("Bahrain", 3), ("Lithuania", 3), ("Czech Republic", 3),
    ("Lebanon", 3), ("Brazil", 3), ("RSA", 3), ("Saudi Arabia", 3), ("Singapore", 3),
    ("Iceland", 3), ("European Community", 3),
)))
#: Guests order through the UK web shop, with a trickle from abroad (Hong Kong only ever as guests).
GUEST_COUNTRIES = WeightedPicker(*zip(*(
    (HOME_COUNTRY, 985), ("EIRE", 5), ("Hong Kong", 3), ("Unspecified", 2), ("Switzerland", 2),
    ("France", 1), ("Israel", 1), ("Portugal", 1),
)))
WHOLESALE_SHARE = 0.015
#: Visit rates are log-normal: for shops a wide spread (many one-off buyers, a long tail of
#: regulars); wholesalers order about 25 times as often as a typical shop, within a narrower spread
#: so that no single one swamps a small pool.
ACTIVITY_SIGMA = 1.2
WHOLESALE_ACTIVITY = 25.0
WHOLESALE_ACTIVITY_SIGMA = 0.5
#: Lines in a typical registered customer's basket (median), and how much customers differ.
BASKET_MEDIAN = 15.0
CUSTOMER_BASKET_SIGMA = 0.35
#: Favourite themes get this much more of a customer's basket: these are the segments.
FAVOURITE_BOOST = 6.0
#: Steps up MULTIPLIERS a small shop starts from (wholesalers start at 3 to 5).
SHOP_SHIFTS = (0, 0, 0, 1, 1, 2)


@dataclass(frozen=True, slots=True)
class Customer:
    """A registered customer: who, where, what they like, how often and how much they buy."""

    id: str
    country: str
    #: Theme shelves weighted by this customer's preferences.
    shelves: WeightedPicker[WeightedPicker[Product]]
    #: Relative rate of orders.
    activity: float
    basket_median: float
    #: Steps up the quantity ladder: 0 for small shops, 3 to 5 for wholesalers.
    shift: int


def default_customers(rows: int) -> int:
    """Pool size for a run: the real customers-per-line ratio, at least MIN_CUSTOMERS, at most all ids."""
    return min(len(CUSTOMER_IDS), max(MIN_CUSTOMERS, round(rows * CUSTOMERS_PER_ROW)))


def build_customers(rng: random.Random, count: int, catalogue: Catalogue) -> list[Customer]:
    """`count` customers with distinct ids from the real id range."""
    if not 1 <= count <= len(CUSTOMER_IDS):
        raise ValueError(f"customers must be 1..{len(CUSTOMER_IDS)}, got {count}")
    return [_new_customer(rng, str(cid), catalogue) for cid in rng.sample(CUSTOMER_IDS, count)]


def _new_customer(rng: random.Random, cid: str, catalogue: Catalogue) -> Customer:
    """One customer: a wholesaler now and then, otherwise a shop of some size."""
    wholesale = rng.random() < WHOLESALE_SHARE
    favourites = set(rng.sample(range(len(THEMES)), rng.randint(1, 3)))
    preferences = [theme.popularity * (FAVOURITE_BOOST if i in favourites else 1.0)
                   for i, theme in enumerate(THEMES)]
    return Customer(
        id=cid,
        country=CUSTOMER_COUNTRIES.pick(rng),
        shelves=WeightedPicker(catalogue.shelves, preferences),
        activity=(WHOLESALE_ACTIVITY * rng.lognormvariate(0.0, WHOLESALE_ACTIVITY_SIGMA) if wholesale
                  else rng.lognormvariate(0.0, ACTIVITY_SIGMA)),
        basket_median=BASKET_MEDIAN * rng.lognormvariate(0.0, CUSTOMER_BASKET_SIGMA),
        shift=rng.randint(3, 5) if wholesale else rng.choice(SHOP_SHIFTS),
    )


# --- the trading calendar -------------------------------------------------------------------------

#: Relative daily demand by month: a quiet spring, a busy autumn, the Christmas rush.
MONTH_DEMAND = {1: 1.0, 2: 0.85, 3: 0.95, 4: 0.95, 5: 1.0, 6: 0.95, 7: 1.0, 8: 0.95, 9: 1.35,
                10: 1.55, 11: 2.05, 12: 1.7}
#: Relative demand by weekday (Monday = 0); Saturday (5) is closed.
WEEKDAY_DEMAND = {0: 1.0, 1: 1.05, 2: 1.0, 3: 1.1, 4: 0.85, 6: 0.7}
#: Invoices per hour of the day in the real file, 7:00 to 20:59.
HOUR_DEMAND = WeightedPicker(range(7, 21), (29, 555, 1393, 2226, 2276, 3130, 2637, 2275, 2038, 1100,
                                            544, 169, 144, 18))
MINUTES_PER_DAY = 24 * 60


def is_trading_day(day: date) -> bool:
    """Monday to Friday and Sunday, except the Christmas closure (24 December to 3 January)."""
    christmas = (day.month == 12 and day.day >= 24) or (day.month == 1 and day.day <= 3)
    return day.weekday() in WEEKDAY_DEMAND and not christmas


class TradingCalendar:
    """The trading days of a date range, weighted by demand, as a source of invoice times."""

    def __init__(self, start: date, end: date) -> None:
        if start > end:
            raise ValueError(f"start {start} is after end {end}")
        days = [start + timedelta(n) for n in range((end - start).days + 1)]
        days = [day for day in days if is_trading_day(day)]
        if not days:
            raise ValueError(f"no trading day between {start} and {end}")
        self._prefixes = [f"{day.month}/{day.day}/{day.year} " for day in days]
        self._days = WeightedPicker(range(len(days)),
                                    [MONTH_DEMAND[d.month] * WEEKDAY_DEMAND[d.weekday()] for d in days])

    def stamps(self, rng: random.Random, count: int) -> list[str]:
        """`count` invoice times in ascending order, formatted like ``12/1/2010 8:26``."""
        minutes = sorted(self._days.pick(rng) * MINUTES_PER_DAY + HOUR_DEMAND.pick(rng) * 60
                         + rng.randrange(60) for _ in range(count))
        return [self._format(minute) for minute in minutes]

    def _format(self, minute: int) -> str:
        """Day-and-minute number -> ``month/day/year hour:minute``."""
        day, minute_of_day = divmod(minute, MINUTES_PER_DAY)
        hour, minute = divmod(minute_of_day, 60)
        return f"{self._prefixes[day]}{hour}:{minute:02d}"


# --- the invoice plan -----------------------------------------------------------------------------

class Kind(Enum):
    """What an invoice is."""

    SALE = "sale"          # a registered customer's basket
    GUEST = "guest"        # a web-shop basket without CustomerID
    CANCEL = "cancel"      # C invoice: a customer returns lines bought earlier
    STOCK = "stock"        # stock correction: no description, no customer, price 0
    FEE = "fee"            # C invoice crediting an Amazon fee, no customer
    ADJUST = "adjust"      # A invoice: bad debt written off, negative price


#: Share of invoices by kind, tuned so that guests have ~25% of lines, cancellations ~1.8%,
#: empty descriptions ~0.3%, and baskets average ~21 lines, as in the real file.
KIND_MIX = WeightedPicker(tuple(Kind), (0.6517, 0.143, 0.15, 0.055, 0.0012, 0.0001))
GUEST_BASKET_MEDIAN = 25.0
BASKET_SIGMA = 0.85
MAX_BASKET = 600


class Slot(NamedTuple):
    """A planned invoice: its kind, its size in lines and, for a sale, its customer."""

    kind: Kind
    size: int
    customer: Customer | None = None


class CustomerVisits:
    """Chooses who places each sale: every customer of the pool once, repeat visits by activity.

    Why: newcomers arrive all year, at the pace that brings in the whole pool by the last row, so
    `customers` is the number of customers in the data (given enough rows), and late or rarely
    active ones buy only once, as about a third of real customers do.
    """

    def __init__(self, customers: Sequence[Customer]) -> None:
        self._by_activity = WeightedPicker(customers, [customer.activity for customer in customers])
        self._newcomers = list(customers)  # the pool is in random order already
        self._seen: set[str] = set()
        self._sales = 0

    def next(self, rng: random.Random, rows_done: int, rows_left: int) -> Customer:
        """The customer of the next sale, given the rows planned so far and those still to plan."""
        while self._newcomers and self._newcomers[-1].id in self._seen:
            self._newcomers.pop()
        sales_left = rows_left * self._sales / rows_done if self._sales else 0.0
        if self._newcomers and rng.random() * sales_left < len(self._newcomers):
            customer = self._newcomers.pop()
        else:
            customer = self._by_activity.pick(rng)
        self._seen.add(customer.id)
        self._sales += 1
        return customer


def plan_invoices(rng: random.Random, rows: int, customers: Sequence[Customer]) -> list[Slot]:
    """Invoices whose sizes add up to exactly `rows`; see CustomerVisits for who buys."""
    visits = CustomerVisits(customers)
    slots: list[Slot] = []
    remaining = rows
    while remaining > 0:
        kind = KIND_MIX.pick(rng)
        customer = visits.next(rng, rows - remaining, remaining) if kind is Kind.SALE else None
        size = min(remaining, _slot_size(rng, kind, customer))
        slots.append(Slot(kind, size, customer))
        remaining -= size
    return slots


def _slot_size(rng: random.Random, kind: Kind, customer: Customer | None) -> int:
    """Lines in an invoice: log-normal baskets with a heavy tail, small cancellations, single lines."""
    if customer is not None:
        return _basket_size(rng, customer.basket_median)
    if kind is Kind.GUEST:
        return _basket_size(rng, GUEST_BASKET_MEDIAN)
    if kind is Kind.CANCEL:
        return _cancel_size(rng)
    return 1


def _basket_size(rng: random.Random, median: float) -> int:
    """A basket size around `median`: mostly 1 to 40 lines, now and then hundreds."""
    return max(1, min(MAX_BASKET, round(rng.lognormvariate(math.log(median), BASKET_SIGMA))))


def _cancel_size(rng: random.Random) -> int:
    """Most cancellations return one line; some a few; a few most of a basket."""
    draw = rng.random()
    if draw < 0.72:
        return 1
    return rng.randint(2, 5) if draw < 0.94 else rng.randint(6, 30)


# --- non-product lines ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Charge:
    """A non-product line (postage, fees, manual entries...) with its price range."""

    code: str
    description: str
    low: float
    high: float

    def line(self, rng: random.Random, quantity: int = 1, sign: int = 1) -> Line:
        """The line at a price drawn from the range (fixed when low == high)."""
        return (self.code, self.description, quantity,
                format_price(sign * round(rng.uniform(self.low, self.high), 2)))


POSTAGE = Charge("POST", "POSTAGE", 18.0, 18.0)
DOTCOM_POSTAGE = Charge("DOT", "DOTCOM POSTAGE", 10.0, 900.0)
CARRIAGE = Charge("C2", "CARRIAGE", 50.0, 50.0)
BANK_CHARGES = Charge("BANK CHARGES", "Bank Charges", 15.0, 15.0)
GIFT_VOUCHER = Charge("gift_0001_20", "Dotcomgiftshop Gift Voucher £20.00", 16.67, 16.67)
AMAZON_FEE = Charge("AMAZONFEE", "AMAZON FEE", 200.0, 14000.0)
BAD_DEBT = Charge("B", "Adjust bad debt", 100.0, 12000.0)
#: Manual lines are "M" but, once in a while, "m" as in the real file.
MANUALS = WeightedPicker((Charge("M", "Manual", 0.5, 300.0), Charge("m", "Manual", 0.5, 5.0)), (19, 1))
#: Credits that go into cancellations instead of returned products.
CREDITS = WeightedPicker((Charge("D", "Discount", 5.0, 150.0), Charge("M", "Manual", 0.5, 300.0),
                          Charge("S", "SAMPLES", 1.0, 200.0), BANK_CHARGES,
                          Charge("CRUK", "CRUK Commission", 1.0, 700.0)),
                         (20, 55, 13, 6, 6))
CARRIAGE_COUNTRIES = frozenset({"EIRE", "Channel Islands"})
CARRIAGE_SHARE = 0.5
POSTAGE_SHARE = 0.6
BANK_CHARGES_SHARE = 0.01
MANUAL_SHARE = 0.004
DOTCOM_POSTAGE_SHARE = 0.3
GIFT_VOUCHER_SHARE = 0.03
CREDIT_SHARE = 0.1


# --- quantities -----------------------------------------------------------------------------------

#: Pack multiples a trade customer orders: 6, 12, 24, 48, 96, 144... for a pack of 12 or 6.
MULTIPLIERS = (1, 2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 40, 50, 100)
#: Line-to-line variation in steps up MULTIPLIERS.
STEP_NOISE = (0, 0, 0, 0, 0, 1, 1, 2, 3)
#: Small shops often buy loose units instead of packs.
LOOSE_SHARE = 0.3
LOOSE_QUANTITIES = (1, 1, 1, 2, 2, 3, 4)
GUEST_QUANTITIES = WeightedPicker((1, 2, 3, 4, 5, 6, 8, 10, 12, 24), (50, 18, 8, 6, 3, 5, 2, 3, 4, 1))
#: Share of trade lines given away at price 0.
FREE_SHARE = 0.002
#: Share of lines the real file repeats verbatim right after themselves.
DUPLICATE_SHARE = 0.008
#: Draws to find a product not yet in the basket before accepting a repeat.
REDRAWS = 3
#: Share of cancellations that return the whole line rather than part of it.
FULL_RETURN_SHARE = 0.8
#: Share of stock corrections that add stock (the rest remove it: damaged, lost).
STOCK_IN_SHARE = 0.6
#: Cancellations pick their customer among the buyers of the last this-many sales.
RECENT_BUYERS = 500
#: Product lines remembered per customer for cancellations (trimmed to this when twice as long).
HISTORY = 200


class Shop:
    """Turns planned invoices into rows, remembering purchases so cancellations can return them."""

    def __init__(self, rng: random.Random, catalogue: Catalogue) -> None:
        self._rng = rng
        self._catalogue = catalogue
        self._bought: dict[str, list[Line]] = {}
        self._recent_buyers: deque[Customer] = deque(maxlen=RECENT_BUYERS)

    def invoice(self, slot: Slot, number: int, stamp: str) -> list[list[str]]:
        """The rows of invoice `number` at time `stamp`: exactly `slot.size` of them."""
        if slot.kind is Kind.SALE:
            return self._sale(slot, number, stamp)
        if slot.kind is Kind.CANCEL and self._recent_buyers:
            return self._cancel(slot, number, stamp)
        if slot.kind is Kind.STOCK:
            return self._stock(slot, number, stamp)
        if slot.kind is Kind.FEE:
            lines = [AMAZON_FEE.line(self._rng, quantity=-1) for _ in range(slot.size)]
            return _rows(f"C{number}", lines, stamp, "", HOME_COUNTRY)
        if slot.kind is Kind.ADJUST:
            lines = [BAD_DEBT.line(self._rng, sign=-1) for _ in range(slot.size)]
            return _rows(f"A{number}", lines, stamp, "", HOME_COUNTRY)
        return self._guest(slot, number, stamp)  # also a cancellation before anyone has bought

    def _sale(self, slot: Slot, number: int, stamp: str) -> list[list[str]]:
        """A registered customer's basket, plus postage and the like; remembered for cancellations."""
        customer = slot.customer
        assert customer is not None, "sale slots carry their customer"
        extras = self._trade_extras(customer)[: slot.size - 1]
        lines = self._basket(customer.shelves, slot.size - len(extras),
                             lambda product: self._trade_line(product, customer.shift))
        self._remember(customer, lines)
        return _rows(str(number), lines + extras, stamp, customer.id, customer.country)

    def _guest(self, slot: Slot, number: int, stamp: str) -> list[list[str]]:
        """A web-shop basket without customer: loose quantities at guest prices, dotcom postage."""
        extras = self._guest_extras()[: slot.size - 1]
        lines = self._basket(self._catalogue.any_shelf, slot.size - len(extras), self._guest_line)
        return _rows(str(number), lines + extras, stamp, "", GUEST_COUNTRIES.pick(self._rng))

    def _cancel(self, slot: Slot, number: int, stamp: str) -> list[list[str]]:
        """A recent buyer returns lines they bought, sometimes with a credit line (discount...)."""
        rng = self._rng
        customer = rng.choice(self._recent_buyers)
        lines = [CREDITS.pick(rng).line(rng, quantity=-1)] if rng.random() < CREDIT_SHARE else []
        lines += [self._returned(line) for line in self._some_bought(customer, slot.size - len(lines))]
        return _rows(f"C{number}", lines, stamp, customer.id, customer.country)

    def _stock(self, slot: Slot, number: int, stamp: str) -> list[list[str]]:
        """Stock corrections as the real file has them: no description, no customer, price 0."""
        rng = self._rng
        lines = []
        for _ in range(slot.size):
            product = self._catalogue.any_shelf.pick(rng).pick(rng)
            quantity = product.pack * rng.choice(MULTIPLIERS[:6])
            lines.append((product.code, "", quantity if rng.random() < STOCK_IN_SHARE else -quantity, "0"))
        return _rows(str(number), lines, stamp, "", HOME_COUNTRY)

    def _basket(self, shelves: WeightedPicker[WeightedPicker[Product]], count: int,
                make_line: Callable[[Product], Line]) -> list[Line]:
        """`count` product lines, distinct products mostly, a line repeated verbatim now and then."""
        rng = self._rng
        lines: list[Line] = []
        seen: set[str] = set()
        while len(lines) < count:
            line = make_line(self._fresh_product(shelves, seen))
            lines.append(line)
            if len(lines) < count and rng.random() < DUPLICATE_SHARE:
                lines.append(line)
        return lines

    def _fresh_product(self, shelves: WeightedPicker[WeightedPicker[Product]], seen: set[str]) -> Product:
        """A product not yet in the basket if a few draws find one: real baskets rarely repeat codes."""
        rng = self._rng
        for _ in range(REDRAWS):
            product = shelves.pick(rng).pick(rng)
            if product.code not in seen:
                break
        seen.add(product.code)
        return product

    def _trade_line(self, product: Product, shift: int) -> Line:
        """A registered customer's line: packs up the quantity ladder, bulk price on big lines."""
        rng = self._rng
        if shift == 0 and rng.random() < LOOSE_SHARE:
            quantity = LOOSE_QUANTITIES[int(rng.random() * len(LOOSE_QUANTITIES))]
        else:
            step = shift + STEP_NOISE[int(rng.random() * len(STEP_NOISE))]
            quantity = product.pack * MULTIPLIERS[min(step, len(MULTIPLIERS) - 1)]
        if rng.random() < FREE_SHARE:
            price = "0"
        else:
            price = product.bulk_price if quantity >= BULK_QUANTITY else product.price
        return (product.code, product.description, quantity, price)

    def _guest_line(self, product: Product) -> Line:
        """A guest's line: a unit or a few, at the guest price."""
        return (product.code, product.description, GUEST_QUANTITIES.pick(self._rng), product.guest_price)

    def _trade_extras(self, customer: Customer) -> list[Line]:
        """Carriage and postage for customers abroad, bank charges, now and then a manual line."""
        rng = self._rng
        abroad = customer.country != HOME_COUNTRY
        extras = []
        if customer.country in CARRIAGE_COUNTRIES and rng.random() < CARRIAGE_SHARE:
            extras.append(CARRIAGE.line(rng))
        if abroad and rng.random() < POSTAGE_SHARE:
            extras.append(POSTAGE.line(rng, quantity=rng.randint(1, 3)))
        if abroad and rng.random() < BANK_CHARGES_SHARE:
            extras.append(BANK_CHARGES.line(rng))
        if rng.random() < MANUAL_SHARE:
            extras.append(MANUALS.pick(rng).line(rng))
        return extras

    def _guest_extras(self) -> list[Line]:
        """Dotcom postage on many web orders, a gift voucher on a few."""
        rng = self._rng
        extras = []
        if rng.random() < DOTCOM_POSTAGE_SHARE:
            extras.append(DOTCOM_POSTAGE.line(rng))
        if rng.random() < GIFT_VOUCHER_SHARE:
            extras.append(GIFT_VOUCHER.line(rng))
        return extras

    def _remember(self, customer: Customer, lines: list[Line]) -> None:
        """Keep the customer's recent product lines for later cancellations."""
        bought = self._bought.setdefault(customer.id, [])
        bought.extend(lines)
        if len(bought) > 2 * HISTORY:
            del bought[:-HISTORY]
        self._recent_buyers.append(customer)

    def _some_bought(self, customer: Customer, count: int) -> list[Line]:
        """`count` lines the customer bought, distinct while their history lasts."""
        bought = self._bought[customer.id]
        picked = self._rng.sample(bought, min(count, len(bought)))
        return picked + self._rng.choices(bought, k=count - len(picked))

    def _returned(self, line: Line) -> Line:
        """The cancellation of a bought line: all of it, or about half."""
        code, description, quantity, price = line
        if self._rng.random() >= FULL_RETURN_SHARE:
            quantity = (quantity + 1) // 2
        return (code, description, -quantity, price)


def _rows(invoice: str, lines: list[Line], stamp: str, customer_id: str, country: str) -> list[list[str]]:
    """Lines of one invoice -> CSV rows in the Kaggle column order."""
    return [[invoice, code, description, str(quantity), stamp, price, customer_id, country]
            for code, description, quantity, price in lines]


# --- the public API -------------------------------------------------------------------------------

def generate_rows(rows: int, seed: int = 7, start: date = date(2010, 12, 1),
                  end: date = date(2011, 12, 9), customers: int | None = None) -> Iterator[list[str]]:
    """Yield exactly `rows` data rows (8 strings each, Kaggle format), in event-time order; deterministic for a seed.

    `customers` sizes the customer pool (default: the real file's customers-per-line ratio, at
    least 50). Arguments are checked at once, before the first row is asked for.
    """
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    calendar = TradingCalendar(start, end)
    catalogue = build_catalogue(seed)
    rng = random.Random(seed)
    pool = build_customers(rng, default_customers(rows) if customers is None else customers, catalogue)
    return _invoice_rows(rng, rows, calendar, catalogue, pool)


def _invoice_rows(rng: random.Random, rows: int, calendar: TradingCalendar, catalogue: Catalogue,
                  pool: list[Customer]) -> Iterator[list[str]]:
    """Plan the invoices, give them sorted times and rising numbers, and yield their rows."""
    plan = plan_invoices(rng, rows, pool)
    shop = Shop(rng, catalogue)
    for number, (slot, stamp) in enumerate(zip(plan, calendar.stamps(rng, len(plan))), FIRST_INVOICE):
        yield from shop.invoice(slot, number, stamp)


def write_csv(path: str | Path, rows: int, seed: int = 7, **kw: Any) -> int:
    """Write header + rows to path (.csv, or .csv.gz compressed), ISO-8859-1, CRLF; return rows written.

    Keyword arguments go to :func:`generate_rows`. A .gz file is written with a zero timestamp so
    that the same seed gives the same bytes there too.
    """
    written = 0
    with _open_text(Path(path)) as handle:
        writer = csv.writer(handle, lineterminator=LINE_END)
        writer.writerow(HEADER)
        for row in generate_rows(rows, seed, **kw):
            writer.writerow(row)
            written += 1
    return written


def _open_text(path: Path) -> TextIO:
    """A text file in the Kaggle encoding, gzip-compressed when the name ends in .gz."""
    if path.suffix == ".gz":
        raw = gzip.GzipFile(path, "wb", compresslevel=6, mtime=0)
        return io.TextIOWrapper(raw, encoding=ENCODING, newline="")
    return open(path, "w", encoding=ENCODING, newline="")
