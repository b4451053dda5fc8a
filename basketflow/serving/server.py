"""Start ``basketflow serve``: uvicorn with the application factory, its worker
processes and TLS options; the options reach each worker through the environment
(:mod:`basketflow.serving.options`)."""

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


def serve(options: ServeOptions, listen: Listen) -> None:
    """Run the server until it is stopped (Ctrl-C, SIGTERM). The keys are read once
    here too, so a bad keys file is one error before anything listens."""
    import uvicorn
    listen.check()
    load_keys(options.api_keys_file, os.environ.get(ENV_API_KEYS))
    os.environ[ENV_SERVE_OPTIONS] = options.to_json()
    if listen.workers > 1:
        metrics_dir = options.settings.data_dir / "serve-metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ[ENV_MULTIPROC] = str(metrics_dir)
    uvicorn.run("basketflow.serving.api:app_from_env", factory=True, host=listen.host,
                port=listen.port, workers=listen.workers, access_log=False,
                ssl_keyfile=str(listen.tls_key) if listen.tls_key else None,
                ssl_certfile=str(listen.tls_cert) if listen.tls_cert else None,
                log_level="info", loop="auto", http="auto")
