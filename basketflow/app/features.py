"""``basketflow features`` and ``score``: the feature registry and live values from the
online store, as typed rows. A read is as of the flow's event-time clock, and computes
its views' request-time features at that time (:func:`read_online`).

``features list`` and ``describe`` read the registry as applied (``basketflow apply``,
:mod:`basketflow.sinks.registry_store`), or the built-in views before any apply:

>>> from pathlib import Path
>>> settings = Settings(Path("/nonexistent"), None, None)
>>> [view.name for view in describe_views(settings).views]
['customer', 'basket', 'product']
>>> describe_view("basket", settings).online
'bf:basket:<customer_id>'
>>> describe_view("nope", settings)
Traceback (most recent call last):
...
basketflow.app.features.UnknownView: unknown view 'nope'; known: customer, basket, product
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import cache
from typing import TYPE_CHECKING, Any

from basketflow.config import Settings
from basketflow.errors import BasketflowError

if TYPE_CHECKING:
    from basketflow.schemas.features import FeatureView, Served
    from basketflow.sinks.registry_store import AppliedView
    from basketflow.sinks.online_store import OnlineStore

TS_FIELD, VERSION_FIELD = "_ts", "_version"
"""Where a stored value keeps its event time and version (see basketflow.sinks.online_store)."""
#: Where a read's as-of time comes from (:class:`OnlineFeatures`).
CLOCK, VALUES = "clock", "values"


class UnknownView(BasketflowError, ValueError):
    """A feature view that is not in the registry; the message lists the known ones."""


class UnknownFeature(BasketflowError, ValueError):
    """A ``view:feature`` name whose view has no such feature; the message lists its
    features."""


@dataclass(frozen=True)
class ViewDescription:
    """Everything about a feature view: what ``features list`` and ``describe`` show,
    each feature with its kind (windowed, stored or request-time: see
    :mod:`basketflow.schemas.features`)."""

    name: str
    entity: str
    version: str
    description: str
    windows_days: tuple[int, ...]
    ttl_seconds: int | None
    online: str
    offline: str
    features: tuple[Served, ...]
    kinds: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``, in field order; each feature with its ``kind`` (and
        a request-time one with its ``source``).

        >>> from pathlib import Path
        >>> info = describe_view("customer", Settings(Path("/nonexistent"), None, None)).to_json()
        >>> next(f for f in info["features"] if f["name"] == "days_since_last_purchase")
        {'name': 'days_since_last_purchase', 'kind': 'request-time', 'dtype': 'float', \
'description': "days from the latest purchase to the read's as-of time", 'source': 'last_purchase'}
        """
        return {**{name: getattr(self, name) for name in (
            "name", "entity", "version", "description")},
            "windows_days": list(self.windows_days), "ttl_seconds": self.ttl_seconds,
            "online": self.online, "offline": self.offline,
            "features": [{"name": f.name, "kind": self.kinds[f.name]} | asdict(f)
                         for f in self.features]}


@dataclass(frozen=True)
class FeatureRow:
    """One view's values of one entity, as the online store holds them: the values, the
    event time they are as of (epoch seconds) and the view's version they were computed
    with."""

    view: str
    entity: str
    values: dict[str, Any]
    event_time: int | None
    version: str | None

    def to_json(self) -> dict[str, Any]:
        """The stored mapping again: values, then ``_ts`` and ``_version``.

        >>> FeatureRow("basket", "17850", {"lines": 3}, 1291191960, "1a2b3c4d").to_json()
        {'lines': 3, '_ts': 1291191960, '_version': '1a2b3c4d'}
        """
        stamps = {TS_FIELD: self.event_time, VERSION_FIELD: self.version}
        return self.values | {k: v for k, v in stamps.items() if v is not None}


