"""The product taxonomy: rules as data, deterministic, versioned, and covering the catalogue."""

from __future__ import annotations

import csv
import importlib.resources
import importlib.util
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from basketflow.schemas.events import NON_PRODUCT_CODES
from basketflow.schemas.taxonomy import (
    CATEGORY_NAMES,
    DEFAULT_PATH,
    NON_PRODUCT,
    OTHER,
    Category,
    Taxonomy,
    load_taxonomy,
    measure_coverage,
)

COVERAGE_TARGET = 0.90
#: No named category should hold more than this share of revenue (a balanced taxonomy).
MAX_CATEGORY_SHARE = 0.30

MINIMAL = """
version: "test"
categories:
  - name: bags
    label: Bags
    description: Bags.
    patterns: ["BAGS?"]
  - name: decor
    label: Decor
    description: Decor.
    patterns: ["DOORMAT"]
    weak_patterns: ["HEARTS?"]
non_product: {label: Not a product, description: Fees.}
other: {label: Other, description: The rest.}
stock_codes: {}
"""


def write(tmp_path: Path, text: str, name: str = "taxonomy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def minimal_doc() -> dict:
    return yaml.safe_load(MINIMAL)


# ----------------------------------------------------------------------- shape


def test_names_are_unique_and_the_count_is_in_range() -> None:
    tax = load_taxonomy()
    names = [c.name for c in tax.categories]
    assert len(names) == len(set(names))
    assert names[-2:] == [NON_PRODUCT, OTHER]
    assert 8 <= len(names) - 2 <= 15
    assert CATEGORY_NAMES == tuple(names) == tax.names
    for c in tax.categories:
        assert isinstance(c, Category)
        assert c.label.strip() and c.description.strip()


def test_version_is_yaml_version_plus_content_digest() -> None:
    import hashlib

    tax = load_taxonomy()
    data = DEFAULT_PATH.read_bytes()
    declared = str(yaml.safe_load(data)["version"])
    assert tax.version == f"{declared}-{hashlib.sha256(data).hexdigest()[:8]}"


def test_yaml_ships_inside_the_package() -> None:
    packaged = importlib.resources.files("schemas") / "product_categories.yaml"
    assert packaged.is_file()
    assert Path(str(packaged)).resolve() == DEFAULT_PATH.resolve()


def test_explain_lists_every_category_in_order_with_its_rules() -> None:
    tax = load_taxonomy()
    explained = tax.explain()
    assert [e["name"] for e in explained] == list(tax.names)
    for entry in explained:
        assert set(entry) >= {"name", "label", "description", "patterns"}
    by_name = {e["name"]: e for e in explained}
    assert "BAGS?" in by_name["bags_storage"]["patterns"]
    assert by_name[NON_PRODUCT]["patterns"] == [] and by_name[OTHER]["patterns"] == []


# -------------------------------------------------------------- classification


@pytest.mark.parametrize("code", sorted(NON_PRODUCT_CODES) + ["gift_0001_20", "post", "GIFT_0001_40"])
def test_non_product_codes_are_non_product_whatever_the_description(code: str) -> None:
    tax = load_taxonomy()
    assert tax.category_of(code, "POSTAGE") == NON_PRODUCT
    assert tax.category_of(code, "JUMBO BAG RED RETROSPOT") == NON_PRODUCT
    assert tax.category_of(code, "") == NON_PRODUCT


@pytest.mark.parametrize(("description", "expected"), [
    ("JUMBO BAG RED RETROSPOT", "bags_storage"),
    ("LUNCH BAG  BLUE STRIPE.", "bags_storage"),
    ("WHITE HANGING HEART T-LIGHT HOLDER", "candles_lights"),
    ("PAPER CHAIN KIT 50'S CHRISTMAS", "christmas_seasonal"),
    ("FLORAL CAKESTAND 2 TIER", "kitchen_dining"),
    ("SET OF 2 CAKE TINS GINGHAM", "kitchen_dining"),
    ("DOORMAT CUPCAKE DESIGN", "home_decor"),        # a doormat with a cake on it
    ("WHITE HEART OF RATTAN", "home_decor"),          # only a weak word: still decor
    ("TEA PARTY HOT WATER BOTTLE", "bathroom_textiles"),
    ("GINGHAM PARTY BUNTING", "toys_games_party"),
    ("BLUE GLASS HOOP EARRINGS", "jewellery_accessories"),
    ("WATERING CAN YELLOW BUNNY", "garden_outdoor"),
    ("PACK OF 8 OWL GIFT TAGS", "stationery_cards"),
    ("DAISY TEACUP AND SAUCER", "kitchen_dining"),
    ("jumbo bag red retrospot", "bags_storage"),      # case does not matter
])
def test_obvious_descriptions_land_where_a_person_expects(description: str, expected: str) -> None:
    assert load_taxonomy().category_of("10001", description) == expected


def test_empty_or_unknown_description_is_other() -> None:
    tax = load_taxonomy()
    assert tax.category_of("10001", "") == OTHER
    assert tax.category_of("10001", "   ") == OTHER
    assert tax.category_of("10001", "ZZQX FROBNICATOR") == OTHER


def test_patterns_match_whole_words_only(tmp_path: Path) -> None:
    tax = load_taxonomy(write(tmp_path, MINIMAL))
    assert tax.category_of("1", "RED BAG") == "bags"
    assert tax.category_of("1", "BAGS OF FUN") == "bags"
    assert tax.category_of("1", "BAG.") == "bags"
    assert tax.category_of("1", "BAGGAGE LABEL") == OTHER
    assert tax.category_of("1", "HANDBAG") == OTHER


def test_strong_patterns_win_over_weak_ones_whatever_the_order(tmp_path: Path) -> None:
    tax = load_taxonomy(write(tmp_path, MINIMAL))
    assert tax.category_of("1", "HEART DOORMAT") == "decor"
    assert tax.category_of("1", "HEART BAG") == "bags"      # strong BAG beats weak HEART
    assert tax.category_of("1", "HEART") == "decor"          # weak pattern alone


def test_forced_stock_codes_override_the_description(tmp_path: Path) -> None:
    text = MINIMAL.replace("stock_codes: {}", 'stock_codes: {"X123": decor, "y9": other}')
    tax = load_taxonomy(write(tmp_path, text))
    assert tax.category_of("X123", "RED BAG") == "decor"
    assert tax.category_of("x123", "") == "decor"
    assert tax.category_of("Y9", "RED BAG") == OTHER
    assert tax.category_of("POST", "RED BAG") == NON_PRODUCT    # non-product comes first
    assert {"name": "decor"}.items() <= tax.explain()[1].items()
    assert tax.explain()[1]["stock_codes"] == ["X123"]


def test_classification_is_deterministic_across_loads(tmp_path: Path) -> None:
    copy = write(tmp_path, DEFAULT_PATH.read_text(encoding="utf-8"))
    a, b = load_taxonomy(), load_taxonomy(copy)
    assert a is not b and a.version == b.version
    samples = ["JUMBO BAG RED RETROSPOT", "DOORMAT CUPCAKE DESIGN", "SET OF 4 T-LIGHTS SANTA",
               "GINGHAM OVEN GLOVE", "ZZQX", ""]
    assert [a.category_of("1", d) for d in samples] == [b.category_of("1", d) for d in samples]


@settings(max_examples=300, deadline=None)
@given(code=st.text(max_size=12), description=st.text(max_size=60))
def test_any_input_gives_a_known_category_and_cache_agrees(code: str, description: str) -> None:
    tax = load_taxonomy()
    first = tax.category_of(code, description)
    assert first in tax.names
    assert tax.category_of(code, description) == first == tax.classify_uncached(code, description)


# ------------------------------------------------------------------ versioning


def test_version_changes_when_the_file_changes(tmp_path: Path) -> None:
    original = DEFAULT_PATH.read_text(encoding="utf-8")
    a = load_taxonomy(write(tmp_path, original, "a.yaml"))
    b = load_taxonomy(write(tmp_path, original + "\n# a comment changes the bytes\n", "b.yaml"))
    prefix = f"{yaml.safe_load(original)['version']}-"
    assert a.version.startswith(prefix) and b.version.startswith(prefix)
    assert a.version != b.version
    assert a.version == load_taxonomy().version


def test_an_edited_file_is_reloaded(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    before = load_taxonomy(path)
    assert load_taxonomy(path) is before                       # cached
    path.write_text(MINIMAL.replace("DOORMAT", "DOORMATS?"), encoding="utf-8")
    after = load_taxonomy(path)
    assert after.version != before.version
    assert after.category_of("1", "DOORMATS") == "decor"


# ------------------------------------------------------------------- bad files


def _broken(mutate) -> dict:
    doc = minimal_doc()
    mutate(doc)
    return doc


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d["categories"][0].pop("name"), r"category #1: missing 'name'"),
    (lambda d: d["categories"][1].update(name="bags"), r"duplicate category name 'bags'"),
    (lambda d: d["categories"][0].update(patterns=["BAG("]), r"\(bags\): bad regex 'BAG\('"),
    (lambda d: d["categories"][1].update(weak_patterns=["[HEART"]),
     r"\(decor, weak_patterns\): bad regex"),
    (lambda d: d["categories"][0].update(patterns=[]), r"'patterns' must be a non-empty list"),
    (lambda d: d["categories"][0].update(patterns=["bag"]), r"pattern 'bag' must be upper case"),
    (lambda d: d["categories"][0].update(patterns=["BAG", "BAG"]), r"duplicate patterns"),
    (lambda d: d["categories"][0].pop("label"), r"\(bags\): missing 'label'"),
    (lambda d: d["categories"][0].update(name="Bags Storage"), r"lower_snake_case"),
    (lambda d: d["categories"][0].update(name="other"), r"'other' is reserved"),
    (lambda d: d.pop("version"), r"missing 'version'"),
    (lambda d: d.pop("other"), r"missing top-level 'other'"),
    (lambda d: d.update(categories=[]), r"'categories' must be a non-empty list"),
    (lambda d: d.update(stock_codes={"X1": "nope"}), r"stock code 'X1' .* unknown category 'nope'"),
])
def test_malformed_taxonomy_gives_a_clear_value_error(mutate, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Taxonomy(_broken(mutate), "0" * 64, source="t.yaml")


def test_malformed_file_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace('["BAGS?"]', '["BAGS("]'))
    with pytest.raises(ValueError, match=r"t?axonomy\.yaml.*bad regex"):
        load_taxonomy(path)
    with pytest.raises(ValueError, match="not valid YAML"):
        load_taxonomy(write(tmp_path, "categories: [\n", "broken.yaml"))
    with pytest.raises(ValueError, match="expected a mapping at the top level"):
        load_taxonomy(write(tmp_path, "- just\n- a list\n", "list.yaml"))


