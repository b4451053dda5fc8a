"""Feast's point-in-time join over a basketflow feature log, timed: the other side of
``benchmarks/historical_compaction.py``, run by that benchmark with an interpreter that has
Feast installed (Feast pins an older pandas than basketflow's, so it lives in a virtual
environment of its own: ``python -m venv V && V/bin/pip install feast``).

Reads a JSON request on standard input: the offline root, the label rows' Parquet file,
the views (name, entity column, features and their dtypes) and the features asked; sets
up a Feast repository in a temporary folder (file offline store, one ``FileSource`` per
view over its feature-log folder), applies it, then times
``get_historical_features(...).to_df()`` ``repeat`` times. Prints JSON: the seconds of
each call and the number of non-null values of the last result.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

#: Feast's offline store: its DuckDB one (through ibis), the fastest of its local ones
#: here; its "file" one (dask) was slower by orders of magnitude.
OFFLINE_STORE = "duckdb"


def main() -> None:
    import pandas as pd
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig
    from feast.types import Float64, Int64, String

    request = json.load(sys.stdin)
    types = {"float": Float64, "int": Int64, "epoch_s": Int64, "str": String}
    labels = pd.read_parquet(request["labels"])
    with tempfile.TemporaryDirectory() as tmp:
        store = FeatureStore(config=RepoConfig(
            project="bench", registry=str(Path(tmp) / "registry.db"), provider="local",
            online_store={"type": "sqlite", "path": str(Path(tmp) / "online.db")},
            offline_store={"type": OFFLINE_STORE}, entity_key_serialization_version=3))
        objects: list[object] = []
        entities: dict[str, Entity] = {}
        for view in request["views"]:
            key = view["entity"]
            entity = entities.setdefault(key, Entity(name=key, join_keys=[key]))
            source = FileSource(name=f"{view['name']}_log", path=view["path"],
                                timestamp_field="ts", field_mapping={"entity_id": key})
            objects.append(FeatureView(
                name=view["name"], entities=[entity], ttl=timedelta(days=3650),
                schema=[Field(name=f, dtype=types[d]) for f, d in view["features"]],
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
