"""What ``basketflow status`` shows: servers, topics and the flow's lag, offline and online stores.

:func:`collect_status` returns one JSON-serialisable dict (the CLI prints it as tables, or
as JSON with ``--json``). Every part degrades on its own: a server that is down gives
``alive: False`` and an ``error`` string, and the parts that need it say so; nothing here
raises because something is not running. The shape::

    {
      "data_dir": "...",
      "project_file": "..." | None: the basketflow.yaml the settings were read from,
      "services": {"broker": SERVICE, "redis": SERVICE},
      "flow": {"events": int|None, "event_time": str|None, "clock": int|None,
               "updated_at": str|None, "error": str|None,
               "health": the flow's flow-health.json (Redis and broker outages, see
                         basketflow.sinks.flow_health) or None,
               "notes": [str]: what the health file means now, one line each (an outage
                        going on, a flow writing to another Redis than `basketflow up`'s),
               "serve": {"events", "event_time", "clock", "updated_at", "error"}: the serve part's own
                        progress when it runs in a process of its own, else all None},
      "topics": {"<topic>": {"exists": bool, "partitions": int, "error": str|None,
                             "per_partition": [PARTITION, ...]}, "<dead topic>": {...}},
      "offline": {"dir": str, "rows": int, "files": int, "partitions": int,
                  "first_date": str|None, "last_date": str|None, "unreadable": [str], "error": str|None},
      "online": {"alive": bool, "total": int, "keys": {"<view>": int}, "truncated": bool, "error": str|None},
    }

    SERVICE = {"name", "address", "mode": "embedded"|"external"|"absent", "embedded": bool,
               "pid": int|None, "log": str|None, "alive": bool, "error": str|None}
    TOPIC = {"exists", "partitions", "error", "per_partition": [PARTITION, ...],
             "lag_known": bool: False on a broker whose watermarks are not the partition's end}
    PARTITION = {"partition", "high_watermark", "next_offset", "lag", "trusted": bool, "note",
                 "serve_next_offset": the serve part's next offset, or None}

The flow's progress is the online store's progress hash ``<prefix>:flow:progress``
(:meth:`basketflow.sinks.online_store.OnlineStore.read_progress`):
``offset:<topic>:<partition>`` = next offset to read, ``events``, ``event_time`` (latest
event time), ``clock`` (the same time in epoch seconds: the flow's event-time clock,
which online reads are as of) and ``updated_at``. Run as two processes (``basketflow run``), the store part
writes that hash and the serve part, which consumes the topic on its own, its part
``<prefix>:flow:progress:serve``. The offline figures are of the files the offline store
lists (:mod:`basketflow.sinks.offline_layout`).
Lag = high watermark - next offset, shown only where it is true. On a Tansu broker
(recognised by its cluster id, whoever started it) the high watermark is the base offset
of the last record batch, not the end of the partition (see :mod:`basketflow.app.services`),
so neither is reported there: ``high_watermark`` and ``lag`` are None and the lag is
"unknown". A watermark below the flow's offset is wrong too: no lag either.

A server is ``embedded`` when it is one of the bundled binaries (Tansu, valkey-server)
started by basketflow: listed in the state file of ``basketflow up``, or found serving the
address (the servers of ``basketflow demo`` and of the tests, which the state file does
not list); ``external`` otherwise.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from basketflow.app.flow_scrape import flow_metrics
from basketflow.app.run_lock import pid_alive
from basketflow.app.services import (
    BROKER,
    CHECK_TIMEOUT,
    REDIS,
    ServiceProcess,
    address_port,
    check_broker,
    check_redis,
    read_state,
)
from basketflow.config import ENV_KAFKA, ENV_REDIS, Settings
from basketflow.offline_uri import StoreDir
from basketflow.security import redact_data, redis_client
from basketflow.flows.progress import SERVE_PROGRESS
from basketflow.sinks.offline_layout import events_dir, files_by_day, files_of
from basketflow.sinks.flow_health import read_health
from basketflow.sinks.online_store import (
    CLOCK_FIELD,
    OnlineStore,
    RedisOnlineStore,
    glob_escape,
)

EMBEDDED_LAG_NOTE = (
    "unknown: the Tansu broker does not report where a partition ends"
)
BELOW_OFFSET_NOTE = "unknown: the broker's high watermark is below the flow's next offset"
TANSU_CLUSTER = "tansu"
"""How a Tansu broker's cluster id starts (``tansu_cluster``)."""
#: What a bundled server's command line holds, by service: its binary's name.
BUNDLED_BINARIES = {BROKER: "tansu", REDIS: "valkey-server"}
MAX_SCAN_KEYS = 1_000_000
"""Stop counting online keys after this many (``truncated: True``): status must stay quick."""

