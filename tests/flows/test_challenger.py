"""The champion and the challenger in the live flow: the flow starts from the champion
trained from history and registers the versions that continue it; the challenger's
predictions go to the offline shadow score log, marked, and never reach Redis."""

from __future__ import annotations

import json
import random
from datetime import date
from pathlib import Path

import pandas as pd

from basketflow.app.model_registry import promote, train
from basketflow.config import Settings
from basketflow.flows.live import RunOptions, run_live
from basketflow.models.aliases import CHALLENGER, CHAMPION
from basketflow.models.registry import Registry, registry_dir
from basketflow.producers.replay import replay
from basketflow.reports.segments import scoring_config
from basketflow.sinks.online_store import RedisOnlineStore, connect
from tests.labelled_store import labelled


def test_the_challenger_is_scored_in_shadow_and_never_served(
        settings: Settings, tmp_path: Path) -> None:
    assert settings.kafka_bootstrap and settings.redis_url
    source = labelled(settings, tmp_path)
    champion = train(settings, date(2011, 2, 28))
    challenger = train(settings)
    assert champion.promoted and not challenger.promoted
    champion_id, challenger_id = champion.version.version.id, challenger.version.version.id
    promote(settings, challenger_id, CHALLENGER)
    replay(source, settings.kafka_bootstrap, settings.topic, settings.dead_topic)

    stats = run_live(settings, stop_at_end=True, options=RunOptions(),
                     scoring=scoring_config(settings.data_dir))

    served = pd.read_parquet(settings.offline_dir / "scores").drop(columns=["date"])
    shadow = pd.read_parquet(settings.offline_dir / "shadow-scores").drop(columns=["date"])
    assert stats.scores == len(served) > 300
    assert set(shadow["alias"]) == {CHALLENGER}
    assert set(shadow["registry_version"]) == {challenger_id}
    # the challenger predicts every basket update the champion does, differently
    both = served.merge(shadow, on=["entity_id", "seq"], suffixes=("", "_shadow"))
    assert len(both) == len(served) == len(shadow)
    differ = both[both["probabilities"] != both["probabilities_shadow"]]
    assert len(differ) > 0.5 * len(both)
    # Redis holds the champion's latest score of each customer, never the challenger's
    latest = differ.sort_values(["entity_id", "ts", "seq"]).groupby("entity_id").last()
    last_served = served.sort_values(["entity_id", "ts", "seq"]).groupby("entity_id").last()
    store = RedisOnlineStore(connect(settings.redis_url), settings.prefix)
    checked = 0
    for entity in random.Random(2).sample(sorted(latest.index), min(40, len(latest))):
        if last_served.loc[entity, "seq"] != latest.loc[entity, "seq"]:
            continue
        online = store.read("score", entity)
        assert online is not None
        assert online["probabilities"] == json.loads(latest.loc[entity, "probabilities"])
        assert online["probabilities"] != json.loads(
            latest.loc[entity, "probabilities_shadow"])
        checked += 1
    assert checked >= 10
    # the flow went on from the champion: its versions continue it, and the champion
    # followed them
    registry = Registry(registry_dir(settings.data_dir))
    flows = [v for v in registry.versions() if v.lineage.source == "flow"]
    assert flows and flows[0].lineage.parent == champion_id
    assert flows[0].lineage.n_learned == champion.version.version.lineage.n_learned + 100
    # it learnt only the baskets closed after the champion's clock: no more than a model
    # trained on every event
    assert flows[-1].lineage.n_learned <= challenger.version.version.lineage.n_learned
    assert registry.alias(CHAMPION) == flows[-1].id
    assert registry.alias(CHALLENGER) == challenger_id
