"""``m2parse render`` and ``m2parse read``, run as real subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from m2parse.render import render_prompt

from .test_render import REFERENCE, WEATHER_TOOLS, needs_reference

CONVERSATION = [
    {"role": "system", "content": "Sé brief.", "current_date": "2025-11-01"},
    {"role": "user", "content": "Weather in Köln?\r\nThanks"},
    {
        "role": "assistant",
        "content": "",
        "reasoning_content": "One call.",
        "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Köln"}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "a", "content": "12C"},
]


def m2parse(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "m2parse", *args], input=stdin, capture_output=True, check=False, timeout=60
    )


def write_json(path: Path, data: Any) -> str:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return str(path)


def test_render_prints_the_exact_prompt(tmp_path: Path) -> None:
    conversation = write_json(tmp_path / "c.json", CONVERSATION)
    tools = write_json(tmp_path / "tools.json", {"tools": WEATHER_TOOLS})
    proc = m2parse("render", conversation, "--tools", tools)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == render_prompt(CONVERSATION, WEATHER_TOOLS).encode("utf-8")
    assert proc.stderr == b""


def test_render_takes_options_from_the_file_and_flags_override(tmp_path: Path) -> None:
    data = {"messages": CONVERSATION[1:], "tools": WEATHER_TOOLS, "template": "MiniMax-M2.5", "model": "ignored"}
    conversation = write_json(tmp_path / "c.json", data)
    proc = m2parse("render", conversation, "--no-generation-prompt", "--model-identity", "Me.")
    assert proc.returncode == 0, proc.stderr
    expected = render_prompt(
        CONVERSATION[1:], WEATHER_TOOLS, template="MiniMax-M2.5", add_generation_prompt=False, model_identity="Me."
    )
    assert proc.stdout == expected.encode("utf-8")
    assert b"ignoring key 'model'" in proc.stderr
    proc = m2parse("render", conversation, "--template", "MiniMax-M2.7")
    assert proc.stdout == render_prompt(CONVERSATION[1:], WEATHER_TOOLS, template="MiniMax-M2.7").encode("utf-8")


def test_read_then_render_reproduces_the_prompt_byte_for_byte(tmp_path: Path) -> None:
    prompt = render_prompt(CONVERSATION[1:], WEATHER_TOOLS, template="MiniMax-M2-original").encode("utf-8")
    (tmp_path / "p.txt").write_bytes(prompt)
    read = m2parse("read", str(tmp_path / "p.txt"))
    assert read.returncode == 0, read.stderr
    reading = json.loads(read.stdout)
    assert reading["template"] == "MiniMax-M2-original"
    assert reading["messages"][0] == {"role": "user", "content": "Weather in Köln?\r\nThanks"}
    (tmp_path / "c.json").write_bytes(read.stdout)
    assert m2parse("render", str(tmp_path / "c.json")).stdout == prompt
    # the same through stdin, where text mode would have turned \r\n into \n
    piped = m2parse("read", "-", "--compact", stdin=prompt)
    assert piped.returncode == 0 and json.loads(piped.stdout) == reading
    assert m2parse("render", "-", stdin=piped.stdout).stdout == prompt


@needs_reference
def test_render_with_a_template_file(tmp_path: Path) -> None:
    pytest.importorskip("jinja2", reason="the [jinja] extra is not installed")
    assert REFERENCE is not None
    conversation = write_json(tmp_path / "c.json", {"messages": CONVERSATION, "tools": WEATHER_TOOLS})
    proc = m2parse("render", conversation, "--template", str(REFERENCE / "MiniMax-M2.5" / "chat_template.jinja"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == render_prompt(CONVERSATION, WEATHER_TOOLS, template="MiniMax-M2.5").encode("utf-8")


def test_dropped_messages_warn_and_strict_fails(tmp_path: Path) -> None:
    conversation = write_json(tmp_path / "c.json", [*CONVERSATION, {"role": "developer", "content": "x"}])
    proc = m2parse("render", conversation)
    assert proc.returncode == 0
    assert proc.stderr.decode().strip() == (
        "m2parse: warning: messages[4] is not rendered: role 'developer' is unknown (the template drops it silently)"
    )
    strict = m2parse("render", conversation, "--strict")
    assert strict.returncode == 2 and strict.stdout == b""
    assert strict.stderr.decode().startswith("m2parse: error: ")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("{not json", "not valid JSON"),
        ('{"msgs": []}', "expected a JSON list of messages or an object with a 'messages' list"),
        ('{"messages": [], "template": 5}', "'template' has the wrong type"),
        ("[]", "messages is empty"),
        ('[{"role": "tool", "content": "x"}]', "tool result, but the last assistant message"),
        ('{"messages": [{"role": "user"}], "template": "M9"}', "unknown template 'M9'"),
        ('[{"role": "assistant", "tool_calls": [{"name": "f", "arguments": "[1]"}]}]', "must be a JSON object"),
    ],
)
def test_render_errors_exit_2_with_one_line(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "c.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    proc = m2parse("render", str(path))
    assert proc.returncode == 2
    stderr = proc.stderr.decode()
    assert stderr.startswith("m2parse: error: ") and message in stderr and stderr.count("\n") == 1


def test_render_unknown_template_and_read_of_a_non_prompt_exit_2(tmp_path: Path) -> None:
    conversation = write_json(tmp_path / "c.json", CONVERSATION)
    proc = m2parse("render", conversation, "--template", "MiniMax-M9")
    assert proc.returncode == 2 and b"not one of MiniMax-M2" in proc.stderr
    (tmp_path / "p.txt").write_text("hello", encoding="utf-8")
    proc = m2parse("read", str(tmp_path / "p.txt"))
    assert proc.returncode == 2 and b"an M2 prompt starts with" in proc.stderr
    assert m2parse("read", str(tmp_path / "missing.txt")).returncode == 2


M3_CONVERSATION = [
    {"role": "root", "content": "Root."},
    {"role": "developer", "content": "Sé brief."},
    {"role": "user", "content": "Weather in Köln?\r\nThanks"},
    {
        "role": "assistant",
        "content": "",
        "reasoning_content": "One call.",
        "tool_calls": [
            {
                "id": "a",
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "arguments": {"city": "Köln", "days": [1, 2], "opts": {"units": "C", "skip": None}},
                },
            }
        ],
    },
    {"role": "tool", "tool_call_id": "a", "content": "12C"},
]


@pytest.mark.parametrize("mode", [None, "enabled", "disabled", "adaptive"])
def test_m3_render_with_thinking_mode_and_read_back_byte_for_byte(tmp_path: Path, mode: str | None) -> None:
    conversation = write_json(tmp_path / "c.json", {"messages": M3_CONVERSATION, "tools": WEATHER_TOOLS})
    flags = ["--template", "MiniMax-M3"] + (["--thinking-mode", mode] if mode else [])
    proc = m2parse("render", conversation, *flags)
    assert proc.returncode == 0, proc.stderr
    kwargs = {"thinking_mode": mode} if mode else {}
    prompt = render_prompt(M3_CONVERSATION, WEATHER_TOOLS, template="MiniMax-M3", **kwargs).encode("utf-8")
    assert proc.stdout == prompt and proc.stderr == b""
    (tmp_path / "p.txt").write_bytes(prompt)
    read = m2parse("read", str(tmp_path / "p.txt"))
    assert read.returncode == 0, read.stderr
    reading = json.loads(read.stdout)
    assert reading["template"] == "MiniMax-M3" and reading["thinking_mode"] == (mode or "adaptive")
    assert reading["messages"][0] == {"role": "root", "content": "Root."}
    assert reading["messages"][3]["tool_calls"][0]["function"]["arguments"] == {
        "city": "Köln", "days": ["1", "2"], "opts": {"units": "C"}}  # fmt: skip
    (tmp_path / "c2.json").write_bytes(read.stdout)
    assert m2parse("render", str(tmp_path / "c2.json")).stdout == prompt


@needs_reference
def test_m3_render_with_the_template_file(tmp_path: Path) -> None:
    pytest.importorskip("jinja2", reason="the [jinja] extra is not installed")
    assert REFERENCE is not None
    path = REFERENCE / "MiniMax-M3" / "chat_template.jinja"
    if not path.is_file():
        pytest.skip("no MiniMax-M3 in the reference folder")
    conversation = write_json(tmp_path / "c.json", {"messages": M3_CONVERSATION, "tools": WEATHER_TOOLS})
    proc = m2parse("render", conversation, "--template", str(path), "--thinking-mode", "enabled")
    assert proc.returncode == 0, proc.stderr
    expected = render_prompt(M3_CONVERSATION, WEATHER_TOOLS, template="MiniMax-M3", thinking_mode="enabled")
    assert proc.stdout == expected.encode("utf-8")


def test_m3_unknown_thinking_mode_warns(tmp_path: Path) -> None:
    conversation = write_json(tmp_path / "c.json", M3_CONVERSATION)
    proc = m2parse("render", conversation, "--template", "MiniMax-M3", "--thinking-mode", "auto")
    assert proc.returncode == 0 and b"warning: thinking_mode='auto'" in proc.stderr
    assert (
        m2parse("render", conversation, "--template", "MiniMax-M3", "--thinking-mode", "auto", "--strict").returncode
        == 2
    )
