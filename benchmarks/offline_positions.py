"""What keeping each event's position on the topic costs the steps it touches: CPU time
of the store part's decode, by-day grouping and offline event writes, and the bytes of
the event files, on the same events, for this code and a copy of the code before.

Each code runs in a process of its own (``--baseline DIR``: the copy's repository root,
for instance ``git archive main | tar -x -C DIR``), alternated, ``--rounds`` times; each
prints the best of five CPU times of every step over the first ``--limit`` events of
the file, read as messages of three partitions in polls of up to 1,000. The flow's whole
cost is in ``benchmarks/rebuild_state.py``.

    python benchmarks/offline_positions.py --baseline DIR [PATH.csv[.gz]] [--limit N] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import REAL_DATA, describe  # noqa: E402

THIS = Path(__file__).resolve().parents[1]
PARTITIONS = 3
POLL = 1_000


def best_cpu(step: object, repeat: int = 5) -> float:
    """The least CPU time of ``repeat`` calls of ``step``."""
    times = []
    for _ in range(repeat):
        start = time.process_time()
        step()  # type: ignore[operator]
        times.append(time.process_time() - start)
    return min(times)


def measure(path: Path, limit: int) -> None:
    """Time the steps with the code this process imports; print one line."""
    from basketflow.flows import live
    from basketflow.flows.event_clock import ClockedBatch
    from basketflow.flows.kafka_batches import RawMessage
    from basketflow.producers.csv_source import read_events
    from basketflow.schemas.events import Transaction, encode_event
    from basketflow.sinks.offline_store import ParquetEventStore

    events = [e for e in islice(read_events(path), limit) if isinstance(e, Transaction)]
    messages = [RawMessage("tx", i % PARTITIONS, i // PARTITIONS, encode_event(e), 0)
                for i, e in enumerate(events)]
    polls = [[m for m in messages[i:i + POLL * PARTITIONS] if m.partition == p]
             for i in range(0, len(messages), POLL * PARTITIONS) for p in range(PARTITIONS)]
    placed = hasattr(live, "placed_by_day")  # this code: events with their positions
    decoded = [live.decode_batch(poll) for poll in polls]
    batches = [ClockedBatch(d.events, 0, *live.topic_place(d)) if placed
               else ClockedBatch(d.events, 0) for d in decoded]

    def by_day() -> list:
        if placed:
            return [live.placed_by_day(batch) for batch in batches]
        return [live.group_by(batch.events, live._day_key) for batch in batches]

    days = by_day()
    sizes = []

    def write() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            store = ParquetEventStore(Path(tmp))
            for groups in days:
                for _day, group in groups:
                    store.append_placed([group]) if placed else store.append(group)
            sizes.append(sum(f.stat().st_size for f in Path(tmp).rglob("*.parquet")))

    decode_s = best_cpu(lambda: [live.decode_batch(poll) for poll in polls])
    by_day_s = best_cpu(by_day)
    write_s = best_cpu(write)
    total = decode_s + by_day_s + write_s
    print(f"decode {decode_s:.3f} s, by-day {by_day_s:.3f} s, writes {write_s:.3f} s: "
          f"{len(events) / total:,.0f} events/s of CPU, {sizes[-1]:,} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", type=Path, default=REAL_DATA)
    parser.add_argument("--limit", type=int, default=100_000, help="the first N lines")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each code")
    parser.add_argument("--baseline", type=Path, required=True,
                        help="a copy of the code to compare with (its repository root)")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:  # a child: time the code on its path
        measure(args.path, args.limit)
        return
    if not args.path.is_file():
        sys.exit(f"no data at {args.path}: give the path of a Kaggle-format file")
    print(f"machine: {describe()}")
    print(f"data: {args.path} (first {args.limit:,} lines)")
    for _ in range(args.rounds):
        for name, code in (("this", THIS), ("baseline", args.baseline.resolve())):
            out = subprocess.run(
                [sys.executable, __file__, str(args.path), "--limit", str(args.limit),
                 "--baseline", str(args.baseline), "--measure"],
                env=os.environ | {"PYTHONPATH": str(code)}, cwd=code, check=True,
                capture_output=True, text=True).stdout.strip()
            print(f"  {name:9} {out} (load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
