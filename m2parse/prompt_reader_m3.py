"""read_prompt() for MiniMax-M3 prompts: the system block, the developer block (text and tools), each turn.

The promise is M2's: ``render_prompt(**read_prompt(p)) == p`` for every prompt the renderer produces, whatever
the text inside holds, in time linear in the prompt. The turn split is prompt_reader's (one engine, given M3's
headers and tool-call block); what is M3's own is here:

- the system block ends at ``</thinking_instructions>[e~[\\n]~b]developer\\n`` after the fixed instructions and
  the mode line, whose mode must agree with the generation prompt (the first such end that does is taken; the
  system text may hold anything before it);
- an assistant turn starts with a bare ``</mm:think>`` or ``<mm:think>``, non-empty reasoning, ``</mm:think>``,
  so a boundary not followed by either cannot start one;
- tool calls are read as nested elements (strings, objects, ``<item>`` arrays) and kept only if they write back
  to the same bytes; with the prompt's tool schemas, scalars and empty elements come back typed where the typed
  value writes back identically. Anything else stays text, which is always exact.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Mapping
from typing import Any

from .formats.m3 import ITEM_TAG, NAMESPACE, THINK_CLOSE, THINK_OPEN, TOOL_CALL_CLOSE, TURN_START
from .formats.xml_writer import close_tag, open_tag, write_xml_value
from .prompt_reader import (
    PromptReadError,
    ReadPrompt,
    TurnSyntax,
    _find_all,
    _read_turns,
    _segments,
    _split_tools,
)
from .render import RenderError
from .render_m3 import (
    CALLS_OPEN,
    DEFAULT_DEVELOPER,
    END,
    INVOKE_END,
    INVOKE_NAME_END,
    INVOKE_OPEN,
    MODE_LINES,
    SYSTEM_HEADER,
    THINKING_HEAD,
    THINKING_TAIL,
    TOOLS_HEAD,
    TOOLS_TAIL,
    render_assistant_turn,
)
from .templates import get_variant

__all__ = ["read_prompt_m3"]

TEMPLATE = "MiniMax-M3"
_SYSTEM_END = THINKING_TAIL + END + TURN_START
_GENERATION = TURN_START + "ai\n"
#: thinking_mode read from a system block without a mode line (any value that is not a known mode).
UNKNOWN_MODE = ""
#: Elements nested deeper than this are not read as calls (the turn stays text); the parser's M3 limit too.
MAX_VALUE_DEPTH = 64
#: Candidate tool-call blocks tried per assistant turn (each costs at most a scan of the turn).
MAX_BLOCK_TRIES = 8
_CLOSE_START = NAMESPACE + "</"
_OPEN_START = NAMESPACE + "<"


def read_prompt_m3(text: str) -> ReadPrompt:
    """Read an M3 prompt back; PromptReadError when the text is not framed as one."""
    if not text.startswith(SYSTEM_HEADER):
        raise PromptReadError(f"an M3 prompt starts with {SYSTEM_HEADER!r}, this one with {text[:12]!r}")
    body, generation = _strip_generation(text)
    system_end, mode, text_end = _system_block(body, generation)
    system_text = body[len(SYSTEM_HEADER) : text_end]
    identity = get_variant(TEMPLATE).identity
    messages: list[dict[str, Any]] = []
    if system_text != identity:  # an empty text needs a truthy content that renders nothing
        messages.append({"role": "root", "content": system_text or [{"type": "text", "text": ""}]})

    rest = body[system_end + len(_SYSTEM_END) :]  # "developer\n…"
    segments = _segments(rest, M3_SYNTAX, _ai_min_end(rest))
    developer, tools, kwargs = _read_developer(segments[0][1])
    if developer is not None:
        messages.append(developer)
    kwargs["thinking_mode"] = mode
    schemas = _schemas(tools)
    _read_turns(messages, segments[1:], lambda _, turn: _read_assistant(turn, schemas), id_every_result=True)
    if not messages:  # nothing but defaults: render_prompt refuses an empty list
        messages.append({"role": "system", "content": ""})
    return ReadPrompt(messages, tools, generation is not None, TEMPLATE, kwargs)


# ------------------------------------------------------------------------------------------- frame


def _strip_generation(text: str) -> tuple[str, str | None]:
    """(the prompt without its generation prompt, which one it was: enabled/disabled/adaptive, or None)."""
    if text.endswith(END):
        return text, None
    for mode, suffix in (("enabled", THINK_OPEN), ("disabled", THINK_CLOSE), ("adaptive", "")):
        if text.endswith(_GENERATION + suffix):
            body = text[: len(text) - len(_GENERATION + suffix)]
            if body.endswith(END):
                return body, mode
    raise PromptReadError(
        f"an M3 prompt ends with {END!r} or a generation prompt ({_GENERATION!r}, optionally + {THINK_OPEN!r} "
        f"or {THINK_CLOSE!r})"
    )


def _system_block(body: str, generation: str | None) -> tuple[int, str, int]:
    """(where ``</thinking_instructions>[e~[\\n]~b]`` starts, the thinking mode, where the system text ends).

    The system text may hold anything, including a fake end; the first end after the fixed instructions and a
    mode line that agrees with the generation prompt is taken, and the rest of the prompt always reads exactly.
    """
    low = len(SYSTEM_HEADER)
    lines = (*MODE_LINES.items(), (UNKNOWN_MODE, ""))
    for at in _find_all(body, _SYSTEM_END + "developer\n", low):
        found = next(((m, line) for m, line in lines if body.endswith(THINKING_HEAD + line, low, at)), None)
        if found is None:
            continue
        mode, line = found
        if generation is None or generation == mode or (generation == "adaptive" and mode == UNKNOWN_MODE):
            return at, mode, at - len(THINKING_HEAD + line)
    raise PromptReadError(
        "not an M3 prompt: no system block ending in the thinking instructions (with a mode that fits the "
        "generation prompt) followed by ']~b]developer'"
    )


def _ai_min_end(body: str) -> Any:
    """For the turn split: where an assistant turn starting at ``start`` may end at the earliest."""
    final = len(body) - len(END)
    closes = [p for p in _find_all(body, THINK_CLOSE) if p + len(THINK_CLOSE) <= final]

    def min_end(start: int) -> int | None:
        if body.startswith(THINK_CLOSE, start):
            return start + len(THINK_CLOSE)
        if body.startswith(THINK_OPEN, start):
            i = bisect_left(closes, start + len(THINK_OPEN) + 1)  # reasoning is never empty
            if i < len(closes):
                return closes[i] + len(THINK_CLOSE)
        return None

    return min_end


# ------------------------------------------------------------------------------------------- developer


def _read_developer(text: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None, dict[str, Any]]:
    """(the developer message or None, the tools, template kwargs) from the developer block's text."""
    text, tools = _split_tools(text, TOOLS_HEAD, TOOLS_TAIL)
    if text == DEFAULT_DEVELOPER:
        return None, tools, {}
    if text == "":
        return None, tools, {"model_identity": ""}
    return {"role": "system", "content": text}, tools, {}


