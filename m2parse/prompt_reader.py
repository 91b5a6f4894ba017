"""read_prompt(): a rendered M2 prompt back into messages, tools and render options.

The promise is exactness: ``render_prompt(**read_prompt(p)) == p`` for every prompt the renderer produces,
whatever the text inside holds. Turn markers and tags inside content make a prompt ambiguous, so the reader
never trusts one reading: it tries the natural one (assistant turns through the core parser, for typed tool
calls) and checks it by rendering, then falls back to exact splits that are always valid. The normalisation
(what comes back different from what was rendered) is documented in docs/rendering.md.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .format import GENERATION_PROMPT, THINK_CLOSE, TOOL_CALL_CLOSE, TURN_START
from .parser import parse, sequential_ids
from .render import (
    CALLS_OPEN,
    END,
    RESPONSE_CLOSE,
    RESPONSE_OPEN,
    SYSTEM_HEADER,
    THINK_BLOCK_CLOSE,
    THINK_BLOCK_OPEN,
    TOOLS_HEAD,
    TOOLS_TAIL,
    render_assistant_turn,
)
from .schema import ToolsError, normalize_tools
from .templates import BY_IDENTITY, DEFAULT_TEMPLATE

__all__ = ["PromptReadError", "ReadPrompt", "read_prompt"]

_OPTIONS = ("messages", "tools", "add_generation_prompt", "template")
_BOUNDARY = END + TURN_START
#: Role headers after ``]~b]``: (spelling, kind, length of the header itself).
_HEADERS = (("user\n", "user", 5), ("ai\n", "ai", 3), ("tool\n<response>", "tool", 4), ("tool" + END, "tool", 4))
_INVOKE = '<invoke name="'
_INVOKE_END = "</invoke>\n"
_PARAM = '<parameter name="'
_PARAM_END = "</parameter>\n"
_NAME_END = '">'
_DATE = "\nCurrent date: "
_LOCATION = "\nCurrent location: "

RawCall = tuple[str, list[tuple[str, str]]]

#: Sits between two tool turns in a row: the template drops it (silently, it holds nothing), ending the run.
RUN_BREAK = {"role": "system", "content": ""}


class PromptReadError(ValueError):
    """Not an M2 prompt: it must start with the system block and end a turn or with the generation prompt."""


@dataclass(frozen=True, slots=True)
class ReadPrompt(Mapping[str, Any]):
    """What a prompt was rendered from. A mapping of render_prompt's keyword arguments: ``render_prompt(**r)``."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    add_generation_prompt: bool
    template: str = DEFAULT_TEMPLATE
    #: Template variables the prompt needs (only ``model_identity``, when the system line is empty).
    template_kwargs: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        if key in _OPTIONS:
            return getattr(self, key)
        return self.template_kwargs[key]

    def __iter__(self) -> Iterator[str]:
        yield from _OPTIONS
        yield from self.template_kwargs

    def __len__(self) -> int:
        return len(_OPTIONS) + len(self.template_kwargs)


