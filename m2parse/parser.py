"""The incremental MiniMax-M2 output parser: one state machine for streaming and for ``parse()``.

Linear time: every delta is appended to a small held tail, scanned once from where the last scan stopped, and
only a possible partial tag (or a run of newlines that the edge-trimming rules may drop) is held back.
Model output is untrusted: nothing here raises unless the caller opted in (``strict`` or an ``error`` policy).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from itertools import count
from json.encoder import encode_basestring as _encode_json_string  # type: ignore[attr-defined]
from typing import Any, Literal

from . import problems as P
from .events import (
    ContentDelta,
    Event,
    ProblemFound,
    ReasoningDelta,
    ToolCallArgumentsDelta,
    ToolCallEnd,
    ToolCallStart,
)
from .format import (
    INVOKE_CLOSE,
    INVOKE_TAG,
    PARAMETER_CLOSE,
    PARAMETER_TAG,
    THINK_CLOSE,
    THINK_OPEN,
    TOOL_CALL_CLOSE,
    TOOL_CALL_OPEN,
    TURN_MARKERS,
)
from .message import ParsedMessage, ToolCall
from .problems import M2ParseError, Problem
from .schema import (
    ToolSpec,
    convert_value,
    normalize_tools,
    parameter_schema,
    streams_as_string,
    validate_arguments,
)

ReasoningMode = Literal["separated", "inline"]
Policy = Literal["keep", "drop", "error"]

#: An open tag (<invoke …>, <parameter …>) longer than this without its ">" is not a tag.
MAX_TAG_LENGTH = 4096

# Parser states.
_START, _REASONING, _CONTENT, _BLOCK, _INVOKE, _VALUE, _DONE = range(7)

# Actions a fixed tag triggers in a text state.
_A_THINK_CLOSE, _A_BLOCK_OPEN, _A_LITERAL_TAG, _A_TURN, _A_PARAM_CLOSE, _A_VALUE_CUT, _A_STRAY_CLOSE = range(7)

_CANDIDATE = re.compile(r"[<\]\[]")
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')
#: Characters that can start a tag or marker, need JSON escaping, or take part in newline trimming. A delta
#: without any of them, arriving while nothing is held, goes straight out (feed()'s fast path).
_SPECIAL_CHARS = frozenset('<[]"\\') | frozenset(chr(c) for c in range(32))
_SPECIAL = re.compile(r'[<\[\]"\\\x00-\x1f]')
_TAG_START_CHARS = frozenset("<[]")
_TAG_START = re.compile(r"[<\[\]]")
_NOT_SPACE = re.compile(r"\S")
#: A value missing its </parameter> ends where the next parameter opens. The whitespace is bounded so that a
#: possible partial match at the end of the buffer is bounded too (the hold-back window stays constant).
_PARAM_OPEN_START = r"<parameter[ \t\r\n]{1,8}name[ \t\r\n]{0,8}="
_PARAM_OPEN_PARTIAL = re.compile(
    r"<(?:p(?:a(?:r(?:a(?:m(?:e(?:t(?:e(?:r(?:[ \t\r\n]{1,8}(?:n(?:a(?:m(?:e[ \t\r\n]{0,8})?)?)?)?)?)?)?)?)?)?)?)?)?)?"
)
_PARAM_OPEN_WINDOW = len("<parameter") + 8 + len("name") + 8 + 1
_TURN_TAGS = tuple((marker, _A_TURN) for marker in TURN_MARKERS)
_REASONING_TAGS = (
    (THINK_CLOSE, _A_THINK_CLOSE),
    (TOOL_CALL_OPEN, _A_BLOCK_OPEN),
    (THINK_OPEN, _A_LITERAL_TAG),
    *_TURN_TAGS,
)
_CONTENT_TAGS = (
    (TOOL_CALL_OPEN, _A_BLOCK_OPEN),
    (THINK_CLOSE, _A_LITERAL_TAG),
    (THINK_OPEN, _A_LITERAL_TAG),
    (TOOL_CALL_CLOSE, _A_STRAY_CLOSE),
    *_TURN_TAGS,
)
_VALUE_TAGS = (
    (PARAMETER_CLOSE, _A_PARAM_CLOSE),
    (INVOKE_CLOSE, _A_VALUE_CUT),
    (TOOL_CALL_CLOSE, _A_VALUE_CUT),
    *_TURN_TAGS,
)


class _TagSet:
    """The tags one text state reacts to: one regex finds the next full tag, a tail check finds a partial one."""

    __slots__ = ("actions", "find", "partial_extra", "prefixes", "tags", "window")

    def __init__(
        self, tags: tuple[tuple[str, int], ...], extra: str = "", extra_partial: re.Pattern[str] | None = None
    ):
        self.tags = tuple(tag for tag, _ in tags)
        self.prefixes = frozenset(tag[:k] for tag in self.tags for k in range(1, len(tag)))
        self.actions = dict(tags)
        alternatives = [re.escape(tag) for tag in sorted(self.tags, key=len, reverse=True)]
        if extra:
            alternatives.append(extra)
        self.find = re.compile("|".join(alternatives))
        self.partial_extra = extra_partial
        self.window = max([len(t) for t in self.tags] + ([_PARAM_OPEN_WINDOW] if extra else []))

    def held_from(self, buf: str, start: int) -> int:
        """Where a proper prefix of a tag begins at the very end of buf (only the last `window` chars), or -1."""
        k = max(start, len(buf) - self.window + 1)
        while True:
            m = _CANDIDATE.search(buf, k)
            if m is None:
                return -1
            k = m.start()
            rest = buf[k:]
            if rest in self.prefixes or (self.partial_extra is not None and self.partial_extra.fullmatch(rest)):
                return k
            k += 1


_REASONING_TAGSET = _TagSet(_REASONING_TAGS)
_CONTENT_TAGSET = _TagSet(_CONTENT_TAGS)
_VALUE_TAGSET = _TagSet(_VALUE_TAGS, _PARAM_OPEN_START, _PARAM_OPEN_PARTIAL)
_INVOKE_OPEN = "<" + INVOKE_TAG
_PARAMETER_OPEN = "<" + PARAMETER_TAG
_NEED_MORE = -1
_LITERAL = -2


def _tool_specs(tools: Iterable[Mapping[str, Any]] | Mapping[str, ToolSpec] | None) -> Mapping[str, ToolSpec]:
    """Tools as given, or already normalised: a server that sees the same tools per request normalises once and
    keeps the compiled validators."""
    if isinstance(tools, Mapping) and all(isinstance(spec, ToolSpec) for spec in tools.values()):
        return tools
    return normalize_tools(tools)  # type: ignore[arg-type]


def default_id_factory() -> str:
    """OpenAI-shaped call ids (``call_`` + 24 hex digits)."""
    return "call_" + uuid.uuid4().hex[:24]


def sequential_ids(prefix: str = "call_") -> Callable[[], str]:
    """A deterministic id factory (call_0, call_1, …) for tests and reproducible output."""
    counter = count()
    return lambda: f"{prefix}{next(counter)}"


def _json_str_body(text: str) -> str:
    """JSON string escaping without the quotes; per-character, so it can be applied to any split of a value."""
    if _NEEDS_ESCAPE.search(text) is None:
        return text
    return _encode_json_string(text)[1:-1]


def _parse_attributes(text: str) -> dict[str, str]:
    """Attributes of an open tag: name="x", name='x' or name=x; an unterminated quote runs to the tag's end."""
    attrs: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace() or text[i] == "/":
            i += 1
            continue
        j = i
        while j < n and not text[j].isspace() and text[j] != "=":
            j += 1
        name = text[i:j].lower()
        k = j
        while k < n and text[k].isspace():
            k += 1
        value = ""
        if k < n and text[k] == "=":
            k += 1
            while k < n and text[k].isspace():
                k += 1
            if k < n and text[k] in "\"'":
                end = text.find(text[k], k + 1)
                if end == -1:
                    end = n
                value = text[k + 1 : end]
                i = end + 1
            else:
                end = k
                while end < n and not text[end].isspace():
                    end += 1
                value = text[k:end]
                if end == n and value.endswith("/"):
                    value = value[:-1]
                i = end
        else:
            i = k
        attrs.setdefault(name, value)
    return attrs