@dataclass(frozen=True)
class OnlineFeatures:
    """Some views of one entity, as of one time; a view the store has no values for maps
    to None.

    ``as_of`` (epoch seconds) is the time the read answers for, and its request-time
    features are computed at: the flow's event-time clock (``as_of_from`` is
    :data:`CLOCK`), or the newest event time of the entity's values read where that is
    later or no flow has recorded a clock (only a backfill wrote the values;
    :data:`VALUES`); None when the store has no values of the entity.
    """

    entity: str
    views: dict[str, FeatureRow | None]
    as_of: int | None
    as_of_from: str | None

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``: ``{"entity": ..., "as_of": ..., "as_of_from":
        ..., "views": {view: values or null}}``."""
        return {"entity": self.entity, "as_of": self.as_of, "as_of_from": self.as_of_from,
                "views": {v: row.to_json() if row else None for v, row in self.views.items()}}


@dataclass(frozen=True)
class LiveScore:
    """A customer's live category score: the most likely category, every category's
    probability, the model version, and the basket and event time it was scored at."""

    customer: str
    category: str
    probabilities: dict[str, float]
    model_version: str
    invoice: str
    seq: int
    event_time: int

    @classmethod
    def from_stored(cls, customer: str, stored: Mapping[str, Any]) -> LiveScore:
        """A score from the online store's mapping (see OnlineScoreSink)."""
        return cls(customer, stored["category"], stored["probabilities"],
                   stored["model_version"], stored["invoice"], stored["seq"], stored[TS_FIELD])

    def to_json(self) -> dict[str, Any]:
        """The stored mapping again (its version is the model's)."""
        return {"category": self.category, "probabilities": self.probabilities,
                "model_version": self.model_version, "invoice": self.invoice,
                "seq": self.seq, TS_FIELD: self.event_time, VERSION_FIELD: self.model_version}


#: The views a read knows, by name (None: the built-in views).
Views = Mapping[str, "FeatureView"]


def _registry() -> dict[str, FeatureView]:
    from basketflow.schemas.features import registry
    return registry()


def served_views(settings: Settings) -> dict[str, FeatureView]:
    """The views a read of ``settings``' online store serves: the built-in ones, and the
    feature repository's own (the live flow computes them once applied)."""
    if settings.feature_repository is None:
        return _registry()
    from basketflow.app.registry import repository_views
    return repository_views(settings)[0]


def feature_view(name: str, views: Views | None = None) -> FeatureView:
    """The view called ``name`` of ``views`` (None: the built-in ones);
    :class:`UnknownView` if there is none."""
    known = _registry() if views is None else views
    if name not in known:
        raise UnknownView(f"unknown view {name!r}; known: {', '.join(known)}")
    return known[name]


def check_views(names: Sequence[str], settings: Settings | None = None,
                known: Views | None = None) -> None:
    """Raise :class:`UnknownView`, naming each one, if any of ``names`` is not a view:
    of ``known``, else of those ``settings`` serves (:func:`served_views`), else of the
    built-in ones."""
    if known is None:
        known = _registry() if settings is None else served_views(settings)
    unknown = [v for v in names if v not in known]
    if unknown:
        raise UnknownView(f"unknown view(s) {', '.join(unknown)}; known: {', '.join(known)}")


def describe(view: FeatureView, prefix: str) -> ViewDescription:
    """A view's description, its online keys under ``prefix`` and its feature log's files
    as the offline store lays them out."""
    from basketflow.sinks.offline_layout import feature_log_pattern
    return ViewDescription(view.name, view.entity, view.version, view.description,
                           view.windows_days, view.ttl_seconds, view.online_key(prefix),
                           feature_log_pattern(view.name), view.features, view.kinds)


@dataclass(frozen=True)
class RegistryListing:
    """The registry's views, described, and where they come from: the registry file and
    when it was applied (None: never, the built-in views)."""

    views: list[ViewDescription]
    registry: str
    applied_at: int | None


def describe_views(settings: Settings) -> RegistryListing:
    """Every view of the registry as applied, described."""
    from basketflow.sinks.registry_store import read_registry, registry_path
    applied = read_registry(settings.offline_dir)
    path = str(registry_path(settings.offline_dir))
    if applied is None:
        return RegistryListing([describe(view, settings.prefix)
                                for view in _registry().values()], path, None)
    return RegistryListing([_applied(view, settings.prefix) for view in applied.views.values()],
                           path, applied.applied_at)


def _applied(view: AppliedView, prefix: str) -> ViewDescription:
    """The description of a view as the registry file recorded it."""
    from basketflow.schemas.feature_view import Feature, RequestTimeFeature, online_key
    from basketflow.sinks.offline_layout import feature_log_pattern
    d = view.definition
    features = (tuple(Feature(**f) for f in d["features"])
                + tuple(RequestTimeFeature(**f) for f in d.get("request_time", ())))
    return ViewDescription(view.name, d["entity"], view.version, d["description"],
                           tuple(d["windows_days"]), d["ttl_seconds"],
                           online_key(prefix, view.name, d["entity"]),
                           feature_log_pattern(view.name), features, view.kinds)


def describe_view(name: str, settings: Settings) -> ViewDescription:
    """One view of the registry as applied, described; :class:`UnknownView` if there is
    none called ``name``."""
    views = {view.name: view for view in describe_views(settings).views}
    if name not in views:
        raise UnknownView(f"unknown view {name!r}; known: {', '.join(views)}")
    return views[name]