def collect_status(settings: Settings, timeout: float = CHECK_TIMEOUT,
                   metrics_port: int | None = None) -> dict[str, Any]:
    """Everything ``basketflow status`` shows, gathered with short timeouts; never raises
    because a server is down or a file is unreadable. With ``metrics_port`` (a flow's
    ``run --metrics-port``), ``metrics`` holds each flow process's scraped figures
    (:mod:`basketflow.app.flow_scrape`). Passwords in it are masked
    (:func:`~basketflow.security.redact_data`): it is made to be shown.
    """
    state = _safe_state(settings)
    services = {
        BROKER: service_status(BROKER, settings.kafka_bootstrap, state.get(BROKER), timeout),
        REDIS: service_status(REDIS, settings.redis_url, state.get(REDIS), timeout),
    }
    redis_url = services[REDIS]["address"] if services[REDIS]["alive"] else None
    progress = flow_progress(redis_url, settings.prefix, timeout)
    serve = flow_progress(redis_url, settings.prefix, timeout, SERVE_PROGRESS)
    fields = ("events", "event_time", "clock", "updated_at", "error")
    health = read_health(settings.data_dir)
    scraped = {} if metrics_port is None else {"metrics": flow_metrics(metrics_port,
                                                                        settings.topic)}
    return redact_data(scraped | {
        "data_dir": str(settings.data_dir),
        "project_file": str(settings.project_file) if settings.project_file else None,
        "services": services,
        "flow": {k: progress.get(k) for k in fields}
        | {"health": health, "notes": health_notes(health, services[REDIS]),
           "serve": {k: serve.get(k) for k in fields}},
        "topics": topics_status(settings, services[BROKER], progress.get("offsets", {}),
                                timeout, serve.get("offsets", {})),
        "offline": offline_status(settings.offline_dir),
        "online": online_status(redis_url, settings.prefix, timeout),
    })


def watch_status(settings: Settings, interval: float,
                 sleep: Callable[[float], None] = time.sleep,
                 metrics_port: int | None = None) -> Iterator[dict[str, Any]]:
    """:func:`collect_status` every ``interval`` seconds, for ever (``status --watch``);
    each report has ``rates``: events/s of the flow (``flow``) and of its serve part
    (``serve``) since the report before (None in the first, or where a count is
    missing), and ``at`` (the wall time of the report, epoch seconds)."""
    before: dict[str, Any] | None = None
    while True:
        report = collect_status(settings, metrics_port=metrics_port)
        now = time.time()
        report["at"] = round(now, 3)
        report["rates"] = {part: events_rate(before, report, part) for part in ("flow", "serve")}
        yield report
        before = report
        sleep(max(interval - (time.time() - now), 0.0))


def events_rate(before: dict[str, Any] | None, after: dict[str, Any], part: str
                ) -> float | None:
    """Events/s of a flow ``part`` (``flow``: the whole flow's progress, ``serve``: the
    serve part's) between two status reports; None without both counts.

    >>> a = {"at": 10.0, "flow": {"events": 100, "serve": {"events": 90}}}
    >>> b = {"at": 12.0, "flow": {"events": 300, "serve": {"events": None}}}
    >>> events_rate(a, b, "flow"), events_rate(a, b, "serve"), events_rate(None, b, "flow")
    (100.0, None, None)
    """
    if before is None or after["at"] <= before["at"]:
        return None
    counts = [(r["flow"] if part == "flow" else r["flow"].get("serve") or {}).get("events")
              for r in (before, after)]
    if None in counts:
        return None
    return round((int(counts[1]) - int(counts[0])) / (after["at"] - before["at"]), 1)


