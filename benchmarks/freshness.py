"""Score freshness on the real file: from a line sent to Kafka to its score readable in Redis.

    python benchmarks/freshness.py [--limit N] [--rate 5000] [--until 2011-06-30]
        [--snapshot-interval 10 | --no-recovery] [--layouts split,one,...] [--repeats 2]
        [--series CSV] [--profile RAW] [PATH]

**Set-up**, in a temporary data directory with its own embedded broker and Valkey: the
file's valid lines are backfilled into the feature log (:func:`basketflow.flows.backfill.run_backfill`),
customer categories are fitted on it up to ``--until`` and every customer is labelled
(:mod:`basketflow.reports.segments`), so the flow scores. The flow gets a data directory of its own
with that segmentation: a live flow writes days that the backfill did not have, whereas
replaying the same days into the backfilled offline store would make each first write
of a day read the day's stored ids (and the first product write those of every day),
a start-up cost that is not freshness. Then ``basketflow run`` (a subprocess, as
deployed: the serve and store parts in two processes, one worker each, recovery
snapshots every ``--snapshot-interval`` s; ``--layouts split,one`` also runs both parts
in one process, the layout before the split, for comparison in the same run, each run on
a topic and key prefix of its own) tails the empty
topic, and this script sends it the valid lines (rejected ones are not sent) at
``--rate`` events/s: the replay's :class:`basketflow.producers.replay.Pacer` and producer settings,
keyed by entity, noting the wall time of each ``produce`` call. The first line is sent
alone and pacing starts once the flow has reported progress for it, so the flow's
start-up is not measured. The flow starts from an empty state and a fresh model, so the
first scores appear once it has learnt from a labelled basket.

**What is measured.** Valkey publishes a keyspace notification
(``notify-keyspace-events Kh``) when a score hash ``<prefix>:score:<entity>`` is written,
the moment it becomes readable. A listener thread receives it, notes the time, and reads
the hash's ``seq``: that score was made from the entity's ``seq``-th event, which is the
``seq``-th line sent with that entity's key (one entity's lines stay in order on one
partition, and the flow's ``seq`` counts every event folded for the entity). The score
sink writes only each entity's latest score per batch, so the earlier scores of a batch
are never readable and are not measured. When two writes of one hash come faster than
the listener reads ``seq``, both reads can return the newer ``seq``; the time kept for a
``(entity, seq)`` is therefore that of the *last* notification whose read returned it,
which is the notification of the write that stored it.

Two latencies per score:

- **send -> readable**: from the ``produce`` call to the notification. It includes the
  producer's batching (``linger.ms`` 20), the broker and the consumer's fetch, so it is an
  upper bound of consume -> readable.
- **consumable -> readable**: from the moment a second consumer (a thread here, assigned
  every partition and polling them like the flow's) received the line, to the
  notification: the flow's own consume time without touching the flow. Both consumers
  fetch on their own cycles, so the flow may take a line a few ms (measured once with an
  instrumented flow: -35 .. +25 ms when it is keeping up) before or after this one; the
  figure is consume -> readable give or take that, plus any time the flow was too busy to
  poll, which is part of the freshness a reader sees. (A score's ``_ts`` is event time, the
  data's 2011 clock, no use for wall latency.)

Both are on one clock (this process's ``perf_counter``); the listener's own delay (a
thread of a Python process) is inside both. Printed: p50/p90/p99/max in ms, the number
of scores measured, the achieved send rate, the flow's CPU share and the load average
during the run (the machine may be shared: a flow starved of CPU falls behind, and every
later score waits), and the machine. ``--series`` writes every score's latencies, by
time, to find when the slow ones happened; ``--profile`` runs the flow under py-spy.

**Scoring cost.** Then the flow runs ``--repeats`` times without and with scoring,
alternated, in this process to the end of the now-full topic (:func:`basketflow.flows.live.run_live`,
one worker, no recovery), each on a fresh data directory and key prefix: without a
segmentation there is no scoring step; with one, the same labels and a fresh model.
Printed: events/s end to end and CPU (this process, librdkafka threads included) per
event of each run, and the ratio of the best runs.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from functools import partial
from itertools import islice
from pathlib import Path

import numpy as np
import redis
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import REAL_DATA, describe  # noqa: E402

from basketflow.app.flow_processes import child_env  # noqa: E402
from basketflow.app.services import embedded_services  # noqa: E402
from basketflow.config import Settings  # noqa: E402
from basketflow.flows.backfill import run_backfill  # noqa: E402
from basketflow.flows.live import PARTS, SERVE, FeatureOutputs, RunOptions, progress_part, run_live  # noqa: E402
from basketflow.kafka import DEFAULT_PARTITIONS, consumer_config, ensure_topics, producer_config  # noqa: E402
from basketflow.producers.csv_source import read_events  # noqa: E402
from basketflow.producers.replay import Pacer  # noqa: E402
from basketflow.reports.segments import SEGMENTS_DIR, assign_customers, fit_segments, scoring_config  # noqa: E402
from basketflow.schemas.events import Transaction, encode_event  # noqa: E402
from basketflow.sinks.online_store import SCORE_VIEW, progress_key  # noqa: E402

TOPIC, DEAD_TOPIC, PREFIX = "transactions", "transactions.dead", "fresh"


def valid_events(path: Path, limit: int | None) -> list[Transaction]:
    """The file's valid events, in file order (the first ``limit`` lines when given)."""
    lines = islice(read_events(path, [0]), limit)
    return [e for e in lines if isinstance(e, Transaction)]


