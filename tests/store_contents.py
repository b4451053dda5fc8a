"""What a run of the live flow left in the stores, in a form two runs can be compared by.

Used by the crash-and-fault tests to prove that a run that was killed, starved of Redis
or stopped by a full disk ends exactly where an uninterrupted run of the same topic ends.

What must be identical between two runs of the same topic, and what need not be
(measured on two uninterrupted runs and on killed ones, see ``tests/flows/test_recovery.py``):

- every Redis key under the run's prefix with every value (the progress hash's totals are
  kept in the recovery state), except the progress hash's wall-clock ``updated_at``;
- the offline events and the offline dead letters, row for row;
- the customer and basket feature log by its rows in effect: per entity and event time,
  the row with the highest ``seq``. A row is written after the last event of each event
  time *in a batch*, so when a poll boundary falls inside one invoice an extra row with
  a lower ``seq`` is written for that event time, superseded by the next. Where polls
  split the topic differs after a restart, so these superseded rows may differ; the rows
  in effect may not;
- the product feature log only by each product's final row: a product's events come from
  every partition, so a row is written per batch of its events as the partitions happen
  to be read. Its final values, like the online product values, are the same.
"""

from __future__ import annotations

import math
from typing import Any

import pyarrow.dataset as ds

from basketflow.offline_uri import StoreDir, StorePath
from basketflow.sinks.online_store import (
    PACKED_KEY,
    PROGRESS_KEY,
    OnlineStore,
    RedisOnlineStore,
    connect,
)

#: Fields of the progress hash that are wall-clock time, different in every run.
WALL_CLOCK_FIELDS = frozenset({"updated_at"})


def redis_contents(redis_url: str, prefix: str) -> dict[str, dict[str, Any]]:
    """Every key under ``<prefix>:`` (listed by a SCAN), read back through the online
    store's contract: the hashes, the packed values (a vector read of one view, which
    takes the packed value) and the progress hashes, without wall-clock fields. Keys are
    named as on one server (a cluster's tags dropped), so a cluster's store and one
    server's compare equal."""
    client = connect(redis_url)
    store: OnlineStore = RedisOnlineStore(client, prefix)
    out: dict[str, dict[str, Any]] = {}
    progress = f"{prefix}:{PROGRESS_KEY}"
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        name = key.decode()
        if name.startswith(progress):  # the flow's, and its serve part's
            part = name[len(progress) + 1:]
            out[name] = {k: v for k, v in store.read_progress(part).items()
                         if k not in WALL_CLOCK_FIELDS}
            continue
        rest = name[len(prefix) + 1:]
        if rest.startswith(f"{PACKED_KEY}:"):
            view, _, tagged = rest[len(PACKED_KEY) + 1:].partition(":")
            entity = store.entity_in_key(tagged)
            out[f"{prefix}:{PACKED_KEY}:{view}:{entity}"] = \
                store.read_vectors([view], [entity])[0][view] or {}
        else:
            view, _, tagged = rest.partition(":")
            entity = store.entity_in_key(tagged)
            out[f"{prefix}:{view}:{entity}"] = store.read(view, entity) or {}
    store.close()
    return out


def parquet_rows(directory: StoreDir, key: list[str]) -> dict[str, dict[str, Any]]:
    """Every row of a partitioned Parquet directory (local, or of a remote store) by its
    id (the ``key`` columns joined by ``:``); {} when there is none. Ids are unique in
    every store, so a row stored twice would show up as a count that does not match."""
    if not directory.is_dir():
        return {}
    where = ({"source": directory.fs_path, "filesystem": directory.filesystem}
             if isinstance(directory, StorePath) else {"source": directory})
    rows = ds.dataset(**where, format="parquet", partitioning="hive").to_table().to_pylist()
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        row.pop("date", None)
        for name, value in row.items():
            if isinstance(value, float) and math.isnan(value):
                row[name] = "nan"
        out[":".join(str(row[c]) for c in key)] = row
    assert len(out) == len(rows), f"{directory}: {len(rows) - len(out)} rows stored twice"
    return out


def effective_rows(directory: StoreDir, key: str) -> dict[str, dict[str, Any]]:
    """The feature-log rows that are in effect: per entity and ``key`` value (``ts``, or
    ``entity_id`` for the final row), the row with the highest ``(ts, seq)``."""
    latest: dict[str, dict[str, Any]] = {}
    for row in parquet_rows(directory, ["entity_id", "ts", "seq"]).values():
        name = f"{row['entity_id']}:{row[key]}"
        if name not in latest or (row["ts"], row["seq"]) > (latest[name]["ts"],
                                                            latest[name]["seq"]):
            latest[name] = row
    return latest


def store_contents(redis_url: str, prefix: str, offline: StoreDir) -> dict[str, Any]:
    """Everything that must be identical after two runs of the same topic."""
    features = offline / "features"
    return {
        "redis": redis_contents(redis_url, prefix),
        "events": parquet_rows(offline / "events", ["event_id"]),
        "dead": parquet_rows(offline / "dead", ["dead_id"]),
        "customer_log": effective_rows(features / "customer", "ts"),
        "basket_log": effective_rows(features / "basket", "ts"),
        # A product's lines arrive in any order, so the seq of its rows does not repeat.
        "product_final": {name: {k: v for k, v in row.items() if k != "seq"} for name, row
                          in effective_rows(features / "product", "entity_id").items()},
    }


def differences(got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    """Human-readable differences between two :func:`store_contents` (empty: identical)."""
    out: list[str] = []
    for part, b in want.items():
        a = got[part]
        if a == b:
            continue
        missing = sorted(set(b) - set(a))
        extra = sorted(set(a) - set(b))
        changed = sorted(k for k in set(a) & set(b) if a[k] != b[k])
        out.append(f"{part}: {len(a)} entries vs {len(b)}; {len(missing)} missing "
                   f"{missing[:5]}, {len(extra)} extra {extra[:5]}, {len(changed)} changed "
                   f"{[(k, a[k], b[k]) for k in changed[:2]]}")
    return out