def read_prompt(text: str) -> ReadPrompt:
    """Read a rendered prompt back: system text, tools, each turn (typed tool calls) and the options."""
    if not text.startswith(SYSTEM_HEADER):
        raise PromptReadError(f"an M2 prompt starts with {SYSTEM_HEADER!r}, this one with {text[:12]!r}")
    body = text[len(SYSTEM_HEADER) - len("system\n") :]
    add_generation_prompt = body.endswith(GENERATION_PROMPT)
    if add_generation_prompt:
        body = body[: -len(GENERATION_PROMPT)]
    if not body.endswith(END):
        raise PromptReadError(f"an M2 prompt ends with {END!r} or the generation prompt {GENERATION_PROMPT!r}")

    segments = _segments(body)
    system, tools, template, kwargs = _read_system(segments[0][1])
    parser_tools = _usable_tools(tools)
    turns = segments[1:]
    last_user = max((i for i, (kind, _) in enumerate(turns) if kind == "user"), default=-1)
    messages: list[dict[str, Any]] = [system] if system else []
    new_id = sequential_ids()
    call_ids: list[str] = []
    for i, (kind, text_) in enumerate(turns):
        if kind == "user":
            messages.append({"role": "user", "content": text_})
        elif kind == "ai":
            message = _read_assistant(text_, i > last_user, parser_tools)
            if message.get("tool_calls"):
                call_ids = []
                for call in message["tool_calls"]:
                    call["id"] = new_id()
                    call_ids.append(call["id"])
            messages.append(message)
        else:
            if messages and messages[-1]["role"] == "tool":
                messages.append(dict(RUN_BREAK))  # a dropped message split the run: keep the two turns apart
            for result in _read_results(text_):
                message = {"role": "tool", "content": result}
                if call_ids and isinstance(result, str):
                    message = {"role": "tool", "tool_call_id": call_ids.pop(0), "content": result}
                messages.append(message)
    if not messages:  # no turns and the default system text: render_prompt refuses an empty list
        messages.append({"role": "system", "content": ""})
    return ReadPrompt(messages, tools, add_generation_prompt, template, kwargs)


# ------------------------------------------------------------------------------------------- turns


def _segments(body: str) -> list[tuple[str, str]]:
    """Split ``system\\n…[e~[\\n]~b]user\\n…[e~[\\n…`` into (kind, text) turns that render back exactly.

    A turn ends at a ``[e~[\\n]~b]ROLE`` boundary, but content may contain one too. The search takes the earliest
    boundary that keeps the rest renderable: a tool turn needs the assistant turn before it to hold tool calls
    and must be ``<response>`` blocks. On a rendered prompt the true split qualifies, so the search finds it or
    another exact one; on any text it succeeds, because the system turn can hold everything as its text.
    """
    final = len(body) - len(END)
    ends = sorted({i for i in _find_all(body, _BOUNDARY) if _header(body, i + len(_BOUNDARY))} | {final})
    # Iterative depth-first search; a frame is [kind, text start, may a tool turn follow, next candidate index].
    frames: list[list[Any]] = [["system", len("system\n"), False, bisect_left(ends, len("system\n"))]]
    dead: set[tuple[int, bool]] = set()
    while True:
        frame = frames[-1]
        kind, start, calls_open, k = frame
        while k < len(ends):
            end = ends[k]
            k += 1
            text = body[start:end]
            if kind == "tool" and not _is_results(text):
                continue
            now_open = (_find_calls(text) is not None) if kind == "ai" else calls_open and kind != "system"
            if end == final:
                frame[3] = k
                return [(f[0], body[f[1] : ends[f[3] - 1]]) for f in frames]
            next_kind, length = _header(body, end + len(_BOUNDARY)) or ("", 0)
            next_start = end + len(_BOUNDARY) + length
            if (next_kind == "tool" and not now_open) or (next_start, now_open) in dead:
                continue
            frame[3] = k
            frames.append([next_kind, next_start, now_open, bisect_left(ends, next_start)])
            break
        else:
            dead.add((start, calls_open))
            frames.pop()


def _header(body: str, at: int) -> tuple[str, int] | None:
    for spelling, kind, length in _HEADERS:
        if body.startswith(spelling, at):
            return kind, length
    return None


def _find_all(text: str, needle: str, start: int = 0) -> list[int]:
    found = []
    at = text.find(needle, start)
    while at != -1:
        found.append(at)
        at = text.find(needle, at + 1)
    return found


def _is_results(text: str) -> bool:
    """A tool turn's text: nothing, or ``\\n<response>`` … ``</response>``."""
    return not text or (
        len(text) >= len(RESPONSE_OPEN) + len(RESPONSE_CLOSE)
        and text.startswith(RESPONSE_OPEN)
        and text.endswith(RESPONSE_CLOSE)
    )


def _read_results(text: str) -> list[Any]:
    """Each ``<response>`` of a tool turn (see _is_results) as a string content; an empty turn as ``[]``."""
    if not text:
        return [[]]
    inner = text[len(RESPONSE_OPEN) : -len(RESPONSE_CLOSE)]
    return inner.split(RESPONSE_CLOSE + RESPONSE_OPEN)