# -------------------------------------------------------------------- coverage


def _check_coverage(rows) -> None:
    cov = measure_coverage(rows)
    assert cov.lines > 0
    top = cov.top_uncovered(10)
    assert cov.revenue_share >= COVERAGE_TARGET, (
        f"{cov.revenue_share:.2%} of product revenue in a named category; top 'other': {top}")
    for name, revenue in cov.revenue_by_category.items():
        if name != OTHER:
            assert revenue <= MAX_CATEGORY_SHARE * cov.revenue, (
                f"{name} holds {revenue / cov.revenue:.1%} of revenue")


def test_coverage_on_generated_data() -> None:
    if importlib.util.find_spec("basketflow.producers.synthetic") is None:
        pytest.skip("basketflow.producers.synthetic is not there yet")
    from basketflow.producers.synthetic import generate_rows

    _check_coverage(generate_rows(50_000, seed=11))


def test_coverage_on_real_data(real_data: Path) -> None:
    from basketflow.producers.csv_source import open_text

    with open_text(real_data) as (text, _raw):
        reader = csv.reader(text)
        next(reader)
        _check_coverage(reader)


def test_coverage_counts_only_non_cancelled_product_lines() -> None:
    rows = [
        ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
         "CustomerID", "Country"],                                     # header: skipped
        ["1", "10001", "JUMBO BAG RED RETROSPOT", "10", "12/1/2010 8:26", "2.00", "1", "UK"],
        ["1", "99999", "ZZQX FROBNICATOR", "1", "12/1/2010 8:26", "5.00", "1", "UK"],
        ["C2", "10001", "JUMBO BAG RED RETROSPOT", "-10", "12/1/2010 9:00", "2.00", "1", "UK"],
        ["1", "POST", "POSTAGE", "1", "12/1/2010 8:26", "18.00", "1", "UK"],
    ]
    cov = measure_coverage(rows)
    assert (cov.lines, cov.covered_lines, cov.skipped_rows) == (2, 1, 1)
    assert cov.revenue == pytest.approx(25.0) and cov.revenue_share == pytest.approx(0.8)
    assert cov.top_uncovered() == [("ZZQX FROBNICATOR", 5.0)]