def health_notes(health: dict[str, Any] | None, redis: dict[str, Any]) -> list[str]:
    """What the flow's health file (:mod:`basketflow.sinks.flow_health`) says now, for
    people: outages going on or past, and a running flow whose Redis address is not the
    one ``redis`` (the services' Redis) has.

    >>> health_notes({"redis": "down", "since": "t0", "error": "refused", "pid": 1,
    ...               "url": "redis://127.0.0.1:1"}, {"address": "redis://127.0.0.1:1"})
    ['flow (pid 1): Redis unreachable since t0, waiting and retrying: refused']
    """
    if not health:
        return []
    pid = health.get("pid")
    notes: list[str] = []
    if health.get("redis") == "down":
        notes.append(f"flow (pid {pid}): Redis unreachable since {health.get('since')}, "
                     f"waiting and retrying: {health.get('error')}")
    elif health.get("last_outage_from"):
        notes.append(f"flow: last Redis outage from {health['last_outage_from']}, "
                     f"{health.get('last_outage_seconds')} s")
    if health.get("broker") == "down":
        notes.append(f"flow (pid {pid}): the broker unreachable since "
                     f"{health.get('broker_since')}, the flow is stalled until it is back: "
                     f"{health.get('broker_error')}")
    elif health.get("broker_last_outage_from"):
        notes.append(f"flow: last broker outage from {health['broker_last_outage_from']}, "
                     f"{health.get('broker_last_outage_seconds')} s")
    url, address = health.get("url"), redis.get("address")
    if url and address and url != address and pid_alive(pid):
        notes.append(f"flow (pid {pid}) writes to Redis at {url}, but Redis is now at "
                     f"{address}: a flow on the embedded Redis moves there at its next "
                     "retry; if it does not within a few seconds, stop it and run "
                     "`basketflow run` again")
    return notes


def _safe_state(settings: Settings) -> dict[str, ServiceProcess]:
    try:
        return read_state(settings)
    except Exception:  # an unreadable data dir must not break status
        return {}


def service_status(
    name: str, configured: str | None, entry: ServiceProcess | None, timeout: float = CHECK_TIMEOUT
) -> dict[str, Any]:
    """Where one server is, who started it and whether it answers right now.

    ``configured`` is the address from the environment (or already resolved settings);
    ``entry`` is what the state file of ``basketflow up`` lists for it, if anything.
    """
    embedded = entry is not None and (configured is None or configured == entry.address)
    address = configured or (entry.address if entry is not None else None)
    pid = entry.pid if embedded and entry is not None else None
    if not embedded and configured:
        pid = bundled_server_pid(name, configured)
    out: dict[str, Any] = {
        "name": name,
        "address": address,
        "mode": "embedded" if embedded or pid else ("external" if configured else "absent"),
        "embedded": embedded or pid is not None,
        "pid": pid,
        "log": str(entry.log) if embedded and entry is not None else None,
        "alive": False,
        "error": None,
    }
    env = ENV_KAFKA if name == BROKER else ENV_REDIS
    if address is None:
        out["error"] = f"not running: run `basketflow up`, or set {env} to an existing server"
        return out
    if embedded and entry is not None and not entry.is_running():
        out["error"] = (
            f"process {entry.pid} is gone (stale state file): run `basketflow up`; "
            f"its log is {entry.log}"
        )
        return out
    try:
        (check_broker if name == BROKER else check_redis)(address, timeout)
    except Exception as exc:
        out["error"] = f"no answer from {address}: {exc or type(exc).__name__}"
    else:
        out["alive"] = True
    return out


def bundled_server_pid(name: str, address: str) -> int | None:
    """The pid of a bundled server binary (:data:`BUNDLED_BINARIES`) serving ``address``
    on this machine, found by its command line (which holds its port); None when there is
    none, the address is not a loopback one, or there is no ``/proc`` to look in."""
    try:
        host = address.split("//")[-1].split("/")[0].rsplit(":", 1)[0].split("@")[-1]
        port = address_port(address.split(",")[0])
    except ValueError:
        return None
    proc = Path("/proc")
    if host not in ("127.0.0.1", "localhost", "::1", "[::1]") or not proc.is_dir():
        return None
    needle = f":{port}"
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:  # valkey-server rewrites its title: "<binary> <host>:<port>", spaces not NULs
            words = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace").split()
        except OSError:
            continue
        if words and BUNDLED_BINARIES[name] in Path(words[0]).name \
                and any(word.endswith(needle) for word in words[1:]):
            return int(entry.name)
    return None


