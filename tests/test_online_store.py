"""The online store against a real Redis-protocol server: typed round trips, whole vectors
in one call, and TTLs."""

from __future__ import annotations

from basketflow.config import Settings
from sinks.online_store import RedisOnlineStore, connect


def test_vectors_of_many_entities_come_back_typed_in_order(settings: Settings) -> None:
    assert settings.redis_url
    store = RedisOnlineStore(connect(settings.redis_url), settings.prefix)
    store.write("customer", "v1", {"a": (100, {"spend_1d": 2.5, "orders_1d": 1,
                                               "avg_basket_value_30d": None})})
    store.write("basket", "v2", {"a": (101, {"invoice": "536365", "country": "France"})})
    a, missing = store.read_vectors(["customer", "basket"], ["a", "nobody"])
    assert a == {"customer": {"spend_1d": 2.5, "orders_1d": 1, "avg_basket_value_30d": None,
                              "_ts": 100, "_version": "v1"},
                 "basket": {"invoice": "536365", "country": "France", "_ts": 101,
                            "_version": "v2"}}
    assert missing == {"customer": None, "basket": None}


def test_a_view_ttl_makes_its_keys_expire(settings: Settings) -> None:
    assert settings.redis_url
    client = connect(settings.redis_url)
    store = RedisOnlineStore(client, settings.prefix)
    store.write("basket", "v", {"a": (1, {"lines": 1})}, ttl_seconds=86_400)
    store.write("customer", "v", {"a": (1, {"orders_1d": 1})})
    assert 86_000 < client.ttl(store.key("basket", "a")) <= 86_400
    assert client.ttl(store.key("customer", "a")) == -1  # no TTL: kept until overwritten
