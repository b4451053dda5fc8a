"""The product view: demand for one product over sliding windows, as of hour ends.

Built into basketflow: its values are computed by the generic engine from this
declaration, to the bit as the hand-written code it replaced did, and its feature log
keeps its hourly tiles, so this declaration must stay as it is (its version is fixed,
not digested); declare a changed or new feature in a new view under another name.
"""

from basketflow.schemas.declare import E, Feature, View, agg, days

product = View(
    name="product",
    entity="stock_code",
    values_at="hour_end",
    description="Demand for one product over sliding event-time windows, as of the last "
                "hour end (its values change at hour ends).",
    features=[
        Feature("units", agg.sum(E.quantity), windows=days(1, 7),
                description="units sold, net of cancellations, {window}"),
        Feature("revenue", agg.sum(E.value, exact=3), windows=days(1, 7), decimals=2,
                description="value sold, net of cancellations, {window}"),
        Feature("distinct_buyers", agg.count_distinct(E.customer_id, where=~E.is_cancellation),
                windows=days(7), description="distinct customers who bought it, {window}"),
        Feature("cancelled_share", agg.ratio(agg.count(where=E.is_cancellation), agg.count()),
                windows=days(30), decimals=4,
                description="cancellation lines / all lines of the product, {window}"),
    ],
)