def consumed(redis_url: str, prefix: str, topic: str,
             parts: tuple[str, ...] = ("", SERVE_PROGRESS)) -> int:
    """Messages of ``topic`` the flow has consumed: the sum of its partitions' next
    offsets in the progress hash of each of ``parts`` (by default both: the whole flow's
    and the serve part's), the smallest, so the part that is behind (0 until each hash
    has some). For tests and benchmarks that act once the flow got somewhere.
    """
    store = _online_store(redis_url, prefix, CHECK_TIMEOUT)
    try:
        mark = f"offset:{topic}:"
        return min(sum(int(v) for k, v in store.read_progress(part).items()
                       if k.startswith(mark)) for part in parts)
    finally:
        store.close()


def _redis_client(url: str, timeout: float) -> Any:
    return redis_client(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                        decode_responses=True)


def _online_store(url: str, prefix: str, timeout: float) -> OnlineStore:
    """The online store at ``url``, on a client that gives up after ``timeout``."""
    return RedisOnlineStore(redis_client(
        url, socket_timeout=timeout, socket_connect_timeout=timeout), prefix)


def flow_progress(redis_url: str | None, prefix: str, timeout: float = CHECK_TIMEOUT,
                  part: str = "") -> dict[str, Any]:
    """The live flow's progress hash (of ``part``, see :func:`consumed`), parsed: events,
    event_time, clock, updated_at, and ``offsets`` as ``{(topic, partition): next offset}``.
    """
    empty: dict[str, Any] = {"events": None, "event_time": None, "clock": None,
                             "updated_at": None, "offsets": {}}
    if redis_url is None:
        return {**empty, "error": "online store not reachable"}
    try:
        store = _online_store(redis_url, prefix, timeout)
        try:
            raw = store.read_progress(part)
        finally:
            store.close()
    except Exception as exc:
        return {**empty, "error": f"cannot read the flow's progress: {exc}"}
    offsets: dict[tuple[str, int], int] = {}
    for field, value in raw.items():
        if field.startswith("offset:"):
            topic, _, partition = field[len("offset:"):].rpartition(":")
            try:
                offsets[(topic, int(partition))] = int(value)
            except ValueError:
                continue
    return {
        "events": _integer(raw.get("events")),
        "event_time": raw.get("event_time"),
        "clock": _integer(raw.get(CLOCK_FIELD)),
        "updated_at": raw.get("updated_at"),
        "offsets": offsets,
        "error": None,  # an empty hash just means the flow has not run yet
    }


def _integer(text: str | None) -> int | None:
    """A progress field's integer; None when it is missing or not one.

    >>> _integer("12"), _integer("-3"), _integer(None), _integer("x")
    (12, -3, None, None)
    """
    return int(text) if text is not None and text.lstrip("-").isdigit() else None


def partition_lag(
    high_watermark: int | None, next_offset: int | None, tansu_broker: bool
) -> dict[str, Any]:
    """Lag of one partition where it is true, else None with the reason.

    >>> partition_lag(10, 4, False)["lag"]
    6
    >>> partition_lag(1, 4, True)["lag"], partition_lag(1, 4, False)["note"]
    (None, "unknown: the broker's high watermark is below the flow's next offset")
    """
    if tansu_broker:
        high_watermark = None
    lag = high_watermark - next_offset if high_watermark is not None and next_offset is not None else None
    notes: list[str] = []
    if tansu_broker:
        notes.append(EMBEDDED_LAG_NOTE)
    elif high_watermark is None:
        notes.append("the broker did not report a high watermark")
    if next_offset is None:
        notes.append("the flow has not recorded an offset for this partition yet")
    if lag is not None and lag < 0:
        notes.append(BELOW_OFFSET_NOTE)
        lag = None
    return {
        "high_watermark": high_watermark,
        "next_offset": next_offset,
        "lag": lag,
        "trusted": lag is not None and not notes,
        "note": "; ".join(notes) or None,
    }


