"""Packaging promises: a light core, typed, with the public API at the top level."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import m2parse

HEAVY = ("jinja2", "starlette", "uvicorn", "httpx", "transformers", "torch", "lxml", "vllm", "openai")


def test_core_import_pulls_in_no_optional_dependency() -> None:
    code = f"import sys, m2parse, m2parse.cli.parse_cmd; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""


def test_package_is_typed() -> None:
    assert (Path(m2parse.__file__).parent / "py.typed").exists()


def test_public_api_is_exported() -> None:
    for name in m2parse.__all__:
        assert hasattr(m2parse, name), name
    for name in ("parse", "StreamParser", "render_prompt", "read_prompt", "event_to_delta", "M2ParseError"):
        assert name in m2parse.__all__


def test_server_without_its_extra_names_the_extra() -> None:
    """A clean ImportError naming [server], not a bare ModuleNotFoundError from deep inside (starlette blocked)."""
    code = (
        "import sys; sys.modules['starlette'] = None\n"
        "try:\n    from m2parse.server import create_app\n"
        "except ImportError as exc:\n    print(type(exc).__name__, exc.name, '|', exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    kind, name, _, message = proc.stdout.split(" ", 3)
    assert (kind, name) == ("ImportError", "starlette")
    assert "[server] extra" in message and "pip install '.[server]'" in message


def test_version_is_the_distributions() -> None:
    assert m2parse.__version__ == importlib.metadata.version("m2parse")
