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
from collections import deque
from collections.abc import Callable, Iterator, Mapping
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
#: The end of an M3 system block: read_prompt hands a prompt that holds it to the M3 reader first.
_M3_SIGN = "</thinking_instructions>" + END + TURN_START + "developer\n"


@dataclass(frozen=True, slots=True)
class TurnSyntax:
    """What the turn split (_segments) needs to know about a prompt format: the M2 and M3 readers share it."""

    #: Role headers after ``]~b]``: (spelling, kind, length of the header itself).
    headers: tuple[tuple[str, str, int], ...]
    #: The last tag of a tool-call block.
    calls_close: str
    #: ``(where the block starts, its calls)`` when an assistant turn's text ends with tool calls, else None.
    find_calls: Callable[[str], Any]
    #: The header of the first segment (the block that holds the tools).
    first_header: str = "system\n"


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
    """Read a rendered prompt back: system text, tools, each turn (typed tool calls) and the options.

    A prompt holding the end of an M3 system block is read as MiniMax-M3 (prompt_reader_m3.py) when it fits
    that format; everything else as M2.
    """
    if text.startswith(SYSTEM_HEADER) and _M3_SIGN in text:
        from .prompt_reader_m3 import read_prompt_m3

        try:
            return read_prompt_m3(text)
        except PromptReadError as m3_error:
            try:
                return _read_m2(text)
            except PromptReadError:
                raise m3_error from None  # it looks like M3: say what M3 needs
    return _read_m2(text)


def _read_m2(text: str) -> ReadPrompt:
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
    _read_turns(messages, turns, lambda i, text_: _read_assistant(text_, i > last_user, parser_tools))
    if not messages:  # no turns and the default system text: render_prompt refuses an empty list
        messages.append({"role": "system", "content": ""})
    return ReadPrompt(messages, tools, add_generation_prompt, template, kwargs)


# ------------------------------------------------------------------------------------------- turns


def _segments(
    body: str, syntax: TurnSyntax | None = None, ai_min_end: Callable[[int], int | None] | None = None
) -> list[tuple[str, str]]:
    """Split ``system\\n…[e~[\\n]~b]user\\n…[e~[\\n…`` into (kind, text) turns that render back exactly.

    A turn ends at a ``[e~[\\n]~b]ROLE`` boundary, but content may contain one too. The split takes, turn by turn,
    the earliest boundary that keeps the rest renderable: a tool turn needs the assistant turn before it to hold
    tool calls and must be ``<response>`` blocks. On a rendered prompt the true split qualifies, so this finds it
    or another exact one; on any text it succeeds, because a non-tool turn can always run to the end.

    Linear time: whether a tool turn starting at a boundary can reach the end is computed once per boundary, from
    the last boundary back (a non-tool turn always can), so the forward walk never backtracks. An assistant turn
    tries at most ``MAX_CALL_TRIES`` tool-turn boundaries (each costs a scan of the turn); past that it runs to the
    next non-tool boundary, which is always exact.

    ``syntax`` is the format's (M2 by default). ``ai_min_end(start)`` (M3) is where the text of an assistant turn
    starting at ``start`` may end at the earliest (past its reasoning), or None when no assistant turn can start
    there; without it any boundary may end an assistant turn.
    """
    syntax = syntax or M2_SYNTAX
    final = len(body) - len(END)
    ends: list[int] = []  # every boundary followed by a role header, then the end (after every boundary)
    kinds: list[str] = []  # the role after each boundary ("" for the end)
    starts: list[int] = []  # where that role's text starts
    for end in _find_all(body, _BOUNDARY):
        header = _header(body, end + len(_BOUNDARY), syntax.headers)
        if header is not None and header[0] == "ai" and ai_min_end is not None:
            header = header if ai_min_end(end + len(_BOUNDARY) + header[1]) is not None else None
        if header is not None:
            ends.append(end)
            kinds.append(header[0])
            starts.append(end + len(_BOUNDARY) + header[1])
    ends.append(final)
    kinds.append("")
    starts.append(len(body))
    count = len(ends)

    # From the last boundary back: can the turn after boundary k be followed to the end (reaches[k]), and the
    # earliest boundary >= k that can end a non-empty tool turn (next_close[k]). A tool turn is reachable from
    # boundary k only through boundaries after it, so one backward pass settles every boundary.
    reaches = [True] * count
    next_close = [count] * (count + 1)

    def tool_end(start: int) -> int | None:
        """The earliest boundary that ends a tool turn starting at ``start`` and keeps the rest renderable."""
        k = bisect_left(ends, start)
        if k < count and ends[k] == start and reaches[k]:
            return k  # an empty tool turn
        if body.startswith(RESPONSE_OPEN, start):
            k = next_close[bisect_left(ends, start + len(RESPONSE_OPEN) + len(RESPONSE_CLOSE))]
            return k if k < count else None
        return None

    for k in range(count - 1, -1, -1):
        if kinds[k] == "tool":
            reaches[k] = tool_end(starts[k]) is not None
        closes = reaches[k] and body.endswith(RESPONSE_CLOSE, 0, ends[k])
        next_close[k] = k if closes else next_close[k + 1]
    next_plain = [count] * (count + 1)  # earliest boundary >= k followed by a non-tool turn, or the end
    next_tool = [count] * (count + 1)  # earliest boundary >= k followed by a reachable tool turn
    for k in range(count - 1, -1, -1):
        next_plain[k] = k if kinds[k] != "tool" else next_plain[k + 1]
        next_tool[k] = k if kinds[k] == "tool" and reaches[k] else next_tool[k + 1]

    segments: list[tuple[str, str]] = []
    kind, start, calls_open = "system", len(syntax.first_header), False
    while True:
        first = bisect_left(ends, start)
        if kind == "tool":
            k = tool_end(start)
            assert k is not None  # only reachable tool turns are entered
        elif kind == "ai":
            if ai_min_end is not None:
                first = bisect_left(ends, ai_min_end(start))
            k, calls_open = _assistant_end(body, ends, start, first, next_plain, next_tool, syntax)
        else:
            k = min(next_plain[first], next_tool[first]) if calls_open else next_plain[first]
            calls_open = calls_open and kind != "system"
        segments.append((kind, body[start : ends[k]]))
        if ends[k] == final:
            return segments
        kind, start = kinds[k], starts[k]


