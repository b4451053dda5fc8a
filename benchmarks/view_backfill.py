"""``backfill --views`` (the generic engine) against ``backfill --from-offline`` (the
hand-written views) in one run, from the same offline store.

Makes a project (``basketflow init``) in a temporary folder, declares a copy of the
built-in ``customer`` view under another name (``customer_declared``), stores the file's
events (``backfill --from``), then times, in turns, ``backfill --from-offline
--processes 1`` (baseline: the three built-in views by their state classes) and
``backfill --views customer_declared --from-offline`` (the one declared view by the
generic engine), each writing its feature logs anew (the baseline's are deleted before
it runs); with ``--baseline DIR`` (a tree of main) also main's ``backfill --views``, run
from that tree. Prints events/s of each and the feature-log rows each wrote.

    python benchmarks/view_backfill.py [PATH.csv[.gz]] [--rounds N] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import REAL_DATA, describe  # noqa: E402

from basketflow.config import ENV_OF_KEY  # noqa: E402
from basketflow.schemas.default_repository import FILES  # noqa: E402


def basketflow(*args: str, cwd: Path, tree: Path | None = None) -> dict[str, object]:
    """``basketflow ARGS --json`` in the project (the code of ``tree`` when given); its
    JSON and wall time."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_OF_KEY.values()}
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "basketflow.cli", *args, "--json"], cwd=cwd,
                          env=env, stdout=subprocess.PIPE, check=True, text=True)
    figures = json.loads(done.stdout)
    figures["wall"] = time.perf_counter() - started
    return figures


def declared_copy_project(tmp: Path, path: Path) -> tuple[Path, dict[str, object]]:
    """A project made by ``init`` in ``tmp/shop`` with a declared copy of the customer
    view (``customer_declared``) applied, and ``path``'s events backfilled into it (the
    built-in views' rows only); the project's root and the backfill's figures."""
    root = tmp / "shop"
    basketflow("init", str(root), cwd=tmp)
    customer = FILES[0].read_text().replace('name="customer"', 'name="customer_declared"')
    (root / "features" / "customer_declared.py").write_text(
        customer.replace("customer = View(", "customer_declared = View("))
    basketflow("apply", cwd=root)
    return root, basketflow("backfill", "--from", str(path.resolve()), "--processes", "1",
                            cwd=root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", type=Path, default=REAL_DATA)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--baseline", type=Path, default=None,
                        help="a tree of main whose backfill --views to time too")
    args = parser.parse_args()
    print(describe())
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        root, stored = declared_copy_project(Path(tmp), args.path)
        events = int(stored["events"])  # type: ignore[call-overload]
        print(f"{events:,} events stored from {args.path.name}")
        generic = {"generic (1 view)": None}
        if args.baseline is not None:
            generic["generic, main (1 view)"] = args.baseline.resolve()
        walls: dict[str, list[float]] = {"hand-written (3 views)": []} | {
            name: [] for name in generic}
        rows: dict[str, int] = {}
        for _ in range(args.rounds):
            for view in ("customer", "basket", "product"):  # so it writes its rows again
                shutil.rmtree(root / "data" / "offline" / "features" / view, ignore_errors=True)
            done = basketflow("backfill", "--from-offline", "--processes", "1", cwd=root)
            walls["hand-written (3 views)"].append(float(done["wall"]))  # type: ignore[arg-type]
            rows["hand-written (3 views)"] = int(
                done["feature_rows"])  # type: ignore[call-overload]
            for name, tree in generic.items():
                done = basketflow("backfill", "--views", "customer_declared",
                                  "--from-offline", cwd=root, tree=tree)
                walls[name].append(float(done["wall"]))  # type: ignore[arg-type]
                rows[name] = done["rows"]["customer_declared"]  # type: ignore[index]
        for name, wall in walls.items():
            best = min(wall)
            print(f"{name:24} {events / best:>9,.0f} events/s with start-up ({best:.1f} s, "
                  f"best of {args.rounds}); feature-log rows written: {rows[name]:,}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