def customer_views(views: Views | None = None) -> tuple[str, ...]:
    """The views keyed by customer id of ``views`` (None: the built-in ones): what
    ``features ENTITY`` shows by default."""
    known = _registry() if views is None else views
    return tuple(n for n, v in known.items() if v.entity == "customer_id")


def online_store(settings: Settings) -> OnlineStore:
    """The online store of resolved ``settings``."""
    from basketflow.sinks.online_store import open_online_store
    assert settings.redis_url, "resolve addresses first"
    return open_online_store(settings.redis_url, settings.prefix)


@cache
def clock_parts(view: str) -> tuple[str, ...]:
    """The flow's progress hashes whose clock a view's values are as of, the first that
    has one: the serve part folds the views of customers (and scores them), and writes
    its own hash when it runs alone, else the whole flow's; the store part folds the
    products, in the whole flow's.

    >>> clock_parts("customer"), clock_parts("score"), clock_parts("product")
    (('serve', ''), ('serve', ''), ('',))
    """
    from basketflow.flows.progress import SERVE_PROGRESS
    return ("",) if view in _registry() and view not in customer_views() \
        else (SERVE_PROGRESS, "")


def read_clock(views: Sequence[str], clocks: Mapping[str, int]) -> int | None:
    """The event-time clock a read of ``views`` is as of, from the clocks of the
    progress hashes that have one: per view, that of its first part that has one
    (:func:`clock_parts`); of several views, the oldest (every view's values are known
    up to it); None when a view's parts have none (no flow has run).

    >>> read_clock(["customer", "basket"], {"serve": 90, "": 100})
    90
    >>> read_clock(["customer", "product"], {"": 100}), read_clock(["customer"], {})
    (100, None)
    """
    oldest: int | None = None
    for view in views:
        found = [clocks[part] for part in clock_parts(view) if part in clocks]
        if not found:
            return None
        oldest = found[0] if oldest is None else min(oldest, found[0])
    return oldest


def serve_vector(entity: str, stored: Mapping[str, Mapping[str, Any] | None],
                 clock: int | None, at_read: Mapping[str, FeatureView]) -> OnlineFeatures:
    """An entity's stored values per view (as the online store reads them) as rows, with
    the request-time features of the views in ``at_read`` computed at the read's as-of
    time: ``clock`` (the flow's event-time clock), or the newest event time of the values
    where that is later or there is no clock (the flow records its clock after each
    batch, and a backfill records none).

    >>> at_read = {"customer": feature_view("customer")}
    >>> stored = {"customer": {"last_purchase": 0, "_ts": 0, "_version": "v"}}
    >>> read = serve_vector("17850", stored, 86_400 * 40, at_read)
    >>> read.as_of, read.as_of_from, read.views["customer"].values["days_since_last_purchase"]
    (3456000, 'clock', 40.0)
    >>> serve_vector("17850", stored, None, at_read).as_of_from
    'values'
    """
    newest = max((v.get(TS_FIELD, 0) for v in stored.values() if v), default=None)
    as_of, source = clock, CLOCK
    if newest is not None and (clock is None or newest > clock):
        as_of, source = newest, VALUES
    rows: dict[str, FeatureRow | None] = {}
    for view, values in stored.items():
        if not values:
            rows[view] = None
            continue
        served = at_read.get(view)
        values = served.served(values, as_of) if served and as_of is not None \
            else dict(values)
        rows[view] = FeatureRow(view, entity, values, values.pop(TS_FIELD, None),
                                values.pop(VERSION_FIELD, None))
    return OnlineFeatures(entity, rows, as_of, source if as_of is not None else None)


def read_online(store: OnlineStore, entities: Sequence[str],
                views: Sequence[str], known: Views | None = None) -> list[OnlineFeatures]:
    """The given views of each entity, as of the flow's event-time clock
    (:func:`read_clock`; without one, as of each entity's newest values), in one round
    trip (views are not checked here); ``known`` defines them (None: the built-in
    views)."""
    parts, at_read = _read_plan(tuple(views)) if known is None \
        else _plan(tuple(views), known)
    vectors, clocks = store.read_vectors_and_clocks(views, entities, parts)
    clock = read_clock(views, clocks)
    return [serve_vector(entity, vector, clock, at_read)
            for entity, vector in zip(entities, vectors)]


@cache
def _read_plan(views: tuple[str, ...]) -> tuple[tuple[str, ...], dict[str, FeatureView]]:
    """:func:`_plan` of built-in views, worked out once per set of views.

    >>> _read_plan(("customer", "basket"))
    (('serve', ''), {'customer': FeatureView(name='customer', ...)})
    """
    return _plan(views, _registry())


