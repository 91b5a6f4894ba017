"""The incremental MiniMax output parser: one state machine for streaming and for ``parse()``, for every format.

The machine names no tag: it reads a format description (m2parse.formats: M2, M3), whose tag sets, needles and
regexes formats/tables.py compiles once per description. M2 writes values as raw text inside ``<parameter>``;
M3 as namespaced nested elements, typed and streamed by formats/xml_values.py, which this machine feeds.

Linear time on every input: each delta is appended to a small held tail and scanned once from where the last
scan stopped. Long stretches are searched with C-level ``str.find`` per needle, and every needle's next hit is
remembered by absolute offset, so no character is searched twice for the same needle. Only a bounded window is
ever held back: a possible partial tag, a candidate ``</parameter>`` and what follows it (at most 64 whitespace
characters and one tag), or an open tag still waiting for its ``>`` (at most ``MAX_TAG_LENGTH``; the deltas that
arrive meanwhile are queued, not copied onto the held text one by one).
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
from .formats import M2, OutputFormat, get_format
from .formats import tables as T
from .formats.xml_values import MAX_DEPTH as _XML_DEPTH
from .formats.xml_values import XmlValueBuilder
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

#: An open tag (<invoke …>, <parameter …>, an M3 element) whose ">" does not come within this many characters of
#: its "<" is not a tag (whole or streamed alike): the opener comes back as content and what follows is stray text.
MAX_TAG_LENGTH = 4096

# Parser states.
_START, _REASONING, _CONTENT, _BLOCK, _INVOKE, _VALUE, _DONE = range(7)

# Actions a fixed tag triggers (formats/tables.py compiles the tag sets from the format description).
_A_THINK_CLOSE, _A_BLOCK_OPEN, _A_LITERAL_TAG, _A_TURN, _A_PARAM_CLOSE, _A_VALUE_CUT, _A_STRAY_CLOSE, _A_TEXT = (
    T.A_THINK_CLOSE,
    T.A_BLOCK_OPEN,
    T.A_LITERAL_TAG,
    T.A_TURN,
    T.A_PARAM_CLOSE,
    T.A_VALUE_CUT,
    T.A_STRAY_CLOSE,
    T.A_TEXT,
)
# Decisions on a </parameter> candidate.
_CLOSE, _LITERAL_CLOSE, _UNDECIDED = range(3)

_CANDIDATE = T.CANDIDATE
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')
#: Characters that are in every tag or marker ('<', '~'), need JSON escaping, or take part in newline trimming.
#: A string-value delta without any of them (and not ending in a marker's head), arriving while nothing is
#: held, goes straight out (feed()'s fast path).
_SPECIAL = re.compile(r'[<~"\\\x00-\x1f]')
_TAG_START_CHARS = frozenset("<[]")
#: One-character deltas that the string-value hot path leaves to the general path (_SPECIAL, and marker heads).
_ONE_CHAR_SPECIAL = frozenset('<~"\\[]') | frozenset(map(chr, range(32)))
_MAYBE_TAG = re.compile(r"[<~]")
_NOT_SPACE = re.compile(r"\S")
_NOT_NEWLINE = re.compile(r"[^\n]")
MAX_CLOSE_WHITESPACE = T.MAX_CLOSE_WHITESPACE
_CLOSE_SPACE = re.compile(rf"\s{{0,{MAX_CLOSE_WHITESPACE + 1}}}")

# ------------------------------------------------------------------ needles: the C-level search of long text
# Each needle is a piece of one or more tags; a hit is checked for the whole tag around it. Plain text with no
# tag costs one str.find per needle, and each needle's next hit is remembered (by absolute offset), so a state
# that searches again, or the next state, never searches the same stretch for the same needle twice.
# The turn markers share their '~': one regex that starts with that literal runs at str.find speed and checks
# the characters after each '~' in C (a 2-character needle such as "]~" would be searched 2-3 times slower).
# The needles themselves are per format (EngineTables.needles): think tags, block tags, turn markers, value ends
# (M2: one regex starting with '<'; M3: the namespace token), '>'.
_N_THINK, _N_BLOCK, _N_MARK, _N_VALUE, _N_GT = T.N_THINK, T.N_BLOCK, T.N_MARK, T.N_VALUE, T.N_GT
_MARK_CHAR = T.MARK_CHAR
_TEXT_NEEDLES = (_N_THINK, _N_BLOCK, _N_MARK)
_VALUE_NEEDLES = (_N_VALUE, _N_MARK)
#: Below this many characters one regex search is cheaper than several str.find calls (same answer either way).
_SMALL = 512
#: Accumulated text is coalesced every this many pieces, so a long stream of small deltas is not kept as
#: millions of small strings (about 50 bytes of overhead each).
_COALESCE = 512
#: Trailing newlines are counted one by one up to this many; a longer run is stripped from a copy.
_NEWLINE_RUN = 64
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


def _not_text(where: str, value: object) -> TypeError:
    """The error for non-str input, naming the fix (bytes are the common case: a raw HTTP or file read)."""
    kind = type(value).__name__
    if isinstance(value, (bytes, bytearray, memoryview)):
        return TypeError(f"{where} takes str, not {kind}: decode the model output first, e.g. data.decode('utf-8')")
    return TypeError(f"{where} takes str, not {kind}")


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


class _Pieces:
    """Text kept as it arrives: small pieces are joined every ``_COALESCE`` of them, so a stream of tiny deltas
    costs about one byte per character, not a string object per delta."""

    __slots__ = ("big", "small")

    def __init__(self) -> None:
        self.big: list[str] = []
        self.small: list[str] = []

    def add(self, text: str) -> None:
        small = self.small
        small.append(text)
        if len(small) >= _COALESCE:
            self.coalesce()

    def coalesce(self) -> None:
        self.big.append("".join(self.small))
        self.small.clear()

    def text(self) -> str:
        if not self.big:
            return "".join(self.small)
        return "".join(self.big + self.small)


class _TextSink:
    """Reasoning or content text, trimmed of '\\n' at its outer edges like the template's ``.strip('\\n')``.

    Leading newlines are dropped; a trailing run of newlines is held until more text proves it inner.
    ``adjacent`` says whether those held newlines directly precede the current input position (no markup was
    consumed since), which is when the one before ``<minimax:tool_call>`` is markup.
    """

    __slots__ = ("adjacent", "parts", "pending_newlines", "started")

    def __init__(self) -> None:
        self.parts = _Pieces()
        self.pending_newlines = 0
        self.started = False
        self.adjacent = False

    def write(self, text: str, start: int = 0, end: int = -1) -> str:
        """Take ``text[start:end]`` (all of it by default); return what may be emitted now. Slices once, so a
        long stretch of the output costs one copy."""
        if end < 0:
            if self.started and not self.pending_newlines and text and text[-1] != "\n":  # the common case
                self.adjacent = True
                small = self.parts.small
                small.append(text)
                if len(small) >= _COALESCE:
                    self.parts.coalesce()
                return text
            end = len(text)
        self.adjacent = True
        if not self.started:
            m = _NOT_NEWLINE.search(text, start, end)
            if m is None:
                return ""
            start = m.start()
        if start >= end:
            return ""
        stop = end  # the trailing run of newlines is found without copying the text (unless it is long)
        while stop > start and text[stop - 1] == "\n" and end - stop < _NEWLINE_RUN:
            stop -= 1
        if end - stop < _NEWLINE_RUN:
            body = text if start == 0 and stop == len(text) else text[start:stop]
        else:
            body = text[start:end].rstrip("\n")
        if not body:
            self.pending_newlines += end - start
            return ""
        trailing = end - start - len(body)
        if self.pending_newlines:
            body = "\n" * self.pending_newlines + body
        self.pending_newlines = trailing
        self.started = True
        small = self.parts.small
        small.append(body)
        if len(small) >= _COALESCE:
            self.parts.coalesce()
        return body

    def eat_one_newline(self) -> None:
        """The '\\n' the template writes directly before <minimax:tool_call> is markup, not content."""
        if self.pending_newlines and self.adjacent:
            self.pending_newlines -= 1


class _Call:
    """A tool call being parsed. ``index`` is None for a dropped call (unknown tool under the drop policy)."""

    __slots__ = ("arguments", "encoded", "id", "index", "json_prefix", "name", "spec")

    def __init__(self, index: int | None, call_id: str, name: str, spec: ToolSpec | None) -> None:
        self.index = index
        self.id = call_id
        self.name = name
        self.spec = spec
        self.arguments: dict[str, Any] = {}
        self.encoded: dict[str, str] = {}  # JSON of values already encoded for their fragments (not encoded twice)
        self.json_prefix = "{"


class _Value:
    """A parameter value being read. ``streaming`` values are strings sent out as they arrive."""

    __slots__ = (
        "builder",
        "escaped",
        "index",
        "keep",
        "key",
        "offset",
        "parts",
        "pending_newline",
        "schema",
        "streaming",
    )

    def __init__(
        self,
        key: str,
        index: int | None,
        keep: bool,
        streaming: bool,
        schema: Mapping[str, Any] | None,
        offset: int,
    ) -> None:
        self.key = key
        self.index = index
        self.keep = keep
        self.streaming = streaming
        self.schema = schema
        self.offset = offset
        self.parts = _Pieces()
        self.pending_newline = False
        #: The JSON string of the first piece, when _value_text took it: the whole value's if it came in one piece.
        self.escaped: str | None = None
        #: The builder of an XML value (M3, an _XmlValue); None for M2's raw-text values.
        self.builder: XmlValueBuilder | None = None


class _XmlValue(_Value):
    """An M3 argument: its builder, the names of the elements the builder holds open (with a count per name, so
    that "is an element of this name open" costs O(1)), and how many of the builder's problems were reported."""

    __slots__ = ("counts", "names", "reported")

    def __init__(self, key: str, index: int | None, keep: bool, schema: Mapping[str, Any] | None, offset: int) -> None:
        super().__init__(key, index, keep, False, schema, offset)
        self.names: list[str] = []
        self.counts: dict[str, int] = {}
        self.reported = 0