#: Tool-turn boundaries an assistant turn tries before it runs to the next non-tool boundary (see _segments).
MAX_CALL_TRIES = 8


def _assistant_end(
    body: str,
    ends: list[int],
    start: int,
    first: int,
    next_plain: list[int],
    next_tool: list[int],
    syntax: TurnSyntax,
) -> tuple[int, bool]:
    """(boundary index, whether the turn holds tool calls) for an assistant turn starting at ``start``."""
    plain = next_plain[first]
    k = next_tool[first]
    tries = 0
    while k < plain and tries < MAX_CALL_TRIES:
        if body.endswith(syntax.calls_close, start, ends[k]):
            tries += 1
            if syntax.find_calls(body[start : ends[k]]) is not None:
                return k, True
        k = next_tool[k + 1]
    return plain, syntax.find_calls(body[start : ends[plain]]) is not None


def _header(body: str, at: int, headers: tuple[tuple[str, str, int], ...] = _HEADERS) -> tuple[str, int] | None:
    for spelling, kind, length in headers:
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


def _read_turns(
    messages: list[dict[str, Any]],
    turns: list[tuple[str, str]],
    read_assistant: Callable[[int, str], dict[str, Any]],
    *,
    id_every_result: bool = False,
) -> None:
    """Append the conversation's turns as messages (M2 and M3 alike): the calls of each assistant turn get
    sequential ids, and the tool results after it take them in order (M2 gives none to an empty turn's ``[]``,
    M3, with ``id_every_result``, does); consecutive tool turns get a RUN_BREAK between them."""
    new_id = sequential_ids()
    call_ids: deque[str] = deque()
    for i, (kind, text) in enumerate(turns):
        if kind == "user":
            messages.append({"role": "user", "content": text})
        elif kind == "ai":
            message = read_assistant(i, text)
            if message.get("tool_calls"):
                call_ids = deque()
                for call in message["tool_calls"]:
                    call["id"] = new_id()
                    call_ids.append(call["id"])
            messages.append(message)
        else:
            if messages and messages[-1]["role"] == "tool":
                messages.append(dict(RUN_BREAK))  # a dropped message split the run: keep the two turns apart
            for result in _read_results(text):
                message = {"role": "tool", "content": result}
                if call_ids and (id_every_result or isinstance(result, str)):
                    message = {"role": "tool", "tool_call_id": call_ids.popleft(), "content": result}
                messages.append(message)


def _read_results(text: str) -> list[Any]:
    """Each ``<response>`` of a tool turn (see _is_results) as a string content; an empty turn as ``[]``."""
    if not text:
        return [[]]
    inner = text[len(RESPONSE_OPEN) : -len(RESPONSE_CLOSE)]
    return inner.split(RESPONSE_CLOSE + RESPONSE_OPEN)


# ------------------------------------------------------------------------------------------ system


def _split_tools(text: str, head_text: str, tail_text: str) -> tuple[str, list[dict[str, Any]] | None]:
    """(the text before the tools section, the tools) when the block ends with one that reads back, else
    (text, None); the section is the last ``head_text`` … ``tail_text`` (M2's system block, M3's developer block)."""
    if text.endswith(tail_text):
        head = text.rfind(head_text)
        if head != -1 and head + len(head_text) <= len(text) - len(tail_text):
            tools = _read_tools(text[head + len(head_text) : len(text) - len(tail_text)])
            if tools is not None:
                return text[:head], tools
    return text, None


