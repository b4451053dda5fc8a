"""The feature registry: every feature view declared once, with a version.

A view names its entity, its features (name, dtype, description), its windows, an
optional TTL, and where its values live online (where they live offline is the offline
store's to say: :mod:`basketflow.sinks.offline_layout`). Its version is a digest of
that definition (and of the product taxonomy for views that use it), so it changes
whenever the definition does, and values written under an older version are never mixed
with the new ones: online rows carry ``_version``, feature-log rows a ``version`` column,
and readers keep only the current one.

**Windows** slide in event time over hourly tiles. The window of ``W`` days of an entity
at time ``t`` contains exactly the events with event time in
``[floor_hour(t) - W*24h + 1h, t]``: the ``W*24`` hourly tiles ending with the hour of
``t``, up to ``t``. The same rule serves the live flow, the backfill and the training sets,
since all three run :mod:`basketflow.features.feature_state`.

**Late events**: an event more than the allowed lateness older than the latest event of
its entity does not change online values (it is counted and logged); it still reaches the
offline event store.

>>> registry()["customer"].entity
'customer_id'
>>> "spend_30d" in registry()["customer"].feature_names
True
>>> len(registry()["customer"].version)
8
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import cache

from basketflow.schemas.taxonomy import CATEGORY_NAMES, NON_PRODUCT, load_taxonomy

WINDOW_DAYS = (1, 7, 30, 90)
DEFAULT_ALLOWED_LATENESS_S = 3600


@dataclass(frozen=True)
class Feature:
    """One feature of a view."""

    name: str
    dtype: str  # int | float | str | epoch_s
    description: str


@dataclass(frozen=True)
class FeatureView:
    """A group of features of one entity, computed together by one state class."""

    name: str
    entity: str
    description: str
    features: tuple[Feature, ...]
    windows_days: tuple[int, ...] = ()
    #: Values older than this are not served: online, the Redis key expires this long
    #: after its last write; in training sets, a value older than this at the label's
    #: time is null.
    ttl_seconds: int | None = None
    depends_on: str = ""  # version of external definitions it uses (the taxonomy)
    logic_revision: int = 1  # bump when the computation changes but the fields do not

    @property
    def version(self) -> str:
        """A short digest of the definition: changes whenever the definition changes."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The features' names, in declaration order."""
        return tuple(f.name for f in self.features)

    def online_key(self, prefix: str) -> str:
        """Where an entity's latest values live in Redis."""
        return f"{prefix}:{self.name}:<{self.entity}>"


def _windowed(stems: list[tuple[str, str, str]], days: tuple[int, ...]) -> tuple[Feature, ...]:
    """``name_<W>d`` features for every stem and window."""
    return tuple(Feature(f"{stem}_{w}d", dtype, f"{text}, last {w} day{'s' * (w > 1)}")
                 for stem, dtype, text in stems for w in days)


def _category_shares() -> tuple[Feature, ...]:
    """One spend-share feature per product category of the taxonomy."""
    return tuple(Feature(f"share_{c}", "float", f"share of the basket's product value in {c}")
                 for c in CATEGORY_NAMES if c != NON_PRODUCT)


CUSTOMER = FeatureView(
    name="customer",
    entity="customer_id",
    description="Purchase history of a customer (guests: of one invoice), net of "
                "cancellations, over sliding event-time windows and lifetime.",
    windows_days=WINDOW_DAYS,
    features=_windowed([
        ("spend", "float", "value of lines, cancellations negative"),
        ("orders", "int", "distinct purchase invoices"),
        ("items", "int", "units of product lines, net of cancellations"),
        ("distinct_products", "int", "distinct stock codes bought"),
        ("cancelled_lines", "int", "cancellation lines"),
    ], WINDOW_DAYS) + (
        Feature("avg_basket_value_30d", "float", "spend_30d / orders_30d (null without orders)"),
        Feature("days_since_first_purchase", "float", "days from the first purchase to now"),
        Feature("days_since_last_purchase", "float", "days from the latest purchase to now"),
        Feature("lifetime_orders", "int", "distinct purchase invoices ever"),
        Feature("lifetime_spend", "float", "value of all lines ever, cancellations negative"),
        Feature("first_purchase", "epoch_s", "event time of the first purchase line"),
        Feature("last_purchase", "epoch_s", "event time of the latest purchase line"),
    ),
)

BASKET = FeatureView(
    name="basket",
    entity="customer_id",
    description="The customer's current basket (latest purchase invoice) so far: what a "
                "first-visit classifier sees while it is being filled.",
    depends_on=load_taxonomy().version,
    ttl_seconds=86_400,  # a basket untouched for a day is no longer anyone's current basket
    features=(
        Feature("invoice", "str", "invoice number of the basket"),
        Feature("lines", "int", "lines so far"),
        Feature("items", "int", "units of product lines so far"),
        Feature("value", "float", "value so far"),
        Feature("distinct_products", "int", "distinct stock codes so far"),
        Feature("non_product_lines", "int", "postage, fee and manual lines so far"),
        Feature("hour_of_day", "int", "hour (0-23) of the basket's first line"),
        Feature("weekday", "int", "weekday of the basket (0 = Monday)"),
        Feature("country", "str", "the customer's country"),
        Feature("started", "epoch_s", "event time of the basket's first line"),
    ) + _category_shares(),
)

PRODUCT = FeatureView(
    name="product",
    entity="stock_code",
    description="Demand for one product over sliding event-time windows.",
    windows_days=(1, 7, 30),
    features=_windowed([
        ("units", "int", "units sold, net of cancellations"),
        ("revenue", "float", "value sold, net of cancellations"),
    ], (1, 7)) + (
        Feature("distinct_buyers_7d", "int", "distinct customers who bought it, last 7 days"),
        Feature("cancelled_share_30d", "float",
                "cancellation lines / all lines of the product, last 30 days"),
    ),
)


@cache
def registry() -> dict[str, FeatureView]:
    """All feature views by name."""
    return {view.name: view for view in (CUSTOMER, BASKET, PRODUCT)}


def versions() -> dict[str, str]:
    """View name -> current version."""
    return {name: view.version for name, view in registry().items()}
