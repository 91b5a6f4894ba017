"""``m2parse FILE --view``: one parsed output for a person at a terminal, not for a program.

Reasoning (dimmed), content, each tool call as a small table of its typed arguments, then each problem with its
code, its message and the raw text around its offset, with a caret under the spot: "why did this call not parse"
is answered by looking at the place, not by counting characters in JSON.

Plain ANSI escapes, no dependency: the view needs dim, bold and two colours, which every terminal has, and the
core package stays free of a rendering library. Colours are used only when asked (the CLI asks on a TTY unless
``NO_COLOR`` is set); the plain rendering is what the tests compare with expected text.
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Mapping
from typing import Any, TextIO

from .message import ParsedMessage, ToolCall
from .problems import Problem
from .schema import _type_of

#: characters of raw text shown on each side of a problem's offset
EXCERPT_RADIUS = 40
#: longest argument value shown in a table cell (the rest is elided)
VALUE_WIDTH = 60

_DIM, _BOLD, _RED, _YELLOW, _RESET = "\x1b[2m", "\x1b[1m", "\x1b[31m", "\x1b[33m", "\x1b[0m"


def use_color(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """Colour only on a terminal, and never when ``NO_COLOR`` is set to anything non-empty (no-color.org)."""
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class _Style:
    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if self.color and text else text


def render_view(result: ParsedMessage, text: str, *, color: bool = False, state: str | None = None) -> str:
    """The view of ``result``, the parse of the raw output ``text`` (the problems' offsets point into it).
    ``state`` is the finish state line (``complete``, ``truncated``, ``ended by a turn marker``)."""
    style = _Style(color)
    out: list[str] = []
    if state is None:
        from .stats import STATE_LABELS, finish_state

        state = STATE_LABELS[finish_state(result)]
    summary = f"{len(text)} characters, {len(result.tool_calls)} tool call(s), {len(result.problems)} problem(s)"
    out.append(style(_BOLD, f"m2parse view: {state}") + f" ({summary})")
    if result.reasoning_content:
        out += _section(style, "reasoning")
        out += [style(_DIM, line) for line in _display(result.reasoning_content).split("\n")]
    if result.content:
        out += _section(style, "content")
        out += _display(result.content).split("\n")
    for call in result.tool_calls:
        out += _section(style, _call_title(call))
        out += _argument_table(call)
    if result.problems:
        out += _section(style, f"problems ({len(result.problems)})")
        for problem in result.problems:
            out += _problem(style, problem, text)
    return "\n".join(out) + "\n"


def _section(style: _Style, title: str) -> list[str]:
    return ["", style(_BOLD, f"== {title} ==")]


def _call_title(call: ToolCall) -> str:
    cut = ", truncated" if call.truncated else ""
    return f"tool call {call.index}: {_display(call.name)} ({call.id}{cut})"


def _argument_table(call: ToolCall) -> list[str]:
    if not call.arguments:
        return ["(no arguments)"]
    rows = [("argument", "type", "value")]
    rows += [(_display(name), json_type(value), _cell(value)) for name, value in call.arguments.items()]
    widths = [max(_width(row[i]) for row in rows) for i in range(2)]
    lines = []
    for name, kind, value in rows:
        lines.append(f"  {_pad(name, widths[0])}  {_pad(kind, widths[1])}  {value}".rstrip())
    return lines


def json_type(value: Any) -> str:
    """The JSON type of a typed argument value (what the schema coerced it to), as schema.py names it."""
    return _type_of(value) or "object"


def _cell(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)  # one line: newlines in strings are shown as \n
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 1] + "…"


def _problem(style: _Style, problem: Problem, text: str) -> list[str]:
    where = f"offset {problem.offset}"
    if problem.tool_call_index is not None:
        where += f", tool call {problem.tool_call_index}"
    head = style(_RED, problem.code) + f" ({where}): {_display(problem.message)}"
    return [head, *excerpt(text, problem.offset, style)]


def excerpt(text: str, offset: int, style: _Style | None = None) -> list[str]:
    """The line before (for context), the raw line around ``offset`` (line numbers first, at most
    ``EXCERPT_RADIUS`` characters each side, control characters shown escaped) and a caret under the character at
    ``offset``."""
    style = style or _Style(False)
    offset = max(0, min(offset, len(text)))
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    if line_end < 0:
        line_end = len(text)
    line_no = text.count("\n", 0, offset) + 1
    start = max(line_start, offset - EXCERPT_RADIUS)
    end = min(line_end, offset + EXCERPT_RADIUS)
    before = ("…" if start > line_start else "") + _display(text[start:offset])
    at = _display(text[offset:end]) if offset < len(text) else ""
    after = "…" if end < line_end else ""
    gutter = f"  {line_no:>4} | "
    marker = "^" if offset < len(text) else "^ (end of output)"
    lines = []
    if line_start > 0:  # the line before, for context: a problem often sits at the start of a line
        prev_start = text.rfind("\n", 0, line_start - 1) + 1
        shown = max(prev_start, line_start - 1 - 2 * EXCERPT_RADIUS)
        lead = "…" if shown > prev_start else ""
        lines.append(f"  {line_no - 1:>4} | " + lead + _display(text[shown : line_start - 1]))
    return [
        *lines,
        gutter + before + at + after,
        " " * (len(gutter) - 2) + "| " + " " * _width(before) + style(_YELLOW, marker),
    ]


def _display(text: str) -> str:
    """Text safe to print: control characters (but not newlines) as escapes, so a terminal shows what is there
    instead of obeying it."""
    if text.isprintable() or all(ch == "\n" or ch.isprintable() for ch in text):
        return text
    return "".join(ch if ch == "\n" or ch.isprintable() else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    named = {"\t": "\\t", "\r": "\\r"}
    return named.get(ch) or f"\\u{ord(ch):04x}"


def _width(text: str) -> int:
    """Terminal columns: wide (CJK) characters take two, combining marks none."""
    total = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        total += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return total


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))