class _TextSink:
    """Reasoning or content text, trimmed of '\\n' at its outer edges like the template's ``.strip('\\n')``.

    Leading newlines are dropped; a trailing run of newlines is held until more text proves it inner.
    """

    __slots__ = ("parts", "pending_newlines", "started")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pending_newlines = 0
        self.started = False

    def write(self, text: str) -> str:
        if not self.started:
            text = text.lstrip("\n")
            if not text:
                return ""
        body = text.rstrip("\n")
        if not body:
            self.pending_newlines += len(text)
            return ""
        trailing = len(text) - len(body)
        if self.pending_newlines:
            body = "\n" * self.pending_newlines + body
        self.pending_newlines = trailing
        self.started = True
        self.parts.append(body)
        return body

    def eat_one_newline(self) -> None:
        """The '\\n' the template writes before <minimax:tool_call> is markup, not content."""
        if self.pending_newlines:
            self.pending_newlines -= 1


class _Call:
    """A tool call being parsed. ``index`` is None for a dropped call (unknown tool under the drop policy)."""

    __slots__ = ("arguments", "fragments", "id", "index", "json_prefix", "name", "spec")

    def __init__(self, index: int | None, call_id: str, name: str, spec: ToolSpec | None) -> None:
        self.index = index
        self.id = call_id
        self.name = name
        self.spec = spec
        self.arguments: dict[str, Any] = {}
        self.fragments: list[str] = []
        self.json_prefix = "{"


