"""``basketflow up``, ``down`` and ``status``: the embedded servers and what they hold."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from basketflow.cli.output import out, print_json
from basketflow.config import Settings


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the addresses as JSON.")
@click.pass_obj
def up(settings: Settings, as_json: bool) -> None:
    """Start the embedded Kafka-protocol broker and Redis-protocol server.

    They run in the background on free loopback ports until `basketflow down`; their
    addresses are kept in the data directory. A server set by KAFKA_BOOTSTRAP_SERVERS or
    REDIS_URL is used as it is and not started.
    """
    from basketflow.app import services
    addresses = services.up(settings)
    if as_json:
        print_json(addresses)
        return
    for name, address in addresses.items():
        out.print(f"{name:7} {address}")


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
@click.option("--json", "as_json", is_flag=True, help="Print the whole status as JSON.")
@click.pass_obj
def status(settings: Settings, as_json: bool) -> None:
    """Servers, topics with the flow's offsets and lag, and rows in both stores."""
    from basketflow.app import services
    from basketflow.app.status import collect_status
    try:
        settings = services.resolve(settings)
    except services.ServicesNotRunning:
        pass  # status reports what is missing instead of failing
    report = collect_status(settings)
    if as_json:
        print_json(report)
    else:
        print_status(report)


def print_status(report: dict[str, Any]) -> None:
    """The status as tables for a terminal."""
    table = Table(title="services")
    for col in ("name", "address", "mode", "alive", "note"):
        table.add_column(col)
    for name, svc in report["services"].items():
        table.add_row(name, str(svc.get("address")), svc.get("mode", ""),
                      "yes" if svc.get("alive") else "NO", svc.get("error") or "")
    out.print(table)
    flow = report.get("flow", {})
    out.print(f"flow: {flow.get('events')} events processed, latest event time "
              f"{flow.get('event_time')}, updated {flow.get('updated_at')}")
    serve = flow.get("serve") or {}
    if serve.get("updated_at"):
        out.print(f"  its serve part (own process): {serve.get('events')} events, latest "
                  f"event time {serve.get('event_time')}, updated {serve.get('updated_at')}")
    for note in flow.get("notes") or []:
        out.print(note)
    table = Table(title="topics")
    for col in ("topic", "partition", "high watermark", "flow offset", "lag", "serve offset"):
        table.add_column(col)
    notes: list[str] = []
    for topic, info in report["topics"].items():
        if info.get("error") or not info.get("per_partition"):
            table.add_row(topic, "", "", "", info.get("error") or "no partitions", "")
        for p in info.get("per_partition", []):
            lag = "" if p.get("lag") is None else str(p["lag"])
            note = p.get("note")
            if note and note not in notes:
                notes.append(note)
            mark = f" [{notes.index(note) + 1}]" if note else ""
            serve_offset = p.get("serve_next_offset")
            table.add_row(topic, str(p["partition"]), str(p.get("high_watermark")),
                          str(p.get("next_offset")), lag + mark,
                          "" if serve_offset is None else str(serve_offset))
    out.print(table)
    for i, note in enumerate(notes, 1):
        out.print(f"  [{i}] {note}")
    off = report["offline"]
    out.print(f"offline store {off['dir']}: {off['rows']:,} rows in {off['files']} files, "
              f"{off['partitions']} days ({off.get('first_date')} .. {off.get('last_date')})")
    onl = report["online"]
    keys = ", ".join(f"{v}: {n:,}" for v, n in sorted(onl.get("keys", {}).items()))
    out.print(f"online store: {onl.get('total', 0):,} keys ({keys or 'none'})"
              + (f" [{onl['error']}]" if onl.get("error") else ""))
