"""``plan`` and ``apply``: the feature repository against the registry as applied (the
built-in views before any apply), what each change needs, the registry file in the
offline store that ``features list`` and ``describe`` read, and runs and backfills
refused while the two disagree, before any server is asked for."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from basketflow.app.features import describe_view, describe_views
from basketflow.app.project import init_project
from basketflow.app.registry import (
    BACKFILL,
    CHANGED,
    NEW,
    NOTHING,
    REMOVED,
    UNCHANGED,
    RegistryOutOfDate,
    apply,
    ensure_applied,
    plan,
)
from basketflow.config import ENV_OF_KEY, Settings, load_settings
from basketflow.schemas.features import registry
from basketflow.sinks.registry_store import RegistryDamaged, registry_path
from tests.cli.commands import basketflow, error_lines, user_env

XMAS = '''\
from basketflow.schemas.declare import E, Feature, View, agg, days

customer_christmas = View(
    name="customer_christmas",
    entity="customer_id",
    description="Spend on Christmas products",
    features=[
        Feature("christmas_spend",
                agg.sum(E.value, where=E.product_category == "christmas_seasonal"),
                windows=days(14), decimals=2, description="Christmas spend, {window}"),
    ],
)
'''

#: A view the generic engine does not compute yet.
LATEST = '''\
from basketflow.schemas.declare import Feature, View, agg, days

last_basket = View(name="last_basket", entity="stock_code", values_at="hour_end",
                   features=[Feature("lines", agg.count(), windows=days(1))])
'''


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A project made by ``init``, its settings read from inside it."""
    for name in ENV_OF_KEY.values():
        monkeypatch.delenv(name, raising=False)
    init_project(tmp_path / "shop")
    return load_settings(cwd=tmp_path / "shop")


def changes(settings: Settings) -> dict[str, tuple[str, str]]:
    """Each view's change and what it needs."""
    return {c.view: (c.change, c.needs) for c in plan(settings).changes}


def test_the_built_in_views_need_no_apply(shop: Settings) -> None:
    assert changes(shop) == dict.fromkeys(registry(), (UNCHANGED, NOTHING))
    ensure_applied(shop)
    ensure_applied(replace(shop, feature_repository=None))  # the demo's case: no project


def test_a_new_view_is_planned_refused_until_applied_then_listed(shop: Settings) -> None:
    assert shop.feature_repository is not None
    (shop.feature_repository / "xmas.py").write_text(XMAS)
    made = plan(shop)
    assert changes(shop)["customer_christmas"] == (NEW, BACKFILL)
    assert made.uncomputed_views == () and made.own_backfill_views == ("customer_christmas",)
    assert made.backfill_views == ("customer_christmas",)
    with pytest.raises(RegistryOutOfDate, match=r"disagree: customer_christmas new; run "
                                                r"`basketflow plan` to see the changes and "
                                                r"`basketflow apply` to record them"):
        ensure_applied(shop)
    assert not registry_path(shop.offline_dir).exists()
    apply(shop, now=lambda: 1_300_000_000)
    assert registry_path(shop.offline_dir).parent.parent == shop.offline_dir
    ensure_applied(shop)
    assert changes(shop)["customer_christmas"] == (UNCHANGED, NOTHING)
    listing = describe_views(shop)
    assert [v.name for v in listing.views] == [*registry(), "customer_christmas"]
    assert listing.applied_at == 1_300_000_000
    info = describe_view("customer_christmas", shop)
    assert [f.name for f in info.features] == ["christmas_spend_14d"]
    assert info.kinds == {"christmas_spend_14d": "windowed"}
    customer = describe_view("customer", shop)
    assert customer.to_json() == describe_view(
        "customer", replace(shop, offline_store=shop.data_dir / "elsewhere")).to_json()


def test_what_each_change_needs(shop: Settings) -> None:
    assert shop.feature_repository is not None
    declared = shop.feature_repository / "xmas.py"
    declared.write_text(XMAS)
    apply(shop)
    declared.write_text(XMAS.replace('"Christmas spend, {window}"', '"spend, {window}"'))
    assert changes(shop)["customer_christmas"] == (CHANGED, NOTHING)
    declared.write_text(XMAS.replace("days(14)", "days(14, 28)"))
    change = next(c for c in plan(shop).changes if c.view == "customer_christmas")
    assert (change.change, change.needs) == (CHANGED, BACKFILL)
    assert change.what == "changed: computed, features, windows_days"
    assert change.old_version != change.new_version
    declared.unlink()
    assert changes(shop)["customer_christmas"] == (REMOVED, NOTHING)


