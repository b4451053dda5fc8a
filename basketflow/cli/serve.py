"""``basketflow serve``: the HTTP API (see :mod:`basketflow.serving`)."""

from __future__ import annotations

from pathlib import Path

import click
from basketflow.config import Settings


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port to listen on.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes (each with its own Redis client).")
@click.option("--api-keys", "api_keys", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="File of API keys (KEY:ROLE[,ROLE] per line; roles read, "
              "predict, push, admin) [also env BASKETFLOW_API_KEYS]. Without any, every "
              "route is open.")
@click.option("--tls-key", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TLS private key file (with --tls-cert: HTTPS).")
@click.option("--tls-cert", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TLS certificate file (with --tls-key).")
@click.option("--redis-timeout", type=click.FloatRange(min=0.01), default=0.5,
              show_default=True, help="Seconds a Redis command may take before a 503.")
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="Log one line per request (method, route, status, ms).")
@click.option("--server", type=click.Choice(["uvicorn", "granian"]), default="uvicorn",
              show_default=True, help="The ASGI server (granian: pip install granian; "
              "docs/PERFORMANCE.md compares them).")
@click.option("--flow-metrics-port", type=click.IntRange(1, 65534), default=None,
              metavar="PORT", help="The port of `basketflow run --metrics-port` on this "
              "host: the dashboard takes the flow's lag from there (right on the embedded "
              "broker too).")
@click.pass_obj
def serve(settings: Settings, host: str, port: int, workers: int, api_keys: Path | None,
          tls_key: Path | None, tls_cert: Path | None, redis_timeout: float,
          access_log: bool, server: str, flow_metrics_port: int | None) -> None:
    """The HTTP API: live features, scores, basket predictions, pushed events.

    \b
      basketflow serve --port 8080
      curl localhost:8080/customers/17850/features
      curl localhost:8080/customers/17850/score
      curl -XPOST localhost:8080/predict -H 'content-type: application/json' -d @basket.json
    OpenAPI docs at /docs; every route with a curl example in the README; the
    dashboard at /.
    Redis is needed; without a broker, POST /events answers 503.
    """
    from basketflow.app.services import BROKER, REDIS, ServicesNotRunning, resolve
    from basketflow.serving.options import ServeOptions
    from basketflow.serving.server import Listen
    from basketflow.serving.server import serve as run_server
    resolved = resolve(settings, (REDIS,))
    try:
        resolved = resolve(resolved, (BROKER,))
    except ServicesNotRunning:
        pass  # reads and predictions work without a broker; /events says what is missing
    options = ServeOptions(resolved, redis_timeout, api_keys, access_log, flow_metrics_port)
    run_server(options, Listen(host, port, workers, tls_key, tls_cert), server)
