"""``basketflow up``, ``down`` and ``status``: the embedded servers and what they hold."""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import click
from basketflow.cli.output import out, print_json, shown, table, when
from basketflow.config import Settings


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the addresses as JSON.")
@click.pass_obj
def up(settings: Settings, as_json: bool) -> None:
    """Start the embedded Kafka-protocol broker and Redis-protocol server.

    They run in the background on free loopback ports until `basketflow down`; their
    addresses are kept in the data directory. A server set by KAFKA_BOOTSTRAP_SERVERS or
    REDIS_URL is used as it is and not started.

    The embedded Redis asks for a password generated at its first start, kept in the
    data directory's services.json (mode 0600, field redis_password): every command
    given the same data directory uses it. It is never printed (the URL shows ***);
    another program reads it from that file.
    """
    from basketflow.app import services
    addresses = services.up(settings)
    embedded = settings.redis_url is None
    password_in = str(settings.state_file) if embedded else None
    if as_json:
        print_json(addresses | {"redis_password_in": password_in})
        return
    for name, address in addresses.items():
        out.print(f"{name:7} {address}")
    if password_in:
        out.print(f"the Redis password is in {shown(password_in)} (redis_password)")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print what was stopped as JSON.")
@click.pass_obj
def down(settings: Settings, as_json: bool) -> None:
    """Stop the embedded servers started by `basketflow up`."""
    from basketflow.app import services
    stopped = services.down(settings)
    if as_json:
        print_json({"stopped": stopped})
    else:
        out.print("stopped: " + (", ".join(stopped) or "nothing was running"))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the whole status as JSON "
              "(with --watch: one JSON document a line, per refresh).")
@click.option("--watch", is_flag=True, help="Refresh until Ctrl-C, with the flow's "
              "events/s since the refresh before.")
@click.option("--interval", type=click.FloatRange(min=0.5), default=2.0, show_default=True,
              metavar="SECONDS", help="Seconds between two refreshes of --watch.")
@click.option("--metrics-port", type=click.IntRange(1, 65534), default=None, metavar="PORT",
              help="The port `basketflow run --metrics-port` serves on: add each flow "
              "process's figures from its metrics (lag, write latency, clock, outages).")
@click.pass_obj
def status(settings: Settings, as_json: bool, watch: bool, interval: float,
           metrics_port: int | None) -> None:
    """Servers, topics with the flow's offsets and lag, and rows in both stores.

    With --watch it refreshes every --interval seconds, in place, and adds the flow's
    events/s. With --metrics-port it also shows the flow's own metrics: the lag per
    process (right on the embedded broker too), the online-write latency, the clock.
    """
    from basketflow.app import services
    from basketflow.app.status import collect_status, watch_status
    try:
        settings = services.resolve(settings)
    except services.ServicesNotRunning:
        pass  # status reports what is missing instead of failing
    if not watch:
        report = collect_status(settings, metrics_port=metrics_port)
        print_json(report) if as_json else print_status(report)
        return
    _ctrl_c_stops()
    try:
        for report in watch_status(settings, interval, metrics_port=metrics_port):
            if as_json:
                click.echo(json.dumps(report, default=str), nl=True)
                continue
            with out.capture() as frame:  # laid out whole, then written in one call:
                out.clear()                 # Ctrl-C never leaves half a refresh behind
                out.print(f"{time.strftime('%H:%M:%S UTC', time.gmtime(report['at']))}, "
                          f"every {interval:g} s (Ctrl-C stops): "
                          f"flow {_rate(report['rates']['flow'])}, serve part "
                          f"{_rate(report['rates']['serve'])}")
                print_status(report)
            out.file.write(frame.get())
            out.file.flush()
    except KeyboardInterrupt:
        return


