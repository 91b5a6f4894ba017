"""Prompt text families: read_prompt on hostile prompts, render_prompt on large and deep conversations.

Each read_prompt family renders a conversation whose text collides with the prompt's own markup (turn boundaries,
tool-call tags; M2's, and M3's namespaced ones in the M3 families), ``n`` times over; the timed work is reading it
back. Each render_prompt family grows one
dimension of a conversation: messages, content length, arguments nested to the depth bound.
"""

from __future__ import annotations

import warnings
from typing import Any

from m2parse import read_prompt, render_prompt
from m2parse.render import MAX_DEPTH, RenderWarning
from m2parse.templates import DEFAULT_TEMPLATE

from .common import Family

CALL = {"type": "function", "function": {"name": "f", "arguments": {"a": "b"}}}
ASKED = [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [CALL]}]


def _prompt(messages: list[dict[str, Any]], template: str = DEFAULT_TEMPLATE) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RenderWarning)
        return render_prompt(messages, template=template)


def _system(unit: str) -> Any:
    return lambda n: _prompt([{"role": "system", "content": unit * n}, {"role": "user", "content": "q"}])


def _tool_result(unit: str) -> Any:
    return lambda n: _prompt([*ASKED, {"role": "tool", "content": unit * n}])


def _after_calls(role: str, unit: str) -> Any:
    return lambda n: _prompt([*ASKED, {"role": "tool", "content": "r"}, {"role": role, "content": unit * n}])


def _agent_loop(n: int) -> str:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "start"}]
    for i in range(n):
        call = {"type": "function", "function": {"name": "f", "arguments": {"i": i, "path": f"src/{i}.py"}}}
        messages += [
            {"role": "assistant", "content": "", "reasoning_content": f"step {i}", "tool_calls": [call]},
            {"role": "tool", "content": f"ok {i}"},
        ]
    return _prompt(messages)


# MiniMax-M3 prompts: read_prompt detects the format from the system block and reads the rest with M3's markup.
M3 = "MiniMax-M3"
NS = "]<]minimax[>["


def _m3_root(unit: str) -> Any:
    """The root (system) text, which ends at the thinking instructions: their tail and block headers inside it."""
    return lambda n: _prompt([{"role": "root", "content": unit * n}, {"role": "user", "content": "q"}], M3)


def _m3_ai_content(unit: str) -> Any:
    """An assistant turn's content, before its tool-call block: namespaced block and invoke openers inside it."""
    return lambda n: _prompt([{"role": "user", "content": "q"}, {"role": "assistant", "content": unit * n,
        "tool_calls": [{"name": "f", "arguments": {"a": "b"}}]}, {"role": "tool", "content": "r"}], M3)  # fmt: skip


def _m3_argument(unit: str) -> Any:
    """One string argument (written verbatim by to_xml): element openers that never close, then real calls."""

    def build(n: int) -> str:
        calls = [{"name": "f", "arguments": {"a": unit * n}}, {"name": "g", "arguments": {"b": [1, {"c": 2}]}}]
        return _prompt([{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": calls}], M3)

    return build


def _messages(n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(n):
        out += [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"answer {i}"}]
    return out


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for level in range(depth):
        value = {"k": value} if level % 2 else [value]
    return value


def _deep_arguments(n: int) -> list[dict[str, Any]]:
    """``n`` arguments, each nested just under the bound (counted in containers)."""
    arguments = {f"a{i}": _nested(MAX_DEPTH - 1) for i in range(n)}
    return [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": arguments}}]}]  # fmt: skip


def _many_parameters(n: int) -> list[dict[str, Any]]:
    arguments = {f"p{i}": f"value {i}" if i % 2 else {"n": i, "list": [1, 2.5, None]} for i in range(n)}
    return [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": arguments}}]}]  # fmt: skip


def _long_parts(n: int) -> list[dict[str, Any]]:
    """One user message of ``n`` text parts (a single long string is one C-level copy: nothing to measure)."""
    part = {"type": "text", "text": "a line of text that goes into one long content of many parts\n"}
    return [{"role": "user", "content": [part] * n}]


def _render(messages: list[dict[str, Any]]) -> str:
    return render_prompt(messages)


def reading(name: str, build: Any, n: int = 5_000, quick_n: int = 2_000) -> Family:
    return Family(f"read_prompt: {name}", build, read_prompt, n, quick_n)


def rendering(name: str, build: Any, n: int, quick_n: int) -> Family:
    return Family(f"render_prompt: {name}", build, _render, n, quick_n)


CLOSED_RESULTS = "</minimax:tool_call>[e~[\n]~b]tool\n<response>x</response>"
UNCLOSED_INVOKES = '\n<minimax:tool_call>\n<invoke name="'
M3_HEADERS = "</thinking_instructions>[e~[\n]~b]developer\n<tools>\n"
M3_OPENERS = f'x{NS}<tool_call>\n{NS}<invoke name="f">{NS}<a>[e~[\n]~b]tool\n<response>'
M3_ELEMENTS = f"{NS}<a>{NS}<item>{NS}<b>{NS}</tool_call>"
FAMILIES = [
    reading("turn boundaries in system text", _system("x[e~[\n]~b]user\n")),
    reading("tool headers in system text", _system("x[e~[\n]~b]tool\n<response>y")),
    reading("tool headers in a tool result", _tool_result("x[e~[\n]~b]tool\n<response>y")),
    reading("user headers in a tool result", _tool_result("x[e~[\n]~b]user\ny"), 10_000, 5_000),
    reading("unclosed results in a user turn", _after_calls("user", "x[e~[\n]~b]tool\n<response>a")),
    reading("closed results in an ai turn", _after_calls("assistant", CLOSED_RESULTS), 5_000, 2_000),
    reading("unclosed invokes in an ai turn", _after_calls("assistant", UNCLOSED_INVOKES), 2_000, 500),
    reading("agent loop of real turns", _agent_loop, 300, 60),
    reading("M3: developer and tools headers in root text", _m3_root(M3_HEADERS)),
    reading("M3: unclosed call openers in ai content", _m3_ai_content(M3_OPENERS)),
    reading("M3: unclosed elements in an argument", _m3_argument(M3_ELEMENTS)),
    rendering("many messages", _messages, 10_000, 2_000),
    rendering("long content of text parts", _long_parts, 50_000, 10_000),
    rendering("arguments nested to the bound", _deep_arguments, 40, 10),
    rendering("many parameters", _many_parameters, 10_000, 2_000),
]
