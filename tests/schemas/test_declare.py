"""Declared feature views: the built-in views, declared in the default repository, compile
to the registry as it was (same definitions, same versions, so stores written before stay
current) and mean what their state classes compute (the declarations' plain-Python
reference against the customer and product views' states (the generic engine's) and
``BasketState`` on random streams); a user's view compiles with its computation in its version; each bad
declaration is one error naming its file and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from basketflow.features.entity_features import CUSTOMER_ENGINE, PRODUCT_ENGINE
from basketflow.features.feature_state import hour_end
from tests.features.hand_written_basket import BasketState
from basketflow.schemas.declare import DeclarationError, View
from basketflow.schemas.default_repository.basket import basket
from basketflow.schemas.default_repository.customer import customer
from basketflow.schemas.default_repository.product import product
from basketflow.schemas.events import Transaction
from basketflow.schemas.features import registry
from basketflow.schemas.repository import load_repository

HOUR, DAY = 3600, 86_400
START = 1_298_937_600  # 2011-03-01 00:00 UTC
#: The versions of the built-in views before they were declared (main at 65fa39f): the
#: versions of every store written since, which must stay current.
VERSIONS_BEFORE = {"customer": "91ffaaaa", "basket": "e658acc5", "product": "b56a0d32"}


def test_the_built_in_views_keep_their_versions() -> None:
    assert {name: view.version for name, view in registry().items()} == VERSIONS_BEFORE


def test_a_user_view_s_version_digests_its_computation() -> None:
    """Changing only an expression, a filter or a window changes the version."""
    from basketflow.schemas.declare import E, Feature, agg, days

    def view(of: object, where: object, windows: object) -> View:
        return View("spend_view", entity="customer_id", features=[
            Feature("spend", agg.sum(of, where=where), windows=windows)])  # type: ignore[arg-type]

    base = view(E.value, E.is_product, days(7)).compile().version
    assert view(E.quantity * 1.0, E.is_product, days(7)).compile().version != base
    assert view(E.value, ~E.is_product, days(7)).compile().version != base
    assert view(E.value, E.is_product, days(14)).compile().version != base
    assert view(E.value, E.is_product, days(7)).compile().version == base


# ------------------------------------------------------------------ meaning

def line(customer: str | None, n: int, ts: int, invoice: str, quantity: int, cents: int,
         kind: str, code: str) -> Transaction:
    """One line: a product purchase, a cancellation or a non-product (postage) line."""
    cancel = kind == "cancel"
    return Transaction(
        event_id=f"e{n}", invoice=("C" if cancel else "") + invoice,
        stock_code="POST" if kind == "postage" else code,
        description="CHRISTMAS TREE DECORATION" if code == "P1" else "WHITE MUG",
        quantity=-quantity if cancel else quantity, unit_price=cents / 100, ts=ts,
        # a country per invoice, as in the data: the basket's country is its first line's
        # (the state: the first folded in; the declaration: by event order)
        customer_id=customer, country="UK" if int(invoice) % 3 else "France",
        is_cancellation=cancel, is_adjustment=False, is_product=kind != "postage")


spec = st.tuples(
    st.one_of(st.integers(0, 120), st.integers(0, 60 * 24 * 40)),  # minutes after the last
    st.booleans(),                                                 # same invoice as last
    st.integers(1, 5), st.integers(1, 5000),
    st.sampled_from(["buy", "buy", "buy", "cancel", "postage"]),
    st.sampled_from(["P0", "P1", "P2"]), st.sampled_from(["c1", "c2", None]))


@st.composite
def streams(draw: st.DrawFn) -> list[Transaction]:
    """Lines in event-time order."""
    ts, invoice, lines = START, 0, []
    for n, (gap, same, quantity, cents, kind, code, who) in enumerate(
            draw(st.lists(spec, min_size=1, max_size=30))):
        if not (same and lines):
            ts += gap * 60
            invoice += 1
        lines.append(line(who, n, ts, f"{invoice}", quantity, cents, kind, code))
    return lines


@hypothesis_settings(max_examples=150, deadline=None)
@given(streams(), st.integers(0, 100 * 24))
def test_the_customer_declaration_is_what_customer_state_computes(
        events: list[Transaction], later_hours: int) -> None:
    """The customer state: the generic engine's (the hand-written class's rows to the
    bit, ``tests/features/test_builtin_views.py``), its ratio dividing the spend as
    served, as the declaration's reference does."""
    state = CUSTOMER_ENGINE.state()
    for e in events:
        state.update(e)
    as_of = max(e.ts for e in events) + later_hours * HOUR
    computed = state.values(as_of)
    expected = customer.reference(events, as_of)
    assert expected.keys() == computed.keys()
    for name, value in expected.items():
        assert computed[name] == pytest.approx(value, abs=1e-9), name


