"""The dashboard of ``basketflow serve``: a server-rendered page at ``/``.

The page shows the stream over the last hour (throughput, freshness of the event-time
clock, lag where the broker reports it; charts drawn by uPlot, vendored in ``static/``
with its licence: no CDN, no build step), the feature registry, a customer lookup
(``/?customer=ID``: its live values and score, and its history from the feature log as a
chart), the latest daily reports (served from ``<data>/reports`` under ``/reports/``) and
the drift alerts of the newest one. ``static/dashboard.js`` refreshes the stream's charts
from ``/dashboard/data`` every few seconds; the server samples the flow's progress on its
own while it runs (:class:`~basketflow.app.dashboard.StreamHistory`), so the charts have
the last hour whenever the page is opened.

With API keys on, the page and its data need the ``read`` role like the reads do, which
a browser cannot send: the dashboard is for a server without keys, or behind a proxy
that adds one.
"""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from basketflow.app import dashboard as data
from basketflow.app import features as app_features
from basketflow.config import Settings
from basketflow.sinks.online_store import OnlineStore

STATIC = Path(__file__).with_name("static")
#: Seconds between two refreshes of the page's stream charts.
REFRESH_SECONDS = 5


def add_dashboard(app: FastAPI, settings: Settings, store: OnlineStore,
                  customer_views: Sequence[str], dependencies: list[Any],
                  flow_metrics_port: int | None = None) -> None:
    """Add ``/``, ``/dashboard/data``, ``/static/`` and ``/reports/`` to ``app``, and the
    task that samples the stream while the server runs (the lag from the flow's metrics
    on ``flow_metrics_port`` when given)."""
    history = data.StreamHistory()

    async def sample_forever() -> None:
        while True:
            try:
                history.add(await run_in_threadpool(data.stream_sample, settings,
                                                    flow_metrics_port))
            except Exception:  # a server down now is a gap in the charts, not a crash
                pass
            await asyncio.sleep(data.SAMPLE_EVERY)

    tasks: list[asyncio.Task[None]] = []
    app.router.on_startup.append(lambda: tasks.append(asyncio.create_task(sample_forever())))
    # Stopped with the server: a task left running holds a granian worker open after SIGTERM.
    app.router.on_shutdown.append(lambda: [task.cancel() for task in tasks])
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount("/reports", StaticFiles(directory=settings.data_dir / "reports",
                                      check_dir=False), name="reports")

    @app.get("/", dependencies=dependencies, response_class=HTMLResponse,
             include_in_schema=False)
    async def page(customer: str | None = None) -> Response:
        """The dashboard; with ``?customer=ID`` the customer's values, score and history."""
        lookup = await run_in_threadpool(_lookup, settings, store, customer_views,
                                         customer.strip()) if customer else None
        return HTMLResponse(render_page(settings, history.series(), lookup, customer))

    @app.get("/dashboard/data", dependencies=dependencies, include_in_schema=False)
    async def stream() -> Response:
        """The stream's series of the last hour, for the page's charts."""
        return Response(json.dumps(history.series()), media_type="application/json")


def _lookup(settings: Settings, store: OnlineStore, views: Sequence[str],
            customer: str) -> dict[str, Any]:
    """A customer's live values (per view), live score and history."""
    found = app_features.read_online(store, [customer], views)[0].to_json()
    stored = store.read_score(customer)
    score = (app_features.LiveScore.from_stored(customer, stored).to_json()
             if stored is not None else None)
    return {"features": found, "score": score,
            "history": data.customer_history(settings, customer)}


def _e(value: Any) -> str:
    return html.escape(str(value))


def _when(ts: int | float | None) -> str:
    if not ts:
        return "none"
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def render_page(settings: Settings, series: dict[str, list[Any]],
                lookup: dict[str, Any] | None, customer: str | None) -> str:
    """The whole page as HTML."""
    sections = [_stream_section(series), _lookup_section(lookup, customer),
                _drift_section(settings), _reports_section(settings), _registry_section()]
    return PAGE.format(refresh=REFRESH_SECONDS, body="\n".join(sections),
                       history=_json_script(lookup["history"] if lookup else None))


def _json_script(value: Any) -> str:
    """JSON for a ``<script type="application/json">`` (``</`` cannot close it)."""
    return json.dumps(value).replace("</", "<\\/")


