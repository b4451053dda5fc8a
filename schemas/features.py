"""The feature registry: every feature view declared once, with a version.

A view names its entity, its features (name, dtype, description), an optional TTL, and
where its values live online (where they live offline is the offline store's to say:
:mod:`basketflow.sinks.offline_layout`). Its version is a digest of
that definition (and of the product taxonomy for views that use it), so it changes
whenever the definition does, and values written under an older version are never mixed
with the new ones: online rows carry ``_version``, feature-log rows a ``version`` column,
and readers keep only the current one.

A feature computed over windows is declared once, as a :class:`WindowedFeature` (a stem
and the windows in days); :meth:`WindowedFeature.name` makes its name per window, for the
registry and for the state class that computes it alike (named above each view), and a
view's windows are those of its features.

**Kinds.** Windowed and plain features are *stored*: computed by the view's state class
at the entity's events, written to the online store and the feature log. A
:class:`RequestTimeFeature` (``days_since_last_purchase``) depends on the time of the
question, so it is never stored: it is computed when it is read, from a stored feature
(its ``source``) and the read's *as-of time*, by :func:`days_since`, the one
implementation, online (the read's as-of time is the flow's event-time clock) and in
training sets (the label row's time), as Feast's on-demand feature views are. A view
serves its stored features, then its request-time ones (:attr:`FeatureView.features`);
its version digests both.

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
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import cache, cached_property
from typing import Any

from basketflow.schemas.taxonomy import CATEGORY_NAMES, NON_PRODUCT, load_taxonomy

WINDOW_DAYS = (1, 7, 30, 90)
DAY_SECONDS = 86_400
#: What ``features describe`` calls each kind of feature (see the module docstring).
WINDOWED, STORED, REQUEST_TIME = "windowed", "stored", "request-time"


def days_since(as_of: int, ts: int | None) -> float | None:
    """Days from ``ts`` to ``as_of`` (epoch seconds), rounded to 4 decimals; None when
    there is no ``ts``: what every request-time feature is, online and in training sets.

    >>> days_since(1_291_191_960 + 40 * 86_400 + 3 * 3600, 1_291_191_960)
    40.125
    >>> days_since(1_291_191_960, None) is None
    True
    """
    return None if ts is None else round((as_of - ts) / DAY_SECONDS, 4)


@dataclass(frozen=True)
class Feature:
    """One feature of a view, under the name it is stored and served by."""

    name: str
    dtype: str  # int | float | str | epoch_s
    description: str


@dataclass(frozen=True)
class WindowedFeature:
    """A feature computed over sliding event-time windows, declared once: it is stored
    and served as one :class:`Feature` per window, named by :meth:`name` (``spend`` over
    30 days is ``spend_30d``). Its state class finds each window by its days, and takes
    the names from here.

    >>> spend = WindowedFeature("spend", "float", "value of lines, {window}", (1, 30))
    >>> spend.names
    ('spend_1d', 'spend_30d')
    >>> spend.features()[0].description
    'value of lines, last 1 day'
    """

    stem: str
    dtype: str
    #: What one window's value is: ``{window}`` stands for the window ("last 7 days"),
    #: ``{days}`` for its length in days.
    description: str
    windows_days: tuple[int, ...]

    def name(self, days: int) -> str:
        """The feature's name over its window of ``days`` days: the one place it is made."""
        if days not in self.windows_days:
            raise KeyError(f"{self.stem} is not declared over {days} days")
        return f"{self.stem}_{days}d"

    @property
    def names(self) -> tuple[str, ...]:
        """The feature's names, one per window, in the order of its windows."""
        return tuple(self.name(days) for days in self.windows_days)

    def features(self) -> tuple[Feature, ...]:
        """One :class:`Feature` per window, in the order of its windows."""
        return tuple(Feature(self.name(days), self.dtype, self.description.format(
            days=days, window=f"last {days} day{'s' * (days > 1)}"))
            for days in self.windows_days)


@dataclass(frozen=True)
class RequestTimeFeature:
    """A feature computed when it is read, never stored: the days from the stored
    feature ``source`` (an ``epoch_s`` of the same view) to the read's as-of time, by
    :func:`days_since` (see the module docstring).

    >>> since = RequestTimeFeature("days_since_x", "float", "days since x", "x")
    >>> since.value({"x": 1_291_191_960}, 1_291_191_960 + 36 * 3600)
    1.5
    """

    name: str
    dtype: str
    description: str
    source: str

    def value(self, stored: Mapping[str, Any], as_of: int) -> float | None:
        """The feature at ``as_of`` from an entity's stored values (None without its
        source)."""
        return days_since(as_of, stored.get(self.source))


