"""One entry object for Python users, as ``from feast import FeatureStore``: the feature
registry, live values and scores from the online store, and point-in-time training sets
from the offline store.

>>> from basketflow import FeatureStore
>>> store = FeatureStore(data_dir="/tmp/basketflow-example", redis_url="redis://localhost:1")
>>> [view.name for view in store.list_feature_views()]
['customer', 'basket', 'product']
>>> store.get_feature_view("basket").entity
'customer_id'
>>> "spend_30d" in store.get_feature_view("customer").feature_names
True

The registry needs no server. Live reads need the online store (Redis): its URL given,
from ``REDIS_URL``, or the server ``basketflow up`` started::

    rows = store.get_online_features(["17850"], ["customer", "basket:value"])
    rows[0].views["customer"].values["spend_30d"], rows[0].as_of
    store.get_score("17850")            # LiveScore, or None before the flow scored it
    store.get_historical_features(entity_df, ["customer:spend_30d"])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from basketflow.app.features import (
    LiveScore,
    OnlineFeatures,
    UnknownView,
    live_score,
    online_store,
    read_selected,
    wanted_features,
)
from basketflow.config import Settings, load_settings

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from basketflow.schemas.features import FeatureView
    from basketflow.sinks.online_store import OnlineStore


class FeatureStore:
    """The feature store of one data directory and one online store.

    ``FeatureStore()`` reads the environment like the command line
    (``BASKETFLOW_DATA_DIR``, ``REDIS_URL``, ``BASKETFLOW_PREFIX``; without ``REDIS_URL``
    the server ``basketflow up`` started); ``FeatureStore(data_dir=..., redis_url=...)``
    says where explicitly. Nothing connects until a live value is read.
    """

    def __init__(self, data_dir: str | Path | None = None, redis_url: str | None = None,
                 *, prefix: str | None = None) -> None:
        settings = load_settings(data_dir)
        self.settings: Settings = replace(settings, redis_url=redis_url or settings.redis_url,
                                          prefix=prefix or settings.prefix)
        self._online: OnlineStore | None = None
        self._views: dict[str, FeatureView] | None = None

    # -------------------------------------------------------------- registry

    def list_feature_views(self) -> list[FeatureView]:
        """Every feature view: name, entity, features, windows, version, TTL; the
        feature repository's own views after the built-in ones."""
        from basketflow.app.registry import repository_views
        return list(repository_views(self.settings)[0].values())

    def get_feature_view(self, name: str) -> FeatureView:
        """The view called ``name`` (built in, or the feature repository's own);
        :class:`~basketflow.app.features.UnknownView` if none."""
        views = {view.name: view for view in self.list_feature_views()}
        if name not in views:
            raise UnknownView(f"unknown view {name!r}; known: {', '.join(views)}")
        return views[name]

    # -------------------------------------------------------------- online

    def _resolved(self) -> Settings:
        """The settings with Redis's address (given, from the environment, or ``up``'s)."""
        if self.settings.redis_url:
            return self.settings
        from basketflow.app.services import REDIS, resolve
        return resolve(self.settings, (REDIS,))

    def _store(self) -> OnlineStore:
        if self._online is None:
            self._online = online_store(self._resolved())
        return self._online

    def get_online_features(self, entities: Sequence[str],
                            features: Sequence[str]) -> list[OnlineFeatures]:
        """The live values of each entity, in order, in one read of the online store.

        ``features`` names whole views (``"customer"``) or single features
        (``"customer:spend_30d"``), built in or the feature repository's own (its files
        read at the first call of this object); each entity's row per view holds the values asked,
        the event time of its stored values and the view's version, or is None where the
        store has none. Each entity's ``as_of`` is the time the read answers for (the
        flow's event-time clock), at which its request-time features
        (``days_since_last_purchase``) are computed. Raises
        :class:`~basketflow.app.features.UnknownView` for an unknown view and
        :class:`~basketflow.app.features.UnknownFeature` (a ValueError) for an unknown
        feature.
        """
        if self._views is None:  # the repository's files run once per store object
            self._views = {view.name: view for view in self.list_feature_views()}
        wanted = wanted_features(features, self._views)  # checked before anything connects
        return read_selected(self._store(), entities, wanted, self._views)

    def get_score(self, customer_id: str) -> LiveScore | None:
        """A customer's live category score (guests: ``guest-<invoice>``); None until the
        flow has scored one of their baskets."""
        return live_score(self._resolved(), customer_id)

    # -------------------------------------------------------------- offline

    def get_historical_features(self, entity_df: pd.DataFrame | pa.Table,
                                features: Sequence[str], *,
                                entity_column: str | Mapping[str, str] | None = None,
                                timestamp_column: str = "timestamp") -> pd.DataFrame:
        """A point-in-time training set: each entity row with the ``"view:feature"``
        values as they were at its timestamp, never after
        (:func:`basketflow.reports.historical.get_historical_features`), of the
        built-in views and the feature repository's own (the project's
        ``feature_repository``)."""
        from basketflow.app.registry import training_views
        from basketflow.reports.historical import get_historical_features
        views, declarations = training_views(self.settings)
        return get_historical_features(self.settings.offline_dir, entity_df, features,
                                       entity_column=entity_column,
                                       timestamp_column=timestamp_column, views=views,
                                       declarations=declarations)
