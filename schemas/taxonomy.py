"""The product taxonomy: every stock line (stock code + description) -> one product category.

Why: the basket feature view keeps spend shares per product category, customer
segmentation describes customers by what they buy, and the daily report sums revenue by
category. All of them need the same, stable answer for the same line, computed per event in
the stream, so the taxonomy is deterministic, kept as data (``product_categories.yaml``
beside this module), and versioned by the content of that file.

How a line is classified, in this order:

1. ``basketflow.schemas.events.is_product_code`` says it is not merchandise (postage, fees, manual
   lines, discounts, samples, bank charges, vouchers...) -> ``non_product``. The definition
   of "not a product" lives there, in one place, not here.
2. The stock code is forced to a category in the YAML (``stock_codes``) -> that category.
3. The upper-cased description is matched against each category's ``patterns``, in the
   order of the YAML; the first category with a matching pattern wins. These patterns name
   what the product *is* (BAG, DOORMAT, T-LIGHT, HOT WATER BOTTLE, CAKESTAND...).
4. Only when no category's ``patterns`` match: the same again with each category's
   ``weak_patterns``, generic words that often only name a design or theme (HEART, CAKE,
   TEA, BOX, TIN, PARTY...): "DOORMAT CUPCAKE DESIGN" is a doormat, "RECIPE BOX" is kitchenware,
   but "HEART OF RATTAN" is still home decor and "SPOTTY BISCUIT TIN" storage.
5. Nothing matched, or the description is empty -> ``other``.

Patterns are regular expressions matched as whole words or phrases: a pattern never
matches inside a longer word (``BAG`` matches ``JUMBO BAG RED`` but not ``HANDBAG``), and
runs of spaces in the description count as one space.

>>> tax = load_taxonomy()
>>> tax.category_of("10001", "JUMBO BAG RED RETROSPOT")
'bags_storage'
>>> tax.category_of("POST", "POSTAGE")
'non_product'
>>> tax.category_of("99999", "")
'other'
>>> from basketflow.schemas.taxonomy import CATEGORY_NAMES
>>> CATEGORY_NAMES[-2:]
('non_product', 'other')
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from basketflow.schemas.events import is_product_code

#: The taxonomy shipped with the package.
DEFAULT_PATH = Path(__file__).with_name("product_categories.yaml")

NON_PRODUCT = "non_product"
OTHER = "other"
RESERVED = (NON_PRODUCT, OTHER)

#: Category names are identifiers: they become feature names (``share_<name>``) and keys.
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
#: The cache of ``category_of`` is cleared when it reaches this many entries, so a stream of
#: garbage descriptions cannot grow memory without bound (real catalogues have thousands).
_CACHE_LIMIT = 200_000
_SPACES = re.compile(r"\s+")
_ESCAPES = re.compile(r"\\.")

#: The default taxonomy's category names in order (resolved lazily by ``__getattr__``).
CATEGORY_NAMES: tuple[str, ...]


@dataclass(frozen=True)
class Category:
    """One product category: an identifier, a label for people, and what it holds."""

    name: str
    label: str
    description: str


class Decision(NamedTuple):
    """Why a line got its category: which kind of rule decided, and what it matched.

    ``rule`` is one of ``non_product_code``, ``stock_code`` (forced in the YAML),
    ``pattern``, ``weak_pattern``, ``empty_description`` or ``no_match``.
    """

    category: str
    rule: str
    matched: str


class Taxonomy:
    """A loaded taxonomy: ordered categories, their compiled patterns and forced codes.

    Build it with :func:`load_taxonomy`; the constructor takes the already-parsed YAML
    document (a dict) and the digest of its bytes, and raises ``ValueError`` naming the
    problem when the document is malformed.
    """

    version: str
    categories: tuple[Category, ...]

    def __init__(self, document: Any, digest: str, source: str = "<taxonomy>") -> None:
        if not isinstance(document, dict):
            raise ValueError(f"{source}: expected a mapping at the top level, "
                             f"got {type(document).__name__}")
        yaml_version = document.get("version")
        if yaml_version is None or not str(yaml_version).strip():
            raise ValueError(f"{source}: missing 'version'")
        self.version = f"{str(yaml_version).strip()}-{digest[:8]}"
        self.source = source

        raw_categories = document.get("categories")
        if not isinstance(raw_categories, list) or not raw_categories:
            raise ValueError(f"{source}: 'categories' must be a non-empty list")
        categories: list[Category] = []
        strong: list[tuple[str, re.Pattern[str]]] = []
        weak: list[tuple[str, re.Pattern[str]]] = []
        patterns: dict[str, tuple[str, ...]] = {}
        weak_patterns: dict[str, tuple[str, ...]] = {}
        for i, raw in enumerate(raw_categories, start=1):
            where = f"{source}: category #{i}"
            category, pats, weak_pats = _parse_category(raw, where, with_patterns=True)
            if category.name in RESERVED:
                raise ValueError(f"{where}: {category.name!r} is reserved; describe it under "
                                 f"its own top-level key, without patterns")
            if category.name in patterns:
                raise ValueError(f"{where}: duplicate category name {category.name!r}")
            categories.append(category)
            patterns[category.name] = pats
            weak_patterns[category.name] = weak_pats
            strong.append((category.name, _compile(pats, f"{where} ({category.name})")))
            if weak_pats:
                weak.append((category.name,
                             _compile(weak_pats, f"{where} ({category.name}, weak_patterns)")))
        for name in RESERVED:
            raw = document.get(name)
            if raw is None:
                raise ValueError(f"{source}: missing top-level '{name}' (label, description)")
            if isinstance(raw, dict):
                raw = {"name": name, **raw}
            category, _, _ = _parse_category(raw, f"{source}: '{name}'", with_patterns=False)
            if category.name != name:
                raise ValueError(f"{source}: '{name}' has name {category.name!r}")
            categories.append(category)
            patterns[name] = weak_patterns[name] = ()

        forced = document.get("stock_codes") or {}
        if not isinstance(forced, dict):
            raise ValueError(f"{source}: 'stock_codes' must be a mapping of code -> category")
        known = {c.name for c in categories}
        self._forced: dict[str, str] = {}
        for code, name in forced.items():
            if name not in known:
                raise ValueError(f"{source}: stock code {code!r} is forced to unknown "
                                 f"category {name!r}")
            self._forced[str(code).strip().upper()] = name

        self.categories = tuple(categories)
        self._patterns = patterns
        self._weak_patterns = weak_patterns
        # Every strong rule in category order, then every weak rule in category order.
        self._rules = tuple(strong + weak)
        self._n_strong = len(strong)
        self._cache: dict[tuple[str, str], str] = {}

    @property
    def names(self) -> tuple[str, ...]:
        """Category names in order, ending with ``non_product`` and ``other``."""
        return tuple(c.name for c in self.categories)

    def category_of(self, stock_code: str, description: str) -> str:
        """The category name of one stock line.

        Called once per event in the stream, so answers are cached by
        ``(stock_code, description)``: a repeated line costs one dict lookup.
        """
        key = (stock_code, description)
        try:
            return self._cache[key]
        except KeyError:
            pass
        name = self.why(stock_code, description).category
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = name
        return name

    def classify_uncached(self, stock_code: str, description: str) -> str:
        """Like :meth:`category_of` without the cache (for measuring the cold cost)."""
        return self.why(stock_code, description).category

    def why(self, stock_code: str, description: str) -> Decision:
        """The category of one line and the rule that decided it (uncached; for people).

        >>> load_taxonomy().why("10002", "SET OF 2 CAKE TINS GINGHAM")
        Decision(category='kitchen_dining', rule='pattern', matched='CAKE TINS')
        """
        code = (stock_code or "").strip()
        if not is_product_code(code):
            return Decision(NON_PRODUCT, "non_product_code", code)
        forced = self._forced.get(code.upper())
        if forced is not None:
            return Decision(forced, "stock_code", code)
        text = _SPACES.sub(" ", (description or "").upper()).strip()
        if not text:
            return Decision(OTHER, "empty_description", "")
        for i, (name, pattern) in enumerate(self._rules):
            m = pattern.search(text)
            if m:
                return Decision(name, "pattern" if i < self._n_strong else "weak_pattern",
                                m.group(0))
        return Decision(OTHER, "no_match", "")

    def explain(self) -> list[dict[str, Any]]:
        """Per category, in order: name, label, description, patterns, weak patterns and
        forced stock codes.

        What ``basketflow categories`` prints; ``non_product`` and ``other`` have no
        patterns (they are decided by the stock code, or by nothing matching).
        """
        forced_by: dict[str, list[str]] = defaultdict(list)
        for code, name in sorted(self._forced.items()):
            forced_by[name].append(code)
        return [
            {
                "name": c.name,
                "label": c.label,
                "description": c.description,
                "patterns": list(self._patterns[c.name]),
                "weak_patterns": list(self._weak_patterns[c.name]),
                "stock_codes": forced_by.get(c.name, []),
            }
            for c in self.categories
        ]

    def __repr__(self) -> str:
        return f"Taxonomy(version={self.version!r}, categories={len(self.categories)})"


def _parse_category(raw: Any, where: str, *, with_patterns: bool
                    ) -> tuple[Category, tuple[str, ...], tuple[str, ...]]:
    """Check one category entry; return it, its patterns and its weak patterns.

    Raises ValueError naming the problem.
    """
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(raw).__name__}")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{where}: missing 'name'")
    if not _NAME_RE.match(name):
        raise ValueError(f"{where}: name {name!r} must be lower_snake_case")
    for key in ("label", "description"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise ValueError(f"{where} ({name}): missing '{key}'")
    pats: tuple[str, ...] = ()
    weak: tuple[str, ...] = ()
    if with_patterns:
        raw_pats = raw.get("patterns")
        if not isinstance(raw_pats, list) or not raw_pats:
            raise ValueError(f"{where} ({name}): 'patterns' must be a non-empty list")
        raw_weak = raw.get("weak_patterns") or []
        if not isinstance(raw_weak, list):
            raise ValueError(f"{where} ({name}): 'weak_patterns' must be a list")
        for p in [*raw_pats, *raw_weak]:
            if not isinstance(p, str) or not p.strip():
                raise ValueError(f"{where} ({name}): pattern {p!r} is not a non-empty string")
        pats = tuple(_SPACES.sub(" ", p.strip()) for p in raw_pats)
        weak = tuple(_SPACES.sub(" ", p.strip()) for p in raw_weak)
        for p in [*pats, *weak]:
            # Descriptions are upper-cased before matching, so a lower-case letter (outside
            # a regex escape such as \d) could never match: a mistake worth reporting.
            if _ESCAPES.sub("", p) != _ESCAPES.sub("", p).upper():
                raise ValueError(f"{where} ({name}): pattern {p!r} must be upper case "
                                 f"(descriptions are matched upper-cased)")
        seen = Counter([*pats, *weak])
        dupes = sorted(p for p, n in seen.items() if n > 1)
        if dupes:
            raise ValueError(f"{where} ({name}): duplicate patterns {dupes}")
    else:
        for key in ("patterns", "weak_patterns"):
            if raw.get(key):
                raise ValueError(f"{where}: {name!r} takes no '{key}' (it is not decided "
                                 f"by the description)")
    return Category(name=name, label=raw["label"].strip(),
                    description=" ".join(raw["description"].split())), pats, weak


def _compile(patterns: Sequence[str], where: str) -> re.Pattern[str]:
    """One regex for a category: any of its patterns, as a whole word or phrase."""
    for p in patterns:
        try:
            re.compile(p)
        except re.error as exc:
            raise ValueError(f"{where}: bad regex {p!r}: {exc}") from None
    alternation = "|".join(f"(?:{p})" for p in patterns)
    # Word edges: not preceded or followed by a letter or digit. Punctuation such as "'",
    # "-", "." or "+" counts as an edge, so "T-LIGHT" is a word and "BAG." ends at "G".
    return re.compile(f"(?<![A-Z0-9])(?:{alternation})(?![A-Z0-9])")


def load_taxonomy(path: Path | str | None = None) -> Taxonomy:
    """Load (and cache) a taxonomy; default: the YAML shipped beside this module.

    The version is ``"<yaml version>-<first 8 hex of sha256(file bytes)>"``, so it changes
    whenever the file changes, even if someone forgets to bump ``version``. The cache is
    keyed by the file's path, size and modification time, so an edited file is reloaded.
    Raises ``ValueError`` naming the problem for a malformed file.
    """
    p = Path(path) if path is not None else DEFAULT_PATH
    p = p.resolve()
    st = p.stat()
    return _load(p, st.st_mtime_ns, st.st_size)


#: PyYAML's safe loader in C (libyaml) where the wheel has it, much faster than the
#: pure-Python one: every flow process loads the shipped taxonomy as it starts.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@lru_cache(maxsize=16)
def _load(path: Path, mtime_ns: int, size: int) -> Taxonomy:
    data = path.read_bytes()
    loader = _SAFE_LOADER(data)
    try:
        document = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    return Taxonomy(document, hashlib.sha256(data).hexdigest(), source=str(path))


# --------------------------------------------------------------------------- coverage


@dataclass
class Coverage:
    """How much of a set of invoice lines a taxonomy puts in named categories.

    Counted over product lines only (``is_product_code`` true) that are not cancellations
    (invoice not starting with ``C``); revenue is quantity x unit price.
    """

    lines: int = 0
    covered_lines: int = 0
    revenue: float = 0.0
    covered_revenue: float = 0.0
    revenue_by_category: dict[str, float] = field(default_factory=dict)
    lines_by_category: dict[str, int] = field(default_factory=dict)
    uncovered: dict[str, float] = field(default_factory=dict)  # description -> revenue
    skipped_rows: int = 0
    #: Revenue placed by a weak pattern only (a generic word such as HEART, BOX, WOODEN).
    weak_revenue: float = 0.0

    @property
    def revenue_share(self) -> float:
        """Share of product revenue in a named category (not ``other``)."""
        return self.covered_revenue / self.revenue if self.revenue else 0.0

    @property
    def line_share(self) -> float:
        """Share of product lines in a named category (not ``other``)."""
        return self.covered_lines / self.lines if self.lines else 0.0

    def top_uncovered(self, n: int = 15) -> list[tuple[str, float]]:
        """The ``n`` descriptions left in ``other`` with the most revenue."""
        return sorted(self.uncovered.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def measure_coverage(rows: Iterable[Sequence[str]], taxonomy: Taxonomy | None = None
                     ) -> Coverage:
    """Coverage of Kaggle-format rows (8 strings: InvoiceNo, StockCode, Description,
    Quantity, InvoiceDate, UnitPrice, CustomerID, Country). A header row or a row whose
    quantity or price is not a number is counted in ``skipped_rows``."""
    tax = taxonomy or load_taxonomy()
    cov = Coverage()
    by_cat: dict[str, float] = defaultdict(float)
    lines_by: dict[str, int] = defaultdict(int)
    uncovered: dict[str, float] = defaultdict(float)
    decisions: dict[tuple[str, str], Decision] = {}
    for row in rows:
        try:
            invoice, code, desc, qty, _, price = row[:6]
            revenue = float(qty) * float(price)
        except (ValueError, TypeError):
            cov.skipped_rows += 1
            continue
        if invoice.startswith("C") or not is_product_code(code):
            continue
        key = (code, desc)
        decision = decisions.get(key)
        if decision is None:
            decision = decisions[key] = tax.why(code, desc)
        name = decision.category
        if decision.rule == "weak_pattern":
            cov.weak_revenue += revenue
        cov.lines += 1
        cov.revenue += revenue
        by_cat[name] += revenue
        lines_by[name] += 1
        if name == OTHER:
            uncovered[_SPACES.sub(" ", desc.strip().upper())] += revenue
        else:
            cov.covered_lines += 1
            cov.covered_revenue += revenue
    cov.revenue_by_category = dict(by_cat)
    cov.lines_by_category = dict(lines_by)
    cov.uncovered = dict(uncovered)
    return cov


def __getattr__(name: str) -> Any:
    """``CATEGORY_NAMES``: the default taxonomy's names in order, loaded on first use."""
    if name == "CATEGORY_NAMES":
        return load_taxonomy().names
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