def prepare(home: Path, events: list[Transaction], until: date | None) -> date:
    """Backfill the events' feature log into ``home``, fit categories up to ``until``
    (None: the day of the event two thirds through) and label every customer."""
    stats = run_backfill(lambda: iter(events), FeatureOutputs(None, PREFIX, home / "offline"),
                         RunOptions(snapshot_seconds=3600))
    if until is None:
        until = datetime.fromtimestamp(events[len(events) * 2 // 3].ts, timezone.utc).date()
    segmentation = fit_segments(home, until)
    labels = assign_customers(home)
    print(f"set-up: {len(events):,} events backfilled ({stats.late_events} late: a late "
          f"event is not counted in seq, so a score after one would be matched to the wrong "
          f"line), {len(segmentation.names)} customer categories fitted up to {until}, "
          f"{len(labels):,} customers labelled")
    return until


@dataclass
class Sent:
    """What was sent: per line its wall time and (partition, offset), per entity its
    lines in order."""

    times: list[float] = field(default_factory=list)
    where: dict[int, tuple[int, int]] = field(default_factory=dict)
    lines_of: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    errors: int = 0

    def delivered(self, line: int, err: KafkaError | None, msg: Message) -> None:
        """Delivery report of one line: where it landed."""
        if err is not None:
            self.errors += 1
        else:
            self.where[line] = (msg.partition(), msg.offset())


class ScoreListener(threading.Thread):
    """Notes when each ``(entity, seq)`` score became readable (see the module docstring)."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(redis_url)
        self.client.config_set("notify-keyspace-events", "Kh")
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.channel_prefix = f"__keyspace@0__:{prefix}:{SCORE_VIEW}:".encode()
        self.pubsub.psubscribe(self.channel_prefix.decode() + "*")
        self.readable: dict[tuple[str, int], float] = {}
        self.notifications = 0
        self.stop = threading.Event()

    def run(self) -> None:
        key_prefix = self.channel_prefix.removeprefix(b"__keyspace@0__:")
        while not self.stop.is_set():
            msg = self.pubsub.get_message(timeout=0.1)
            if msg is None:
                continue
            seen: list[tuple[bytes, float]] = []
            while msg is not None:  # drain what has arrived, then read seq in one trip
                seen.append((msg["channel"].removeprefix(self.channel_prefix),
                             time.perf_counter()))
                msg = self.pubsub.get_message(timeout=0)
            pipe = self.client.pipeline(transaction=False)
            for entity, _t in seen:
                pipe.hget(key_prefix + entity, "seq")
            for (entity, t), seq in zip(seen, pipe.execute()):
                if seq is not None:
                    self.readable[(entity.decode(), int(seq))] = t  # the last one wins
            self.notifications += len(seen)


class ArrivalWatcher(threading.Thread):
    """A consumer tailing every partition: when each (partition, offset) was first
    consumable."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer(consumer_config(bootstrap) | {
            "group.id": "freshness-watch", "enable.auto.commit": False})
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING)
                              for p in range(partitions)])
        self.arrived: dict[tuple[int, int], float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            msgs = self.consumer.consume(5000, 0.01)
            now = time.perf_counter()
            for m in msgs:
                if m.error() is None:
                    self.arrived[(m.partition(), m.offset())] = now
        self.consumer.close()


def start_flow(settings: Settings, log: Path, run_args: list[str], profile: Path | None,
               ) -> subprocess.Popen[bytes]:
    """``basketflow run [run_args]`` on the settings' servers, data directory, topic and
    prefix; under ``py-spy record`` (raw stacks of the thread holding the GIL: the flow's
    threads share one) into ``profile`` if given."""
    assert settings.kafka_bootstrap and settings.redis_url
    root = str(Path(__file__).resolve().parents[1])
    env = child_env(settings) | {
        "PYTHONPATH": os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH"))))}
    with log.open("wb") as out:
        command = [sys.executable, "-m", "basketflow.cli", "run", *run_args]
        if profile is not None:
            py_spy = Path(sys.executable).with_name("py-spy")
            command = [str(py_spy), "record", "--gil", "--subprocesses", "-f", "raw", "-o",
                       str(profile), "--"] + command
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def cpu_seconds(pid: int) -> dict[str, float]:
    """User + system CPU seconds of a running flow process and of each of its children,
    by name: ``run`` for the process started, the part (``serve``, ``store``) for each
    child running one (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    name = args[args.index(b"--part") + 1].decode() if b"--part" in args else "run"
    used = {name: (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")}
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        used |= cpu_seconds(int(child))
    return used


def wait_for(check: Callable[[], object], what: str, timeout: float, flow: subprocess.Popen[bytes],
             log: Path) -> None:
    """Poll ``check()`` until true; exit with the flow's log when it dies or time runs out."""
    deadline = time.monotonic() + timeout
    while not check():
        if flow.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"the flow did not {what} (see its log {log}):\n"
                     + log.read_text()[-3000:])
        time.sleep(0.05)


def send(events: list[Transaction], bootstrap: str, topic: str, rate: float,
         flow_ready: Callable[[], None]) -> tuple[Sent, float]:
    """Send the first event, wait for ``flow_ready()``, then the rest at ``rate``; return
    what was sent and the achieved rate of the paced part."""
    sent = Sent()
    producer = Producer(producer_config(bootstrap))
    pacer = Pacer(None, rate)
    paced_start = 0.0
    for i, event in enumerate(events):
        value, key = encode_event(event), event.entity_id
        if i:
            pacer.wait(event.ts)
        now = time.perf_counter()
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=partial(sent.delivered, i))
                break
            except BufferError:
                producer.poll(0.01)
        sent.times.append(now)
        sent.lines_of[key].append(i)
        if i == 0:
            producer.flush()
            flow_ready()
            paced_start = time.perf_counter()
        elif i % 200 == 0:
            producer.poll(0)
    producer.flush()
    paced = len(events) - 1
    rate_achieved = paced / (sent.times[-1] - paced_start) if paced > 0 else 0.0
    return sent, rate_achieved


