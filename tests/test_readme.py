"""The README's ```python examples run as written, in order, in one namespace (```py blocks need a live service).

The TGI example talks to the test suite's fake TGI server: its URL replaces the README's ``http://127.0.0.1:8080``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from m2parse import parse

from . import fake_backends

README = Path(__file__).resolve().parent.parent / "README.md"
#: the TGI address the README's example uses
README_TGI = "http://127.0.0.1:8080"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_examples() -> None:
    assert len(python_blocks()) >= 2
    assert sum(README_TGI in block for block in python_blocks()) == 1


def test_readme_examples_run(capsys) -> None:
    namespace: dict[str, object] = {}
    with fake_backends.backend("tgi", fixture="weather_basic") as tgi_url:
        for block in python_blocks():
            exec(compile(block.replace(README_TGI, tgi_url), str(README), "exec"), namespace)
    got: Any = namespace["message"]  # the TGI example's, the last to set it
    want = parse(fake_backends.read_fixture_text("weather_basic"), namespace["tools"])  # type: ignore[arg-type]
    assert [(c.name, c.arguments) for c in got.tool_calls] == [(c.name, c.arguments) for c in want.tool_calls]
    assert "get_weather" in capsys.readouterr().out
