"""``m2parse serve --workers N``: N server processes on one listening socket, each building its own app.

The parent process checks the command line, binds the socket and asks the backend for its model name once; the
settled ``ServerConfig`` then reaches each worker as JSON in an environment variable, and uvicorn's supervisor
imports :func:`app_from_environment` in every worker (a factory: workers are spawned, not forked, so an app
object cannot be handed over). The server keeps no state between requests, so which worker answers does not
matter.

``/metrics`` must count all workers whichever one is scraped: the parent creates a private directory for
prometheus_client's multiprocess files, points ``PROMETHEUS_MULTIPROC_DIR`` at it for the workers, and removes
it when the server stops.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import tempfile
from typing import Any

from .config import ServerConfig

#: the settled configuration, logging level and format, as JSON, for the worker processes
CONFIG_ENV = "M2PARSE_SERVE_WORKER"


def config_to_json(config: ServerConfig, log_level: str, log_format: str) -> str:
    fields = dataclasses.asdict(config)
    return json.dumps({"config": fields, "log_level": log_level, "log_format": log_format})


def config_from_json(text: str) -> tuple[ServerConfig, str, str]:
    """The inverse of :func:`config_to_json`: JSON lists back to the config's tuples."""
    data = json.loads(text)
    fields: dict[str, Any] = dict(data["config"])
    names = {f.name: f for f in dataclasses.fields(ServerConfig)}
    for key, value in list(fields.items()):
        if key not in names:
            raise ValueError(f"{CONFIG_ENV}: unknown config field {key!r}")
        if isinstance(value, list):
            fields[key] = tuple(tuple(item) if isinstance(item, list) else item for item in value)
    return ServerConfig(**fields), data["log_level"], data["log_format"]


def app_from_environment() -> Any:
    """uvicorn's app factory in each worker process."""
    from .access_log import configure_logging
    from .app import create_app

    config, log_level, log_format = config_from_json(os.environ[CONFIG_ENV])
    configure_logging(log_level, log_format)
    return create_app(config)


def run_workers(
    config: ServerConfig, sockets: list[socket.socket], workers: int, *, log_level: str, log_format: str
) -> None:
    """Serve with ``workers`` processes until stopped (SIGINT/SIGTERM); a worker that dies is replaced."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from .metrics import MULTIPROC_ENV

    metrics_dir = tempfile.mkdtemp(prefix="m2parse-metrics-")
    saved = {name: os.environ.get(name) for name in (CONFIG_ENV, MULTIPROC_ENV)}
    os.environ[CONFIG_ENV] = config_to_json(config, log_level, log_format)
    os.environ[MULTIPROC_ENV] = metrics_dir
    try:
        uv_config = uvicorn.Config(
            f"{__name__}:app_from_environment",
            factory=True,
            workers=workers,
            log_level=log_level,
            log_config=None,  # each worker's logging is configure_logging's, as in one process
            access_log=False,
            lifespan="on",
        )
        Multiprocess(uv_config, sockets=sockets).run()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(metrics_dir, ignore_errors=True)
