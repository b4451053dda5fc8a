"""Feast's point-in-time join over a basketflow feature log, timed: the other side of
``benchmarks/historical_compaction.py``, run by that benchmark with an interpreter that has
Feast installed (Feast pins other versions than basketflow's, so it lives in a virtual
environment of its own: ``python -m venv V && V/bin/pip install 'feast[duckdb]'``).

Reads a JSON request on standard input: the offline store to use (``duckdb``, Feast's
fastest local one, through ibis; or ``file``, its dask one), the label rows' Parquet file,
the views (name, entity column, one Parquet file of its log, features and their dtypes)
and the features asked; sets up a Feast repository in a temporary folder (one
``FileSource`` per view), applies it, then times ``get_historical_features(...).to_df()``
``repeat`` times in this process. What is timed: each call alone (Feast's imports, the
repository's set-up and ``apply`` are not; the first call is reported apart, as it warms
Feast's caches). Prints JSON: the seconds of each call and the number of non-null values
of the last result.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path


def main() -> None:
    import pandas as pd
    from feast import (
        Entity,
        FeatureStore,
        FeatureView,
        Field,
        FileSource,
        RepoConfig,
        ValueType,
    )
    from feast.types import Float64, Int64, String

    request = json.load(sys.stdin)
    types = {"float": Float64, "int": Int64, "epoch_s": Int64, "str": String}
    labels = pd.read_parquet(request["labels"])
    with tempfile.TemporaryDirectory() as tmp:
        store = FeatureStore(config=RepoConfig(
            project="bench", registry=str(Path(tmp) / "registry.db"), provider="local",
            online_store={"type": "sqlite", "path": str(Path(tmp) / "online.db")},
            offline_store={"type": request["offline_store"]},
            entity_key_serialization_version=3))
        objects: list[object] = []
        entities: dict[str, Entity] = {}
        for view in request["views"]:
            key = view["entity"]
            entity = entities.setdefault(key, Entity(name=key, join_keys=[key],
                                                     value_type=ValueType.STRING))
            source = FileSource(name=f"{view['name']}_log", path=view["path"],
                                timestamp_field="ts", field_mapping={"entity_id": key})
            # The join key is in the schema: without it Feast finds no entity column of
            # the view and joins every label row to every log row.
            objects.append(FeatureView(
                name=view["name"], entities=[entity], ttl=timedelta(days=3650),
                schema=[Field(name=key, dtype=String),
                        *(Field(name=f, dtype=types[d]) for f, d in view["features"])],
                source=source))
        store.apply([*entities.values(), *objects])
        seconds = []
        result = pd.DataFrame()
        for _ in range(request["repeat"]):
            start = time.perf_counter()
            result = store.get_historical_features(
                entity_df=labels, features=request["features"]).to_df()
            seconds.append(time.perf_counter() - start)
    asked = [f.split(":", 1)[1] for f in request["features"]]
    json.dump({"seconds": seconds, "rows": len(result),
               "non_null": int(result[[c for c in asked if c in result]].notna().sum().sum())},
              sys.stdout)


if __name__ == "__main__":
    main()