def _schemas(tools: list[dict[str, Any]] | None) -> dict[str, Mapping[str, Any]]:
    """Tool name -> its parameters schema (the first tool of a name wins), for typing call values."""
    out: dict[str, Mapping[str, Any]] = {}
    for tool in tools or ():
        function = tool.get("function")
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            parameters = function.get("parameters")
            if isinstance(parameters, Mapping):
                out.setdefault(function["name"], parameters)
    return out


# ------------------------------------------------------------------------------------------- assistant


def _prefix_end(text: str) -> int | None:
    """Where the think prefix of an assistant turn's text ends; None without one (never for a turn the split
    yields: it only starts an assistant turn where one can start)."""
    if text.startswith(THINK_CLOSE):
        return len(THINK_CLOSE)
    if text.startswith(THINK_OPEN):
        close = text.find(THINK_CLOSE, len(THINK_OPEN) + 1)
        return None if close == -1 else close + len(THINK_CLOSE)
    return None


def _read_assistant(text: str, schemas: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    end = _prefix_end(text)
    if end is None:  # not an assistant turn's text: kept as content, which the caller's check will refuse
        return {"role": "assistant", "content": text, "reasoning_content": ""}
    reasoning = text[len(THINK_OPEN) : end - len(THINK_CLOSE)] if text.startswith(THINK_OPEN) else None
    found = find_calls(text)
    content = text[end : found[0]] if found else text[end:]
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    elif THINK_CLOSE in content:
        message["reasoning_content"] = ""  # a string keeps the template from splitting the content
    if not found:
        return message
    raw = found[1]
    typed = [(name, {k: _typed(v, _property(schemas.get(name), k)) for k, v in args.items()}) for name, args in raw]
    for calls in (typed, raw):
        message["tool_calls"] = [
            {"id": "", "type": "function", "function": {"name": name, "arguments": arguments}}
            for name, arguments in calls
        ]
        if calls is raw or _renders_as(message, text):
            break
    return message


def _renders_as(message: dict[str, Any], text: str) -> bool:
    try:
        return render_assistant_turn(message) == text
    except RenderError:  # not expected for values read from text; then the untyped reading is kept
        return False


def find_calls(text: str) -> tuple[int, list[tuple[str, dict[str, Any]]]] | None:
    """Where the trailing tool-call block of an assistant turn's text starts, and its calls (string values).

    Only a reading that writes back to exactly the block's bytes is returned. Each ``]<]minimax[>[<tool_call>\\n``
    after the think prefix is a candidate (at most MAX_BLOCK_TRIES); each is read once, left to right.
    """
    prefix = _prefix_end(text)
    if prefix is None or not text.endswith(TOOL_CALL_CLOSE):
        return None
    stop = len(text) - len(TOOL_CALL_CLOSE)
    starts = [at for at in _find_all(text, CALLS_OPEN, prefix) if at + len(CALLS_OPEN) <= stop]
    if not starts:
        return None
    scan = _Scan(text, stop)
    for at in starts[:MAX_BLOCK_TRIES]:
        calls = scan.calls(at + len(CALLS_OPEN))
        if calls is not None and _writes_back(text, at, calls):
            return at, calls
    return None


def _writes_back(text: str, at: int, calls: list[tuple[str, dict[str, Any]]]) -> bool:
    parts = [CALLS_OPEN]
    for name, arguments in calls:
        parts += [INVOKE_OPEN, name, INVOKE_NAME_END]
        for key, value in arguments.items():
            parts += [open_tag(key), write_xml_value(value), close_tag(key)]
        parts.append(INVOKE_END)
    parts.append(TOOL_CALL_CLOSE)
    block = "".join(parts)
    return len(block) == len(text) - at and text.startswith(block, at)


class _Scan:
    """One left-to-right reading of a tool-call block ``text[:stop]``.

    A name ends at the first ``">]<]minimax[>[``; a key at the first ``>``; a value is nested elements when it
    starts with an opening tag and they parse, else text up to the next ``]<]minimax[>[</``, which must close it.
    The next closing tag is found by bisection in the sorted list of their positions, and a shared step budget
    keeps every candidate block of one turn together linear.
    """

    def __init__(self, text: str, stop: int) -> None:
        self.text, self.stop = text, stop
        self.closes = [p for p in _find_all(text, _CLOSE_START) if p < stop]
        self.budget = len(text) // 4 + 64

    def calls(self, at: int) -> list[tuple[str, dict[str, Any]]] | None:
        text, stop = self.text, self.stop
        calls: list[tuple[str, dict[str, Any]]] = []
        while at < stop:
            if not text.startswith(INVOKE_OPEN, at, stop):
                return None
            name_end = text.find(INVOKE_NAME_END + NAMESPACE, at + len(INVOKE_OPEN), stop)
            if name_end == -1:
                return None
            name, at = text[at + len(INVOKE_OPEN) : name_end], name_end + len(INVOKE_NAME_END)
            arguments: dict[str, Any] = {}
            while not text.startswith(INVOKE_END, at, stop):
                element = self.element(at, 1)
                if element is None or element[0] in arguments:
                    return None
                key, value, at = element
                arguments[key] = value
            at += len(INVOKE_END)
            calls.append((name, arguments))
        return calls or None

    def element(self, at: int, depth: int) -> tuple[str, Any, int] | None:
        """``]<]minimax[>[<KEY>VALUE]<]minimax[>[</KEY>`` at ``at``: (key, value, position after it)."""
        text, stop = self.text, self.stop
        self.budget -= 1
        if self.budget < 0 or depth > MAX_VALUE_DEPTH:
            return None
        if not text.startswith(_OPEN_START, at, stop) or text.startswith(_CLOSE_START, at, stop):
            return None
        key_start = at + len(_OPEN_START)
        key_end = text.find(">", key_start, stop)
        if key_end == -1:
            return None
        key = text[key_start:key_end]
        close = close_tag(key)
        at = key_end + 1
        if text.startswith(close, at, stop):
            return key, "", at + len(close)
        if text.startswith(_OPEN_START, at, stop) and not text.startswith(_CLOSE_START, at, stop):
            children = self.children(at, close, depth)
            if children is not None:
                return key, children[0], children[1] + len(close)
        i = bisect_left(self.closes, at)
        if i == len(self.closes) or not text.startswith(close, self.closes[i], stop):
            return None
        end = self.closes[i]
        self.budget -= (end - at) // 64  # slicing is paid for too
        return key, text[at:end], end + len(close)

    def children(self, at: int, close: str, depth: int) -> tuple[Any, int] | None:
        """Nested elements up to ``close``: a list when all are ``<item>``, else an object (keys distinct)."""
        pairs: list[tuple[str, Any]] = []
        while not self.text.startswith(close, at, self.stop):
            element = self.element(at, depth + 1)
            if element is None:
                return None
            pairs.append(element[:2])
            at = element[2]
        if all(key == ITEM_TAG for key, _ in pairs):
            return [value for _, value in pairs], at
        keys = {key for key, _ in pairs}
        return (dict(pairs), at) if len(keys) == len(pairs) else None


# ------------------------------------------------------------------------------------------- types


def _property(schema: Mapping[str, Any] | None, key: str) -> Any:
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    return properties.get(key) if isinstance(properties, Mapping) else None


def _typed(value: Any, schema: Any) -> Any:
    """The value as its schema types it, where the typed value writes back to the same text; else as read.

    A string is never converted when the schema allows a string (the template writes ``"5"`` and ``5`` alike).
    """
    if not isinstance(schema, Mapping):
        return value
    declared = schema.get("type")
    types = [declared] if isinstance(declared, str) else [t for t in declared or () if isinstance(t, str)]
    if isinstance(value, dict):
        return {k: _typed(v, _property(schema, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v, schema.get("items")) for v in value]
    if not types or "string" in types:
        return value
    if value == "" and ("object" in types or "array" in types):
        return {} if "object" in types else []
    try:
        converted = json.loads(value)
    except (ValueError, RecursionError):
        return value
    if isinstance(converted, bool):
        fits = "boolean" in types
    elif isinstance(converted, int):
        fits = "integer" in types or "number" in types
    elif isinstance(converted, float):
        fits = "number" in types
    else:
        fits = False
    return converted if fits and write_xml_value(converted) == value else value


#: The M3 prompt format, for prompt_reader's turn split (a tool turn always holds one ``<response>`` or more).
M3_SYNTAX = TurnSyntax(
    (("user\n", "user", 5), ("ai\n", "ai", 3), ("tool\n<response>", "tool", 4)),
    TOOL_CALL_CLOSE,
    find_calls,
    first_header="developer\n",
)
