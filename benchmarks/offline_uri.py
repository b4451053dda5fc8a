"""The offline store on a local folder and on S3, GCS and Azure test servers, beside the
code of another source tree on a local folder, in the same run: a backfill, a training
set and a daily report.

Each way runs in a fresh Python process, the ways in turns (the order rotating every
round) so that all see the same load on a shared machine:

- ``baseline, local``: ``--baseline DIR``'s code (``git archive REV | tar -x -C DIR``) on
  a local folder: the store as it was before the filesystem abstraction;
- ``this tree, local``: this tree on a local folder (must be as fast as the baseline);
- ``this tree, S3 (moto)``: this tree on ``s3://<fresh bucket>/offline`` of moto's
  S3 server (a test server, in Python, on loopback; started here): what the abstraction
  costs against an S3-protocol server on the same machine, not a figure for real S3;
- ``this tree, GCS (emul.)``: ``gs://<fresh bucket>/offline`` on ``gcp-storage-emulator``
  (Python, in memory), reached through ``STORAGE_EMULATOR_HOST``;
- ``this tree, Azure (Azurite)``: ``abfs://`` on Azurite (Node, in memory), signed with
  its development key from ``AZURE_STORAGE_ACCOUNT_KEY``; skipped when Azurite is not
  installed under ``.cache/azurite`` (``.ci/run`` installs it). Like moto, the emulators
  are test servers sharing the machine: their figures are what the abstraction costs
  against each protocol, not the cloud services' speed.

Per run: ``backfill --from FILE`` (one process: events and feature logs to Parquet, no
Redis), then ``historical`` over ``--rows`` entity rows (customers, invoices and
products of the file at their lines' times plus an hour; 6 features of the three views),
then the daily report (JSON) of the file's busiest day. Prints wall and CPU seconds and
rows/s of each step with the load average at its start, the medians with their ratios
to the first way's, and the machine. Under load, CPU seconds compare the code; wall
seconds of the remote ways include waiting on the servers (their own CPU is not counted).

    python benchmarks/offline_uri.py [PATH.csv[.gz]] [--runs N] [--rows N] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import REAL_DATA, describe  # noqa: E402

FEATURES = ["customer:spend_30d", "customer:orders_90d", "basket:value", "basket:lines",
            "product:units_7d", "product:distinct_buyers_7d"]
COLUMNS = {"customer": "customer_id", "basket": "invoice", "product": "stock_code"}
STEPS = ("backfill", "historical", "report")


def one_run(path: Path, entities: Path, day: date, root: str) -> dict[str, float]:
    """Backfill, training set and report of one fresh store (``root``: a local folder,
    or a remote store's URI), in this process; each step's wall and CPU seconds (this
    process's, every thread's) and rows."""
    import pandas as pd

    from basketflow.flows.backfill import file_events, run_backfill
    from basketflow.flows.live import FeatureOutputs, RunOptions
    from basketflow.reports.daily_files import run_reports
    from basketflow.reports.historical import get_historical_features

    store: Any = Path(root)
    if "://" in root:
        from basketflow.offline_uri import store_location
        store = store_location(root)
    done = [0]
    out: dict[str, float] = {}
    clock = _Clock(out)
    run_backfill(file_events(path, [0]), FeatureOutputs(None, "bench", store),
                 RunOptions(snapshot_seconds=3600), lambda n: done.__setitem__(0, n))
    clock.stop("backfill", done[0])
    frame = pd.read_parquet(entities)
    clock = _Clock(out)
    found = get_historical_features(store, frame, FEATURES, entity_column=COLUMNS)
    clock.stop("historical", len(found))
    with tempfile.TemporaryDirectory() as tmp:
        clock = _Clock(out)
        [report] = run_reports(store, [day], Path(tmp), {"json"}, data_dir=Path(tmp))
        clock.stop("report", 1)
    assert report["date"] == day.isoformat()
    return out


class _Clock:
    """Wall and CPU seconds from its making to :meth:`stop`, recorded in ``out``."""

    def __init__(self, out: dict[str, float]) -> None:
        self.out, self.wall, self.cpu = out, time.perf_counter(), time.process_time()

    def stop(self, step: str, rows: int) -> None:
        self.out[step] = time.perf_counter() - self.wall
        self.out[f"{step}_cpu"] = time.process_time() - self.cpu
        self.out[f"{step}_rows"] = rows


def entity_rows(path: Path, rows: int, out: Path) -> date:
    """``rows`` entity rows drawn from the file's lines (seeded), written to ``out``;
    the file's busiest day."""
    from basketflow.producers.csv_source import read_events
    import numpy as np
    import pandas as pd
    events = [e for e in read_events(path) if hasattr(e, "invoice")]
    frame = pd.DataFrame({"customer_id": [e.customer_id for e in events],
                          "invoice": [e.invoice for e in events],
                          "stock_code": [e.stock_code for e in events],
                          "timestamp": pd.to_datetime([e.ts + 3600 for e in events],
                                                      unit="s", utc=True)})
    pick = np.random.default_rng(7).choice(len(frame), size=rows, replace=rows > len(frame))
    frame.iloc[np.sort(pick)].reset_index(drop=True).to_parquet(out)
    return frame["timestamp"].dt.date.value_counts().idxmax()


#: Azurite's one account and its published development key (not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
               "K1SZFPTOtr/KBHBeksoGMGw==")