def _stream_section(series: dict[str, list[Any]]) -> str:
    rate = next((v for v in reversed(series["events_per_second"]) if v is not None), None)
    fresh = next((v for v in reversed(series["freshness_seconds"]) if v is not None), None)
    lag = series["lag"][-1] if series["lag"] else None
    return f"""<section id="stream"><h2>The stream, last hour</h2>
<p class="figures"><span>throughput <b id="rate">{_e(f"{rate:,.0f}" if rate is not None
else "-")}</b> events/s</span> <span>clock behind now by <b id="freshness">{_e(
f"{fresh:,.0f} s" if fresh is not None else "-")}</b></span> <span>lag <b id="lag">{_e(
f"{lag:,}" if lag is not None else "unknown")}</b> messages</span></p>
<div class="charts"><div id="chart-rate" class="chart"></div>
<div id="chart-freshness" class="chart"></div><div id="chart-lag" class="chart"></div></div>
<p class="note">Sampled by this server every {data.SAMPLE_EVERY:g} s while it runs. The
clock is the newest event time the flow processed (a replay of old data is far behind
now). Lag comes from the flow's metrics when the server is given their port
(<code>basketflow serve --flow-metrics-port</code>); else from the broker, and the
embedded one does not report where a partition ends.</p>
</section>"""


def _lookup_section(lookup: dict[str, Any] | None, customer: str | None) -> str:
    form = f"""<form method="get" action="/"><label>Customer id
<input name="customer" id="customer" value="{_e(customer or "")}"></label>
<button type="submit">Look up</button></form>"""
    if lookup is None:
        return f'<section id="lookup"><h2>Customer lookup</h2>{form}</section>'
    features = lookup["features"]
    rows = []
    for view in ("customer", "basket"):
        values = features["views"].get(view)
        if not values:
            continue
        for name, value in values.items():
            if not name.startswith("_"):
                rows.append(f'<tr><td>{_e(view)}</td><td>{_e(name)}</td>'
                            f'<td class="num" data-feature="{_e(view)}:{_e(name)}">'
                            f'{_e(value)}</td></tr>')
    score = lookup["score"]
    score_text = (f"live score: <b>{_e(score['category'])}</b> (model "
                  f"{_e(score['model_version'])})" if score else "no live score")
    found = (f"<p>As of {_e(_when(features.get('as_of')))}; {score_text}.</p>"
             f"<table><tr><th>view</th><th>feature</th><th>value</th></tr>"
             f"{''.join(rows)}</table>" if rows else
             f"<p>No live values for customer {_e(customer)}.</p>")
    chart = ('<div id="chart-history" class="chart wide"></div>'
             if lookup["history"]["ts"] else "<p>No feature-log history.</p>")
    return (f'<section id="lookup"><h2>Customer lookup</h2>{form}'
            f'<h3>Customer {_e(customer)}</h3>{chart}{found}</section>')


def _drift_section(settings: Settings) -> str:
    day, moved = data.drift_alerts(settings)
    if day is None:
        body = ("<p>No daily report with a drift section yet: <code>basketflow report "
                "--date D</code> writes one.</p>")
    elif not moved:
        body = f"<p>Report of {_e(day)}: no feature moved.</p>"
    else:
        body = (f"<p>Report of {_e(day)}:</p><table><tr><th>feature</th><th>measure</th>"
                "<th>value</th><th>status</th></tr>" + "".join(
                    f'<tr class="{_e(f["status"])}"><td>{_e(f["view"])}:{_e(f["feature"])}'
                    f'</td><td>{_e(f["method"])}</td><td class="num">{f["score"]:.3f}</td>'
                    f'<td>{_e(f["status"])}</td></tr>' for f in moved) + "</table>")
    return f'<section id="drift"><h2>Drift alerts</h2>{body}</section>'


def _reports_section(settings: Settings) -> str:
    links = data.latest_reports(settings)
    body = ("<ul>" + "".join(f'<li><a href="/reports/{_e(r.page)}">{_e(r.day)}</a></li>'
                            for r in links) + "</ul>") if links else (
        "<p>No daily report yet: <code>basketflow report --date D</code>.</p>")
    return f'<section id="reports"><h2>Latest daily reports</h2>{body}</section>'


def _registry_section() -> str:
    rows = "".join(
        f"<tr><td>{_e(v.name)}</td><td>{_e(v.entity)}</td><td><code>{_e(v.version)}</code>"
        f"</td><td>{len(v.features)}</td><td class=\"names\">{_e(', '.join(v.features))}"
        "</td></tr>" for v in data.registry_views())
    return ('<section id="registry"><h2>Feature registry</h2><table><tr><th>view</th>'
            "<th>entity</th><th>version</th><th>features</th><th>names</th></tr>"
            f"{rows}</table></section>")


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>basketflow</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/uPlot.min.css">
<link rel="stylesheet" href="/static/dashboard.css">
</head><body data-refresh="{refresh}">
<header><h1>basketflow</h1><nav><a href="/docs">API</a> <a href="/metrics">metrics</a></nav>
</header>
<main>
{body}
</main>
<script type="application/json" id="history-data">{history}</script>
<script src="/static/uPlot.iife.min.js"></script>
<script src="/static/dashboard.js"></script>
</body></html>
"""