def percentiles(name: str, ms: np.ndarray) -> str:
    """One line of p50/p90/p99/max in milliseconds."""
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return (f"{name}: p50 {p50:.1f} ms, p90 {p90:.1f} ms, p99 {p99:.1f} ms, "
            f"max {ms.max():.1f} ms")


def freshness(settings: Settings, events: list[Transaction], rate: float, tmp: Path,
              run_args: list[str], profile: Path | None, series: Path | None) -> None:
    """Run the flow tailing the topic, send the events, and print the latencies."""
    assert settings.kafka_bootstrap and settings.redis_url
    ensure_topics(settings.kafka_bootstrap,
                  {settings.topic: DEFAULT_PARTITIONS, settings.dead_topic: 1})
    listener = ScoreListener(settings.redis_url, settings.prefix)
    watcher = ArrivalWatcher(settings.kafka_bootstrap, settings.topic, DEFAULT_PARTITIONS)
    listener.start()
    watcher.start()
    log = tmp / f"{settings.prefix}.log"
    flow = start_flow(settings, log, run_args, profile)
    progress_keys = [progress_key(settings.prefix, progress_part(PARTS))] + (
        [] if "--one-process" in run_args
        else [progress_key(settings.prefix, progress_part((SERVE,)))])
    client = redis.Redis.from_url(settings.redis_url)
    try:
        started: list[float] = []
        cpu_before: dict[str, float] = {}

        def flow_ready() -> None:
            wait_for(lambda: all(client.exists(key) for key in progress_keys), "start", 120,
                     flow, log)
            started.append(time.perf_counter())
            cpu_before.update(cpu_seconds(flow.pid))

        sent, achieved = send(events, settings.kafka_bootstrap, settings.topic, rate,
                              flow_ready)
        ends = {}
        for partition, offset in sent.where.values():
            ends[partition] = max(ends.get(partition, 0), offset + 1)

        def consumed_all() -> bool:
            for key in progress_keys:
                done = client.hgetall(key)
                if any(int(done.get(f"offset:{settings.topic}:{p}".encode(), 0)) < end
                       for p, end in ends.items()):
                    return False
            return True

        wait_for(consumed_all, "consume every line", 600, flow, log)
        time.sleep(1.0)  # the score sink writes after the progress of the same batch
        wall = time.perf_counter() - started[0]
        cpu = {name: used - cpu_before.get(name, 0.0)
               for name, used in cpu_seconds(flow.pid).items()}
        shares = ", ".join(f"{name} {used:.1f} s ({used / wall:.0%} of a core)"
                           for name, used in cpu.items())
        print(f"flow{' (py-spy)' if profile else ''} CPU in {wall:.1f} s from the paced "
              f"start: {shares}; load average {os.getloadavg()[0]:.2f} on "
              f"{os.cpu_count()} CPUs")
    finally:
        flow.send_signal(signal.SIGINT)
        try:
            flow.wait(30)
        except subprocess.TimeoutExpired:
            flow.kill()
        listener.stop.set()
        watcher.stop.set()
        listener.join()
        watcher.join()
    report(sent, achieved, listener, watcher, rate, series)