@hypothesis_settings(max_examples=150, deadline=None)
@given(streams())
def test_the_basket_declaration_is_what_basket_state_computes(
        events: list[Transaction]) -> None:
    state = BasketState()
    for e in events:
        state.update(e)
    expected = basket.reference(events, max(e.ts for e in events))
    if state.invoice is None:  # no purchase line yet: no basket
        assert expected["invoice"] is None
        return
    computed = state.values()
    assert computed.keys() == expected.keys()
    for name, value in expected.items():
        assert computed[name] == pytest.approx(value, abs=1e-9), name


@hypothesis_settings(max_examples=150, deadline=None)
@given(streams(), st.integers(0, 40 * 24))
def test_the_product_declaration_is_what_the_engine_computes(
        events: list[Transaction], later_hours: int) -> None:
    """Of one product's lines, as of an hour end (the view's ``values_at``) or a moment
    inside the next hour (read as of that hour end)."""
    mine = [e for e in events if e.stock_code == events[0].stock_code]
    state = PRODUCT_ENGINE.state()
    for e in mine:
        state.update(e)
    as_of = hour_end(max(e.ts for e in mine) // HOUR + later_hours) + later_hours % 3 * 1_200
    computed = state.values(as_of)
    expected = product.reference(mine, as_of)
    assert computed.keys() == expected.keys()
    for name, value in expected.items():
        assert computed[name] == pytest.approx(value, abs=1e-9), name


# ------------------------------------------------------------------ bad declarations

HEAD = "from basketflow.schemas.declare import *\n"
GOOD_FEATURE = 'Feature("spend", agg.sum(E.value), windows=days(7))'


def repository(tmp_path: Path, body: str, name: str = "mine.py") -> Path:
    """A repository of one file: the imports, then ``body``."""
    (tmp_path / name).write_text(HEAD + textwrap.dedent(body))
    return tmp_path / name


BAD = [
    # (the file's body, the line of the mistake, what the error says after "line N: ")
    ('v = View("v", entity="customer_id", features=[\n'
     '    Feature("spend", agg.sum(E.country))])\n', 3,
     "sum of country: country is a str; sum takes a number"),
    ('v = View("v", entity="customer_id", features=[\n'
     '    Feature("spend", agg.sum(E.price))])\n', 3,
     "E.price: no such event field; the fields are value, quantity, unit_price"),
    ('v = View("v", entity="customer_id", features=[\n'
     '    Feature("spend", agg.sum("value"))])\n', 3,
     "sum('value'): give an expression of event fields (E.value, E.quantity, ...), not a str"),
    ('v = View("v", entity="customer_id", features=[\n'
     '    Feature("n", agg.count(where=E.quantity))])\n', 3,
     "count(..., where=quantity): where takes a condition of event fields"),
    ('v = View("v", entity="customer_id", features=[\n'
     '    Feature("n", agg.count(), windows=days(0))])\n', 3,
     "days(0): each window is a whole number of days > 0, not 0"),
    ('v = View("v", entity="customer_id", features=[\n'
     '    Feature("n", agg.count(), windows=days(7, 7))])\n', 3,
     "days(7, 7): a window is given twice"),
    ('v = View("v", entity="customer_id", features=[\n'
     '    Feature("n", agg.count(), decimals=2)])\n', 3,
     "feature 'n': decimals (a whole number >= 0) round floats; its values are int"),
    ('v = View("v", entity="customer_id", features=[\n'
     '    Feature("spend", agg.sum(E.value, exact=12), decimals=2)])\n', 3,
     "sum of value: exact is a whole number of decimals from 0 to 9, not 12"),
    ('v = View("v", entity="customer_id", features=[\n'
     '    Feature("units", agg.sum(E.quantity, exact=3))])\n', 3,
     "sum of quantity: exact sums a float; quantity is a int, summed exactly already"),
    ('v = View("v", entity="customer_id", features=[\n'
     '    Feature("x", agg.sum(E.value / E.quantity, exact=3), decimals=2)])\n', 3,
     "sum of (value / quantity): (value / quantity): an exact sum takes fields, numbers"),
    ('v = View("v", entity="customer_id", features=[\n'
     '    Feature("x", agg.sum(E.value * E.unit_price, exact=3), decimals=2)])\n', 3,
     "sum of (value * unit_price): (value * unit_price): an exact sum cannot multiply two"),
    ('v = View("v", entity="customer_id", features=[\n'
     '    Feature("spend", agg.sum(E.value, exact=2), decimals=3)])\n', 3,
     "feature 'spend': an exact sum to 2 decimals is read rounded: give decimals from 0 to 2"),
    ('v = View("v", entity="customer_id", features=[\n'
     '    Feature("r", agg.ratio(agg.sum(E.value, exact=3), agg.count()))])\n', 3,
     "ratio(numerator, denominator): a part cannot be an exact sum"),
    ('v = View("v", entity="customer_id", features=[\n'
     '    Feature("Spend Total", agg.count())])\n', 3,
     "'Spend Total' is not a valid name: use lowercase letters, digits and _"),
    ('v = View("v", entity="customer_id", features=[\n'
     f'    {GOOD_FEATURE},\n'
     f'    {GOOD_FEATURE}])\n', 4,
     "view 'v': feature 'spend_7d' is declared twice (also at"),
    ('v = View("v", entity="country", features=[\n'
     f'    {GOOD_FEATURE}])\n', 2,
     "view 'v': entity 'country' is not one of customer_id, stock_code"),
    ('v = View("v", entity="customer_id", features=[\n'
     f'    {GOOD_FEATURE},\n'
     '    DaysSince("days_since_x", source="spend")])\n', 4,
     "DaysSince 'days_since_x': its source 'spend' is not a stored time"),
    ('v = View("v", entity="stock_code", features=[\n'
     '    Feature("n", agg.count(), windows=LATEST_INVOICE)])\n', 3,
     "feature 'n': LATEST_INVOICE is a customer's window"),
    ('v = View("v", entity="stock_code", features=[\n'
     '    Feature("n", agg.count(), windows=CURRENT_INVOICE)])\n', 3,
     "feature 'n': CURRENT_INVOICE is a customer's window"),
    ('v = View("v", entity="customer_id", features=[\n'
     '    Feature("n", agg.count(), windows=LATEST_INVOICE),\n'
     '    Feature("m", agg.count(), windows=CURRENT_INVOICE)])\n', 4,
     "feature 'm': CURRENT_INVOICE and LATEST_INVOICE in one view: declare one kind"),
    ('v = View("v", entity="customer_id", features=[\n'
     '    Feature("s", agg.share(E.value, by=E.country, equals="UK"), windows=days(7))])\n',
     3, "feature 's': a share is over LIFETIME or an invoice's window, not a span of time"),
    ('v = View("v", entity="customer_id", features=[\n'
     '    Feature("s", agg.share(E.value, by=E.country, equals=1))])\n', 3,
     "share of value by country: equals is a str, not 1"),
    ('v = View("v", entity="customer_id", features=[\n'
     '    Feature("s", agg.share(E.country, by=E.country, equals="UK"))])\n', 3,
     "share of country: country is a str; share takes a number"),
    ('v = View("v", entity="customer_id", features=[\n'
     '    Feature("s", agg.ratio(agg.share(E.value, by=E.country, equals="UK"),\n'
     '                           agg.count()))])\n', 3,
     "ratio(numerator, denominator): a part cannot be a share"),
    ('v = View("v", entity="customer_id", features=[\n'
     '    Feature("n", agg.count(where=E.is_product and E.is_cancellation))])\n', 3,
     "is_product is an expression, not a truth value: combine conditions with & | ~"),
    ('v = View("v", entity="customer_id", features=[\n'
     '    Feature("n", agg.sum(E.value + E.country))])\n', 3,
     "(value + country): + takes numbers, not float and str"),
    ('v = View("v", entity="customer_id", features=[])\n', 2,
     "view 'v' declares no features"),
    ('v = View("v", entity="customer_id", features=[\n'
     '    Feature("n", agg.count()),\n', 2, "syntax error: '[' was never closed"),
    ('x = 1 / 0\n', 2, "ZeroDivisionError: division by zero"),
]


@pytest.mark.parametrize(("body", "line_no", "message"), BAD)
def test_a_bad_declaration_is_one_error_naming_its_line(tmp_path: Path, body: str,
                                                        line_no: int, message: str) -> None:
    path = repository(tmp_path, body)
    with pytest.raises(DeclarationError) as caught:
        load_repository(tmp_path)
    assert str(caught.value).startswith(f"{path} line {line_no}: {message}"), str(caught.value)


def test_a_built_in_view_declared_otherwise_is_refused(tmp_path: Path) -> None:
    from basketflow.schemas.default_repository import FILES
    text = FILES[2].read_text().replace("windows=days(1, 7),\n                description="
                                        "\"units sold", "windows=days(1, 14),\n"
                                        "                description=\"units sold")
    assert "days(1, 14)" in text
    (tmp_path / "product.py").write_text(text)
    with pytest.raises(DeclarationError, match=r"product.py line \d+: view 'product' is built "
                                               r"into basketflow .* \(it differs in: units: "
                                               r"sum\(quantity\) over 1d,14d"):
        load_repository(tmp_path)


def test_two_views_of_one_name_and_an_empty_repository(tmp_path: Path) -> None:
    body = f'v = View("v", entity="customer_id", features=[{GOOD_FEATURE}])\n'
    first, second = repository(tmp_path, body, "a.py"), repository(tmp_path, body, "b.py")
    with pytest.raises(DeclarationError, match=f"{second} line 2: view 'v' is declared twice "
                                               f"\\(also at {first} line 2\\)"):
        load_repository(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DeclarationError, match="declares no views"):
        load_repository(empty)
    with pytest.raises(DeclarationError, match="is not a folder"):
        load_repository(tmp_path / "missing")


def test_a_repository_of_the_built_ins_and_a_view_of_its_own(tmp_path: Path) -> None:
    from basketflow.schemas.default_repository import FILES
    for source in FILES:
        (tmp_path / source.name).write_text(source.read_text())
    repository(tmp_path, """\
        xmas = View("customer_xmas", entity="customer_id", features=[
            Feature("xmas_spend",
                    agg.sum(E.value, where=E.product_category == "christmas_seasonal"),
                    windows=days(14) + hours(6), decimals=2),
            Feature("countries", agg.count_distinct(E.country), windows=days(30)),
        ])
        """, "xmas.py")
    loaded = load_repository(tmp_path)
    assert list(loaded.views) == ["customer", "basket", "product", "customer_xmas"]
    assert loaded.own == ("customer_xmas",)
    assert {n: v.version for n, v in loaded.views.items() if n in VERSIONS_BEFORE} \
        == VERSIONS_BEFORE
    own = loaded.views["customer_xmas"]
    assert own.feature_names == ("xmas_spend_14d", "xmas_spend_6h", "countries_30d")
    assert own.kinds["xmas_spend_6h"] == "windowed"
    assert own.depends_on  # it reads product categories: the taxonomy's version


def test_the_readme_s_example_view_loads(tmp_path: Path) -> None:
    """The view README.md shows, as a user would save it, declares what it says."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    example = readme.split("features/christmas.py`:\n\n```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "christmas.py").write_text(example)
    view = load_repository(tmp_path).views["customer_christmas"]
    assert view.feature_names == ("christmas_spend_14d", "christmas_spend_28d",
                                  "christmas_products_14d", "christmas_products_6h",
                                  "last_line", "days_since_last_line")


def test_a_repository_file_may_import_a_helper_of_the_folder(tmp_path: Path) -> None:
    (tmp_path / "_shared.py").write_text(HEAD + "WINDOWS = days(3)\n")
    repository(tmp_path, 'from _shared import WINDOWS\n'
                         'v = View("v", entity="customer_id", features=[\n'
                         '    Feature("n", agg.count(), windows=WINDOWS)])\n')
    assert load_repository(tmp_path).views["v"].feature_names == ("n_3d",)
