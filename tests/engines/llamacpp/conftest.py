"""Session fixtures: one real llama-server for the whole suite, and one ``m2parse serve`` per backend type."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .. import model_kit as kit
from ..gguf import convert
from .processes import BACKEND_TYPES, ENGINE_DIR_ENV, Running, llama_server, m2parse_serve


@pytest.fixture(scope="session")
def engine_dir() -> Path:
    value = os.environ.get(ENGINE_DIR_ENV)
    if not value:
        pytest.skip(f"{ENGINE_DIR_ENV} not set")
    return Path(value)


@pytest.fixture(scope="session")
def kit_dir() -> Path:
    return kit.build_hf_model()


@pytest.fixture(scope="session")
def tiny_gguf(kit_dir: Path, engine_dir: Path) -> Path:
    return convert(kit_dir, engine_dir)


@pytest.fixture(scope="session")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("engine-logs")


@pytest.fixture(scope="session")
def llama(engine_dir: Path, tiny_gguf: Path, logs: Path) -> Iterator[Running]:
    with llama_server(engine_dir / "bin" / "llama-server", tiny_gguf, logs / "llama-server.log") as server:
        yield server


@pytest.fixture(scope="session")
def serve(llama: Running, logs: Path) -> Iterator[dict[str, Running]]:
    """backend type -> a running ``m2parse serve`` in front of the one llama-server."""
    with contextlib.ExitStack() as stack:
        yield {
            kind: stack.enter_context(m2parse_serve(llama.url, kind, logs / f"m2parse-{kind}.log"))
            for kind in BACKEND_TYPES
        }
