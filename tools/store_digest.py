"""Digest what a source tree's commands write into the stores, to compare two trees.

Runs, through the tree's own command line (``python -m basketflow.cli`` with the tree
first on ``PYTHONPATH``), on embedded servers it starts in a scratch directory:

1. ``backfill --from FILE --materialize``: the offline events, the feature log and Redis;
2. ``replay FILE`` then ``run --stop-at-end`` (the two flow processes): the same, live.

and prints, per run and store, a row count and a SHA-256 of the sorted rows (Parquet
files by their rows, not their bytes: a file's metadata names the writer's version;
Redis by every key under the run's prefix, hashes and packed values decoded, without
the progress hash's wall-clock field); each feature log also by its rows in effect
(per entity and time, the highest ``seq``'s), which two runs of the same tree write
alike wherever their batches split. Two trees that write the same stores print the
same digests::

    git archive ae9f3f1 | (mkdir -p /tmp/before && tar -x -C /tmp/before)
    python tools/store_digest.py --tree /tmp/before FILE > before.json
    python tools/store_digest.py FILE > after.json
    diff before.json after.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import msgspec
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import redis

from basketflow.sinks.month_files import is_month_file
from basketflow.sinks.offline_layout import FEATURES, files_of, log_by_day

REPO = Path(__file__).resolve().parents[1]
WALL_CLOCK = {b"updated_at"}


def _cli(tree: Path, data_dir: Path, *args: str) -> str:
    """Run one command of the tree's command line; its stdout."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-m", "basketflow.cli", "--data-dir", str(data_dir),
                           *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"Error: {' '.join(args)} failed in {tree}:\n{done.stderr[-3000:]}")
    return done.stdout


def _digest(rows: list[Any]) -> dict[str, Any]:
    """Row count and SHA-256 of the rows, sorted by their JSON."""
    lines = sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)
    return {"rows": len(lines), "sha256": hashlib.sha256("\n".join(lines).encode()).hexdigest()}


def in_effect(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Of a feature log's rows, those in effect: per entity and time, the one with the
    highest ``seq``, without it (superseded rows, and the ``seq`` of the one in effect,
    follow where batches split, which differs between two runs of the same code).

    >>> in_effect([{"entity_id": "a", "ts": 1, "seq": 2, "x": 5},
    ...            {"entity_id": "a", "ts": 1, "seq": 1, "x": 4}])
    [{'entity_id': 'a', 'ts': 1, 'x': 5}]
    """
    latest: dict[tuple[Any, Any], dict[str, Any]] = {}
    for row in rows:
        key = (row["entity_id"], row["ts"])
        if key not in latest or row["seq"] > latest[key]["seq"]:
            latest[key] = row
    return [{k: v for k, v in row.items() if k != "seq"} for row in latest.values()]


def parquet_digests(offline: Path) -> dict[str, Any]:
    """A digest per Parquet dataset of the offline store (events, each view's log, ...),
    and of each feature log's rows in effect (:func:`in_effect`)."""
    out: dict[str, Any] = {}
    roots = sorted({p.parents[2] if is_month_file(p) else p.parent.parent
                    for p in offline.rglob("*.parquet")})
    for root in roots:
        rows = feature_log_rows(root) if root.parent.name == FEATURES else \
            ds.dataset(root, format="parquet", partitioning="hive").to_table().to_pylist()
        out[str(root.relative_to(offline))] = _digest(rows)
        if rows and {"entity_id", "ts", "seq"} <= set(rows[0]):
            out[f"{root.relative_to(offline)} (in effect)"] = _digest(in_effect(rows))
    return out


def feature_log_rows(root: Path) -> list[dict[str, Any]]:
    """A feature log's rows as its readers count them (a closed month's from its month
    file, a day's from its compacted file), each with its day partition as ``date``
    (the UTC day of its ``ts``): the same whether the log was compacted or not."""
    rows = []
    for path in files_of(log_by_day(root)):
        for row in pq.read_table(path).to_pylist():
            rows.append({**row, "date": row["ts"].date()})
    return rows


def redis_digest(url: str, password: str | None, prefix: str) -> dict[str, Any]:
    """A digest of every key under ``<prefix>:``, by kind of key (``password``: the
    embedded server's, which its address does not show)."""
    client = redis.Redis.from_url(url.replace("***@", "@"), password=password)
    kinds: dict[str, list[Any]] = {}
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        name = key.decode()
        kind = name.split(":")[1] if name.count(":") >= 2 else name
        if client.type(key) == b"hash":
            value: Any = {k.decode(): v.decode() for k, v in client.hgetall(key).items()
                          if k not in WALL_CLOCK}
        else:
            value = msgspec.msgpack.decode(client.get(key))
        kinds.setdefault(kind, []).append([name, value])
    return {kind: _digest(rows) for kind, rows in sorted(kinds.items())}


def _servers(tree: Path, data_dir: Path) -> dict[str, str]:
    """Start the tree's embedded servers; their addresses."""
    return json.loads(_cli(tree, data_dir, "up", "--json"))


def _password(addresses: dict[str, str]) -> str | None:
    """The embedded Valkey's password, from the file ``up`` names (None: it has none)."""
    where = addresses.get("redis_password_in")
    return json.loads(Path(where).read_text())["redis_password"] if where else None


def digests(tree: Path, data: Path, scratch: Path) -> dict[str, Any]:
    """What a backfill and a live run of ``data`` leave in the stores."""
    out: dict[str, Any] = {}
    for run in ("backfill", "live"):
        data_dir = scratch / run
        addresses = _servers(tree, data_dir)
        try:
            if run == "backfill":
                _cli(tree, data_dir, "backfill", "--from", str(data), "--materialize")
            else:
                _cli(tree, data_dir, "replay", str(data))
                _cli(tree, data_dir, "run", "--stop-at-end")
            prefix = os.environ.get("BASKETFLOW_PREFIX", "bf")
            out[run] = {"offline": parquet_digests(data_dir / "offline"),
                        "redis": redis_digest(addresses["redis"], _password(addresses), prefix)}
        finally:
            _cli(tree, data_dir, "down")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="a Kaggle-format CSV (or .csv.gz)")
    parser.add_argument("--tree", type=Path, default=REPO, help="the source tree to run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="digest-") as scratch:
        result = digests(args.tree.resolve(), args.data.resolve(), Path(scratch))
    print(json.dumps(result, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