# ------------------------------------------------------------------------------------------ system


def _read_system(text: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None, str, dict[str, Any]]:
    tools = None
    if text.endswith(TOOLS_TAIL):
        head = text.rfind(TOOLS_HEAD)
        if head != -1 and head + len(TOOLS_HEAD) <= len(text) - len(TOOLS_TAIL):
            tools = _read_tools(text[head + len(TOOLS_HEAD) : len(text) - len(TOOLS_TAIL)])
            if tools is not None:
                text = text[:head]
    extras: dict[str, str] = {}
    for key, label in (("current_location", _LOCATION), ("current_date", _DATE)):
        at = text.rfind(label)
        if at != -1 and at + len(label) < len(text):
            extras[key] = text[at + len(label) :]
            text = text[:at]
    template = BY_IDENTITY.get(text, DEFAULT_TEMPLATE)
    kwargs: dict[str, Any] = {"model_identity": ""} if text == "" else {}
    system: dict[str, Any] | None = None
    if extras or (text and text not in BY_IDENTITY):
        content = "" if text in BY_IDENTITY else text
        system = {"role": "system", "content": content}
        for key in ("current_date", "current_location"):
            if key in extras:
                system[key] = extras[key]
    return system, tools, template, kwargs


def _read_tools(block: str) -> list[dict[str, Any]] | None:
    """``<tool>{json}</tool>\\n`` lines; None unless every line is JSON that re-serialises to the same bytes."""
    lines = block.split("\n")
    if len(lines) < 2 or lines[-1] != "":
        return None
    tools = []
    for line in lines[:-1]:
        if not (line.startswith("<tool>") and line.endswith("</tool>")):
            return None
        raw = line[len("<tool>") : -len("</tool>")]
        try:
            function = json.loads(raw)
        except ValueError:
            return None
        if json.dumps(function, ensure_ascii=False) != raw:
            return None
        tools.append({"type": "function", "function": function})
    return tools


def _usable_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """The tools the parser can take (a prompt may hold any JSON in a tool line)."""
    if not tools:
        return None
    usable = []
    for tool in tools:
        try:
            normalize_tools([tool])
        except ToolsError:
            continue
        usable.append(tool)
    return usable


# ------------------------------------------------------------------------------------------ assistant


