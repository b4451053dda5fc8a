"""The basket view: the customer's current basket (the invoice being filled) so far.

Built into basketflow: its values are what basketflow's hand-written state computed
before the generic engine did (to the bit; its version is kept), so this declaration
must stay as it is; declare a changed or new feature in a new view under another name.
"""

from basketflow.schemas.declare import CURRENT_INVOICE, E, Feature, View, agg
from basketflow.schemas.taxonomy import CATEGORY_NAMES, NON_PRODUCT

basket = View(
    name="basket",
    entity="customer_id",
    description="The customer's current basket (latest purchase invoice) so far: what a "
                "first-visit classifier sees while it is being filled.",
    ttl_seconds=86_400,  # a basket untouched for a day is no longer anyone's current basket
    features=[
        Feature("invoice", agg.last(E.invoice), windows=CURRENT_INVOICE,
                description="invoice number of the basket"),
        Feature("lines", agg.count(), windows=CURRENT_INVOICE, description="lines so far"),
        Feature("items", agg.sum(E.quantity, where=E.is_product), windows=CURRENT_INVOICE,
                description="units of product lines so far"),
        Feature("value", agg.sum(E.value), windows=CURRENT_INVOICE, decimals=2,
                description="value so far"),
        Feature("distinct_products", agg.count_distinct(E.stock_code, where=E.is_product),
                windows=CURRENT_INVOICE, description="distinct stock codes so far"),
        Feature("non_product_lines", agg.count(where=~E.is_product), windows=CURRENT_INVOICE,
                description="postage, fee and manual lines so far"),
        Feature("hour_of_day", agg.first(E.hour), windows=CURRENT_INVOICE,
                description="hour (0-23) of the basket's first line"),
        Feature("weekday", agg.first(E.weekday), windows=CURRENT_INVOICE,
                description="weekday of the basket (0 = Monday)"),
        Feature("country", agg.first(E.country), windows=CURRENT_INVOICE,
                description="the customer's country"),
        Feature("started", agg.min(E.time), windows=CURRENT_INVOICE,
                description="event time of the basket's first line"),
    ] + [
        Feature(f"share_{category}",
                agg.share(E.value, by=E.product_category, equals=category,
                          where=E.is_product),
                windows=CURRENT_INVOICE, decimals=4,
                description=f"share of the basket's product value in {category}")
        for category in CATEGORY_NAMES if category != NON_PRODUCT
    ],
)