def _ctrl_c_stops() -> None:
    """Make Ctrl-C (SIGINT) stop ``--watch`` whatever this process inherited: Python
    leaves SIGINT ignored when it starts with it ignored (a process started in the
    background by a shell, or by a parent that ignored it), and a signal blocked in the
    parent's mask stays blocked in its children."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _rate(per_second: float | None) -> str:
    """Events/s for the watch line.

    >>> _rate(1234.5), _rate(None)
    ('1,234 events/s', '- events/s')
    """
    return f"{per_second:,.0f} events/s" if per_second is not None else "- events/s"


def print_status(report: dict[str, Any]) -> None:
    """The status for a terminal of 80 columns or more: values that cannot be cut (ids,
    addresses, topic names) fold onto a second line rather than end in an ellipsis."""
    if report.get("project_file"):
        out.print(f"project: {report['project_file']}")
    services = table("name", "address", "mode", "pid>", "alive", title="services")
    for name, svc in report["services"].items():
        services.add_row(name, str(svc.get("address")), svc.get("mode", ""),
                         str(svc.get("pid") or ""), "yes" if svc.get("alive") else "NO")
    out.print(services)
    for name, svc in report["services"].items():
        if svc.get("error"):
            out.print(f"  {name}: {svc['error']}")
    flow = report.get("flow", {})
    out.print(f"flow: {flow.get('events')} events processed, event-time clock "
              f"{_clock(flow)}, updated {flow.get('updated_at')}")
    serve = flow.get("serve") or {}
    if serve.get("updated_at"):
        out.print(f"  its serve part (own process): {serve.get('events')} events, "
                  f"event-time clock {_clock(serve)}, updated {serve.get('updated_at')}")
    for note in flow.get("notes") or []:
        out.print(note)
    if "metrics" in report:
        print_flow_metrics(report["metrics"])
    print_topics(report["topics"])
    off = report["offline"]
    out.print(f"offline store {off['dir']}: {off['rows']:,} rows in {off['files']} files, "
              f"{off['partitions']} days ({off.get('first_date')} .. {off.get('last_date')})")
    onl = report["online"]
    keys = ", ".join(f"{v}: {n:,}" for v, n in sorted(onl.get("keys", {}).items()))
    out.print(f"online store: {onl.get('total', 0):,} keys ({keys or 'none'})"
              + (f" [{onl['error']}]" if onl.get("error") else ""))


def print_flow_metrics(parts: list[dict[str, Any]]) -> None:
    """Each flow process's figures from its metrics (``status --metrics-port``)."""
    rows = table("part", "port>", "events>", "lag>", "write p50>", "write p99>",
                 "clock behind>", "down", title="flow metrics")
    for p in parts:
        if p["error"]:
            out.print(f"  {p['error']}")
            continue
        rows.add_row(p["part"], str(p["port"]), _count(p["events"]), _count(p["lag"]),
                     _seconds(p["latency_p50"]), _seconds(p["latency_p99"]),
                     _seconds(p["clock_behind"]), ", ".join(p["down"]) or "-")
    if rows.row_count:
        out.print(rows)


def _seconds(value: float | None) -> str:
    """A duration for a table cell.

    >>> _seconds(0.00042), _seconds(3.5), _seconds(None), _seconds(473051852.0)
    ('0.42 ms', '3.50 s', '-', '5475.1 d')
    """
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.2f} ms"
    if value < 86_400:
        return f"{value:.2f} s"
    return f"{value / 86_400:.1f} d"


def _clock(progress: dict[str, Any]) -> str:
    """A flow part's event-time clock: the newest event time it processed (reads are as
    of it), as a date and as the epoch seconds of ``clock`` in ``--json``.

    >>> _clock({"clock": 1291284000}), _clock({"clock": None, "event_time": ""})
    ('2010-12-02 10:00 UTC (1291284000)', 'none')
    """
    clock = progress.get("clock")
    return "none" if clock is None else f"{when(clock)} ({clock})"


def print_topics(topics: dict[str, Any]) -> None:
    """Each topic's partitions with the flow's next offsets, and the lag only where the
    broker's high watermarks are the partitions' ends (not on Tansu: one line says so)."""
    known = all(info.get("lag_known") for info in topics.values() if info.get("exists"))
    partitions = table("topic", "part>", "flow offset>", "serve offset>",
                       *(("high watermark>", "lag>") if known else ()), title="topics")
    notes: list[str] = []
    for topic, info in topics.items():
        if info.get("error") or not info.get("per_partition"):
            partitions.add_row(topic, "-", info.get("error") or "no partitions", "",
                          *(("", "") if known else ()))
        for p in info.get("per_partition", []):
            serve_offset = p.get("serve_next_offset")
            cells = [topic, str(p["partition"]), _count(p.get("next_offset")),
                     _count(serve_offset)]
            if known:
                note = p.get("note")
                if p.get("lag") is None and note and note not in notes:
                    notes.append(note)
                cells += [_count(p.get("high_watermark")),
                          _count(p.get("lag")) if p.get("lag") is not None else "unknown"]
            partitions.add_row(*cells)
    out.print(partitions)
    if not known and any(info.get("exists") for info in topics.values()):
        out.print("  lag: unknown (the embedded Tansu broker does not report where a "
                  "partition ends)")
    for note in notes:
        out.print(f"  {note}")


def _count(value: int | None) -> str:
    """A count with thousands separators; '-' for none."""
    return "-" if value is None else f"{value:,}"