class StreamParser:
    """Feed raw model output in deltas, get events back; ``finish()`` then read ``result``.

    ``format`` ("m2", "m3" or an OutputFormat) chooses the description; ``thinking_mode`` (M3's template kwarg,
    ignored by M2) says where the output starts, and an explicit ``starts_in_reasoning`` overrides it.
    """

    def __init__(
        self,
        tools: Iterable[Mapping[str, Any]] | Mapping[str, ToolSpec] | None = None,
        *,
        format: str | OutputFormat = "m2",
        thinking_mode: str | None = None,
        reasoning: ReasoningMode = "separated",
        starts_in_reasoning: bool | None = None,
        infer_types: bool = False,
        unknown_tool: Policy = "keep",
        unknown_parameter: Policy = "keep",
        validate: bool = True,
        strict: bool = False,
        tool_calls: bool = True,
        id_factory: Callable[[], str] | None = None,
    ) -> None:
        if reasoning not in ("separated", "inline"):
            raise ValueError(f"reasoning must be 'separated' or 'inline', not {reasoning!r}")
        for label, policy in (("unknown_tool", unknown_tool), ("unknown_parameter", unknown_parameter)):
            if policy not in ("keep", "drop", "error"):
                raise ValueError(f"{label} must be 'keep', 'drop' or 'error', not {policy!r}")
        if format == "m2" or format is M2:  # the default, without the lookups (a parser is made per request)
            start, t = "reasoning", T.M2_TABLES
        else:
            fmt = get_format(format)
            start, t = fmt.reasoning_start(thinking_mode), T.tables_for(fmt)
        self._t = t
        self._needles = t.needles
        self._value_tag_head = t.value_tag_head
        self._xml = t.xml_values
        self._tools: Mapping[str, ToolSpec] = _tool_specs(tools)
        self._have_tools = bool(self._tools)
        self._inline = reasoning == "inline"
        self._starts_in_reasoning = start == "reasoning" if starts_in_reasoning is None else bool(starts_in_reasoning)
        #: Adaptive start (M3 without thinking_mode, or "adaptive"): a leading bare think-close says "no reasoning".
        self._adaptive = start == "adaptive" and not self._starts_in_reasoning
        self._infer_types = infer_types
        self._unknown_tool = unknown_tool
        self._unknown_parameter = unknown_parameter
        self._validate = validate
        self._strict = strict
        self._parse_calls = bool(tool_calls)
        self._new_id = id_factory or default_id_factory

        self._state = _START
        self._buf = ""
        self._base = 0  # absolute offset of self._buf[0]
        self._queued: list[str] = []  # deltas waiting for an open tag's '>' (not yet appended to _buf)
        self._queue_need = 0  # characters to queue before the held open tag is looked at again
        self._at_end = False  # finish() is running: the end of the buffer is the end of the output
        self._hit = [-1] * len(self._needles)  # per needle: absolute offset of its next hit, or -1 (none before _end)
        self._end = [0] * len(self._needles)
        self._lead = _Pieces()  # leading whitespace in _START, until we know what it belongs to
        self._events: list[Event] = []
        self._content = _TextSink()
        self._reasoning = _TextSink()
        self._saw_reasoning = False
        self._calls: list[ToolCall] = []
        self._problems: list[Problem] = []
        self._call: _Call | None = None
        self._value: _Value | None = None
        self._fast: _Value | None = None  # the open string value, when a plain delta may go straight out
        self._next_index = 0
        self._stray = False  # inside a run of stray text in a tool-call block (reported once per run)
        self._not_allowed_reported = False
        self._finished = False
        self._ended_by_marker = False

    # ------------------------------------------------------------------ public API

    @property
    def done(self) -> bool:
        return self._finished or self._state == _DONE

    def feed(self, delta: str) -> list[Event]:
        value = self._fast
        if value is not None:  # the hot path: a string value's text, with no tag possible in it, nothing held
            if type(delta) is str and len(delta) == 1 and delta not in _ONE_CHAR_SPECIAL and not value.pending_newline:
                self._base += 1
                small = value.parts.small
                small.append(delta)
                if len(small) >= _COALESCE:
                    value.parts.coalesce()
                return [ToolCallArgumentsDelta(value.index, delta)]  # type: ignore[arg-type]
            try:
                special = _SPECIAL.search(delta)
            except TypeError:
                raise _not_text("StreamParser.feed()", delta) from None
            if delta and delta[-1] not in "[]" and not delta.endswith("[e"):
                if special is None and not value.pending_newline:  # plain characters: the delta is the fragment
                    self._base += len(delta)
                    small = value.parts.small
                    small.append(delta)
                    if len(small) >= _COALESCE:
                        value.parts.coalesce()
                    return [ToolCallArgumentsDelta(value.index, delta)]  # type: ignore[arg-type]
                if special is None or self._value_tag_head.search(delta, special.start()) is None:  # escapes, '\n', '<'
                    self._base += len(delta)
                    if value.pending_newline:
                        delta = "\n" + delta
                    value.pending_newline = delta[-1] == "\n"
                    if value.pending_newline:
                        delta = delta[:-1]
                    if not delta:
                        return []
                    value.parts.add(delta)
                    return [ToolCallArgumentsDelta(value.index, _json_str_body(delta))]  # type: ignore[arg-type]
        elif not self._buf and type(delta) is str and 0 < len(delta) <= _SMALL and not self._finished:
            plain = self._feed_plain(delta)  # reasoning or content text with no tag possible in it
            if plain is not None:
                return plain
        return self._feed(delta)

    def _feed(self, delta: str) -> list[Event]:
        if not isinstance(delta, str):
            raise _not_text("StreamParser.feed()", delta)
        if self._state == _DONE or self._finished or not delta:
            return []
        if self._queue_need:  # an open tag waits for its '>': queue, and look again only when it may decide
            self._queued.append(delta)
            self._queue_need -= len(delta)
            if self._queue_need > 0 and ">" not in delta:
                return []
            delta = "".join(self._queued)
            self._queued.clear()
            self._queue_need = 0
        elif not self._buf and len(delta) <= _SMALL:
            fast = self._feed_plain(delta)
            if fast is not None:
                return fast
        self._buf = self._buf + delta if self._buf else delta
        self._run()
        self._update_fast()
        return self._take_events()

    def _update_fast(self) -> None:
        value, call = self._value, self._call
        self._fast = (
            value
            if value is not None
            and value.streaming
            and call is not None
            and not call.json_prefix
            and not self._buf
            and self._state == _VALUE
            else None
        )

    def _feed_plain(self, delta: str) -> list[Event] | None:
        """A short delta with no tag or marker in it, arriving while nothing is held: no scanning needed.

        With nothing held, a tag or marker can only lie inside the delta (it has a '<' or a '~') or start at
        its end ('[', ']' or '[e', a marker's head)."""
        if len(delta) == 1:
            if delta in _TAG_START_CHARS:
                return None
        elif _MAYBE_TAG.search(delta) is not None or delta[-1] in "[]" or delta[-2:] == "[e":
            return None
        state = self._state
        if state == _VALUE:
            if self._value is None:
                return None
            self._base += len(delta)
            self._value_text(delta)
            self._update_fast()
        elif state == _CONTENT:
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
        self._fast = None
        if self._queued:
            self._buf += "".join(self._queued)
            self._queued.clear()
        self._queue_need = 0
        self._at_end = True
        if self._state != _DONE:
            self._run()
        self._finish_state()
        self._finished = True
        return self._take_events()

    @property
    def result(self) -> ParsedMessage:
        reasoning: str | None = None
        if self._saw_reasoning and not self._inline:
            reasoning = self._reasoning.parts.text()
        return ParsedMessage(
            content=self._content.parts.text(),
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

    def _emit_content(self, text: str, start: int = 0, end: int = -1) -> None:
        out = self._content.write(text, start, end)
        if out:
            self._events.append(ContentDelta(out))

    def _emit_reasoning(self, text: str, start: int = 0, end: int = -1) -> None:
        if self._inline:
            self._emit_content(text, start, end)
            return
        out = self._reasoning.write(text, start, end)
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
                pos = self._scan_xml_value(buf, pos) if self._xml else self._scan_value(buf, pos)
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
            self._base += pos
            buf = buf[pos:]
        self._buf = buf

    @staticmethod
    def _hold(pos: int) -> int:
        """Encode 'stop here and wait for more input' for _run."""
        return -pos - 1

    # ------------------------------------------------------------------ finding tags

    def _next_hit(self, buf: str, k: int, q: int) -> int:
        """Absolute offset of needle k's next occurrence at or after absolute offset q, or -1 (none in buf).

        Offsets only move forward, so a remembered hit at or after q is the answer, and a remembered miss
        means the stretch before the old end holds none."""
        hit = self._hit[k]
        if hit >= q:
            return hit
        needle = self._needles[k]
        start = q if hit >= 0 else max(q, self._end[k] - self._t.needle_span[k] + 1)
        base = self._base
        if isinstance(needle, str):
            i = buf.find(needle, start - base)
        elif k == _N_MARK:
            i = self._find_marker_hint(buf, start - base)
        else:
            m = needle.search(buf, start - base)
            i = -1 if m is None else m.start()
        if i < 0:
            self._hit[k] = -1
            self._end[k] = base + len(buf)
            return -1
        self._hit[k] = base + i
        return base + i

    def _find_marker_hint(self, buf: str, i: int) -> int:
        """The next '~' that begins a marker's tail: memchr-speed find while '~' is rare, the regex (which
        checks each '~' in C) once it proves common."""
        hint = self._t.mark_hint
        for _ in range(16):
            i = buf.find(_MARK_CHAR, i)
            if i < 0 or hint.match(buf, i):
                return i
            i += 1
        m = hint.search(buf, i)
        return -1 if m is None else m.start()

    def _tag_at_needle(self, buf: str, k: int, pos: int) -> tuple[int, str] | None:
        """The first tag at or after pos that contains needle k: (start, tag); None if there is none in buf
        (a tag cut by the end of buf is left to the partial-tag check)."""
        q = self._base + pos
        t = self._t
        while True:
            p = self._next_hit(buf, k, q)
            if p < 0:
                return None
            i = p - self._base
            n = len(buf)
            for tag, off in t.needle_tags[k]:
                s = i - off
                if s >= pos and buf.startswith(tag, s):
                    return s, tag
                if s >= pos and s + len(tag) > n and tag.startswith(buf[s:]):
                    return None
            if k == _N_VALUE and t.param_open_re is not None and i >= pos and buf.startswith(t.param_open, i):
                m = t.param_open_re.match(buf, i)
                if m is not None:
                    return i, m.group()
                if t.param_open_partial.fullmatch(buf, i):  # type: ignore[union-attr]
                    return None
            q = p + 1  # no tag here, now or later: skip this hit for good

    def _next_tag(self, buf: str, pos: int, tagset: T.TagSet, needles: tuple[int, ...]) -> tuple[int, str] | None:
        """The first tag at or after pos, among the tags the needles find; None when buf holds none."""
        if len(buf) - pos <= _SMALL:
            m = tagset.find.search(buf, pos)
            return None if m is None else (m.start(), m.group())
        best: tuple[int, str] | None = None
        for k in needles:
            found = self._tag_at_needle(buf, k, pos)
            if found is not None and (best is None or found[0] < best[0]):
                best = found
        return best

    # ------------------------------------------------------------------ reasoning and content

    def _scan_start(self, buf: str, pos: int) -> int:
        """Leading whitespace, then an optional <think> that opens (or re-states) the reasoning."""
        m = _NOT_SPACE.search(buf, pos)
        if m is None:  # whitespace only so far: keep it aside (not held in the buffer, so never re-scanned)
            self._lead.add(buf[pos:])
            return len(buf)
        j = m.start()
        if j > pos:
            self._lead.add(buf[pos:j])
        think_open = self._t.think_open
        if buf.startswith(think_open, j):
            self._lead = _Pieces()
            self._enter_reasoning(explicit=True)
            return j + len(think_open)
        if len(buf) - j < len(think_open) and think_open.startswith(buf[j:]):
            return self._hold(j)
        if self._adaptive:  # a bare think-close first: the model chose not to reason; the tag is markup
            think_close = self._t.think_close
            if buf.startswith(think_close, j):
                self._lead = _Pieces()
                self._state = _CONTENT
                return j + len(think_close)
            if len(buf) - j < len(think_close) and think_close.startswith(buf[j:]):
                return self._hold(j)
        self._leave_start()
        return j

    def _leave_start(self) -> None:
        if self._starts_in_reasoning:
            self._enter_reasoning(explicit=False)
        else:
            self._state = _CONTENT
        lead = self._lead.text()
        if lead:
            self._lead = _Pieces()
            (self._emit_reasoning if self._state == _REASONING else self._emit_content)(lead)

    def _enter_reasoning(self, explicit: bool) -> None:
        self._state = _REASONING
        self._saw_reasoning = True
        if self._inline:
            self._emit_content(self._t.think_open if explicit else self._t.think_open + self._t.think_newline)

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
        tagset = self._t.reasoning_tagset if reasoning else self._t.content_tagset
        found = self._next_tag(buf, pos, tagset, _TEXT_NEEDLES)
        if found is None:
            hold = tagset.held_from(buf, pos)
            end = len(buf) if hold < 0 else hold
            if end > pos:
                emit(buf, pos, end)
            return end if hold < 0 else self._hold(hold)
        i, tag = found
        end = i + len(tag)
        action = tagset.actions.get(tag, _A_TEXT)
        if action == _A_TEXT:
            emit(buf, pos, end)
            return end
        if i > pos:
            emit(buf, pos, i)
        offset = self._base + i
        if action == _A_TURN:
            self._turn_marker(tag, offset)
        elif action == _A_BLOCK_OPEN:
            if reasoning:
                self._end_reasoning()
                self._report(
                    P.REASONING_ENDED_BY_TOOL_CALL,
                    f"a tool call started before {self._t.think_close}; the reasoning ends there",
                    offset,
                )
            if self._parse_calls:
                if self._t.newline_before_block:
                    self._content.eat_one_newline()
                self._state = _BLOCK
            else:
                self._state = _CONTENT
                self._tool_call_not_allowed(offset)
                self._emit_content(tag)
        elif action == _A_THINK_CLOSE:
            if self._inline:
                self._emit_content(self._flush_pending_reasoning_newlines() + tag)
            self._end_reasoning()
            self._state = _CONTENT
        elif action == _A_STRAY_CLOSE and not self._parse_calls:  # part of tool-call markup kept as content
            emit(tag)
        else:  # <think> inside reasoning, <think>/</think> in content, a stray </minimax:tool_call>: literal text
            code = P.UNBALANCED_TAG if action == _A_STRAY_CLOSE else P.UNEXPECTED_TAG
            self._report(code, f"{tag} here has no meaning; kept as text", offset)
            emit(tag)
        return end

    def _tool_call_not_allowed(self, offset: int) -> None:
        if not self._not_allowed_reported:
            self._not_allowed_reported = True
            self._report(
                P.TOOL_CALL_NOT_ALLOWED,
                "the output holds tool-call markup but tool calls are off; it is kept in content as text",
                offset,
            )

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
        t = self._t
        ns = t.namespace
        in_invoke = self._state == _INVOKE
        if buf.startswith(t.tag_lead, i) if ns else ch == "<":
            if buf.startswith(t.tool_call_close, i):
                self._stray = False
                if in_invoke:
                    self._report(P.UNBALANCED_TAG, f"{t.tool_call_close} before {t.invoke_close}", self._base + i)
                    self._close_call(truncated=False, offset=self._base + i)
                self._state = _CONTENT
                self._content.adjacent = False
                return i + len(t.tool_call_close)
            if in_invoke and buf.startswith(t.invoke_close, i):
                self._stray = False
                self._close_call(truncated=False, offset=self._base + i)
                self._state = _BLOCK
                return i + len(t.invoke_close)
            if in_invoke and ns and buf.startswith(t.invoke_open, i):
                # M3: the argument element shares the invoke's '<'; only "<invoke" + whitespace is a new call.
                j = i + len(t.invoke_open)
                if j >= n:
                    return self._hold(i)
                if buf[j].isspace():
                    return self._invoke_before_close(i)
            opener = t.param_open if in_invoke else t.invoke_open
            result = self._open_tag(buf, i, opener)
            if result is not None:
                return result
            if in_invoke and not ns and self._is_tag_start(buf, i, t.invoke_open):
                return self._invoke_before_close(i)
            if self._could_be_markup(buf, i, in_invoke):
                return self._hold(i)
        elif ch in "[]":
            action, tag = self._match_tags(buf, i, t.turn_tags)
            if action == _A_TURN:
                self._turn_marker(tag, self._base + i)
                return i + len(tag)
            if action == _NEED_MORE or (ns and self._could_be_markup(buf, i, in_invoke)):
                return self._hold(i)
        # Stray text, returned as content: up to the next thing that may be markup (one C-level search, so a
        # run of '<' that opens nothing costs no Python per '<'), or to a possible partial tag at the end.
        m2 = t.markup_start.search(buf, i + 1)
        end = m2.start() if m2 else self._stray_end(buf, i + 1, in_invoke)
        self._scan_markup_stray(buf[i:end], self._base + i)
        return end

    def _invoke_before_close(self, i: int) -> int:
        """A new invoke while one is open: the open call ends there (unbalanced), the tag is read again."""
        t = self._t
        self._report(P.UNBALANCED_TAG, f"{t.invoke_open}> before {t.invoke_close}", self._base + i)
        self._close_call(truncated=False, offset=self._base + i)
        self._state = _BLOCK
        return i

    def _stray_end(self, buf: str, start: int, in_invoke: bool) -> int:
        """Where stray text that runs to the end of buf stops: before a possible partial tag or marker."""
        t = self._t
        lead = t.tag_lead[0]
        markups = t.invoke_markup if in_invoke else t.block_markup
        k = max(start, len(buf) - t.longest_markup)
        while True:
            m = _CANDIDATE.search(buf, k)
            if m is None:
                return len(buf)
            k = m.start()
            rest = buf[k:]
            if rest[0] == lead:
                if any(c.startswith(rest) for c in markups):
                    return k
                if rest in (t.invoke_open, t.param_open):  # complete opener: the next char decides
                    return k
            if rest[0] != "<" and any(marker.startswith(rest) for marker in t.turn_markers):
                return k
            k += 1

    def _scan_markup_stray(self, text: str, offset: int) -> None:
        if not self._stray:
            self._stray = True
            where = self._t.invoke_open + ">" if self._state == _INVOKE else self._t.tool_call_open
            self._report(P.STRAY_TEXT, f"text inside {where} that is not markup; returned as content", offset)
        self._emit_content(text)

    @staticmethod
    def _is_tag_start(buf: str, i: int, opener: str) -> bool:
        j = i + len(opener)
        return buf.startswith(opener, i) and j < len(buf) and (buf[j].isspace() or buf[j] in ">/")

    def _could_be_markup(self, buf: str, i: int, in_invoke: bool) -> bool:
        """A partial tag at the end of the buffer that the next delta may complete (looks at 24 chars at most)."""
        t = self._t
        if len(buf) - i >= t.longest_markup:
            return False
        rest = buf[i:]
        return any(c.startswith(rest) for c in (t.invoke_markup if in_invoke else t.block_markup))

    def _open_tag(self, buf: str, i: int, opener: str) -> int | None:
        """<invoke …>, <parameter …> or (M3) an argument element at buf[i]; None if it is not one (the caller
        treats the text otherwise)."""
        j = i + len(opener)
        if not buf.startswith(opener, i):
            return None
        if j >= len(buf):
            return self._hold(i)
        t = self._t
        element = t.xml_values and opener is t.param_open  # M3: the element's name is the argument's key
        if element:
            if buf[j] == "/":
                return None
        elif not (buf[j].isspace() or buf[j] in ">/"):
            return None
        base = self._base
        limit = base + i + MAX_TAG_LENGTH  # the '>' must come before this absolute offset
        if element:  # the '>' before the next namespace token (searched without the needles' memory)
            g = self._element_end(buf, i, j)
            if g == _NEED_MORE:
                return self._hold(i)
            g = limit if g == _LITERAL else base + g
        else:
            g = self._next_hit(buf, _N_GT, base + j)
        if g < 0 or g >= limit:
            if g < 0 and base + len(buf) < limit:  # not closed yet: wait for '>' or for the limit
                held = len(buf) - i
                self._queue_need = max(limit - base - len(buf), held)  # at least double before looking again
                return self._hold(i)
            self._report(
                P.MALFORMED_TAG, f"{opener} tag not closed with '>' within {MAX_TAG_LENGTH} characters", base + i
            )
            self._stray = True  # what follows the opener is text, its whitespace included
            self._emit_content(opener)
            return j
        gt = g - base
        offset = base + i
        name = buf[j:gt] if element else _parse_attributes(buf[j:gt]).get("name", "")
        if not name:
            self._report(P.MALFORMED_TAG, f"{opener}> without a name; kept as text", offset)
            self._emit_content(buf[i : gt + 1])
            return gt + 1
        self._stray = False
        if opener == t.invoke_open:
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
        if self._xml:  # the builder types and streams the value (strings too, as they arrive)
            streaming = False
            value: _Value = _XmlValue(key, call.index, keep, schema, offset)
            value.builder = XmlValueBuilder(schema if keep else None, root, infer_types=self._infer_types)
        else:
            streaming = keep and streams_as_string(schema, root, infer_types=self._infer_types)
            value = _Value(key, call.index, keep, streaming, schema, offset)
        if keep:
            call.arguments[key] = None  # placeholder keeps the text order of keys
            prefix = "" if len(call.arguments) == 1 else ", "
            self._emit_args(prefix + json.dumps(key, ensure_ascii=False) + ": " + ('"' if streaming else ""))
        self._value = value
        self._state = _VALUE

    # ------------------------------------------------------------------ parameter values

    def _value_text(self, text: str, start: int = 0, end: int = -1) -> None:
        """Take ``text[start:end]`` into the open value (slicing once); a string value streams it out, holding
        a final '\n' that may turn out to be markup (before a tag that cuts the value)."""
        if end < 0:
            end = len(text)
        if start >= end:
            return
        value = self._value
        assert value is not None
        if not value.streaming:
            if value.builder is None:
                value.parts.add(text[start:end])
            else:
                assert isinstance(value, _XmlValue)
                piece = text if start == 0 and end == len(text) else text[start:end]
                self._builder_out(value, value.builder.text(piece), value.offset)
            return
        trailing = text[end - 1] == "\n"
        if trailing:
            end -= 1
        piece = text if start == 0 and end == len(text) else text[start:end]
        if value.pending_newline:
            piece = "\n" + piece
        value.pending_newline = trailing
        if piece:
            if value.parts.small or value.parts.big:
                escaped = _json_str_body(piece)
            else:  # the first piece (in parse(), often the whole value): keep its JSON for arguments_json
                value.escaped = quoted = _encode_json_string(piece)
                escaped = quoted[1:-1]
            value.parts.add(piece)
            self._emit_args(escaped)

    def _close_decision(self, buf: str, end: int) -> int:
        """Whether the </parameter> ending at buf[end] closes the value: only when what follows it, after at
        most MAX_CLOSE_WHITESPACE whitespace characters, is another tag of the call (or the end of output)."""
        j = _CLOSE_SPACE.match(buf, end).end()  # type: ignore[union-attr]
        if j - end > MAX_CLOSE_WHITESPACE:
            return _CLOSE
        n = len(buf)
        if j == n:
            return _CLOSE if self._at_end else _UNDECIDED
        followers = self._t.close_followers
        for follower in followers:
            if buf.startswith(follower, j):
                return _CLOSE
        if n - j < self._t.longest_follower:
            rest = buf[j:]
            if any(follower.startswith(rest) for follower in followers):  # a follower cut by the end
                return _CLOSE if self._at_end else _UNDECIDED
        return _LITERAL_CLOSE

    def _scan_value(self, buf: str, pos: int) -> int:
        tagset = self._t.value_tagset
        found = self._next_tag(buf, pos, tagset, _VALUE_NEEDLES)
        if found is None:
            hold = tagset.held_from(buf, pos)
            end = len(buf) if hold < 0 else hold
            if end > pos:
                self._value_text(buf, pos, end)
            return end if hold < 0 else self._hold(hold)
        i, tag = found
        end = i + len(tag)
        action = tagset.actions.get(tag)
        if action is None:
            action = _A_VALUE_CUT if tag.startswith(self._t.param_open) else _A_TEXT
        if action == _A_PARAM_CLOSE:
            decision = self._close_decision(buf, end)
            if decision == _UNDECIDED:
                if i > pos:
                    self._value_text(buf, pos, i)
                return self._hold(i)
            if decision == _LITERAL_CLOSE:
                action = _A_TEXT
        if action == _A_TEXT:
            self._value_text(buf, pos, end)
            return end
        if i > pos:
            self._value_text(buf, pos, i)
        offset = self._base + i
        if action == _A_TURN:
            self._turn_marker(tag, offset)
            return end
        if action == _A_PARAM_CLOSE:
            self._close_value(truncated=False, offset=offset)
            self._state = _INVOKE
            return end
        # The value ran into the next tag: </parameter> is missing. The tag is read again in _INVOKE.
        self._report(
            P.UNBALANCED_TAG, f"parameter value not closed with {self._t.param_close}", offset, self._call_index()
        )
        value = self._value
        assert value is not None
        value.pending_newline = False
        self._close_value(truncated=False, offset=offset, cut=True)
        self._state = _INVOKE
        return i

    def _partial_namespaced(self, held: str) -> bool:
        """Held text that is a cut namespace token, or a namespaced tag cut before its '>' (M3)."""
        ns = self._t.namespace
        return ns.startswith(held) or held.startswith(ns)

    def _call_index(self) -> int | None:
        return self._call.index if self._call is not None else None

    def _close_value(self, truncated: bool, offset: int, cut: bool = False) -> None:
        value, call = self._value, self._call
        assert value is not None and call is not None
        self._value = None
        self._fast = None
        if value.builder is not None:
            assert isinstance(value, _XmlValue)
            self._close_xml_value(value, call, truncated, offset)
            return
        one_piece = len(value.parts.small) == 1 and not value.parts.big
        if value.pending_newline:  # a real '\n' before </parameter> (or before the cut-off): part of the value
            value.parts.add("\n")
            if value.escaped is not None:
                value.escaped = value.escaped[:-1] + '\\n"'
            if value.keep:
                self._emit_args("\\n")
        raw = value.parts.text()
        value.parts = _Pieces()  # the pieces are not needed once joined (halves the peak for long values)
        if cut and not value.streaming and raw.endswith("\n"):  # the '\n' before the next tag is markup
            raw = raw[:-1]
        if truncated:
            self._report(P.TRUNCATED_VALUE, f"output ended inside the value of {value.key!r}", offset, call.index)
        if not value.keep:
            return
        if value.streaming:
            call.arguments[value.key] = raw
            if one_piece and value.escaped is not None:
                call.encoded[value.key] = value.escaped
            self._emit_args('"')
            return
        root = call.spec.parameters if call.spec is not None else {}
        conversion = convert_value(raw, value.schema, root, infer_types=self._infer_types)
        result = conversion.value
        if conversion.error is not None:
            self._report(P.COERCION_FAILED, f"{value.key!r}: {conversion.error}", value.offset, call.index)
        try:
            encoded = json.dumps(result, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):  # defensive: a converter must return JSON data
            result = raw.strip()
            encoded = json.dumps(result, ensure_ascii=False)
        call.arguments[value.key] = result
        call.encoded[value.key] = encoded
        self._emit_args(encoded)

    # ------------------------------------------------------------------ XML values (M3)

    def _scan_xml_value(self, buf: str, pos: int) -> int:
        """An M3 argument: text and nested namespaced elements, up to the argument's own close tag.

        Every tag starts with the namespace token, the value needle, so text without it costs one C-level search.
        The argument's close tag ends it at any depth unless an element of the same name is open; an invoke or
        block close (of no open element), a new ``<invoke …>`` or a turn marker cut it."""
        t = self._t
        tagset = t.value_tagset
        found = self._next_tag(buf, pos, tagset, _VALUE_NEEDLES)
        if found is None:
            hold = tagset.held_from(buf, pos)
            end = len(buf) if hold < 0 else hold
            if end > pos:
                self._value_text(buf, pos, end)
            return end if hold < 0 else self._hold(hold)
        i, tag = found
        if i > pos:
            self._value_text(buf, pos, i)
        offset = self._base + i
        if tag != t.namespace:
            self._turn_marker(tag, offset)
            return i + len(tag)
        j = i + len(tag)
        n = len(buf)
        if j < n and buf[j] != "<":
            message = "namespace token not followed by a tag; kept as text"
            self._report(P.MALFORMED_TAG, message, offset, self._call_index())
            self._value_text(buf, i, j)
            return j
        if j + 1 >= n:
            return self._hold(i)
        closing = buf[j + 1] == "/"
        name_start = j + 2 if closing else j + 1
        gt = self._element_end(buf, i, name_start)
        if gt == _NEED_MORE:
            return self._hold(i)
        value = self._value
        assert isinstance(value, _XmlValue)
        name = buf[name_start:gt] if gt >= 0 else ""
        if not name:
            what = "an empty tag" if gt >= 0 else f"a tag not closed with '>' within {MAX_TAG_LENGTH} characters"
            self._report(P.MALFORMED_TAG, f"{what}; kept as text", offset, self._call_index())
            self._value_text(buf, i, j + 1)
            return j + 1
        end = gt + 1
        counts = value.counts
        builder = value.builder
        assert builder is not None
        if closing:
            if not counts.get(name):
                if name == value.key:
                    self._close_value(truncated=False, offset=offset)
                    self._state = _INVOKE
                    return end
                if buf.startswith(t.invoke_close, i) or buf.startswith(t.tool_call_close, i):
                    return self._cut_xml_value(i, offset)
                if builder.verbatim:
                    self._builder_out(value, builder.text(buf[i:end]), offset)
                    return end
            self._builder_out(value, builder.close(name), offset)
            names = value.names
            if len(names) > _XML_DEPTH:  # past the builder's depth limit every close balances one open
                self._pop_name(value)
            elif counts.get(name):
                while self._pop_name(value) != name:
                    pass
            return end
        if name.startswith(t.invoke_tag) and name[len(t.invoke_tag) : len(t.invoke_tag) + 1].isspace():
            return self._cut_xml_value(i, offset)  # <invoke name=…>: a new call, this one was never closed
        if builder.verbatim:
            self._builder_out(value, builder.text(buf[i:end]), offset)
        else:
            self._builder_out(value, builder.open(name), offset)
            value.names.append(name)
            counts[name] = counts.get(name, 0) + 1
        return end

    @staticmethod
    def _pop_name(value: _XmlValue) -> str:
        name = value.names.pop()
        value.counts[name] -= 1
        return name

    def _element_end(self, buf: str, i: int, j: int) -> int:
        """The '>' of the namespaced tag at buf[i] whose name starts at j; _NEED_MORE (the queue is set to wait
        for it) or _LITERAL (another namespace token, or MAX_TAG_LENGTH characters, came first: not a tag).
        Searches at most MAX_TAG_LENGTH characters, and only up to the next namespace token."""
        n = len(buf)
        ns = self._t.namespace
        bound = min(n, i + MAX_TAG_LENGTH)
        nxt = buf.find(ns, j, bound)
        gt = buf.find(">", j, nxt if nxt >= 0 else bound)
        if gt >= 0:
            # M3's token holds a '>' itself: one in a token cut by the end of the buffer is not this tag's yet.
            head = ns.find(">")
            k = gt - head
            if head >= 0 and not self._at_end and k >= j and n - k < len(ns) and ns.startswith(buf[k:]):
                self._queue_need = 0
                return _NEED_MORE
            return gt
        if nxt >= 0 or n >= i + MAX_TAG_LENGTH:
            return _LITERAL
        self._queue_need = max(i + MAX_TAG_LENGTH - n, n - i)  # at least double before looking again
        return _NEED_MORE

    def _cut_xml_value(self, i: int, offset: int) -> int:
        """The argument ran into a tag of the invoke or the block: its close tag is missing. The tag is read
        again in _INVOKE."""
        self._report(P.UNBALANCED_TAG, "argument value not closed before this tag", offset, self._call_index())
        self._close_value(truncated=False, offset=offset)
        self._state = _INVOKE
        return i

    def _builder_out(self, value: _XmlValue, fragment: str, offset: int) -> None:
        """Send a builder's fragment, and report the problems it found since the last call."""
        if not value.keep:
            return
        if fragment:
            self._emit_args(fragment)
        builder = value.builder
        assert builder is not None
        found = builder.problems
        if len(found) > value.reported:
            start, value.reported = value.reported, len(found)
            for code, message in found[start:]:
                self._report(code, f"argument {value.key!r}, {message}", offset, value.index)

    def _close_xml_value(self, value: _XmlValue, call: _Call, truncated: bool, offset: int) -> None:
        builder = value.builder
        assert builder is not None
        self._builder_out(value, builder.finish(truncated=truncated), offset)
        if value.keep:
            call.arguments[value.key] = builder.value
        value.builder = None
        value.names.clear()
        value.counts.clear()

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
        # The fragments sent concatenate to exactly json.dumps(arguments); they are not kept (for a value
        # streamed in many small deltas that would double the memory), but a value encoded whole is reused.
        arguments_json = (
            "{"
            + ", ".join(
                json.dumps(key, ensure_ascii=False)
                + ": "
                + (call.encoded.get(key) or json.dumps(value, ensure_ascii=False))
                for key, value in call.arguments.items()
            )
            + "}"
        )
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
        if state in (_REASONING, _CONTENT):
            if len(held) > 1:  # a lone '<', '[' or ']' ending prose or code is not worth a report
                self._report(P.TRUNCATED_TAG, f"output ended inside what may be a tag: {held!r}", offset)
            if held:
                (self._emit_reasoning if state == _REASONING else self._emit_content)(held)
            if state == _REASONING:
                self._report(P.MISSING_THINK_END, f"output ended inside the reasoning (no {self._t.think_close})", end)
            return
        t = self._t
        if held and state == _VALUE:
            if t.namespace and self._partial_namespaced(held):  # M3: certainly markup; reported, not the value's
                self._report(P.TRUNCATED_TAG, f"output ended inside a tag: {held!r}", offset, self._call_index())
            else:  # M2: the value so far includes what might have become a tag
                if held[0] == "<" and len(held) > 1:
                    self._report(P.TRUNCATED_TAG, f"output ended inside what may be a tag: {held!r}", offset)
                self._value_text(held)
            held = ""
        if held and held[0] in "[]" and not (t.namespace and self._partial_namespaced(held)):
            # not a tag, at most half a turn marker: stray text
            self._scan_markup_stray(held, offset)
            held = ""
        if held:
            self._report(P.TRUNCATED_TAG, f"output ended inside a tag: {held!r}", offset, self._call_index())
        if self._value is not None:
            self._close_value(truncated=True, offset=end)
        if self._call is not None:
            self._close_call(truncated=True, offset=end)
        elif held and t.invoke_open.startswith(held[: len(t.invoke_open)]):  # cut inside <invoke …>: a call was meant
            self._report(P.TRUNCATED_TOOL_CALL, f"output ended inside an {t.invoke_open}> tag", offset)
        else:
            self._report(P.UNBALANCED_TAG, f"{self._t.tool_call_open} block never closed", end)


def parse(
    text: str,
    tools: Iterable[Mapping[str, Any]] | Mapping[str, ToolSpec] | None = None,
    **options: Any,
) -> ParsedMessage:
    """Parse a whole output: the same machine as streaming, fed once and finished."""
    if not isinstance(text, str):
        raise _not_text("parse()", text)
    parser = StreamParser(tools, **options)
    parser.feed(text)
    parser.finish()
    return parser.result
