"""What a feature view is: its features (plain, windowed, request-time), its entity, TTL
and version. The views themselves are declared in a feature repository
(:mod:`basketflow.schemas.declare`) and listed by :mod:`basketflow.schemas.features`.

Its version is a digest of its definition (and of the product taxonomy for views that
use it), so it changes whenever the definition does, and values written under an older
version are never mixed with the new ones (see :mod:`basketflow.schemas.features`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

DAY_SECONDS = 86_400
#: What ``features describe`` calls each kind of feature (see the module docstring).
WINDOWED, STORED, REQUEST_TIME = "windowed", "stored", "request-time"


def days_since(as_of: int, ts: int | None) -> float | None:
    """Days from ``ts`` to ``as_of`` (epoch seconds), rounded to 4 decimals; None when
    there is no ``ts``: what every request-time feature is, online and in training sets.

    >>> days_since(1_291_191_960 + 40 * 86_400 + 3 * 3600, 1_291_191_960)
    40.125
    >>> days_since(1_291_191_960, None) is None
    True
    """
    return None if ts is None else round((as_of - ts) / DAY_SECONDS, 4)


@dataclass(frozen=True)
class Feature:
    """One feature of a view, under the name it is stored and served by."""

    name: str
    dtype: str  # int | float | str | epoch_s
    description: str


@dataclass(frozen=True)
class WindowedFeature:
    """A feature computed over sliding event-time windows, declared once: it is stored
    and served as one :class:`Feature` per window, named by :meth:`name` (``spend`` over
    30 days is ``spend_30d``). Its state class finds each window by its days, and takes
    the names from here.

    >>> spend = WindowedFeature("spend", "float", "value of lines, {window}", (1, 30))
    >>> spend.names
    ('spend_1d', 'spend_30d')
    >>> spend.features()[0].description
    'value of lines, last 1 day'
    """

    stem: str
    dtype: str
    #: What one window's value is: ``{window}`` stands for the window ("last 7 days"),
    #: ``{days}`` for its length in days.
    description: str
    windows_days: tuple[int, ...]
    #: Windows shorter than a day or not whole days, in hours (``spend_6h``), after the
    #: day windows.
    windows_hours: tuple[int, ...] = ()

    def name(self, days: int) -> str:
        """The feature's name over its window of ``days`` days: the one place it is made."""
        if days not in self.windows_days:
            raise KeyError(f"{self.stem} is not declared over {days} days")
        return f"{self.stem}_{days}d"

    def hours_name(self, hours: int) -> str:
        """The feature's name over its window of ``hours`` hours.

        >>> WindowedFeature("spend", "float", "{window}", (), (6,)).hours_name(6)
        'spend_6h'
        """
        if hours not in self.windows_hours:
            raise KeyError(f"{self.stem} is not declared over {hours} hours")
        return f"{self.stem}_{hours}h"

    @property
    def names(self) -> tuple[str, ...]:
        """The feature's names, one per window, in the order of its windows."""
        return (tuple(self.name(days) for days in self.windows_days)
                + tuple(self.hours_name(hours) for hours in self.windows_hours))

    def features(self) -> tuple[Feature, ...]:
        """One :class:`Feature` per window, in the order of its windows."""
        by_days = tuple(Feature(self.name(days), self.dtype, self.description.format(
            days=days, window=f"last {days} day{'s' * (days > 1)}"))
            for days in self.windows_days)
        return by_days + tuple(Feature(self.hours_name(hours), self.dtype,
                                       self.description.format(
                                           days=round(hours / 24, 4),
                                           window=f"last {hours} hour{'s' * (hours > 1)}"))
                               for hours in self.windows_hours)


@dataclass(frozen=True)
class RequestTimeFeature:
    """A feature computed when it is read, never stored: the days from the stored
    feature ``source`` (an ``epoch_s`` of the same view) to the read's as-of time, by
    :func:`days_since` (see the module docstring).

    >>> since = RequestTimeFeature("days_since_x", "float", "days since x", "x")
    >>> since.value({"x": 1_291_191_960}, 1_291_191_960 + 36 * 3600)
    1.5
    """

    name: str
    dtype: str
    description: str
    source: str

    def value(self, stored: Mapping[str, Any], as_of: int) -> float | None:
        """The feature at ``as_of`` from an entity's stored values (None without its
        source)."""
        return days_since(as_of, stored.get(self.source))


#: What a view declares: plain, windowed and request-time features. The stored ones are
#: stored in the order they are declared.
Declaration = Feature | WindowedFeature | RequestTimeFeature
#: A feature as a view serves it.
Served = Feature | RequestTimeFeature


