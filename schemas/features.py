"""The feature registry: every built-in feature view, declared once, with a version.

The built-in views (``customer``, ``basket``, ``product``) are declared in the default
feature repository (:mod:`basketflow.schemas.default_repository`, in the declarative
API of :mod:`basketflow.schemas.declare`) and compiled here into
:class:`~basketflow.schemas.feature_view.FeatureView` objects; their values are computed
by the generic engine (:mod:`basketflow.features.declared_state`), which the compile's
``logic_revision`` versions.

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
since all three run the same per-entity states (:mod:`basketflow.features.entity_features`).

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

from functools import cache

from basketflow.schemas.default_repository.basket import basket
from basketflow.schemas.default_repository.customer import customer
from basketflow.schemas.default_repository.product import product
from basketflow.schemas.feature_view import (  # re-exported: where readers import them
    DAY_SECONDS,
    REQUEST_TIME,
    STORED,
    WINDOWED,
    Feature,
    FeatureView,
    RequestTimeFeature,
    Served,
    WindowedFeature,
    days_since,
)
from basketflow.schemas.taxonomy import CATEGORY_NAMES, NON_PRODUCT

__all__ = ["BASKET", "CATEGORY_SHARES", "CUSTOMER", "DAY_SECONDS", "PRODUCT", "REQUEST_TIME",
           "STORED", "WINDOWED", "WINDOW_DAYS", "Feature", "FeatureView", "RequestTimeFeature", "Served",
           "WindowedFeature", "days_since", "registry", "versions"]

#: Each product category of the taxonomy, with the name of the basket's feature for its
#: share of the basket's product value (``agg.share`` in its declaration).
CATEGORY_SHARES = tuple((c, f"share_{c}") for c in CATEGORY_NAMES if c != NON_PRODUCT)

#: Computed by the generic engine from its declaration
#: (:data:`basketflow.features.entity_features.CUSTOMER_ENGINE`).
CUSTOMER = customer.compile(
    logic_revision=2)  # 2: rows where windows move on; the average of the served spend

#: The customer view's windows in days, which hold the longest of any built-in view's
#: (how long an entity must remember what it folded in: ``features.entity_features``).
WINDOW_DAYS = CUSTOMER.windows_days

#: Computed by the generic engine from its declaration
#: (:data:`basketflow.features.entity_features.BASKET_ENGINE`).
BASKET = basket.compile(logic_revision=1)

#: Computed by the generic engine from its declaration
#: (:data:`basketflow.features.entity_features.PRODUCT_ENGINE`); its feature log keeps
#: its hourly tiles (``logged``), which the engine's tiles hold.
PRODUCT = product.compile(
    logic_revision=2,  # 2: as of hour ends, revenue summed in thousandths
    logged=(
        Feature("units", "int", "units of the hour's lines, net of cancellations"),
        Feature("revenue_milli", "int", "value of the hour's lines, in thousandths"),
        Feature("lines", "int", "lines in the hour"),
        Feature("cancelled_lines", "int", "cancellation lines in the hour"),
        Feature("buyers", "str_list", "customers who bought it in the hour, sorted"),
    ))


@cache
def registry() -> dict[str, FeatureView]:
    """All feature views by name."""
    return {view.name: view for view in (CUSTOMER, BASKET, PRODUCT)}


def versions() -> dict[str, str]:
    """View name -> current version."""
    return {name: view.version for name, view in registry().items()}