def _read_system(text: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None, str, dict[str, Any]]:
    text, tools = _split_tools(text, TOOLS_HEAD, TOOLS_TAIL)
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
        except (ValueError, RecursionError):  # not JSON, or nested past the interpreter's limit: it stays text
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
    """Where the trailing tool-call block starts and its calls, if ``text`` ends with one.

    Each ``\\n<minimax:tool_call>\\n`` is a candidate start, tried in order with the natural reading, then with
    the single-call one. Linear time: tags are found through sorted occurrence lists, nothing is sliced until a
    reading succeeds, and the natural readings share a budget proportional to the text (a rendered turn never
    comes near it; past it, the text is not read as calls, which is always exact).
    """
    if not text.endswith(TOOL_CALL_CLOSE):
        return None
    stop = len(text) - len(TOOL_CALL_CLOSE)
    starts = [at for at in _find_all(text, CALLS_OPEN) if at + len(CALLS_OPEN) <= stop]
    if not starts:
        return None
    scan = _CallScan(text, stop)
    for at in starts:
        calls = scan.natural(at + len(CALLS_OPEN))
        if calls is not None:
            return at, calls
    for at in starts:
        calls = scan.single(at + len(CALLS_OPEN))
        if calls is not None:
            return at, calls
    return None


class _CallScan:
    """The tag positions of one tool-call block ``text[:stop]``, for readings that cost O(log n) per tag."""

    def __init__(self, text: str, stop: int) -> None:
        self.text, self.stop = text, stop
        self.budget = len(text) // 4 + 64
        self.name_lines = [p for p in _find_all(text, _NAME_END + "\n") if p + 3 <= stop]
        self.name_ends = [p for p in _find_all(text, _NAME_END) if p + 2 <= stop]
        follows = len(_PARAM_END)
        self.value_ends = [  # a value ends at a </parameter>\n that a tag follows
            p
            for p in _find_all(text, _PARAM_END)
            if text.startswith(_PARAM, p + follows, stop) or text.startswith(_INVOKE_END, p + follows, stop)
        ]
        self.inner = stop - len(_INVOKE_END)
        cut = _NAME_END + "\n" + _PARAM
        self.first_params = [p for p in _find_all(text, cut) if p + len(cut) <= self.inner]

    @staticmethod
    def _next(positions: list[int], at: int) -> int | None:
        i = bisect_left(positions, at)
        return positions[i] if i < len(positions) else None

    def natural(self, at: int) -> list[RawCall] | None:
        """The usual reading: a name ends at the first ``">``, a value at a ``</parameter>`` that a tag follows."""
        text, stop = self.text, self.stop
        spans: list[tuple[tuple[int, int], list[tuple[int, int, int]]]] = []
        while at < stop:
            self.budget -= 1
            if self.budget < 0 or not text.startswith(_INVOKE, at, stop):
                return None
            close = self._next(self.name_lines, at + len(_INVOKE))
            if close is None:
                return None
            name, at = (at + len(_INVOKE), close), close + len(_NAME_END) + 1
            params: list[tuple[int, int, int]] = []  # key start, key end (= value start - 2), value end
            while not text.startswith(_INVOKE_END, at, stop):
                self.budget -= 1
                if self.budget < 0 or not text.startswith(_PARAM, at, stop):
                    return None
                close = self._next(self.name_ends, at + len(_PARAM))
                if close is None:
                    return None
                end = self._next(self.value_ends, close + len(_NAME_END))
                if end is None:
                    return None
                params.append((at + len(_PARAM), close, end))
                at = end + len(_PARAM_END)
            at += len(_INVOKE_END)
            spans.append((name, params))
        if not spans:
            return None
        self.budget -= (at - spans[0][0][0]) // 16  # slicing is paid for too
        if self.budget < 0:
            return None
        calls: list[RawCall] = []
        for (name_start, name_end), params in spans:
            keys = [text[a:b] for a, b, _ in params]
            if len(set(keys)) != len(keys):
                return None  # a duplicate parameter: the template cannot have written it
            values = [text[b + len(_NAME_END) : end] for _, b, end in params]
            calls.append((text[name_start:name_end], list(zip(keys, values, strict=True))))
        return calls

    def single(self, at: int) -> list[RawCall] | None:
        """A reading that always exists for rendered calls: one call that absorbs any markup inside its text."""
        text, stop, inner = self.text, self.stop, self.inner
        if not (text.startswith(_INVOKE, at, stop) and text.endswith(_INVOKE_END, at, stop)):
            return None
        start = at + len(_INVOKE)
        if start > inner:
            return None
        if text.endswith(_NAME_END + "\n", start, inner):
            return [(text[start : inner - len(_NAME_END) - 1], [])]
        if not text.endswith(_PARAM_END, start, inner):
            return None
        cut = self._next(self.first_params, start)
        if cut is None:
            return None
        key = cut + len(_NAME_END) + 1 + len(_PARAM)
        close = self._next(self.name_ends, key)
        if close is None or close + len(_NAME_END) > inner - len(_PARAM_END):
            return None
        return [(text[start:cut], [(text[key:close], text[close + len(_NAME_END) : inner - len(_PARAM_END)])])]


#: The M2 prompt format, for the turn split.
M2_SYNTAX = TurnSyntax(_HEADERS, TOOL_CALL_CLOSE, _find_calls)
