"""The online store against a real Redis-protocol server: typed round trips, whole vectors
in one call, TTLs and versions taken from the feature view, scores and the flow's
progress through the same contract, and reading a store written before packed values
existed.

Every test runs both ways a vector read can go: the fallback script given every key
(small reads) and an MGET first, with the script only for what it missed (larger ones)."""

from __future__ import annotations

import time

import msgspec
import pytest

import basketflow.sinks.online_store
from basketflow.config import Settings
from basketflow.schemas.features import FeatureView, registry
from basketflow.schemas.records import Score, ScoreRow
from basketflow.sinks.online_store import (
    OnlineStore,
    RedisOnlineStore,
    connect,
    open_online_store,
    progress_key,
)


def view(name: str, ttl_seconds: int | None = None, revision: int = 1) -> FeatureView:
    """A view named ``name`` (the store writes whatever values it is given, so it needs no
    features); another ``revision`` gives it another version."""
    return FeatureView(name, "id", "a test view", (), ttl_seconds=ttl_seconds,
                       logic_revision=revision)


@pytest.fixture(autouse=True, params=["script", "mget"])
def read_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Reads of any size take the given way: the script for every key, or MGET first."""
    limit = 1 << 30 if request.param == "script" else 0
    monkeypatch.setattr(basketflow.sinks.online_store, "_SCRIPT_MAX_KEYS", limit)
    return str(request.param)


def test_vectors_of_many_entities_come_back_typed_in_order(settings: Settings) -> None:
    assert settings.redis_url
    store = RedisOnlineStore(connect(settings.redis_url), settings.prefix)
    customer, basket = view("customer"), view("basket", revision=2)
    store.write(customer, {"a": (100, {"spend_1d": 2.5, "orders_1d": 1,
                                       "avg_basket_value_30d": None})})
    store.write(basket, {"a": (101, {"invoice": "536365", "country": "France"})})
    a, missing = store.read_vectors(["customer", "basket"], ["a", "nobody"])
    assert a == {"customer": {"spend_1d": 2.5, "orders_1d": 1, "avg_basket_value_30d": None,
                              "_ts": 100, "_version": customer.version},
                 "basket": {"invoice": "536365", "country": "France", "_ts": 101,
                            "_version": basket.version}}
    assert missing == {"customer": None, "basket": None}
    assert a == {view: store.read(view, "a") for view in ("customer", "basket")}


def test_a_view_ttl_makes_both_its_keys_expire_together(settings: Settings) -> None:
    assert settings.redis_url
    client = connect(settings.redis_url)
    store = RedisOnlineStore(client, settings.prefix)
    store.write(view("basket", ttl_seconds=86_400), {"a": (1, {"lines": 1})})
    store.write(view("customer"), {"a": (1, {"orders_1d": 1})})
    for key in (store.key("basket", "a"), store.packed_key("basket", "a")):
        assert 86_000 < client.ttl(key) <= 86_400
    for key in (store.key("customer", "a"), store.packed_key("customer", "a")):
        assert client.ttl(key) == -1  # no TTL: kept until overwritten


def test_a_vector_read_never_serves_a_view_past_its_ttl(settings: Settings) -> None:
    assert settings.redis_url
    store = RedisOnlineStore(connect(settings.redis_url), settings.prefix)
    customer, basket = view("customer"), view("basket", ttl_seconds=1)
    store.write(customer, {"a": (5, {"orders_1d": 1})})
    store.write(basket, {"a": (5, {"lines": 1})})
    assert store.read_vectors(["basket"], ["a"])[0]["basket"] == {
        "lines": 1, "_ts": 5, "_version": basket.version}
    time.sleep(1.1)
    assert store.read_vectors(["customer", "basket"], ["a"])[0] == {
        "customer": {"orders_1d": 1, "_ts": 5, "_version": customer.version}, "basket": None}


def test_values_of_an_older_version_are_never_served_under_a_newer_one(
        settings: Settings) -> None:
    assert settings.redis_url
    store = RedisOnlineStore(connect(settings.redis_url), settings.prefix)
    old, new = view("customer"), view("customer", revision=2)
    store.write(old, {"a": (1, {"spend_1d": 1.0, "dropped": 7})})
    store.write(new, {"a": (2, {"spend_1d": 3.0})})
    assert store.read_vectors(["customer"], ["a"])[0]["customer"] == {
        "spend_1d": 3.0, "_ts": 2, "_version": new.version}


def test_a_store_written_before_packed_values_existed_is_read_from_its_hashes(
        settings: Settings) -> None:
    assert settings.redis_url
    client = connect(settings.redis_url)
    store = RedisOnlineStore(client, f"{settings.prefix}:é")  # keys are bytes to the script
    customer = view("customer")
    store.write(customer, {"a": (1, {"orders_1d": 1}), "b": (1, {"orders_1d": 2})})
    store.write_scores([ScoreRow("a", "536365", 1, 4, Score("gifts", {"gifts": 1.0}, "m1", 1))])
    client.delete(store.packed_key("customer", "a"), store.packed_key("score", "a"))
    a, b = store.read_vectors(["customer", "score"], ["a", "b"])
    assert a == {"customer": {"orders_1d": 1, "_ts": 1, "_version": customer.version},
                 "score": {"category": "gifts", "probabilities": {"gifts": 1.0},
                           "model_version": "m1", "invoice": "536365", "seq": 4, "_ts": 1,
                           "_version": "m1"}}
    assert b == {"customer": {"orders_1d": 2, "_ts": 1, "_version": customer.version},
                 "score": None}


def test_thousands_of_entities_in_one_call(settings: Settings) -> None:
    assert settings.redis_url
    store = RedisOnlineStore(connect(settings.redis_url), settings.prefix)
    entities = [str(i) for i in range(4500)]
    store.write(view("customer"), {e: (int(e), {"n": int(e)}) for e in entities[::2]})
    vectors = store.read_vectors(["customer", "basket"], entities)  # 9,000 keys
    assert [v["customer"] and v["customer"]["n"] for v in vectors] == [
        i if i % 2 == 0 else None for i in range(4500)]
    assert all(v["basket"] is None for v in vectors)


def test_no_views_or_no_entities_need_no_round_trip(settings: Settings) -> None:
    assert settings.redis_url
    store = RedisOnlineStore(connect(settings.redis_url), settings.prefix)
    assert store.read_vectors([], ["a"]) == [{}]
    assert store.read_vectors(["customer"], []) == []


def test_missing_values_are_read_after_the_server_forgot_the_fallback_script(
        settings: Settings) -> None:
    """A restarted server has no cached scripts: the fallback sends the script itself."""
    assert settings.redis_url
    client = connect(settings.redis_url)
    store = RedisOnlineStore(client, settings.prefix)
    customer, basket = view("customer"), view("basket")
    store.write(customer, {"a": (100, {"spend_1d": 2.5})})
    store.write(basket, {"a": (100, {"lines": 1})})
    client.delete(store.packed_key("basket", "a"))  # read from its hash, by the script
    first = store.read_vectors(["customer", "basket"], ["a"])
    client.script_flush()
    assert store.read_vectors(["customer", "basket"], ["a"]) == first == [
        {"customer": {"spend_1d": 2.5, "_ts": 100, "_version": customer.version},
         "basket": {"lines": 1, "_ts": 100, "_version": basket.version}}]


def test_a_packed_value_written_after_the_mget_is_taken_by_the_fallback(
        settings: Settings) -> None:
    """Between the MGET and the fallback a write may land: the script reads the packed
    value again before it looks at the hash."""
    assert settings.redis_url
    client = connect(settings.redis_url)
    store = RedisOnlineStore(client, settings.prefix)
    keys = [store.packed_key("customer", "a"), store.packed_key("customer", "b")]
    values: list[bytes | None] = [None, None]  # what the MGET found: nothing yet
    customer = view("customer")
    store.write(customer, {"a": (7, {"orders_1d": 3})})
    client.hset(store.key("customer", "a"), "orders_1d", b"99")  # not what is served
    store._fill_missing(keys, values)
    assert msgspec.msgpack.decode(values[0]) == {"orders_1d": 3, "_ts": 7,
                                                 "_version": customer.version}
    assert values[1] == b"\xc0"  # nil: neither a packed value nor a hash


def test_views_and_entities_in_any_number_and_order(settings: Settings) -> None:
    """The reply is framed per entity by the views asked, whatever their number (more
    than a MessagePack fixmap holds), order and repeats."""
    assert settings.redis_url
    store = RedisOnlineStore(connect(settings.redis_url), settings.prefix)
    written = [view(f"v{i}") for i in range(20)]
    views = [v.name for v in written]
    for i, v in enumerate(written):
        store.write(v, {"a": (i, {"i": i})})
    a, b, a_again = store.read_vectors(views[::-1], ["a", "b", "a"])
    assert list(a) == views[::-1] and a == a_again
    assert a == {v.name: {"i": i, "_ts": i, "_version": v.version}
                 for i, v in enumerate(written)}
    assert b == dict.fromkeys(views)


def test_a_registry_view_is_written_with_its_version_and_ttl(settings: Settings) -> None:
    """Callers hand the store the view; its version and TTL come from the registry."""
    assert settings.redis_url
    client = connect(settings.redis_url)
    store: OnlineStore = open_online_store(settings.redis_url, settings.prefix)
    basket, customer = registry()["basket"], registry()["customer"]
    assert basket.ttl_seconds is not None and customer.ttl_seconds is None
    store.write(basket, {"a": (9, {"lines": 2})})
    store.write(customer, {"a": (9, {"orders_1d": 1})})
    assert store.read("basket", "a") == {"lines": 2, "_ts": 9, "_version": basket.version}
    assert store.read_vectors(["customer"], ["a"])[0]["customer"] == {
        "orders_1d": 1, "_ts": 9, "_version": customer.version}
    raw = RedisOnlineStore(client, settings.prefix)
    for key in (raw.key("basket", "a"), raw.packed_key("basket", "a")):
        assert basket.ttl_seconds - 60 < client.ttl(key) <= basket.ttl_seconds
    assert client.ttl(raw.key("customer", "a")) == -1
    store.close()


def test_scores_keep_the_latest_per_entity_under_their_model_version(
        settings: Settings) -> None:
    assert settings.redis_url
    client = connect(settings.redis_url)
    store = RedisOnlineStore(client, settings.prefix)

    def row(entity: str, seq: int, category: str, model: str) -> ScoreRow:
        return ScoreRow(entity, f"inv{seq}", 100 + seq, seq,
                        Score(category, {category: 0.75}, model, 100 + seq))

    store.write_scores([row("a", 1, "gifts", "m1"), row("a", 2, "decor", "m1"),
                        row("b", 1, "gifts", "m2")])
    assert store.read_score("a") == {"category": "decor", "probabilities": {"decor": 0.75},
                                     "model_version": "m1", "invoice": "inv2", "seq": 2,
                                     "_ts": 102, "_version": "m1"}
    assert store.read_score("b")["_version"] == "m2"
    assert store.read_score("nobody") is None
    assert client.exists(store.key("score", "a"), store.packed_key("score", "a")) == 2
    assert client.ttl(store.key("score", "a")) == -1  # scores do not expire


def test_the_flow_progress_hash_and_its_parts(settings: Settings) -> None:
    assert settings.redis_url
    client = connect(settings.redis_url)
    store = RedisOnlineStore(client, settings.prefix)
    assert store.read_progress() == {}
    store.write_progress("", {"offset:tx:0": 5, "events": 5})
    store.write_progress("serve", {"offset:tx:0": 3})
    store.write_progress("", {"events": 6})
    assert store.read_progress() == {"offset:tx:0": "5", "events": "6"}
    assert store.read_progress("serve") == {"offset:tx:0": "3"}
    assert progress_key(settings.prefix, "serve") == f"{settings.prefix}:flow:progress:serve"
    assert client.hgetall(f"{settings.prefix}:flow:progress") == {
        b"offset:tx:0": b"5", b"events": b"6"}


def test_clocks_of_the_progress_hashes_come_in_the_vectors_round_trips(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The event-time clock of each part asked, read with the vectors: no round trip
    more than the vectors alone take, after a script flush too; a part without a clock
    (or without a hash) is left out."""
    assert settings.redis_url
    client = connect(settings.redis_url)
    store = RedisOnlineStore(client, settings.prefix)
    store.write(view("customer"), {"a": (5, {"n": 1})})
    store.write_progress("serve", {"clock": 1_291_191_960, "events": 3})
    store.write_progress("", {"events": 1})
    store.read_vectors(["customer", "basket"], ["a", "b"])  # the script cached, as the
    sent: list[int] = []  # test before this one may have left it: warm, then flushed
    send = basketflow.sinks.online_store.send_pipelined
    monkeypatch.setattr(basketflow.sinks.online_store, "send_pipelined",
                        lambda c, commands: sent.append(len(commands)) or send(c, commands))
    for flush in (False, True):
        sent.clear()
        if flush:
            client.script_flush()
        alone = store.read_vectors(["customer", "basket"], ["a", "b"])
        trips = len(sent)
        if flush:
            client.script_flush()
        vectors, clocks = store.read_vectors_and_clocks(["customer", "basket"], ["a", "b"],
                                                        ["serve", "", "other"])
        assert (vectors, clocks) == (alone, {"serve": 1_291_191_960})
        assert len(sent) == 2 * trips
    assert store.read_vectors_and_clocks([], ["a"], ["serve"]) == ([{}], {"serve": 1_291_191_960})