@dataclass(frozen=True)
class FeatureView:
    """A group of features of one entity, computed together by one state class."""

    name: str
    entity: str
    description: str
    declared: tuple[Declaration, ...]
    #: Values older than this are not served: online, the Redis key expires this long
    #: after its last write; in training sets, a value older than this at the label's
    #: time is null.
    ttl_seconds: int | None = None
    depends_on: str = ""  # version of external definitions it uses (the taxonomy)
    logic_revision: int = 1  # bump when the computation changes but the fields do not
    #: What its feature log keeps, when not its features: partial aggregates (tiles) from
    #: which any window is summed when it is read (the product view: see its state class).
    logged: tuple[Feature, ...] = ()
    #: How each feature is computed, one canonical line each, for views the generic
    #: engine computes (declared in a feature repository): part of the version, so a
    #: changed expression, filter or window is a new version. Empty for the built-in
    #: views, whose computation is their state classes' (``logic_revision``).
    computed: tuple[str, ...] = ()

    @property
    def log_features(self) -> tuple[Feature, ...]:
        """The columns of its feature log after the key columns: :attr:`logged`, or else
        its stored features."""
        return self.logged or self.stored_features

    def __post_init__(self) -> None:
        """Every request-time feature's source is a stored ``epoch_s`` feature."""
        times = {f.name for f in self.stored_features if f.dtype == "epoch_s"}
        for f in self.request_time_features:
            if f.source not in times:
                raise ValueError(f"{self.name}: the source of {f.name}, {f.source!r}, is "
                                 "not a stored epoch_s feature of the view")

    @cached_property
    def stored_features(self) -> tuple[Feature, ...]:
        """The stored features, each windowed one once per window, in declaration
        order: the online store's fields and the feature log's columns."""
        return tuple(f for d in self.declared if not isinstance(d, RequestTimeFeature)
                     for f in (d.features() if isinstance(d, WindowedFeature) else (d,)))

    @cached_property
    def request_time_features(self) -> tuple[RequestTimeFeature, ...]:
        """The features computed at read time, in declaration order."""
        return tuple(d for d in self.declared if isinstance(d, RequestTimeFeature))

    @cached_property
    def features(self) -> tuple[Served, ...]:
        """Every feature a read serves: the stored ones, then the request-time ones."""
        return self.stored_features + self.request_time_features

    @cached_property
    def feature_names(self) -> tuple[str, ...]:
        """The served features' names, in :attr:`features` order."""
        return tuple(f.name for f in self.features)

    @property
    def stored_names(self) -> tuple[str, ...]:
        """The stored features' names, in :attr:`stored_features` order."""
        return tuple(f.name for f in self.stored_features)

    @cached_property
    def kinds(self) -> dict[str, str]:
        """Each served feature's kind: windowed, stored or request-time.

        >>> from basketflow.schemas.features import registry
        >>> kinds = registry()["customer"].kinds
        >>> kinds["spend_7d"], kinds["lifetime_spend"], kinds["days_since_last_purchase"]
        ('windowed', 'stored', 'request-time')
        """
        kinds: dict[str, str] = {}
        for d in self.declared:
            if isinstance(d, WindowedFeature):
                kinds.update(dict.fromkeys(d.names, WINDOWED))
            else:
                kinds[d.name] = REQUEST_TIME if isinstance(d, RequestTimeFeature) else STORED
        return {name: kinds[name] for name in self.feature_names}

    def served(self, stored: Mapping[str, Any], as_of: int) -> dict[str, Any]:
        """An entity's stored values with the view's request-time features at ``as_of``
        added (after them): what a read returns.

        >>> from basketflow.schemas.features import registry
        >>> served = registry()["customer"].served({"last_purchase": 0, "x": 1}, 86_400)
        >>> served["x"], served["days_since_last_purchase"], served["days_since_first_purchase"]
        (1, 1.0, None)
        """
        out = dict(stored)
        for f in self.request_time_features:
            out[f.name] = f.value(stored, as_of)
        return out

    @property
    def windows_days(self) -> tuple[int, ...]:
        """Every window any of its features is computed over, shortest first."""
        return tuple(sorted({days for d in self.declared if isinstance(d, WindowedFeature)
                             for days in d.windows_days}))

    @property
    def windows_hours(self) -> tuple[int, ...]:
        """Every window in hours (not whole days) any of its features is computed over."""
        return tuple(sorted({hours for d in self.declared if isinstance(d, WindowedFeature)
                             for hours in d.windows_hours}))

    def windowed(self, stem: str) -> WindowedFeature:
        """The windowed feature declared under ``stem``."""
        found = [d for d in self.declared if isinstance(d, WindowedFeature) and d.stem == stem]
        if not found:
            raise KeyError(f"{self.name} declares no windowed feature {stem!r}")
        return found[0]

    def definition(self) -> dict[str, object]:
        """The definition as stored and served: its stored features one by one (each
        window of a windowed one apart), its request-time features (when it has any),
        its windows, TTL and dependencies."""
        served = {"request_time": [asdict(f) for f in self.request_time_features]}
        return {"name": self.name, "entity": self.entity, "description": self.description,
                "features": [asdict(f) for f in self.stored_features],
                **(served if self.request_time_features else {}),
                "windows_days": list(self.windows_days), "ttl_seconds": self.ttl_seconds,
                "depends_on": self.depends_on, "logic_revision": self.logic_revision,
                **({"logged": [asdict(f) for f in self.logged]} if self.logged else {}),
                **({"windows_hours": list(self.windows_hours)} if self.windows_hours else {}),
                **({"computed": list(self.computed)} if self.computed else {})}

    @property
    def version(self) -> str:
        """A short digest of the definition: changes whenever the definition changes."""
        text = json.dumps(self.definition(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    def online_key(self, prefix: str) -> str:
        """Where an entity's latest values live in Redis."""
        return online_key(prefix, self.name, self.entity)


def online_key(prefix: str, view: str, entity: str) -> str:
    """Where an entity's latest values of ``view`` live in Redis, its entity named.

    >>> online_key("bf", "basket", "customer_id")
    'bf:basket:<customer_id>'
    """
    return f"{prefix}:{view}:<{entity}>"