def topics_status(
    settings: Settings,
    broker: dict[str, Any],
    offsets: dict[tuple[str, int], int],
    timeout: float = CHECK_TIMEOUT,
    serve_offsets: dict[tuple[str, int], int] | None = None,
) -> dict[str, dict[str, Any]]:
    """Partitions, high watermarks and the flow's lag for the event topic and its dead
    letters, and the serve part's next offsets (``serve_offsets``) where it has its own."""
    topics = [settings.topic, settings.dead_topic]
    if not broker["alive"]:
        return {t: _topic_error(f"broker not reachable: {broker['error']}") for t in topics}
    try:
        from confluent_kafka import Consumer, TopicPartition
        from confluent_kafka.admin import AdminClient

        from basketflow.kafka import client_config

        conf = client_config(broker["address"]) | {"log_level": 0}
        metadata = AdminClient(conf).list_topics(timeout=timeout)
        consumer = Consumer({**conf, "group.id": "basketflow-status", "enable.auto.commit": False})
    except Exception as exc:
        return {t: _topic_error(f"cannot read topic metadata: {exc}") for t in topics}
    result: dict[str, dict[str, Any]] = {}
    tansu = str(metadata.cluster_id or "").startswith(TANSU_CLUSTER)
    try:
        for topic in topics:
            meta = metadata.topics.get(topic)
            if meta is None or meta.error is not None or not meta.partitions:
                reason = meta.error.str() if meta is not None and meta.error else "no such topic"
                result[topic] = {**_topic_error(reason), "exists": False}
                continue
            rows = []
            for partition in sorted(meta.partitions):
                high, error = None, None
                try:
                    if not tansu:  # its watermark is not the partition's end: not asked
                        _, high = consumer.get_watermark_offsets(
                            TopicPartition(topic, partition), timeout=timeout, cached=False)
                except Exception as exc:
                    error = str(exc)
                row = {"partition": partition,
                       **partition_lag(high, offsets.get((topic, partition)), tansu),
                       "serve_next_offset": (serve_offsets or {}).get((topic, partition))}
                if error:
                    row["note"] = f"watermark not available: {error}; {row['note']}"
                rows.append(row)
            result[topic] = {"exists": True, "partitions": len(rows), "error": None,
                             "per_partition": rows, "lag_known": not tansu}
    finally:
        consumer.close()
    return result


def _topic_error(message: str) -> dict[str, Any]:
    return {"exists": None, "partitions": 0, "error": message, "per_partition": [],
            "lag_known": False}


def offline_status(offline_dir: StoreDir) -> dict[str, Any]:
    """Rows, files and date partitions of the Parquet events of the offline store at
    ``offline_dir``, as the store lists them
    (:func:`~basketflow.sinks.offline_layout.files_by_day`: finished files only).

    Rows come from each file's footer (its metadata's ``num_rows``), not from reading the
    data; an unreadable file is listed in ``unreadable``, not counted.
    """
    events = events_dir(offline_dir)
    out: dict[str, Any] = {"dir": str(events), "rows": 0, "files": 0, "partitions": 0,
                           "first_date": None, "last_date": None, "unreadable": [], "error": None}
    try:
        from basketflow.sinks.offline_store import read_metadata

        by_day = files_by_day(events)  # nothing written yet: zero counts, not an error
        for file in files_of(by_day):
            try:
                out["rows"] += read_metadata(file).num_rows
                out["files"] += 1
            except Exception as exc:
                out["unreadable"].append(f"{file}: {exc}")
    except Exception as exc:
        out["error"] = f"cannot read {events}: {exc}"
        return out
    dates = [day.isoformat() for day in by_day]
    out["partitions"] = len(dates)
    out["first_date"] = dates[0] if dates else None
    out["last_date"] = dates[-1] if dates else None
    return out


def online_status(
    redis_url: str | None, prefix: str, timeout: float = CHECK_TIMEOUT,
    max_keys: int = MAX_SCAN_KEYS,
) -> dict[str, Any]:
    """Number of online-store keys ``<prefix>:<view>:...`` per view, counted with SCAN
    (never KEYS, which blocks the server), stopping after ``max_keys``.
    """
    out: dict[str, Any] = {"alive": redis_url is not None, "total": 0, "keys": {},
                           "truncated": False, "error": None}
    if redis_url is None:
        out["error"] = "online store not reachable"
        return out
    counts: Counter[str] = Counter()
    head = f"{prefix}:"
    try:
        client = _redis_client(redis_url, timeout)
        try:
            for seen, key in enumerate(
                client.scan_iter(match=glob_escape(head) + "*", count=1000), start=1
            ):
                counts[key[len(head):].split(":", 1)[0]] += 1
                if seen >= max_keys:
                    out["truncated"] = True
                    break
        finally:
            client.close()
    except Exception as exc:
        out["error"] = f"cannot scan the online store: {exc}"
    out["keys"] = dict(sorted(counts.items()))
    out["total"] = sum(counts.values())
    return out


__all__ = [
    "collect_status", "service_status", "flow_progress", "partition_lag", "topics_status",
    "offline_status", "online_status", "EMBEDDED_LAG_NOTE",
]
