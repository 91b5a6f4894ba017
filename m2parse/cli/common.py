"""Input helpers shared by the CLI verbs: every failure becomes one UsageError line naming the file."""

from __future__ import annotations

import json
import sys
from typing import Any

from . import UsageError


def read_text(path: str) -> str:
    """A file's text (or stdin for '-'), read as UTF-8 without newline translation."""
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            return handle.read()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None


def read_json(path: str, what: str) -> Any:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: {what} is not valid JSON ({exc.msg} at line {exc.lineno})") from None


def read_tools(path: str | None) -> list[Any] | None:
    """An OpenAI tools list, or an object holding one under "tools"."""
    if path is None:
        return None
    data = read_json(path, "--tools")
    if isinstance(data, dict) and "tools" in data:
        data = data["tools"]
    if not isinstance(data, list):
        raise UsageError(f"{path}: --tools must be a JSON list of tools or an object with a 'tools' list")
    from ..backends.base import one_line
    from ..schema import ToolsError, normalize_tools, tool_schema_error

    try:
        specs = normalize_tools(data)
    except ToolsError as exc:
        raise UsageError(f"{path}: {exc}") from None
    for spec in specs.values():  # a broken schema would otherwise surface as a jsonschema dump per call
        if (error := tool_schema_error(spec)) is not None:
            raise UsageError(f"{path}: tool_schema_error: {one_line(error)}")
    return data


def dump_json(data: Any, *, compact: bool) -> str:
    if compact:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return json.dumps(data, ensure_ascii=False, indent=2)