def test_plan_shows_a_change_of_expectations_and_apply_records_it(shop: Settings,
                                                                 tmp_path: Path) -> None:
    assert shop.project_file is not None
    env = {k: v for k, v in user_env(tmp_path / "unused").items()
           if k not in ENV_OF_KEY.values()}
    assert plan(shop).expectations == ()
    text = shop.project_file.read_text()
    shop.project_file.write_text(text.replace("guest_share: {max_share: 0.4}",
                                              "guest_share: {max_share: 0.25}"))
    tighter = load_settings(cwd=shop.project_file.parent)
    assert plan(tighter).expectations == ("guest_share.max_share: 0.4 -> 0.25",)
    assert not plan(tighter).differs
    ensure_applied(tighter)  # the report checks the project's values: nothing refused
    apply(tighter)
    assert plan(tighter).expectations == ()
    assert plan(shop).expectations == ("guest_share.max_share: 0.25 -> 0.4",)
    shown = basketflow("plan", env=env, cwd=shop.project_file.parent)
    assert shown.returncode == 0, shown.stderr
    assert "expectation guest_share.max_share: 0.25 -> 0.4" not in shown.stdout
    shop.project_file.write_text(text)
    shown = basketflow("plan", env=env, cwd=shop.project_file.parent)
    assert "expectation guest_share.max_share: 0.25 -> 0.4\nto record it: basketflow " \
           "apply" in shown.stdout


def test_a_damaged_registry_is_one_error_saying_how_to_rewrite_it(shop: Settings) -> None:
    apply(shop)
    registry_path(shop.offline_dir).write_text('{"views": [')
    with pytest.raises(RegistryDamaged, match="cannot be read .*; run `basketflow apply` to "
                                              "write it again"):
        plan(shop)


def test_run_and_backfill_are_refused_before_any_server(tmp_path: Path) -> None:
    init_project(tmp_path / "shop")
    (tmp_path / "shop" / "features" / "xmas.py").write_text(XMAS)
    (tmp_path / "shop" / "features" / "latest.py").write_text(LATEST)
    env = {k: v for k, v in user_env(tmp_path / "unused").items()
           if k not in ENV_OF_KEY.values()}
    for args in (["run", "--stop-at-end"], ["backfill", "--from-offline"]):
        done = basketflow(*args, env=env, cwd=tmp_path / "shop")
        assert done.returncode == 1, done.stderr
        assert len(error_lines(done)) == 1 and "basketflow apply" in error_lines(done)[0]
    shown = basketflow("plan", env=env, cwd=tmp_path / "shop")
    assert shown.returncode == 0 and "customer_christmas" in shown.stdout
    assert "not computed yet: last_basket (the generic engine" in shown.stdout
    applied = basketflow("apply", env=env, cwd=tmp_path / "shop")
    assert "history of customer_christmas: basketflow backfill --views customer_christmas " \
        "--from-offline" in " ".join(applied.stdout.split())
    again = basketflow("plan", "--json", env=env, cwd=tmp_path / "shop")
    assert json.loads(again.stdout)["differs"] is False


def test_the_python_api_of_a_project_has_its_own_views(shop: Settings,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from basketflow import FeatureStore
    from basketflow.app.features import UnknownView
    assert shop.feature_repository is not None
    (shop.feature_repository / "xmas.py").write_text(XMAS)
    monkeypatch.chdir(shop.feature_repository)
    store = FeatureStore()
    assert [v.name for v in store.list_feature_views()] == [*registry(), "customer_christmas"]
    assert store.get_feature_view("customer_christmas").feature_names == ("christmas_spend_14d",)
    with pytest.raises(UnknownView, match="known: customer, basket, product, customer_christ"):
        store.get_feature_view("nope")


def test_a_declared_view_is_a_view_reads_know(shop: Settings) -> None:
    from basketflow.app.features import UnknownView, check_views
    assert shop.feature_repository is not None
    (shop.feature_repository / "xmas.py").write_text(XMAS)
    check_views(["customer", "customer_christmas"], shop)
    with pytest.raises(UnknownView, match="unknown view\\(s\\) nope; known: customer, "
                                          "basket, product, customer_christmas"):
        check_views(["nope"], shop)
    with pytest.raises(UnknownView, match="unknown view\\(s\\) customer_christmas"):
        check_views(["customer_christmas"])  # without settings: the built-in views
