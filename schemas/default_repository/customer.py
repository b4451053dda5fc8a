"""The customer view: a customer's purchase history over sliding windows and lifetime.

Built into basketflow: its values are computed by the generic engine from this
declaration, to the bit as the hand-written code it replaced did, so this declaration
must stay as it is (its version is fixed, not digested); declare a changed or new
feature in a new view under another name.
"""

from basketflow.schemas.declare import E, DaysSince, Feature, View, agg, days

WINDOWS = days(1, 7, 30, 90)
#: A purchase line: neither a cancellation nor an adjustment.
PURCHASE = ~E.is_cancellation & ~E.is_adjustment

customer = View(
    name="customer",
    entity="customer_id",
    description="Purchase history of a customer (guests: of one invoice), net of "
                "cancellations, over sliding event-time windows and lifetime.",
    features=[
        Feature("spend", agg.sum(E.value), windows=WINDOWS, decimals=2,
                description="value of lines, cancellations negative, {window}"),
        Feature("orders", agg.count_distinct(E.invoice, where=PURCHASE), windows=WINDOWS,
                description="distinct purchase invoices, {window}"),
        Feature("items", agg.sum(E.quantity, where=E.is_product), windows=WINDOWS,
                description="units of product lines, net of cancellations, {window}"),
        Feature("distinct_products",
                agg.count_distinct(E.stock_code, where=PURCHASE & E.is_product),
                windows=WINDOWS, description="distinct stock codes bought, {window}"),
        Feature("cancelled_lines", agg.count(where=E.is_cancellation), windows=WINDOWS,
                description="cancellation lines, {window}"),
        Feature("avg_basket_value",
                agg.ratio(agg.sum(E.value), agg.count_distinct(E.invoice, where=PURCHASE)),
                windows=days(30), decimals=2,
                description="spend_{days}d / orders_{days}d (null without orders)"),
        DaysSince("days_since_first_purchase", source="first_purchase",
                  description="days from the first purchase to the read's as-of time"),
        DaysSince("days_since_last_purchase", source="last_purchase",
                  description="days from the latest purchase to the read's as-of time"),
        Feature("lifetime_orders", agg.count_distinct(E.invoice, where=PURCHASE),
                description="distinct purchase invoices ever"),
        Feature("lifetime_spend", agg.sum(E.value), decimals=2,
                description="value of all lines ever, cancellations negative"),
        Feature("first_purchase", agg.min(E.time, where=PURCHASE),
                description="event time of the first purchase line"),
        Feature("last_purchase", agg.max(E.time, where=PURCHASE),
                description="event time of the latest purchase line"),
    ],
)