ROOT = Path(__file__).resolve().parent.parent
#: Azurite as ``.ci/run`` installs it, and what it is run with (tests/object_stores.py).
AZURITE = ROOT / ".cache" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
AZURITE_HOOK = ROOT / "tests" / "azurite_continue.js"


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(command: list[str], probe: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A test server, once ``probe`` answers (any HTTP status)."""
    import urllib.error
    import urllib.request
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env)
    for _ in range(600):
        try:
            urllib.request.urlopen(probe, timeout=1).close()
            return proc
        except urllib.error.HTTPError:
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit(f"{command[0]} did not start")


def start_servers(env: dict[str, str]) -> tuple[list[subprocess.Popen[bytes]], dict[str, str]]:
    """moto's S3 server, the GCS emulator and Azurite (when installed) on free loopback
    ports; the processes and the address of each store kind."""
    s3, gcs, azure = (f"127.0.0.1:{free_port()}" for _ in range(3))
    procs = [start_server([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                           s3.split(":")[1]], f"http://{s3}/moto-api/", env),
             start_server([str(Path(sys.executable).with_name("gcp-storage-emulator")), "start",
                           "--host", "127.0.0.1", "--port", gcs.split(":")[1], "--in-memory",
                           "-q"], f"http://{gcs}/storage/v1/b", env)]
    found = {"s3": s3, "gcs": gcs}
    if AZURITE.exists():
        procs.append(start_server(
            ["node", "--require", str(AZURITE_HOOK), str(AZURITE), "--blobHost", "127.0.0.1",
             "--blobPort", azure.split(":")[1], "--inMemoryPersistence",
             "--skipApiVersionCheck", "--silent"],
            f"http://{azure}/{AZURITE_ACCOUNT}?comp=list", env))
        found["azure"] = azure
    else:
        print(f"no Azurite at {AZURITE}: no Azure row (.ci/run installs it)")
    return procs, found


def new_store(kind: str, address: str, n: int) -> str:
    """A fresh bucket (container) on the server of ``kind``; its store's URI."""
    from pyarrow import fs
    name = f"bench-{os.getpid()}-{n}"
    if kind == "s3":
        fs.S3FileSystem(endpoint_override=f"http://{address}", allow_bucket_creation=True,
                        access_key="bench", secret_key="bench",
                        region="us-east-1").create_dir(name)
        return f"s3://{name}/offline"
    if kind == "gcs":
        fs.GcsFileSystem(anonymous=True, scheme="http", endpoint_override=address,
                         project_id="bench").create_dir(name)
        return f"gs://{name}/offline"
    fs.AzureFileSystem(account_name=AZURITE_ACCOUNT, account_key=AZURITE_KEY,
                       blob_storage_authority=address, dfs_storage_authority=address,
                       blob_storage_scheme="http", dfs_storage_scheme="http").create_dir(name)
    return f"abfs://{AZURITE_ACCOUNT}@{address}/{name}/offline?enable_tls=false"


def in_subprocess(args: list[str], env: dict[str, str], code: Path | None) -> dict[str, float]:
    """:func:`one_run` in a fresh Python process importing the project from ``code``
    (None: this tree, as installed)."""
    env = dict(env)
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(code), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, __file__, *args], env=env, cwd=code or Path.cwd(),
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=REAL_DATA)
    parser.add_argument("--runs", type=int, default=3, help="rounds of every way [3]")
    parser.add_argument("--rows", type=int, default=100_000, help="entity rows [100,000]")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="a source tree whose code runs too, on a local folder")
    parser.add_argument("--one", nargs=3, metavar=("ENTITIES", "DAY", "ROOT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        entities, day, root = args.one
        print(json.dumps(one_run(args.path.resolve(), Path(entities),
                                 date.fromisoformat(day), root)))
        return
    if not args.path.is_file():
        sys.exit(f"no data at {args.path}: give the path of a Kaggle-format file")
    print(f"machine: {describe()}")
    print(f"data: {args.path}; {args.rows:,} entity rows x {len(FEATURES)} features")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    # A SIGTERM runs the finally below too, which stops the server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    servers, address = start_servers(env)
    env.update(AWS_ENDPOINT_URL=f"http://{address['s3']}",
               STORAGE_EMULATOR_HOST=f"http://{address['gcs']}",
               AZURE_STORAGE_ACCOUNT_KEY=AZURITE_KEY)
    ways: list[tuple[str, Path | None, str]] = []
    if args.baseline is not None:
        ways.append(("baseline, local", args.baseline.resolve(), "local"))
    ways += [("this tree, local", None, "local"), ("this tree, S3 (moto)", None, "s3"),
             ("this tree, GCS (emul.)", None, "gcs")]
    if "azure" in address:
        ways.append(("this tree, Azure (Azurite)", None, "azure"))
    seconds: dict[str, dict[str, list[float]]] = {w[0]: {s: [] for s in STEPS} for w in ways}
    cpu: dict[str, dict[str, list[float]]] = {w[0]: {s: [] for s in STEPS} for w in ways}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            entities = Path(tmp) / "entities.parquet"
            day = entity_rows(args.path.resolve(), args.rows, entities)
            print(f"report day: {day}")
            n = 0
            for run in range(args.runs):
                turn = run % len(ways)
                for label, code, kind in ways[turn:] + ways[:turn]:
                    n += 1
                    root = new_store(kind, address[kind], n) if kind in address \
                        else f"{tmp}/store-{n}"
                    load = os.getloadavg()[0]
                    figures = in_subprocess([str(args.path.resolve()), "--one", str(entities),
                                             day.isoformat(), root], env, code)
                    print(f"  {label:<26} run {run + 1} (load {load:.2f}): " + "; ".join(
                        f"{s} {figures[s]:6.2f} s (CPU {figures[s + '_cpu']:6.2f} s, "
                        f"{figures[s + '_rows'] / figures[s]:,.0f} rows/s)" for s in STEPS[:2])
                        + f"; report {figures['report']:.2f} s (CPU "
                        f"{figures['report_cpu']:.2f} s)")
                    for step in STEPS:
                        seconds[label][step].append(figures[step])
                        cpu[label][step].append(figures[f"{step}_cpu"])
    finally:
        for proc in servers:
            proc.terminate()
        for proc in servers:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:  # Azurite waits on open connections
                proc.kill()
                proc.wait()
    first = ways[0][0]
    for name, figures in (("wall", seconds), ("CPU", cpu)):
        print(f"median {name} seconds (ratio to {first}):")
        for label, _code, _kind in ways:
            print(f"  {label:<26} " + "; ".join(
                f"{step} {median(figures[label][step]):6.2f} s "
                f"({median(figures[label][step]) / median(figures[first][step]):.2f}x)"
                for step in STEPS))


if __name__ == "__main__":
    main()
