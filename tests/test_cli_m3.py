"""``m2parse FILE --format m3 [--thinking-mode …]``, run as a real subprocess.

The outputs are written by hand from the M3 template's rendering rules (``]<]minimax[>[`` before every call tag,
``<mm:think>`` reasoning, nested elements for objects and ``<item>`` for arrays). The CLI must print exactly what
``parse(..., format="m3", thinking_mode=…)`` gives, and the hand-written expectations pin what that is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from m2parse import parse, sequential_ids
from m2parse.formats.m3 import NAMESPACE as NS

from .m3_cases import ORDER_ARGS as ORDER_XML
from .m3_cases import ORDER_PROPERTIES, calls, el, tool
from .test_cli import WEATHER, m2parse

TOOLS = [
    tool("get_weather", {"location": {"type": "string"}, "days": {"type": "integer"}}, required=["location"]),
    tool("create_order", {**ORDER_PROPERTIES, "note": {"type": "string"}}),
]
WEATHER_CALL = calls(("get_weather", el("location", "Lisbon, Portugal") + el("days", "3")))
ORDER_ARGS = {
    "customer": {"name": "Ana", "vip": True},
    "items": [{"sku": "book-001", "qty": 2}, {"sku": "pen-7", "qty": 10}],
    "note": "deliver <before> 9 & ring",
}
ORDER_CALL = calls(("create_order", ORDER_XML + el("note", "deliver <before> 9 & ring")))


@pytest.fixture
def tools_file(tmp_path: Path) -> str:
    path = tmp_path / "tools.json"
    path.write_text(json.dumps(TOOLS), encoding="utf-8")
    return str(path)


def run_json(*args: str, stdin: str) -> dict[str, Any]:
    proc = m2parse(*args, stdin=stdin)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def library(text: str, mode: str | None, tools: list[Any] | None = TOOLS) -> dict[str, Any]:
    message = parse(text, tools, format="m3", thinking_mode=mode, id_factory=sequential_ids())
    return message.to_openai()


def test_enabled_output_starts_in_reasoning(tools_file: str) -> None:
    text = "The user wants the weather.</mm:think>Let me check." + WEATHER_CALL
    out = run_json(
        "-", "--format", "m3", "--thinking-mode", "enabled", "--tools", tools_file, "--deterministic-ids", stdin=text
    )
    assert out["message"] == library(text, "enabled")
    message = out["message"]
    assert (message["reasoning_content"], message["content"]) == ("The user wants the weather.", "Let me check.")
    call = message["tool_calls"][0]
    assert (call["id"], call["function"]["name"]) == ("call_0", "get_weather")
    assert json.loads(call["function"]["arguments"]) == {"location": "Lisbon, Portugal", "days": 3}
    assert out["problems"] == []


@pytest.mark.parametrize(
    ("mode", "text", "reasoning", "content"),
    [
        ("enabled", "R</mm:think>C", "R", "C"),
        ("disabled", "Just the answer.", None, "Just the answer."),
        ("adaptive", "<mm:think>R</mm:think>C", "R", "C"),
        ("adaptive", "</mm:think>C", None, "C"),
        (None, "<mm:think>R</mm:think>C", "R", "C"),  # unset is the template's adaptive default
        (None, "</mm:think>C", None, "C"),
    ],
)
def test_thinking_modes(mode: str | None, text: str, reasoning: str | None, content: str) -> None:
    flags = ["--thinking-mode", mode] if mode else []
    out = run_json("-", "--format", "m3", *flags, stdin=text)
    message = out["message"]
    assert message == library(text, mode, None)
    assert message.get("reasoning_content") == reasoning
    assert message["content"] == content
    assert out["problems"] == []


def test_nested_arguments_are_typed_by_the_schema(tools_file: str) -> None:
    text = "</mm:think>Ordering." + ORDER_CALL
    out = run_json("-", "--format", "m3", "--tools", tools_file, "--deterministic-ids", stdin=text)
    assert out["message"] == library(text, None)
    call = out["message"]["tool_calls"][0]["function"]
    assert call["name"] == "create_order"
    assert json.loads(call["arguments"]) == ORDER_ARGS
    assert out["problems"] == []


def test_stream_fragments_fold_to_the_final_arguments(tools_file: str) -> None:
    text = "Plan the order.</mm:think>" + ORDER_CALL
    proc = m2parse("-", "--format", "m3", "--thinking-mode", "enabled", "--tools", tools_file, "--stream", stdin=text)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    fragments = "".join(e["fragment"] for e in events if e["type"] == "ToolCallArgumentsDelta")
    end = next(e for e in events if e["type"] == "ToolCallEnd")
    assert fragments == end["arguments_json"]
    assert json.loads(fragments) == ORDER_ARGS
    assert len([e for e in events if e["type"] == "ToolCallArgumentsDelta"]) > 1  # streamed, not one blob
    assert "".join(e["text"] for e in events if e["type"] == "ReasoningDelta") == "Plan the order."


def test_missing_think_end_and_strict(tools_file: str) -> None:
    text = "thinking and thinking"
    out = run_json("-", "--format", "m3", "--thinking-mode", "enabled", stdin=text)
    assert out["message"]["reasoning_content"] == text
    assert [p["code"] for p in out["problems"]] == [
        p.code for p in parse(text, format="m3", thinking_mode="enabled").problems
    ]
    assert "missing_think_end" in [p["code"] for p in out["problems"]]
    cut = ("</mm:think>" + WEATHER_CALL)[: -len(f"{NS}</days>{NS}</invoke>\n{NS}</tool_call>")]
    proc = m2parse("-", "--format", "m3", "--tools", tools_file, "--strict", stdin=cut)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "truncated" in proc.stderr


def test_m2_is_the_default_and_unchanged() -> None:
    default = m2parse(str(WEATHER), "--deterministic-ids")
    explicit = m2parse(str(WEATHER), "--format", "m2", "--deterministic-ids")
    assert default.returncode == explicit.returncode == 0
    assert default.stdout == explicit.stdout
    # M2 text read as M3 is plain content: the M2 tags mean nothing to M3
    out = run_json(str(WEATHER), "--format", "m3", "--thinking-mode", "disabled", stdin="")
    assert "tool_calls" not in out["message"] and "<minimax:tool_call>" in out["message"]["content"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--thinking-mode", "enabled"], "--thinking-mode is for --format m3"),
        (["--format", "m3", "--no-think-prefix"], "--no-think-prefix is for M2"),
        (["--format", "m3", "--thinking-mode", "sometimes"], "invalid choice: 'sometimes'"),
        (["--format", "m4"], "invalid choice: 'm4'"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args: list[str], needle: str) -> None:
    proc = m2parse(str(WEATHER), *args)
    assert proc.returncode == 2 and proc.stdout == ""
    assert needle in proc.stderr and "Traceback" not in proc.stderr


def test_help_names_the_flags() -> None:
    out = m2parse("--help").stdout
    assert "--format {m2,m3}" in out and "--thinking-mode {enabled,disabled,adaptive}" in out


@pytest.mark.parametrize(("mode", "text"), [("enabled", "R</mm:think>C"), (None, "<mm:think>R</mm:think>C")])
def test_inline_think_keeps_m3_reasoning_in_content(mode: str | None, text: str) -> None:
    flags = ["--thinking-mode", mode] if mode else []
    out = run_json("-", "--format", "m3", *flags, "--inline-think", stdin=text)
    assert out["message"] == {"role": "assistant", "content": "<mm:think>R</mm:think>C"}
    assert out["message"] == parse(text, format="m3", thinking_mode=mode, reasoning="inline").to_openai()