def report(sent: Sent, achieved: float, listener: ScoreListener, watcher: ArrivalWatcher,
           rate: float, series: Path | None) -> None:
    """Match every readable score to its line and print the latencies (and write them,
    one score a line, to ``series`` when given)."""
    to_send, to_consumable, unmatched = [], [], 0
    rows: list[tuple[float, float, float]] = []
    for (entity, seq), t in listener.readable.items():
        lines = sent.lines_of.get(entity, [])
        if not 1 <= seq <= len(lines):
            unmatched += 1
            continue
        line = lines[seq - 1]
        to_send.append(t - sent.times[line])
        arrived = watcher.arrived.get(sent.where.get(line, (-1, -1)))
        if arrived is not None:
            to_consumable.append(t - arrived)
        rows.append((t - sent.times[0], to_send[-1], t - arrived if arrived else float("nan")))
    if series is not None:
        series.write_text("readable_s,send_to_readable_ms,consumable_to_readable_ms\n" + "".join(
            f"{t:.4f},{a * 1e3:.2f},{b * 1e3:.2f}\n" for t, a, b in sorted(rows)))
    print(f"sent {len(sent.times):,} lines at {achieved:,.0f} events/s (asked {rate:,.0f}), "
          f"{sent.errors} delivery errors; {listener.notifications:,} score writes notified, "
          f"{len(listener.readable):,} distinct scores read, {unmatched} not matched to a line")
    if not to_send:
        print("no score was measured")
        return
    print(percentiles(f"send -> readable ({len(to_send):,} scores)", np.array(to_send) * 1e3))
    if to_consumable:
        print(percentiles(f"consumable -> readable ({len(to_consumable):,} scores)",
                          np.array(to_consumable) * 1e3))


