"""The online store against a real Redis-protocol server: typed round trips, whole vectors
in one call, TTLs, versions, and reading a store written before vectors existed."""

from __future__ import annotations

import msgspec

from basketflow.config import Settings
from schemas.features import vector_ttl_seconds
from sinks.online_store import EXPIRES_FIELD, RedisOnlineStore, connect


class Clock:
    """A wall clock the test sets (the store's expiry times are wall-clock seconds)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


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
    assert a == {view: store.read(view, "a") for view in ("customer", "basket")}


def test_a_view_ttl_makes_its_keys_expire(settings: Settings) -> None:
    assert settings.redis_url
    client = connect(settings.redis_url)
    store = RedisOnlineStore(client, settings.prefix)
    store.write("basket", "v", {"a": (1, {"lines": 1})}, ttl_seconds=86_400)
    store.write("customer", "v", {"a": (1, {"orders_1d": 1})})
    assert 86_000 < client.ttl(store.key("basket", "a")) <= 86_400
    assert client.ttl(store.key("customer", "a")) == -1  # no TTL: kept until overwritten


def test_the_vector_expires_only_when_its_writer_gives_it_a_ttl(settings: Settings) -> None:
    assert settings.redis_url
    client = connect(settings.redis_url)
    store = RedisOnlineStore(client, settings.prefix)
    store.write("basket", "v", {"a": (1, {"lines": 1})}, ttl_seconds=100)
    assert client.ttl(store.vector_key("a")) == -1  # customers have views without a TTL
    assert vector_ttl_seconds("customer_id") is None
    assert vector_ttl_seconds("stock_code") is None
    store.write("basket", "v", {"b": (1, {"lines": 1})}, ttl_seconds=100,
                vector_ttl_seconds=100)  # as for an entity whose every view has a TTL
    assert 90 < client.ttl(store.vector_key("b")) <= 100


def test_a_vector_read_drops_a_view_once_its_own_hash_would_have_expired(
        settings: Settings) -> None:
    assert settings.redis_url
    client = connect(settings.redis_url)
    clock = Clock(1_000_000.0)
    store = RedisOnlineStore(client, settings.prefix, clock)
    store.write("customer", "v", {"a": (5, {"orders_1d": 1})})
    store.write("basket", "v", {"a": (5, {"lines": 1})}, ttl_seconds=86_400)
    clock.now += 86_399.9
    assert store.read_vectors(["customer", "basket"], ["a"])[0] == {
        "customer": {"orders_1d": 1, "_ts": 5, "_version": "v"},
        "basket": {"lines": 1, "_ts": 5, "_version": "v"}}  # no expiry time in the values
    clock.now += 0.1
    assert store.read_vectors(["customer", "basket"], ["a"])[0] == {
        "customer": {"orders_1d": 1, "_ts": 5, "_version": "v"}, "basket": None}
    assert EXPIRES_FIELD in msgspec.msgpack.decode(client.hget(store.vector_key("a"), "basket"))
    store.write("basket", "v", {"a": (9, {"lines": 2})}, ttl_seconds=86_400)  # a new basket
    assert store.read_vectors(["basket"], ["a"])[0]["basket"]["lines"] == 2


def test_values_of_an_older_version_are_never_served_under_a_newer_one(
        settings: Settings) -> None:
    assert settings.redis_url
    store = RedisOnlineStore(connect(settings.redis_url), settings.prefix)
    store.write("customer", "old", {"a": (1, {"spend_1d": 1.0, "dropped": 7})})
    store.write("customer", "new", {"a": (2, {"spend_1d": 3.0})})
    assert store.read_vectors(["customer"], ["a"])[0]["customer"] == {
        "spend_1d": 3.0, "_ts": 2, "_version": "new"}


def test_a_store_written_before_vectors_existed_is_read_from_its_hashes(
        settings: Settings) -> None:
    assert settings.redis_url
    client = connect(settings.redis_url)
    store = RedisOnlineStore(client, settings.prefix)
    store.write("customer", "v", {"a": (1, {"orders_1d": 1}), "b": (1, {"orders_1d": 2})})
    store.write("score", "m1", {"a": (1, {"category": "gifts"})})
    client.delete(store.vector_key("a"))
    client.hdel(store.vector_key("b"), "customer")
    a, b = store.read_vectors(["customer", "score"], ["a", "b"])
    assert a == {"customer": {"orders_1d": 1, "_ts": 1, "_version": "v"},
                 "score": {"category": "gifts", "_ts": 1, "_version": "m1"}}
    assert b == {"customer": {"orders_1d": 2, "_ts": 1, "_version": "v"}, "score": None}
    store.write("score", "m1", {"b": (2, {"category": "home"})})
    assert store.read_vectors(["customer", "score"], ["b"])[0] == {
        "customer": {"orders_1d": 2, "_ts": 1, "_version": "v"},
        "score": {"category": "home", "_ts": 2, "_version": "m1"}}


def test_no_views_or_no_entities_need_no_round_trip(settings: Settings) -> None:
    assert settings.redis_url
    store = RedisOnlineStore(connect(settings.redis_url), settings.prefix)
    assert store.read_vectors([], ["a"]) == [{}]
    assert store.read_vectors(["customer"], []) == []
