"""A feature is named once, where it is declared: every feature of every view is what its
state class produces, under exactly its declared name and in its declared order; and the
entity folders restore the recovery snapshots the previous ``EntityFolder`` wrote."""

from __future__ import annotations

import base64
import pickle
from collections.abc import Callable
from typing import Any

import pytest

from basketflow.features.entity_features import CustomerFolder, ProductFolder
from basketflow.features.entity_features import CUSTOMER_ENGINE, PRODUCT_ENGINE
from basketflow.schemas.events import Transaction, parse_row
from basketflow.schemas.features import WindowedFeature, registry
from tests.features.hand_written_basket import BasketState

ROWS = [
    ["536365", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", "6", "12/1/2010 8:26", "2.55",
     "17850", "United Kingdom"],
    ["536366", "22633", "HAND WARMER UNION JACK", "6", "12/1/2010 8:28", "1.85", "17850",
     "United Kingdom"],
]


def events() -> list[Transaction]:
    """Two purchase lines of one customer, as the file ``old.csv`` would give them."""
    return [parse_row(row, f"old.csv:{i + 2}") for i, row in enumerate(ROWS)]


def customer_values() -> dict[str, Any]:
    state = CUSTOMER_ENGINE.state()
    for e in events():
        state.update(e)
    return state.values(max(e.ts for e in events()))


def basket_values() -> dict[str, Any]:
    state = BasketState()
    for e in events():
        state.update(e)
    return state.values()


def typed(values: dict[str, Any]) -> list[tuple[str, type, Any]]:
    """Values with their types: 1 and 1.0 differ in a store."""
    return [(name, type(value), value) for name, value in values.items()]


def product_values() -> dict[str, Any]:
    state = PRODUCT_ENGINE.state()
    state.update(events()[0])
    return state.values(events()[0].ts)


#: Each view's state class, folding the same events.
COMPUTED: dict[str, Callable[[], dict[str, Any]]] = {
    "customer": customer_values, "basket": basket_values, "product": product_values}


def test_every_view_has_its_state_class() -> None:
    assert set(COMPUTED) == set(registry())


@pytest.mark.parametrize("view", sorted(registry()))
def test_a_state_class_produces_exactly_its_views_stored_features_in_order(view: str) -> None:
    """The online store and the feature log write the values in this order; reads add
    the request-time features after them."""
    assert list(COMPUTED[view]()) == list(registry()[view].stored_names)
    served = registry()[view].served(COMPUTED[view](), 1_291_191_960)
    assert list(served) == list(registry()[view].feature_names)


def test_a_windowed_feature_is_named_by_its_declaration_for_each_of_its_windows() -> None:
    for view in registry().values():
        windowed = [d for d in view.declared if isinstance(d, WindowedFeature)]
        names = [name for d in windowed for name in d.names]
        assert set(names) <= set(view.feature_names)
        assert all(set(d.windows_days) <= set(view.windows_days) for d in windowed)
    spend = registry()["customer"].windowed("spend")
    assert spend.name(30) == "spend_30d"
    with pytest.raises(KeyError):
        spend.name(14)  # no such window: no name made up for it


