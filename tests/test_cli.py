"""The parse CLI, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from m2parse import parse, sequential_ids

from .fixture_loader import FIXTURES_DIR, load_fixture

WEATHER = FIXTURES_DIR / "weather_basic.txt"
WEATHER_TOOLS = FIXTURES_DIR / "tools" / "weather.json"


def m2parse(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "m2parse", *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
        timeout=60,
    )


def test_parse_prints_openai_message_and_problems() -> None:
    proc = m2parse(str(WEATHER), "--tools", str(WEATHER_TOOLS), "--deterministic-ids")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    fixture = load_fixture("weather_basic")
    expected = parse(fixture.text, fixture.tools, id_factory=sequential_ids()).to_openai()
    assert out["message"] == expected
    assert out["message"]["tool_calls"][0]["type"] == "function"
    assert json.loads(out["message"]["tool_calls"][0]["function"]["arguments"]) == {
        "location": "Lisbon, Portugal",
        "days": 3,
    }
    assert out["problems"] == []


def test_stdin_and_compact_output() -> None:
    text = WEATHER.read_text(encoding="utf-8")
    proc = m2parse("-", "--compact", stdin=text)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1
    assert json.loads(proc.stdout)["message"]["content"] == "Let me check the forecast for Lisbon."


def test_content_is_null_when_only_tool_calls() -> None:
    proc = m2parse("-", stdin='x\n</think>\n\n<minimax:tool_call>\n<invoke name="f">\n</invoke>\n</minimax:tool_call>')
    message = json.loads(proc.stdout)["message"]
    assert message["content"] is None
    assert message["tool_calls"][0]["function"] == {"name": "f", "arguments": "{}"}


def test_stream_prints_json_lines_that_fold_to_the_message() -> None:
    proc = m2parse(str(WEATHER), "--tools", str(WEATHER_TOOLS), "--stream")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    kinds = {e["type"] for e in events}
    assert {"ReasoningDelta", "ContentDelta", "ToolCallStart", "ToolCallArgumentsDelta", "ToolCallEnd"} <= kinds
    args = "".join(e["fragment"] for e in events if e["type"] == "ToolCallArgumentsDelta")
    end = next(e for e in events if e["type"] == "ToolCallEnd")
    assert args == end["arguments_json"]


def test_inline_think_and_no_think_prefix() -> None:
    text = "R\n</think>\n\nC"
    inline = json.loads(m2parse("-", "--inline-think", stdin=text).stdout)["message"]
    assert inline["content"] == "<think>\nR\n</think>\n\nC"
    assert "reasoning_content" not in inline
    plain = json.loads(m2parse("-", "--no-think-prefix", stdin="hello").stdout)["message"]
    assert plain == {"role": "assistant", "content": "hello"}


def test_strict_exits_1_with_the_problem() -> None:
    proc = m2parse(str(FIXTURES_DIR / "truncated_in_value.txt"), "--strict")
    assert proc.returncode == 1
    assert "truncated_value" in proc.stderr or "truncated" in proc.stderr
    assert "Traceback" not in proc.stderr
    ok = m2parse(str(WEATHER), "--tools", str(WEATHER_TOOLS), "--strict")
    assert ok.returncode == 0, ok.stderr


def test_problems_printed_beside_the_message() -> None:
    proc = m2parse(str(FIXTURES_DIR / "reasoning_only_cut_off.txt"))
    assert proc.returncode == 0
    problems = json.loads(proc.stdout)["problems"]
    assert [p["code"] for p in problems] == ["missing_think_end"]
    assert isinstance(problems[0]["offset"], int)


@pytest.mark.parametrize(
    ("setup", "args", "needle"),
    [
        (None, ["missing.txt"], "missing.txt: no such file"),
        ("{", ["{out}", "--tools", "{bad}"], "not valid JSON"),
        ('{"tools": 3}', ["{out}", "--tools", "{bad}"], "must be a JSON list"),
        ('[{"type": "function", "function": {"parameters": {}}}]', ["{out}", "--tools", "{bad}"], "name"),
        (None, ["{out}", "--tools", "nowhere.json"], "nowhere.json: no such file"),
        (None, ["{out}", "--no-such-flag"], "unrecognized arguments"),
        (None, [], "required: file"),
    ],
)
def test_usage_and_io_errors_exit_2_with_one_clear_line(
    tmp_path: Path, setup: str | None, args: list[str], needle: str
) -> None:
    bad = tmp_path / "bad.json"
    if setup is not None:
        bad.write_text(setup, encoding="utf-8")
    argv = [a.format(out=WEATHER, bad=bad) for a in args]
    proc = m2parse(*argv)
    assert proc.returncode == 2
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr


def test_non_utf8_file_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"caf\xe9")
    proc = m2parse(str(path))
    assert proc.returncode == 2
    assert "not UTF-8" in proc.stderr


def test_help_lists_the_other_verbs() -> None:
    proc = m2parse("--help")
    assert proc.returncode == 0
    assert "m2parse render" in proc.stdout and "m2parse serve" in proc.stdout


@pytest.mark.parametrize(
    ("properties", "needle"),
    [
        ({"a": {"type": "strin"}}, "properties/a/type"),
        ({"a": {"type": "string", "pattern": "("}}, "properties/a/pattern"),
        ({"a": {"enum": 5, "description": "line one\nline two"}}, "properties/a/enum"),
    ],
)
def test_bad_tool_schema_is_one_tool_schema_error_line(tmp_path: Path, properties: dict, needle: str) -> None:
    """Not a jsonschema dump per call: the tools file is refused up front, as the server refuses it (400)."""
    tools = [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": properties}}}
    ]
    path = tmp_path / "tools.json"
    path.write_text(json.dumps(tools), encoding="utf-8")
    proc = m2parse(str(WEATHER), "--tools", str(path))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"m2parse: error: {path}: tool_schema_error: tool 'f'") and needle in proc.stderr