def _plan(views: tuple[str, ...], known: Views,
          ) -> tuple[tuple[str, ...], dict[str, FeatureView]]:
    """What a read of ``views`` (defined in ``known``) needs besides their values: the
    progress parts whose clocks it reads, and its views that have request-time
    features."""
    parts = tuple(dict.fromkeys(part for view in views for part in clock_parts(view)))
    return parts, {view: known[view] for view in views
                   if view in known and known[view].request_time_features}


def wanted_features(features: Sequence[str], views: Views | None = None,
                    ) -> dict[str, tuple[str, ...] | None]:
    """``view`` or ``view:feature`` names -> the features asked per view (None: all),
    views in first-asked order; :class:`UnknownView` or :class:`UnknownFeature` for a
    name ``views`` (None: the built-in ones) do not have.

    >>> wanted_features(["basket:value", "customer", "basket:lines"])
    {'basket': ('value', 'lines'), 'customer': None}
    >>> wanted_features(["basket:nope"])
    Traceback (most recent call last):
    ...
    basketflow.app.features.UnknownFeature: unknown feature 'basket:nope'; basket has: ...
    """
    wanted: dict[str, list[str] | None] = {}
    for name in features:
        view, _, feature = name.partition(":")
        known = feature_view(view, views).feature_names
        if feature and feature not in known:
            raise UnknownFeature(f"unknown feature {name!r}; {view} has: {', '.join(known)}")
        if not feature:
            wanted[view] = None
        elif (names := wanted.setdefault(view, [])) is not None:
            names.append(feature)
    return {view: None if names is None else tuple(names) for view, names in wanted.items()}


def _only(row: FeatureRow | None, names: tuple[str, ...] | None) -> FeatureRow | None:
    """A row with only the named values (None: all of them)."""
    if row is None or names is None:
        return row
    return replace(row, values={name: row.values.get(name) for name in names})


def read_selected(store: OnlineStore, entities: Sequence[str],
                  features: Sequence[str] | Mapping[str, tuple[str, ...] | None],
                  views: Views | None = None) -> list[OnlineFeatures]:
    """The features named (``view`` or ``view:feature``, or what :func:`wanted_features`
    made of such names) of each entity, in one read (:func:`read_online`): each row per
    view holds only the values asked; ``views`` defines them (None: the built-in
    views)."""
    wanted = features if isinstance(features, Mapping) else wanted_features(features, views)
    found = read_online(store, list(entities), list(wanted), views)
    return [OnlineFeatures(row.entity, {view: _only(row.views[view], names)
                                        for view, names in wanted.items()},
                           row.as_of, row.as_of_from)
            for row in found]


def online_features(settings: Settings, entity: str,
                    views: Sequence[str] = ()) -> OnlineFeatures:
    """The live values of one entity: the given views (checked against the registry), by
    default the customer's. ``settings`` must have Redis's address."""
    return many_online_features(settings, [entity], views)[0]


def many_online_features(settings: Settings, entities: Sequence[str],
                         views: Sequence[str] = ()) -> list[OnlineFeatures]:
    """The live values of many entities, in one read: the given views (the built-in
    ones and the feature repository's own: :func:`served_views`), by default those
    keyed by customer. ``settings`` must have Redis's address."""
    known = served_views(settings)
    check_views(views, known=known)
    return read_online(online_store(settings), list(entities),
                       list(views or customer_views(known)), known)


@dataclass(frozen=True)
class KnownEntity:
    """An entity the online store has values of: its id and their event time."""

    entity: str
    event_time: int

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {"entity": self.entity, "_ts": self.event_time}


def latest_entities(settings: Settings, view: str = "customer",
                    limit: int = 10) -> list[KnownEntity]:
    """Up to ``limit`` entities of ``view`` with values in the online store, the most
    recent (by the event time of their values) first: ids that ``basketflow features``
    can show right now. From the online store rather than the offline feature log, which
    also holds ids that were only backfilled (``backfill`` without ``--materialize``) and
    baskets whose online values have expired. ``settings`` must have Redis's address."""
    feature_view(view, served_views(settings))
    store = online_store(settings)
    try:
        return [KnownEntity(e, ts) for e, ts in store.latest_entities(view, limit)]
    finally:
        store.close()


def live_score(settings: Settings, customer_id: str) -> LiveScore | None:
    """A customer's live score (None: not scored yet). ``settings`` must have Redis's
    address."""
    stored = online_store(settings).read_score(customer_id)
    return None if stored is None else LiveScore.from_stored(customer_id, stored)
