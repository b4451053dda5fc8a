"""What a ``basketflow serve`` process is started with, passed from the command to each
worker process through one environment variable (uvicorn starts workers by importing
the application's factory, :func:`basketflow.serving.api.app_from_env`).

Keys are never in it: each worker reads them itself, from the file named here or from
``BASKETFLOW_API_KEYS``, which it inherits.

>>> options = ServeOptions(Settings(Path("/d"), None, "redis://h:1"), 0.5, None, True)
>>> ServeOptions.from_json(options.to_json()) == options
True
>>> from dataclasses import replace
>>> countries = ExpectationSetting("known_country", "countries", ("France",), "F line 3")
>>> options = replace(options, settings=replace(options.settings, expectations=(countries,)))
>>> ServeOptions.from_json(options.to_json()) == options
True
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from basketflow.config import Settings
from basketflow.project_file import ExpectationSetting

ENV_SERVE_OPTIONS = "BASKETFLOW_SERVE_OPTIONS"
DEFAULT_REDIS_TIMEOUT = 0.5


@dataclass(frozen=True)
class ServeOptions:
    """Resolved settings (Redis's address known; the broker's None when there is none:
    ``/events`` then answers 503), the timeout of every Redis command (seconds), the API
    keys file (None: only ``BASKETFLOW_API_KEYS``, if set) and whether to log each
    request."""

    settings: Settings
    redis_timeout: float = DEFAULT_REDIS_TIMEOUT
    api_keys_file: Path | None = None
    log_requests: bool = True
    #: The flow's ``run --metrics-port`` on this host (None: none), for the dashboard's lag.
    flow_metrics_port: int | None = None

    def to_json(self) -> str:
        """The options as JSON text (paths as text)."""
        data = asdict(self)
        data["settings"] = {key: str(value) if isinstance(value, Path) else value
                            for key, value in data["settings"].items()}
        data["api_keys_file"] = str(self.api_keys_file) if self.api_keys_file else None
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> ServeOptions:
        """The options :meth:`to_json` wrote."""
        data = json.loads(text)
        paths = {f.name for f in fields(Settings) if "Path" in str(f.type)}
        raw = data.pop("settings")
        raw["expectations"] = _expectation_settings(raw.get("expectations", []))
        settings = Settings(**{key: Path(value) if key in paths and value is not None
                               else value for key, value in raw.items()})
        keys = data.pop("api_keys_file")
        return cls(settings, api_keys_file=Path(keys) if keys else None, **data)


def _expectation_settings(raw: list[dict[str, Any]]) -> tuple[ExpectationSetting, ...]:
    """The project's expectation values as JSON gave them back (a list value as the
    tuple the project file reads)."""
    return tuple(ExpectationSetting(**{**e, "value": tuple(e["value"])
                                       if isinstance(e["value"], list) else e["value"]})
                 for e in raw)
