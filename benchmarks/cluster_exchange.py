"""What Bytewax's exchange between a cluster's processes costs per item, on its own.

Runs one small dataflow (no basketflow code in it) as one process and as a cluster of
two processes on loopback, with the same input: ``--events`` tuples in batches of 2,000
from 4 partitions, regrouped by one of ``--keys`` keys per batch, then folded by key in
``stateful_map`` (the keyed step, at which about half of the groups go to the other
process), or, for comparison, passed through a stateless ``map`` (no exchange). Prints
the CPU seconds of each run, and the extra CPU of the cluster per group that crossed to
the other process: the cost a keyed step pays per item in a cluster, which a flow's
keyed steps pay per entity and batch (docs/PERFORMANCE.md, "A cluster").

    python benchmarks/cluster_exchange.py [--events N] [--keys 16,400,4000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402

from basketflow.app.flow_processes import loopback_addresses  # noqa: E402

BATCH = 2_000
PARTITIONS = 4


def build(events: int, keys: int, keyed: bool):  # type: ignore[no-untyped-def]
    """The dataflow: partitioned batches, regrouped by key, folded (``keyed``) or mapped."""
    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
    from bytewax.outputs import DynamicSink, StatelessSinkPartition

    per_part = events // PARTITIONS

    class Part(StatefulSourcePartition[list[tuple[str, int, str]], int]):
        def __init__(self, resume: int | None) -> None:
            self.at = resume or 0

        def next_batch(self) -> list[list[tuple[str, int, str]]]:
            if self.at >= per_part:
                raise StopIteration
            start, self.at = self.at, self.at + BATCH
            return [[(f"k{(start + j) * 7 % keys}", start + j, "x" * 40) for j in range(BATCH)]]

        def snapshot(self) -> int:
            return self.at

    class Source(FixedPartitionedSource[list[tuple[str, int, str]], int]):
        def list_parts(self) -> list[str]:
            return [str(i) for i in range(PARTITIONS)]

        def build_part(self, step_id: str, for_part: str, resume: int | None) -> Part:
            return Part(resume)

    class Nothing(StatelessSinkPartition[object]):
        def write_batch(self, items: list[object]) -> None:
            pass

    class Sink(DynamicSink[object]):
        def build(self, step_id: str, worker_index: int, worker_count: int) -> Nothing:
            return Nothing()

    def regroup(batch: list[tuple[str, int, str]]) -> list[tuple[str, list[tuple[int, str]]]]:
        groups: dict[str, list[tuple[int, str]]] = {}
        for key, value, text in batch:
            groups.setdefault(key, []).append((value, text))
        return list(groups.items())

    def fold(state: int | None, items: list[tuple[int, str]]) -> tuple[int, int]:
        state = (state or 0) + len(items)
        return state, state

    flow = Dataflow("exchange")
    groups = op.flat_map("regroup", op.input("in", flow, Source()), regroup)
    out = (op.stateful_map("fold", groups, fold) if keyed
           else op.map("pass", groups, lambda kv: kv))
    op.output("out", out, Sink())
    return flow


def run(events: int, keys: int, keyed: bool, processes: int) -> float:
    """CPU seconds of the flow run as ``processes`` processes (start-up included)."""
    code = ("import sys; sys.path.insert(0, %r); from cluster_exchange import build; "
            "from bytewax.run import cli_main; "
            "cli_main(build(%d, %d, %r), process_id=%s, addresses=%s)")
    addresses = loopback_addresses(processes) if processes > 1 else None
    procs = [subprocess.Popen([sys.executable, "-c", code % (
        str(Path(__file__).resolve().parent), events, keys, keyed,
        i if addresses else None, addresses)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for i in range(processes)]
    cpu = 0.0
    for proc in procs:
        _pid, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"a process of the flow failed: {proc.args}")
        proc.returncode = 0
        cpu += usage.ru_utime + usage.ru_stime
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3_000_000)
    parser.add_argument("--keys", default="16,400,4000",
                        help="keys per batch to try, comma-separated")
    args = parser.parse_args()
    print(f"machine: {describe()}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    batches = args.events // BATCH
    for keys in (int(k) for k in args.keys.split(",")):
        crossed = batches * min(keys, BATCH) / 2  # a batch holds at most BATCH keys
        started = time.perf_counter()
        cpu = {keyed: (run(args.events, keys, keyed, 1), run(args.events, keys, keyed, 2))
               for keyed in (False, True)}
        for keyed, (one, two) in cpu.items():
            print(f"{keys:>5} keys, {'stateful_map' if keyed else 'map (no exchange)':<18}: "
                  f"CPU one process {one:.2f} s, cluster of 2 {two:.2f} s ({two / one:.2f}x)")
        # the keyed step's extra in the cluster, net of the second process's own start-up
        extra = (cpu[True][1] - cpu[True][0]) - (cpu[False][1] - cpu[False][0])
        print(f"{'':>5} the exchange: {1e6 * extra / args.events:.2f} us per event, "
              f"{1e6 * extra / crossed:.1f} us per group that crossed "
              f"({args.events // batches // min(keys, BATCH)} events a group) "
              f"[{time.perf_counter() - started:.0f} s]")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
