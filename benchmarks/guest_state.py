"""How many entity states does the customer feature step keep as a stream goes on? The
timer and feature steps of the flow (``timer_step``, ``folder_step``) over N seeded
synthetic events in batches, in process (no servers: the counts do not depend on the
machine), with guests' states dropped once their windows pass (this tree) and with every
state kept (the rule off, as before it). Prints, every ``--every`` events, the folders
kept, the timer wheel's scheduled entities, and the pickled bytes of every kept folder
(what the recovery snapshots hold); then the growth over the second half per 100,000
events, and the rows written (equal in both: the rule changes no row).

    python benchmarks/guest_state.py [--events 1500000] [--every 100000] [--batch 2000]
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402

from basketflow.features.entity_features import CustomerFolder, folder_step  # noqa: E402
from basketflow.flows.backfill import file_events  # noqa: E402
from basketflow.flows.event_clock import (  # noqa: E402
    CUSTOMER_WAKE_HOURS,
    ShardBatch,
    TimerWheel,
    timer_step,
)
from basketflow.producers.synthetic import write_csv  # noqa: E402
from basketflow.schemas.events import GUEST_PREFIX, Transaction  # noqa: E402


class KeptFolder(CustomerFolder):
    """A customer folder never dropped: the rule off."""

    __slots__ = ()

    def done(self, entity: str, clock: int | None) -> bool:
        return False


Mark = tuple[int, int, int, int, int]  # events, folders, guests, wheel entries, pickled bytes


def run(events: list[Transaction], folder: type[CustomerFolder], batch: int,
        every: int) -> tuple[list[Mark], int, float]:
    """The steps over ``events``: the marks, the rows written and the seconds taken."""
    timers, fold = timer_step(CUSTOMER_WAKE_HOURS), folder_step(folder, 3600)
    wheel: TimerWheel | None = None
    folders: dict[str, CustomerFolder] = {}
    marks: list[Mark] = []
    rows = 0
    start = time.perf_counter()
    for i in range(0, len(events), batch):
        chunk = events[i:i + batch]
        groups: dict[str, list[Transaction]] = {}
        for e in chunk:
            groups.setdefault(e.entity_id, []).append(e)
        wheel, works = timers(wheel, ShardBatch(list(groups.items()), chunk[-1].ts))
        for entity, work in works:
            state, updates = fold(folders.get(entity), work)
            if state is None:
                folders.pop(entity, None)
            else:
                folders[entity] = state
            rows += sum(len(u.rows) for u in updates)
        done = i + len(chunk)
        if done // every > len(marks):
            assert wheel is not None
            guests = sum(1 for entity in folders if entity.startswith(GUEST_PREFIX))
            size = sum(len(pickle.dumps(f, protocol=pickle.HIGHEST_PROTOCOL))
                       for f in folders.values())
            marks.append((done, len(folders), guests, len(wheel.scheduled), size))
    return marks, rows, time.perf_counter() - start


def growth(marks: list[Mark], column: int) -> float:
    """A column's growth over the second half of the marks, per 100,000 events."""
    half = marks[len(marks) // 2 - 1]
    last = marks[-1]
    return (last[column] - half[column]) / (last[0] - half[0]) * 100_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_500_000)
    parser.add_argument("--every", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2_000)
    args = parser.parse_args()
    print(describe())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.csv"
        write_csv(path, rows=args.events, seed=7)
        events = list(file_events(path, [0])())
    print(f"{len(events):,} synthetic events (seed 7), batches of {args.batch:,}")
    results = {}
    for name, folder in (("guests dropped (this tree)", CustomerFolder),
                         ("every state kept (before)", KeptFolder)):
        marks, rows, seconds = run(events, folder, args.batch, args.every)
        results[name] = marks
        print(f"\n{name}: {rows:,} log rows in {seconds:.1f} s")
        print(f"  {'events':>10} {'folders':>8} {'guests':>8} {'wheel':>8} {'pickled MB':>11}")
        for done, kept, guests, wheel, size in marks:
            print(f"  {done:>10,} {kept:>8,} {guests:>8,} {wheel:>8,} {size / 1e6:>11.1f}")
        print(f"  second half, per 100,000 events: folders {growth(marks, 1):+,.0f}, "
              f"pickled {growth(marks, 4) / 1e6:+.2f} MB")


if __name__ == "__main__":
    main()