#: A customer's and a product's folder after :func:`events`, as the previous code (one
#: ``EntityFolder`` class for both kinds) pickled them into recovery snapshots, with the
#: ids made from content (snapshots of ``<file>:<line>`` ids are refused as a whole:
#: :func:`basketflow.flows.recovery_store.old_event_ids`).
OLD_CUSTOMER = (
    "gAWVJwIAAAAAAACMI2Jhc2tldGZsb3cuZmVhdHVyZXMuZW50aXR5X2ZlYXR1cmVzlIwPX3Jlc3RvcmVfZm9s"
    "ZGVylJOUKCiMBXRpbGVzlIwIaW52b2ljZXOUjAhwcm9kdWN0c5SMEWxpZmV0aW1lX2ludm9pY2VzlIwObGlm"
    "ZXRpbWVfc3BlbmSUjA5maXJzdF9wdXJjaGFzZZSMDWxhc3RfcHVyY2hhc2WUjAZtYXhfdHOUdJQofZRKCHkF"
    "AF2UKEdAOmZmZmZmZksMSwBlc32UKIwGNTM2MzY1lEoIeQUAjAY1MzYzNjaUSgh5BQB1fZQojAY4NTEyM0GU"
    "Sgh5BQCMBTIyNjMzlEoIeQUAdUsCR0A6ZmZmZmZmSpgG9kxKEAf2TEoQB/ZMdJSGlCiMB2ludm9pY2WUjAVs"
    "aW5lc5SMBWl0ZW1zlIwFdmFsdWWUaAWMEW5vbl9wcm9kdWN0X2xpbmVzlIwHc3RhcnRlZJSMB2NvdW50cnmU"
    "jAtieV9jYXRlZ29yeZR0lChoEEsBSwZHQCYzMzMzMzSPlChoE5BLAEoQB/ZMjA5Vbml0ZWQgS2luZ2RvbZR9"
    "lIwRYmF0aHJvb21fdGV4dGlsZXOUR0AmMzMzMzM0c3SUhpROjBxiYXNrZXRmbG93LmZlYXR1cmVzLnNlZW5f"
    "aWRzlIwMX3Jlc3RvcmVfaWRzlJOUQxAGGSVVD/Zcigs45ds0/Rm7lI+UhpRSlEsCShAH9kx0lFKULg==")
OLD_PRODUCT = (
    "gAWV2gAAAAAAAACMI2Jhc2tldGZsb3cuZmVhdHVyZXMuZW50aXR5X2ZlYXR1cmVzlIwPX3Jlc3RvcmVfZm9s"
    "ZGVylJOUKE5OjAV0aWxlc5SMBmJ1eWVyc5SMBm1heF90c5SHlH2USgh5BQBdlChLBkdALpmZmZmZmUsBSwBl"
    "c32UjAUxNzg1MJRKCHkFAHNKmAb2TIeUhpSMHGJhc2tldGZsb3cuZmVhdHVyZXMuc2Vlbl9pZHOUjAxfcmVz"
    "dG9yZV9pZHOUk5RDCAs45ds0/Rm7lI+UhpRSlEsBSpgG9kx0lFKULg==")


def test_snapshots_of_the_previous_entity_folder_restore_as_the_folder_of_their_kind() -> None:
    """Bytewax recovery databases of earlier runs hold these; they must resume."""
    customer = pickle.loads(base64.b64decode(OLD_CUSTOMER))
    assert isinstance(customer, CustomerFolder)
    assert customer.customer.values(customer.max_ts) == customer_values()
    assert typed(customer.basket.values(customer.max_ts)) == typed(basket_values())
    assert customer.fold("17850", events(), 3600) is None  # seen already
    product = pickle.loads(base64.b64decode(OLD_PRODUCT))
    assert isinstance(product, ProductFolder)
    assert product.product.values(product.max_ts) == product_values()
    assert product.fold("85123A", events()[:1], 3600) is None


def test_the_folders_pickle_as_plain_values_as_the_previous_entity_folder_did() -> None:
    """The same plain values as before (no class of a state object, as cheap to write),
    with the moment up to which the rows are written after them (a customer tile counts its
    invoices and products too) and the ids grouped by event day."""
    customer, product = CustomerFolder(), ProductFolder()
    customer.fold("17850", events(), 3600)
    product.fold("85123A", events()[:1], 3600)
    for folder, old in ((customer, OLD_CUSTOMER), (product, OLD_PRODUCT)):
        pickled = pickle.dumps(folder, pickle.HIGHEST_PROTOCOL)
        assert b"State" not in pickled
        restored = pickle.loads(pickled)
        assert restored.rows_through == folder.rows_through
        assert len(pickled) <= len(base64.b64decode(old)) + 32