def _read_assistant(text: str, keeps_reasoning: bool, tools: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The turn through the core parser when that renders back exactly, else an exact split of the text."""
    has_calls = _find_calls(text) is not None
    parsed = parse(text, tools, starts_in_reasoning=False, validate=False, id_factory=sequential_ids())
    calls = [(c.name, dict(c.arguments)) for c in parsed.tool_calls]
    reasoning = parsed.reasoning_content if keeps_reasoning else None
    message = _message(reasoning, parsed.content, calls)
    if bool(calls) == has_calls and render_assistant_turn(message, keeps_reasoning=keeps_reasoning) == text:
        return message

    reasoning, content, raw_calls = _split(text, keeps_reasoning)
    typed = calls if raw_calls is not None and [n for n, _ in calls] == [n for n, _ in raw_calls] else None
    exact_calls = [
        (name, {k: _typed(v, typed[j][1].get(k, v) if typed else v) for k, v in params})
        for j, (name, params) in enumerate(raw_calls or [])
    ]
    message = _message(reasoning, content, exact_calls)
    if render_assistant_turn(message, keeps_reasoning=keeps_reasoning) == text:
        return message
    return _message(None, text, [])  # a foreign turn: kept verbatim


def _typed(raw: str, value: Any) -> Any:
    """The parser's typed value when it renders back to exactly the raw text, else the raw text."""
    if isinstance(value, str):
        return raw
    try:
        return value if json.dumps(value, ensure_ascii=False) == raw else raw
    except (TypeError, ValueError):
        return raw


def _message(reasoning: str | None, content: str, calls: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    elif THINK_CLOSE in content:
        message["reasoning_content"] = ""  # a string keeps the template from splitting the content at </think>
    if calls:
        message["tool_calls"] = [
            {"id": "", "type": "function", "function": {"name": name, "arguments": arguments}}
            for name, arguments in calls
        ]
    return message


def _split(text: str, keeps_reasoning: bool) -> tuple[str | None, str, list[RawCall] | None]:
    """(reasoning, content, raw calls) such that rendering them gives ``text`` back."""
    reasoning, rest = None, text
    if keeps_reasoning and text.startswith(THINK_BLOCK_OPEN):
        end = text.find(THINK_BLOCK_CLOSE, len(THINK_BLOCK_OPEN) + 1)  # reasoning is never empty
        if end != -1:
            reasoning, rest = text[len(THINK_BLOCK_OPEN) : end], text[end + len(THINK_BLOCK_CLOSE) :]
    found = _find_calls(rest)
    if found is None and reasoning is not None and _find_calls(text) is not None:
        reasoning, rest, found = None, text, _find_calls(text)  # the calls decide whether a tool turn may follow
    if found is None:
        return reasoning, rest, None
    at, calls = found
    return reasoning, rest[:at], calls


def _find_calls(text: str) -> tuple[int, list[RawCall]] | None:
    """Where the trailing tool-call block starts and its calls, if ``text`` ends with one."""
    if not text.endswith(TOOL_CALL_CLOSE):
        return None
    stop = len(text) - len(TOOL_CALL_CLOSE)
    starts = [at for at in _find_all(text, CALLS_OPEN) if at + len(CALLS_OPEN) <= stop]
    for split in (_natural_invokes, _single_invoke):
        for at in starts:
            calls = split(text[at + len(CALLS_OPEN) : stop])
            if calls is not None:
                return at, calls
    return None


def _natural_invokes(block: str) -> list[RawCall] | None:
    """The usual reading: a name ends at the first ``">``, a value at a ``</parameter>`` that a tag follows."""
    calls: list[RawCall] = []
    at = 0
    while at < len(block):
        if not block.startswith(_INVOKE, at):
            return None
        close = block.find(_NAME_END + "\n", at + len(_INVOKE))
        if close == -1:
            return None
        name, at = block[at + len(_INVOKE) : close], close + len(_NAME_END) + 1
        params: list[tuple[str, str]] = []
        while not block.startswith(_INVOKE_END, at):
            if not block.startswith(_PARAM, at):
                return None
            close = block.find(_NAME_END, at + len(_PARAM))
            if close == -1:
                return None
            key, at = block[at + len(_PARAM) : close], close + len(_NAME_END)
            end = block.find(_PARAM_END, at)
            while end != -1 and not block.startswith((_PARAM, _INVOKE_END), end + len(_PARAM_END)):
                end = block.find(_PARAM_END, end + 1)
            if end == -1 or any(k == key for k, _ in params):
                return None
            params.append((key, block[at:end]))
            at = end + len(_PARAM_END)
        at += len(_INVOKE_END)
        calls.append((name, params))
    return calls or None


def _single_invoke(block: str) -> list[RawCall] | None:
    """A reading that always exists for rendered calls: one call that absorbs any markup inside its text."""
    if not (block.startswith(_INVOKE) and block.endswith(_INVOKE_END)):
        return None
    inner = block[len(_INVOKE) : -len(_INVOKE_END)]
    if inner.endswith(_NAME_END + "\n"):
        return [(inner[: -len(_NAME_END) - 1], [])]
    if not inner.endswith(_PARAM_END):
        return None
    cut = inner.find(_NAME_END + "\n" + _PARAM)
    if cut == -1:
        return None
    rest = inner[cut + len(_NAME_END) + 1 + len(_PARAM) :]
    close = rest.find(_NAME_END)
    if close == -1 or close + len(_NAME_END) > len(rest) - len(_PARAM_END):
        return None
    return [(inner[:cut], [(rest[:close], rest[close + len(_NAME_END) : -len(_PARAM_END)])])]