def scoring_cost(kafka: str, redis_url: str, tmp: Path, home: Path, repeats: int) -> None:
    """Flow events/s and CPU per event to the end of the topic, without and with the
    scoring step, alternated ``repeats`` times (the machine may be shared: the best run
    of each is the one least disturbed)."""
    speed: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    for run in range(repeats):
        for scoring in (False, True):
            name = f"{'with' if scoring else 'without'}-scoring-{run}"
            data_dir = tmp / name
            data_dir.mkdir()
            if scoring:
                shutil.copytree(home / SEGMENTS_DIR, data_dir / SEGMENTS_DIR)
            settings = Settings(data_dir, kafka, redis_url, TOPIC, DEAD_TOPIC, prefix=name)
            before = resource.getrusage(resource.RUSAGE_SELF)
            stats = run_live(settings, stop_at_end=True, options=RunOptions(),
                             scoring=scoring_config(data_dir))
            after = resource.getrusage(resource.RUSAGE_SELF)
            used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            speed[scoring].append(stats.events / stats.seconds)
            cpu[scoring].append(used / stats.events * 1e6)
            print(f"flow {name.replace('-', ' ')}: {stats.events:,} events in "
                  f"{stats.seconds:.2f} s = {speed[scoring][-1]:,.0f} events/s, "
                  f"{cpu[scoring][-1]:.1f} us of CPU per event, {stats.scores:,} scores")
    print(f"with / without scoring (best runs): {max(speed[True]) / max(speed[False]):.2f} of "
          f"the events/s; {min(cpu[True]) - min(cpu[False]):+.1f} us of CPU per event "
          f"({min(cpu[True]) / min(cpu[False]):.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", type=Path, default=REAL_DATA)
    parser.add_argument("--limit", type=int, default=None, help="read only the first N lines")
    parser.add_argument("--rate", type=float, default=5000.0, help="events/s sent")
    parser.add_argument("--until", type=date.fromisoformat, default=None,
                        help="fit customer categories up to this day (default 2011-06-30 on "
                             "the whole file, else two thirds through the lines read)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="run the tailing flow under py-spy, raw stacks into this file")
    parser.add_argument("--snapshot-interval", type=float, default=10.0,
                        help="the tailing flow's recovery snapshot interval, seconds")
    parser.add_argument("--no-recovery", action="store_true",
                        help="run the tailing flow without recovery snapshots")
    parser.add_argument("--layouts", default="split",
                        help="tailing flow runs, in turn, comma-separated: split (two "
                             "processes, as `basketflow run`) or one (--one-process); e.g. "
                             "split,one,split,one alternates the two")
    parser.add_argument("--series", type=Path, default=None,
                        help="write every measured score's latencies to this CSV")
    parser.add_argument("--repeats", type=int, default=2,
                        help="flow runs without and with scoring, alternated (0: none)")
    args = parser.parse_args()
    run_args = ["--no-recovery"] if args.no_recovery else [
        "--snapshot-interval", str(args.snapshot_interval)]
    layouts = args.layouts.split(",")
    if not set(layouts) <= {"split", "one"}:
        sys.exit(f"--layouts takes split and one, not {args.layouts}")
    if not args.path.is_file():
        sys.exit(f"no data at {args.path}: give the path of a Kaggle-format file")
    until = args.until or (date(2011, 6, 30) if args.limit is None else None)
    print(f"machine: {describe()}")
    print(f"data: {args.path}" + (f" (first {args.limit:,} lines)" if args.limit else ""))
    events = valid_events(args.path, args.limit)
    with tempfile.TemporaryDirectory() as name, embedded_services(Path(name) / "servers") as (
            kafka, redis_url):
        tmp = Path(name)
        home = tmp / "home"
        prepare(home, events, until)
        for i, layout in enumerate(layouts):
            print(f"tailing flow {i + 1} of {len(layouts)}: "
                  f"{'two processes' if layout == 'split' else 'one process'}")
            live = tmp / f"live-{i}"
            live.mkdir()
            shutil.copytree(home / SEGMENTS_DIR, live / SEGMENTS_DIR)
            series = args.series
            if series is not None and len(layouts) > 1:
                series = series.with_name(f"{series.stem}-{i}-{layout}{series.suffix}")
            topic = TOPIC if i == 0 else f"{TOPIC}-{i}"
            freshness(Settings(live, kafka, redis_url, topic, f"{topic}.dead", f"{PREFIX}{i}"),
                      events, args.rate, tmp,
                      run_args + (["--one-process"] if layout == "one" else []),
                      args.profile, series)
        if args.repeats:
            scoring_cost(kafka, redis_url, tmp, home, args.repeats)


if __name__ == "__main__":
    main()
