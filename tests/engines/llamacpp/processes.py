"""The suite's real processes: ``llama-server`` and ``m2parse serve`` in front of it, on 127.0.0.1, started and
always stopped by ``tests/engines/processes.py``."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from ...fake_backends import free_port
from .. import processes as engine_processes
from ..processes import Running

__all__ = ["ALIAS", "BACKEND_TYPES", "ENGINE_DIR_ENV", "ENGINE_MARKS", "READY_TIMEOUT", "Running"]

#: The engine cache directory (``bin/llama-server``, ``src/`` = the llama.cpp source), set by the CI script.
ENGINE_DIR_ENV = "M2PARSE_LLAMA_CPP_DIR"
#: ``pytestmark`` of every module here: the marker, and a clean skip where no engine was built.
ENGINE_MARKS = [
    pytest.mark.engine_llamacpp,
    pytest.mark.skipif(
        not os.environ.get(ENGINE_DIR_ENV), reason=f"{ENGINE_DIR_ENV} not set (.ci/run_engine_llamacpp.sh sets it)"
    ),
]

#: Seconds a process may take to answer its readiness URL: llama-server's /health is 503 while it loads.
READY_TIMEOUT = 300.0

#: m2parse's two ways to reach llama-server: its native /completion, and its OpenAI-style /v1/completions.
BACKEND_TYPES = ("llamacpp", "openai")
#: The model name llama-server reports. Without ``--alias`` it reports the ``-m`` path as given (``/props``
#: ``model_alias`` and ``/v1/models`` ids), and m2parse would serve that path as its model name.
ALIAS = "tiny-m2"
#: llama-server, as the suite runs it. ``-np 1``: one slot holds the whole context (``-c``), so a request
#: without a token limit can run until the context is full; ``--no-webui``: nothing to serve but the API;
#: ``--metrics``: token counters, to see that a dropped stream stops generating.
#: No ``--special``: the kit's tags are plain (user-defined) tokens and come back as text without it.
LLAMA_SERVER_FLAGS = ("-c", "4096", "-np", "1", "--alias", ALIAS, "--metrics", "--no-webui")


def running(args: Sequence[str], port: int, ready_path: str, log: Path) -> contextlib.AbstractContextManager[Running]:
    return engine_processes.running(args, port, ready_path, log, READY_TIMEOUT)


def llama_server(binary: Path, gguf: Path, log: Path, *extra: str) -> contextlib.AbstractContextManager[Running]:
    port = free_port()
    args = [str(binary), "-m", str(gguf), *LLAMA_SERVER_FLAGS, *extra, "--host", "127.0.0.1", "--port", str(port)]
    return running(args, port, "/health", log)


def m2parse_serve(
    backend: str, backend_type: str, log: Path, *extra: str
) -> contextlib.AbstractContextManager[Running]:
    """``m2parse serve`` from this checkout, ready once its own ``/v1/models`` answers (not the backend's)."""
    port = free_port()
    args = [sys.executable, "-m", "m2parse", "serve", "--backend", backend, "--backend-type", backend_type]
    args += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", *extra]
    return running(args, port, "/v1/models", log)