#: What a view declares: plain, windowed and request-time features. The stored ones are
#: stored in the order they are declared.
Declaration = Feature | WindowedFeature | RequestTimeFeature
#: A feature as a view serves it.
Served = Feature | RequestTimeFeature


@dataclass(frozen=True)
class FeatureView:
    """A group of features of one entity, computed together by one state class."""

    name: str
    entity: str
    description: str
    declared: tuple[Declaration, ...]
    #: Values older than this are not served: online, the Redis key expires this long
    #: after its last write; in training sets, a value older than this at the label's
    #: time is null.
    ttl_seconds: int | None = None
    depends_on: str = ""  # version of external definitions it uses (the taxonomy)
    logic_revision: int = 1  # bump when the computation changes but the fields do not
    #: What its feature log keeps, when not its features: partial aggregates (tiles) from
    #: which any window is summed when it is read (the product view: see its state class).
    logged: tuple[Feature, ...] = ()

    @property
    def log_features(self) -> tuple[Feature, ...]:
        """The columns of its feature log after the key columns: :attr:`logged`, or else
        its stored features."""
        return self.logged or self.stored_features

    def __post_init__(self) -> None:
        """Every request-time feature's source is a stored ``epoch_s`` feature."""
        times = {f.name for f in self.stored_features if f.dtype == "epoch_s"}
        for f in self.request_time_features:
            if f.source not in times:
                raise ValueError(f"{self.name}: the source of {f.name}, {f.source!r}, is "
                                 "not a stored epoch_s feature of the view")

    @cached_property
    def stored_features(self) -> tuple[Feature, ...]:
        """The stored features, each windowed one once per window, in declaration
        order: the online store's fields and the feature log's columns."""
        return tuple(f for d in self.declared if not isinstance(d, RequestTimeFeature)
                     for f in (d.features() if isinstance(d, WindowedFeature) else (d,)))

    @cached_property
    def request_time_features(self) -> tuple[RequestTimeFeature, ...]:
        """The features computed at read time, in declaration order."""
        return tuple(d for d in self.declared if isinstance(d, RequestTimeFeature))

    @cached_property
    def features(self) -> tuple[Served, ...]:
        """Every feature a read serves: the stored ones, then the request-time ones."""
        return self.stored_features + self.request_time_features

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The served features' names, in :attr:`features` order."""
        return tuple(f.name for f in self.features)

    @property
    def stored_names(self) -> tuple[str, ...]:
        """The stored features' names, in :attr:`stored_features` order."""
        return tuple(f.name for f in self.stored_features)

    @cached_property
    def kinds(self) -> dict[str, str]:
        """Each served feature's kind: windowed, stored or request-time.

        >>> kinds = registry()["customer"].kinds
        >>> kinds["spend_7d"], kinds["lifetime_spend"], kinds["days_since_last_purchase"]
        ('windowed', 'stored', 'request-time')
        """
        kinds: dict[str, str] = {}
        for d in self.declared:
            if isinstance(d, WindowedFeature):
                kinds.update(dict.fromkeys(d.names, WINDOWED))
            else:
                kinds[d.name] = REQUEST_TIME if isinstance(d, RequestTimeFeature) else STORED
        return {name: kinds[name] for name in self.feature_names}

    def served(self, stored: Mapping[str, Any], as_of: int) -> dict[str, Any]:
        """An entity's stored values with the view's request-time features at ``as_of``
        added (after them): what a read returns.

        >>> served = registry()["customer"].served({"last_purchase": 0, "x": 1}, 86_400)
        >>> served["x"], served["days_since_last_purchase"], served["days_since_first_purchase"]
        (1, 1.0, None)
        """
        out = dict(stored)
        for f in self.request_time_features:
            out[f.name] = f.value(stored, as_of)
        return out

    @property
    def windows_days(self) -> tuple[int, ...]:
        """Every window any of its features is computed over, shortest first."""
        return tuple(sorted({days for d in self.declared if isinstance(d, WindowedFeature)
                             for days in d.windows_days}))

    def windowed(self, stem: str) -> WindowedFeature:
        """The windowed feature declared under ``stem``."""
        found = [d for d in self.declared if isinstance(d, WindowedFeature) and d.stem == stem]
        if not found:
            raise KeyError(f"{self.name} declares no windowed feature {stem!r}")
        return found[0]

    def definition(self) -> dict[str, object]:
        """The definition as stored and served: its stored features one by one (each
        window of a windowed one apart), its request-time features (when it has any),
        its windows, TTL and dependencies."""
        served = {"request_time": [asdict(f) for f in self.request_time_features]}
        return {"name": self.name, "entity": self.entity, "description": self.description,
                "features": [asdict(f) for f in self.stored_features],
                **(served if self.request_time_features else {}),
                "windows_days": list(self.windows_days), "ttl_seconds": self.ttl_seconds,
                "depends_on": self.depends_on, "logic_revision": self.logic_revision,
                **({"logged": [asdict(f) for f in self.logged]} if self.logged else {})}

    @property
    def version(self) -> str:
        """A short digest of the definition: changes whenever the definition changes."""
        text = json.dumps(self.definition(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    def online_key(self, prefix: str) -> str:
        """Where an entity's latest values live in Redis."""
        return f"{prefix}:{self.name}:<{self.entity}>"


#: Each product category of the taxonomy, with the name of the basket's feature for its
#: share of the basket's product value (computed by ``BasketState.values``).
CATEGORY_SHARES = tuple((c, f"share_{c}") for c in CATEGORY_NAMES if c != NON_PRODUCT)


def _category_shares() -> tuple[Feature, ...]:
    """One spend-share feature per product category of the taxonomy."""
    return tuple(Feature(name, "float", f"share of the basket's product value in {c}")
                 for c, name in CATEGORY_SHARES)


#: Computed by :meth:`basketflow.features.feature_state.CustomerState.values`.
CUSTOMER = FeatureView(
    name="customer",
    entity="customer_id",
    logic_revision=2,  # 2: rows where windows move on; the average of the served spend
    description="Purchase history of a customer (guests: of one invoice), net of "
                "cancellations, over sliding event-time windows and lifetime.",
    declared=(
        WindowedFeature("spend", "float", "value of lines, cancellations negative, {window}",
                        WINDOW_DAYS),
        WindowedFeature("orders", "int", "distinct purchase invoices, {window}", WINDOW_DAYS),
        WindowedFeature("items", "int", "units of product lines, net of cancellations, {window}",
                        WINDOW_DAYS),
        WindowedFeature("distinct_products", "int", "distinct stock codes bought, {window}",
                        WINDOW_DAYS),
        WindowedFeature("cancelled_lines", "int", "cancellation lines, {window}", WINDOW_DAYS),
        WindowedFeature("avg_basket_value", "float",
                        "spend_{days}d / orders_{days}d (null without orders)", (30,)),
        RequestTimeFeature("days_since_first_purchase", "float",
                           "days from the first purchase to the read's as-of time",
                           "first_purchase"),
        RequestTimeFeature("days_since_last_purchase", "float",
                           "days from the latest purchase to the read's as-of time",
                           "last_purchase"),
        Feature("lifetime_orders", "int", "distinct purchase invoices ever"),
        Feature("lifetime_spend", "float", "value of all lines ever, cancellations negative"),
        Feature("first_purchase", "epoch_s", "event time of the first purchase line"),
        Feature("last_purchase", "epoch_s", "event time of the latest purchase line"),
    ),
)

#: Computed by :meth:`basketflow.features.feature_state.BasketState.values`.
BASKET = FeatureView(
    name="basket",
    entity="customer_id",
    description="The customer's current basket (latest purchase invoice) so far: what a "
                "first-visit classifier sees while it is being filled.",
    depends_on=load_taxonomy().version,
    ttl_seconds=86_400,  # a basket untouched for a day is no longer anyone's current basket
    declared=(
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

#: Computed by :meth:`basketflow.features.feature_state.ProductState.values`.
PRODUCT = FeatureView(
    name="product",
    entity="stock_code",
    description="Demand for one product over sliding event-time windows, as of the last "
                "hour end (its values change at hour ends).",
    logic_revision=2,  # 2: as of hour ends, revenue summed in thousandths
    logged=(
        Feature("units", "int", "units of the hour's lines, net of cancellations"),
        Feature("revenue_milli", "int", "value of the hour's lines, in thousandths"),
        Feature("lines", "int", "lines in the hour"),
        Feature("cancelled_lines", "int", "cancellation lines in the hour"),
        Feature("buyers", "str_list", "customers who bought it in the hour, sorted"),
    ),
    declared=(
        WindowedFeature("units", "int", "units sold, net of cancellations, {window}", (1, 7)),
        WindowedFeature("revenue", "float", "value sold, net of cancellations, {window}",
                        (1, 7)),
        WindowedFeature("distinct_buyers", "int", "distinct customers who bought it, {window}",
                        (7,)),
        WindowedFeature("cancelled_share", "float",
                        "cancellation lines / all lines of the product, {window}", (30,)),
    ),
)


@cache
def registry() -> dict[str, FeatureView]:
    """All feature views by name."""
    return {view.name: view for view in (CUSTOMER, BASKET, PRODUCT)}


def versions() -> dict[str, str]:
    """View name -> current version."""
    return {name: view.version for name, view in registry().items()}