class _Value:
    """A parameter value being read. ``streaming`` values are strings sent out as they arrive."""

    __slots__ = ("keep", "key", "offset", "parts", "pending_newline", "schema", "streaming")

    def __init__(self, key: str, keep: bool, streaming: bool, schema: Mapping[str, Any] | None, offset: int) -> None:
        self.key = key
        self.keep = keep
        self.streaming = streaming
        self.schema = schema
        self.offset = offset
        self.parts: list[str] = []
        self.pending_newline = False


class StreamParser:
    """Feed raw model output in deltas, get events back; ``finish()`` then read ``result``."""

    def __init__(
        self,
        tools: Iterable[Mapping[str, Any]] | Mapping[str, ToolSpec] | None = None,
        *,
        reasoning: ReasoningMode = "separated",
        starts_in_reasoning: bool = True,
        infer_types: bool = False,
        unknown_tool: Policy = "keep",
        unknown_parameter: Policy = "keep",
        validate: bool = True,
        strict: bool = False,
        id_factory: Callable[[], str] | None = None,
    ) -> None:
        if reasoning not in ("separated", "inline"):
            raise ValueError(f"reasoning must be 'separated' or 'inline', not {reasoning!r}")
        for label, policy in (("unknown_tool", unknown_tool), ("unknown_parameter", unknown_parameter)):
            if policy not in ("keep", "drop", "error"):
                raise ValueError(f"{label} must be 'keep', 'drop' or 'error', not {policy!r}")
        self._tools: Mapping[str, ToolSpec] = _tool_specs(tools)
        self._have_tools = bool(self._tools)
        self._inline = reasoning == "inline"
        self._starts_in_reasoning = starts_in_reasoning
        self._infer_types = infer_types
        self._unknown_tool = unknown_tool
        self._unknown_parameter = unknown_parameter
        self._validate = validate
        self._strict = strict
        self._new_id = id_factory or default_id_factory

        self._state = _START
        self._buf = ""
        self._base = 0  # absolute offset of self._buf[0]
        self._tag_scan_from = 0  # in self._buf: where the search for an open tag's '>' resumes
        self._events: list[Event] = []
        self._content = _TextSink()
        self._reasoning = _TextSink()
        self._saw_reasoning = False
        self._calls: list[ToolCall] = []
        self._problems: list[Problem] = []
        self._call: _Call | None = None
        self._value: _Value | None = None
        self._next_index = 0
        self._stray = False  # inside a run of stray text in a tool-call block (reported once per run)
        self._finished = False
        self._ended_by_marker = False

    # ------------------------------------------------------------------ public API

    @property
    def done(self) -> bool:
        return self._finished or self._state == _DONE

    def feed(self, delta: str) -> list[Event]:
        if not self._buf and delta and not self._finished:
            fast = self._feed_plain(delta)
            if fast is not None:
                return fast
        if self._state == _DONE or self._finished or not delta:
            return []
        self._buf = self._buf + delta if self._buf else delta
        self._run()
        return self._take_events()

    def _feed_plain(self, delta: str) -> list[Event] | None:
        """A delta with no tag or marker in it, arriving while nothing is held: no scanning needed."""
        if len(delta) == 1:
            if delta in _TAG_START_CHARS:
                return None
        elif _TAG_START.search(delta) is not None:
            return None
        state = self._state
        if state == _VALUE:
            value, call = self._value, self._call
            if value is None or call is None:
                return None
            self._base += len(delta)
            if (
                value.streaming
                and not value.pending_newline
                and not call.json_prefix
                and (delta not in _SPECIAL_CHARS if len(delta) == 1 else _SPECIAL.search(delta) is None)
            ):  # the common case: plain characters of a string value
                value.parts.append(delta)
                call.fragments.append(delta)
                return [ToolCallArgumentsDelta(call.index, delta)]  # type: ignore[arg-type]
            self._value_text(delta)
            return self._take_events()
        if state == _CONTENT:
            self._base += len(delta)
            self._emit_content(delta)
        elif state == _REASONING:
            self._base += len(delta)
            self._emit_reasoning(delta)
        else:
            return None
        return self._take_events()

    def finish(self) -> list[Event]:
        if self._finished:
            return []
        self._run()
        self._finish_state()
        self._finished = True
        return self._take_events()

    @property
    def result(self) -> ParsedMessage:
        reasoning: str | None = None
        if self._saw_reasoning and not self._inline:
            reasoning = "".join(self._reasoning.parts)
        return ParsedMessage(
            content="".join(self._content.parts),
            reasoning_content=reasoning,
            tool_calls=tuple(self._calls),
            problems=tuple(self._problems),
            ended_by_turn_marker=self._ended_by_marker,
        )

    # ------------------------------------------------------------------ emission helpers

    def _take_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def _report(self, code: str, message: str, offset: int, index: int | None = None) -> None:
        problem = Problem(code, message, offset, index)
        self._problems.append(problem)
        self._events.append(ProblemFound(problem))
        if self._strict:
            raise M2ParseError(problem)

    def _emit_content(self, text: str) -> None:
        out = self._content.write(text)
        if out:
            self._events.append(ContentDelta(out))

    def _emit_reasoning(self, text: str) -> None:
        if self._inline:
            self._emit_content(text)
            return
        out = self._reasoning.write(text)
        if out:
            self._events.append(ReasoningDelta(out))

    def _emit_args(self, fragment: str) -> None:
        call = self._call
        assert call is not None
        if call.index is None:
            return
        fragment = call.json_prefix + fragment
        call.json_prefix = ""
        if fragment:
            call.fragments.append(fragment)
            self._events.append(ToolCallArgumentsDelta(call.index, fragment))

    # ------------------------------------------------------------------ the machine

    def _run(self) -> None:
        buf = self._buf
        pos = 0
        while pos < len(buf):
            state = self._state
            if state in (_REASONING, _CONTENT):
                pos = self._scan_text(buf, pos)
            elif state == _VALUE:
                pos = self._scan_value(buf, pos)
            elif state in (_BLOCK, _INVOKE):
                pos = self._scan_markup(buf, pos)
            elif state == _START:
                pos = self._scan_start(buf, pos)
            else:  # _DONE: the rest is discarded (reported when the marker was found)
                pos = len(buf)
            if pos < 0:  # need more input
                pos = -pos - 1
                break
        if pos:
            self._tag_scan_from = max(0, self._tag_scan_from - pos)
            self._base += pos
            buf = buf[pos:]
        self._buf = buf

    @staticmethod
    def _hold(pos: int) -> int:
        """Encode 'stop here and wait for more input' for _run."""
        return -pos - 1

    def _scan_start(self, buf: str, pos: int) -> int:
        """Leading whitespace, then an optional <think> that opens (or re-states) the reasoning."""
        m = _NOT_SPACE.search(buf, pos)
        if m is None:
            return self._hold(pos)  # finish() decides what leading whitespace was
        j = m.start()
        if buf.startswith(THINK_OPEN, j):
            self._enter_reasoning(explicit=True)
            return j + len(THINK_OPEN)
        if len(buf) - j < len(THINK_OPEN) and THINK_OPEN.startswith(buf[j:]):
            return self._hold(pos)
        self._leave_start()
        return pos

    def _leave_start(self) -> None:
        if self._starts_in_reasoning:
            self._enter_reasoning(explicit=False)
        else:
            self._state = _CONTENT

    def _enter_reasoning(self, explicit: bool) -> None:
        self._state = _REASONING
        self._saw_reasoning = True
        if self._inline:
            self._emit_content(THINK_OPEN if explicit else THINK_OPEN + "\n")

    @staticmethod
    def _match_tags(buf: str, i: int, tags: tuple[tuple[str, int], ...]) -> tuple[int, str]:
        """Which fixed tag starts at buf[i] (action, tag), or _NEED_MORE (a partial tag ends buf) / _LITERAL."""
        for tag, action in tags:
            if buf.startswith(tag, i):
                return action, tag
        rest = len(buf) - i
        for tag, _ in tags:
            if rest < len(tag) and tag.startswith(buf[i:]):
                return _NEED_MORE, ""
        return _LITERAL, ""

    def _scan_text(self, buf: str, pos: int) -> int:
        """Reasoning or content text up to the next tag that changes state."""
        reasoning = self._state == _REASONING
        emit = self._emit_reasoning if reasoning else self._emit_content
        tagset = _REASONING_TAGSET if reasoning else _CONTENT_TAGSET
        m = tagset.find.search(buf, pos)
        if m is None:
            hold = tagset.held_from(buf, pos)
            end = len(buf) if hold < 0 else hold
            if end > pos:
                emit(buf[pos:end])
            return end if hold < 0 else self._hold(hold)
        i, end, tag = m.start(), m.end(), m.group()
        if i > pos:
            emit(buf[pos:i])
        offset = self._base + i
        action = tagset.actions[tag]
        if action == _A_TURN:
            self._turn_marker(tag, offset)
        elif action == _A_BLOCK_OPEN:
            if reasoning:
                self._end_reasoning()
                self._report(
                    P.REASONING_ENDED_BY_TOOL_CALL,
                    "a tool call started before </think>; the reasoning ends there",
                    offset,
                )
            self._content.eat_one_newline()
            self._state = _BLOCK
        elif action == _A_THINK_CLOSE:
            if self._inline:
                self._emit_content(self._flush_pending_reasoning_newlines() + THINK_CLOSE)
            self._end_reasoning()
            self._state = _CONTENT
        else:  # <think> inside reasoning, <think>/</think> in content, a stray </minimax:tool_call>: literal text
            code = P.UNBALANCED_TAG if action == _A_STRAY_CLOSE else P.UNEXPECTED_TAG
            self._report(code, f"{tag} here has no meaning; kept as text", offset)
            emit(tag)
        return end

    def _flush_pending_reasoning_newlines(self) -> str:
        """In inline mode reasoning is content, verbatim: its held newlines belong before </think>."""
        sink = self._content
        held = "\n" * sink.pending_newlines
        sink.pending_newlines = 0
        return held

    def _end_reasoning(self) -> None:
        self._reasoning.pending_newlines = 0

    def _turn_marker(self, marker: str, offset: int) -> None:
        if self._value is not None:
            self._close_value(truncated=True, offset=offset)
        if self._call is not None:
            self._close_call(truncated=True, offset=offset)
        self._report(
            P.TURN_MARKER,
            f"turn marker {marker!r} ends the assistant turn; everything from it on is discarded",
            offset,
        )
        self._ended_by_marker = True
        self._state = _DONE

    # ------------------------------------------------------------------ tool-call markup

    def _scan_markup(self, buf: str, pos: int) -> int:
        """Between invokes (_BLOCK) or between parameters (_INVOKE): tags, whitespace, or stray text."""
        n = len(buf)
        if self._stray:  # inside a stray run whitespace is text too, wherever the deltas split it
            i = pos
        else:
            m = _NOT_SPACE.search(buf, pos)
            if m is None:
                return n
            i = m.start()
        ch = buf[i]
        if ch == "<":
            in_invoke = self._state == _INVOKE
            if buf.startswith(TOOL_CALL_CLOSE, i):
                self._stray = False
                if in_invoke:
                    self._report(P.UNBALANCED_TAG, "</minimax:tool_call> before </invoke>", self._base + i)
                    self._close_call(truncated=False, offset=self._base + i)
                self._state = _CONTENT
                return i + len(TOOL_CALL_CLOSE)
            if in_invoke and buf.startswith(INVOKE_CLOSE, i):
                self._stray = False
                self._close_call(truncated=False, offset=self._base + i)
                self._state = _BLOCK
                return i + len(INVOKE_CLOSE)
            opener = _PARAMETER_OPEN if in_invoke else _INVOKE_OPEN
            result = self._open_tag(buf, i, opener)
            if result is not None:
                return result
            if in_invoke and self._is_tag_start(buf, i, _INVOKE_OPEN):
                self._report(P.UNBALANCED_TAG, "<invoke> before </invoke>", self._base + i)
                self._close_call(truncated=False, offset=self._base + i)
                self._state = _BLOCK
                return i
            if self._could_be_markup(buf, i, in_invoke):
                return self._hold(i)
        elif ch in "[]":
            action, tag = self._match_tags(buf, i, _TURN_TAGS)
            if action == _A_TURN:
                self._turn_marker(tag, self._base + i)
                return i + len(tag)
            if action == _NEED_MORE:
                return self._hold(i)
        # Stray text: up to the next '<' (or marker candidate), returned as content.
        m2 = _CANDIDATE.search(buf, i + 1)
        end = m2.start() if m2 else n
        self._scan_markup_stray(buf[i:end], self._base + i)
        return end

    def _scan_markup_stray(self, text: str, offset: int) -> None:
        if not self._stray:
            self._stray = True
            where = "<invoke>" if self._state == _INVOKE else "<minimax:tool_call>"
            self._report(P.STRAY_TEXT, f"text inside {where} that is not markup; returned as content", offset)
        self._emit_content(text)

    @staticmethod
    def _is_tag_start(buf: str, i: int, opener: str) -> bool:
        j = i + len(opener)
        return buf.startswith(opener, i) and j < len(buf) and (buf[j].isspace() or buf[j] in ">/")

    def _could_be_markup(self, buf: str, i: int, in_invoke: bool) -> bool:
        """A partial tag at the end of the buffer that the next delta may complete."""
        rest = buf[i:]
        candidates = [TOOL_CALL_CLOSE, _INVOKE_OPEN]
        if in_invoke:
            candidates += [INVOKE_CLOSE, _PARAMETER_OPEN]
        return any(len(rest) <= len(c) and c.startswith(rest) for c in candidates)

    def _open_tag(self, buf: str, i: int, opener: str) -> int | None:
        """<invoke …> or <parameter …> at buf[i]; None if it is not one (caller treats the text otherwise)."""
        j = i + len(opener)
        if not buf.startswith(opener, i):
            return None
        if j >= len(buf):
            return self._hold(i)
        if not (buf[j].isspace() or buf[j] in ">/"):
            return None
        gt = buf.find(">", max(j, self._tag_scan_from))
        if gt == -1:
            if len(buf) - i > MAX_TAG_LENGTH:
                self._tag_scan_from = 0
                self._report(
                    P.MALFORMED_TAG, f"{opener} tag not closed with '>' within {MAX_TAG_LENGTH}", self._base + i
                )
                self._emit_content(opener)
                return j
            self._tag_scan_from = len(buf)
            return self._hold(i)
        self._tag_scan_from = 0
        offset = self._base + i
        attrs = _parse_attributes(buf[j:gt])
        name = attrs.get("name", "")
        if not name:
            self._report(P.MALFORMED_TAG, f"{opener}> without a name; kept as text", offset)
            self._emit_content(buf[i : gt + 1])
            return gt + 1
        self._stray = False
        if opener == _INVOKE_OPEN:
            self._start_call(name, offset)
        else:
            self._start_value(name, offset)
        return gt + 1

    def _start_call(self, name: str, offset: int) -> None:
        spec = self._tools.get(name)
        index: int | None = None
        if spec is None and self._have_tools:
            if self._unknown_tool == "error":
                raise M2ParseError(Problem(P.UNKNOWN_TOOL, f"unknown tool {name!r}", offset))
            dropped = self._unknown_tool == "drop"
            self._report(
                P.UNKNOWN_TOOL,
                f"unknown tool {name!r}" + ("; call dropped" if dropped else ""),
                offset,
                None if dropped else self._next_index,
            )
            if not dropped:
                index = self._next_index
        else:
            index = self._next_index
        call = _Call(index, self._new_id() if index is not None else "", name, spec)
        if index is not None:
            self._next_index += 1
            self._events.append(ToolCallStart(index, call.id, name))
        self._call = call
        self._state = _INVOKE

    def _start_value(self, key: str, offset: int) -> None:
        call = self._call
        assert call is not None
        keep = call.index is not None
        schema: Mapping[str, Any] | None = None
        if key in call.arguments:
            self._report(
                P.DUPLICATE_PARAMETER, f"parameter {key!r} given twice; the later value is dropped", offset, call.index
            )
            keep = False
        elif call.spec is not None:
            known, schema = parameter_schema(call.spec, key)
            if not known:
                if self._unknown_parameter == "error":
                    raise M2ParseError(
                        Problem(P.UNKNOWN_PARAMETER, f"unknown parameter {key!r} of {call.name!r}", offset, call.index)
                    )
                drop = self._unknown_parameter == "drop"
                self._report(
                    P.UNKNOWN_PARAMETER,
                    f"unknown parameter {key!r} of {call.name!r}" + ("; dropped" if drop else ""),
                    offset,
                    call.index,
                )
                keep = keep and not drop
        root = call.spec.parameters if call.spec is not None else {}
        streaming = keep and streams_as_string(schema, root, infer_types=self._infer_types)
        value = _Value(key, keep, streaming, schema, offset)
        if keep:
            call.arguments[key] = None  # placeholder keeps the text order of keys
            prefix = "" if len(call.arguments) == 1 else ", "
            self._emit_args(prefix + json.dumps(key, ensure_ascii=False) + ": " + ('"' if streaming else ""))
        self._value = value
        self._state = _VALUE

    # ------------------------------------------------------------------ parameter values

    def _value_text(self, text: str) -> None:
        value = self._value
        assert value is not None
        if not value.streaming:
            value.parts.append(text)
            return
        if value.pending_newline:
            text = "\n" + text
            value.pending_newline = False
        if text.endswith("\n"):
            text = text[:-1]
            value.pending_newline = True
        if text:
            value.parts.append(text)
            self._emit_args(_json_str_body(text))

    def _scan_value(self, buf: str, pos: int) -> int:
        m = _VALUE_TAGSET.find.search(buf, pos)
        if m is None:
            hold = _VALUE_TAGSET.held_from(buf, pos)
            end = len(buf) if hold < 0 else hold
            if end > pos:
                self._value_text(buf[pos:end])
            return end if hold < 0 else self._hold(hold)
        i, end, tag = m.start(), m.end(), m.group()
        if i > pos:
            self._value_text(buf[pos:i])
        offset = self._base + i
        action = _VALUE_TAGSET.actions.get(tag, _A_VALUE_CUT)
        if action == _A_TURN:
            self._turn_marker(tag, offset)
            return end
        if action == _A_PARAM_CLOSE:
            self._close_value(truncated=False, offset=offset)
            self._state = _INVOKE
            return end
        # The value ran into the next tag: </parameter> is missing. The tag is read again in _INVOKE.
        self._report(P.UNBALANCED_TAG, "parameter value not closed with </parameter>", offset, self._call_index())
        value = self._value
        assert value is not None
        value.pending_newline = False
        if not value.streaming and value.parts and value.parts[-1].endswith("\n"):
            value.parts[-1] = value.parts[-1][:-1]
        self._close_value(truncated=False, offset=offset)
        self._state = _INVOKE
        return i

    def _call_index(self) -> int | None:
        return self._call.index if self._call is not None else None

    def _close_value(self, truncated: bool, offset: int) -> None:
        value, call = self._value, self._call
        assert value is not None and call is not None
        self._value = None
        if value.pending_newline:  # a real '\n' before </parameter> (or before the cut-off): part of the value
            value.parts.append("\n")
            if value.keep:
                self._emit_args("\\n")
        raw = "".join(value.parts)
        if truncated:
            self._report(P.TRUNCATED_VALUE, f"output ended inside the value of {value.key!r}", offset, call.index)
        if not value.keep:
            return
        if value.streaming:
            call.arguments[value.key] = raw
            self._emit_args('"')
            return
        root = call.spec.parameters if call.spec is not None else {}
        conversion = convert_value(raw.strip(), value.schema, root, infer_types=self._infer_types)
        result = conversion.value
        if conversion.error is not None:
            self._report(P.COERCION_FAILED, f"{value.key!r}: {conversion.error}", value.offset, call.index)
        try:
            encoded = json.dumps(result, ensure_ascii=False)
        except (TypeError, ValueError):  # defensive: a converter must return JSON data
            result = raw.strip()
            encoded = json.dumps(result, ensure_ascii=False)
        call.arguments[value.key] = result
        self._emit_args(encoded)

    def _close_call(self, truncated: bool, offset: int) -> None:
        call = self._call
        assert call is not None
        self._state = _BLOCK
        if truncated:
            self._report(P.TRUNCATED_TOOL_CALL, f"output ended inside the call to {call.name!r}", offset, call.index)
        if call.index is None:
            self._call = None
            return
        self._emit_args("}")
        self._call = None
        arguments_json = "".join(call.fragments)
        if self._validate and call.spec is not None and not truncated:
            for message in validate_arguments(call.spec, call.arguments):
                self._report(P.SCHEMA_VIOLATION, f"{call.name}: {message}", offset, call.index)
        self._calls.append(ToolCall(call.index, call.id, call.name, call.arguments, arguments_json, truncated))
        self._events.append(ToolCallEnd(call.index, call.arguments, arguments_json, truncated))

    # ------------------------------------------------------------------ end of output

    def _finish_state(self) -> None:
        """After the final scan: whatever is still held, and whatever is still open."""
        held, offset = self._buf, self._base
        self._buf = ""
        self._base += len(held)
        state = self._state
        end = self._base
        if state == _DONE:
            return
        if state == _START:  # leading whitespace, perhaps with a partial <think>
            self._leave_start()
            state = self._state
            if not held.strip():
                (self._emit_reasoning if state == _REASONING else self._emit_content)(held)
                held = ""
        if state in (_REASONING, _CONTENT):
            if len(held) > 1:  # a lone '<', '[' or ']' ending prose or code is not worth a report
                self._report(P.TRUNCATED_TAG, f"output ended inside what may be a tag: {held!r}", offset)
            if held:
                (self._emit_reasoning if state == _REASONING else self._emit_content)(held)
            if state == _REASONING:
                self._report(P.MISSING_THINK_END, "output ended inside the reasoning (no </think>)", end)
            return
        if held and state == _VALUE:  # the value so far includes what might have become a tag
            if held[0] == "<" and len(held) > 1:
                self._report(P.TRUNCATED_TAG, f"output ended inside what may be a tag: {held!r}", offset)
            self._value_text(held)
            held = ""
        if held and held[0] in "[]":  # not a tag, at most half a turn marker: stray text
            self._scan_markup_stray(held, offset)
            held = ""
        if held:
            self._report(P.TRUNCATED_TAG, f"output ended inside a tag: {held!r}", offset, self._call_index())
        if self._value is not None:
            self._close_value(truncated=True, offset=end)
        if self._call is not None:
            self._close_call(truncated=True, offset=end)
        elif held and _INVOKE_OPEN.startswith(held[: len(_INVOKE_OPEN)]):  # cut inside <invoke …>: a call was meant
            self._report(P.TRUNCATED_TOOL_CALL, "output ended inside an <invoke> tag", offset)
        else:
            self._report(P.UNBALANCED_TAG, "<minimax:tool_call> block never closed", end)


def parse(
    text: str,
    tools: Iterable[Mapping[str, Any]] | Mapping[str, ToolSpec] | None = None,
    **options: Any,
) -> ParsedMessage:
    """Parse a whole output: the same machine as streaming, fed once and finished."""
    parser = StreamParser(tools, **options)
    parser.feed(text)
    parser.finish()
    return parser.result
