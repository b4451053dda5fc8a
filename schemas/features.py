"""The feature registry: every feature view declared once, with a version.

A view names its entity, its features (name, dtype, description) and where its values
live. Its version is a digest of that definition, so it changes whenever the definition
does, and values written under an older version are never mixed with the new ones.

>>> registry()["customer"].entity
'customer_id'
>>> len(registry()["customer"].version)
8
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import cache


@dataclass(frozen=True)
class Feature:
    """One feature of a view."""

    name: str
    dtype: str
    description: str


@dataclass(frozen=True)
class FeatureView:
    """A group of features of one entity, computed together by one state class."""

    name: str
    entity: str
    description: str
    features: tuple[Feature, ...]
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


CUSTOMER = FeatureView(
    name="customer",
    entity="customer_id",
    description="Lifetime totals of a customer (guests: of one invoice), net of cancellations.",
    features=(
        Feature("baskets", "int", "distinct purchase invoices"),
        Feature("spend", "float", "sum of line values, cancellations negative"),
        Feature("items", "int", "units of product lines, net of cancellations"),
        Feature("cancelled_lines", "int", "cancellation lines"),
        Feature("first_purchase", "epoch_s", "event time of the first purchase line"),
        Feature("last_purchase", "epoch_s", "event time of the latest purchase line"),
    ),
)

BASKET = FeatureView(
    name="basket",
    entity="customer_id",
    description="The customer's current basket (latest purchase invoice) so far.",
    features=(
        Feature("invoice", "str", "invoice number of the basket"),
        Feature("lines", "int", "lines so far"),
        Feature("items", "int", "units of product lines so far"),
        Feature("value", "float", "value so far"),
        Feature("distinct_products", "int", "distinct stock codes so far"),
        Feature("non_product_lines", "int", "postage, fee and manual lines so far"),
        Feature("started", "epoch_s", "event time of the basket's first line"),
    ),
)


@cache
def registry() -> dict[str, FeatureView]:
    """All feature views by name."""
    return {view.name: view for view in (CUSTOMER, BASKET)}


def versions() -> dict[str, str]:
    """View name -> current version."""
    return {name: view.version for name, view in registry().items()}
