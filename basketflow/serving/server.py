"""Start ``basketflow serve``: an ASGI server (uvicorn by default, or granian) with the
application factory, its worker processes and TLS options; the options reach each
worker through the environment (:mod:`basketflow.serving.options`)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from basketflow.errors import BasketflowError
from basketflow.serving.auth import ENV_API_KEYS, load_keys
from basketflow.serving.metrics import ENV_MULTIPROC
from basketflow.serving.options import ENV_SERVE_OPTIONS, ServeOptions


class BadServerOption(BasketflowError, ValueError):
    """An option the server cannot start with (a TLS file that is not there)."""


@dataclass(frozen=True)
class Listen:
    """Where and how the server listens: address, port, worker processes, and the TLS
    key and certificate files (both or neither)."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    tls_key: Path | None = None
    tls_cert: Path | None = None

    def check(self) -> None:
        """:class:`BadServerOption` for TLS given by halves or files not there."""
        if (self.tls_key is None) != (self.tls_cert is None):
            raise BadServerOption("TLS needs both --tls-key and --tls-cert")
        for path in (self.tls_key, self.tls_cert):
            if path is not None and not path.is_file():
                raise BadServerOption(f"TLS file {path} does not exist")

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"{'https' if self.tls_cert else 'http'}://{self.host}:{self.port}"


#: The ASGI servers ``basketflow serve`` runs the application on (the first: default).
SERVERS = ("uvicorn", "granian")
APP_FACTORY = "basketflow.serving.api:app_from_env"


def serve(options: ServeOptions, listen: Listen, server: str = SERVERS[0]) -> None:
    """Run the server until it is stopped (Ctrl-C, SIGTERM). The keys are read once
    here too, so a bad keys file is one error before anything listens."""
    listen.check()
    load_keys(options.api_keys_file, os.environ.get(ENV_API_KEYS))
    os.environ[ENV_SERVE_OPTIONS] = options.to_json()
    if listen.workers > 1:
        metrics_dir = options.settings.data_dir / "serve-metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ[ENV_MULTIPROC] = str(metrics_dir)
    if server == "granian":
        _granian(listen)
    else:
        _uvicorn(listen)


def _uvicorn(listen: Listen) -> None:
    """uvicorn, with uvloop and httptools, each response sent in one write
    (:mod:`basketflow.serving.http`)."""
    import uvicorn

    from basketflow.serving.http import HttpToolsProtocol
    uvicorn.run(APP_FACTORY, factory=True, host=listen.host,
                port=listen.port, workers=listen.workers, access_log=False,
                ssl_keyfile=str(listen.tls_key) if listen.tls_key else None,
                ssl_certfile=str(listen.tls_cert) if listen.tls_cert else None,
                log_level="info", loop="auto", http=HttpToolsProtocol)


def _granian(listen: Listen) -> None:
    """granian (a Rust HTTP server), its ASGI interface, HTTP/1 and 2."""
    try:
        from granian import Granian
        from granian.constants import Interfaces
    except ImportError as exc:
        raise BadServerOption("granian is not installed: pip install granian, or serve "
                              "with --server uvicorn") from exc
    Granian(APP_FACTORY, address=listen.host, port=listen.port, interface=Interfaces.ASGI,
            workers=listen.workers, factory=True, log_access=False,
            ssl_cert=listen.tls_cert, ssl_key=listen.tls_key).serve()
