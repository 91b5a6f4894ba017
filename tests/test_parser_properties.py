"""Property tests of the incremental parser against the contract in docs/architecture.md."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from m2parse.events import (
    ContentDelta,
    Event,
    ProblemFound,
    ReasoningDelta,
    ToolCallArgumentsDelta,
    ToolCallEnd,
    ToolCallStart,
)
from m2parse.message import ParsedMessage
from m2parse.parser import StreamParser, parse, sequential_ids
from m2parse.problems import M2ParseError, Problem

from .fixture_loader import fixture_names, load_fixture
from .strategies import (
    TURN_MARKERS,
    Turn,
    any_outputs,
    chunkings,
    generated_turns,
    hostile_texts,
    is_plain,
    render_tool_calls,
    render_value,
    structured_hostile,
    template_turns,
    tools,
    tools_and_calls,
)

HALF = max(10, settings.default.max_examples // 2)
"""Example budget for properties whose examples carry generated tool schemas (costly to draw and validate)."""
FEW = max(10, settings.default.max_examples // 20)
"""Example budget for the hold-back properties (long texts fed one character at a time)."""

# ------------------------------------------------------------------------------------------------ helpers


@dataclass
class FoldedCall:
    index: int
    id: str
    name: str
    #: where the fragments are cut depends on the chunking; only their concatenation is compared
    fragments: list[str] = field(default_factory=list, compare=False)
    arguments_json: str = ""
    end: ToolCallEnd | None = None


@dataclass
class Folded:
    """Events folded the way a client would: joined texts, calls, problems (order checked on the way)."""

    content: str
    reasoning: str
    calls: list[FoldedCall]
    problems: list[Problem]


def fold(events: Iterable[Event]) -> Folded:
    content: list[str] = []
    reasoning: list[str] = []
    calls: list[FoldedCall] = []
    problems: list[Problem] = []
    open_call: FoldedCall | None = None
    for ev in events:
        if isinstance(ev, ContentDelta):
            content.append(ev.text)
        elif isinstance(ev, ReasoningDelta):
            reasoning.append(ev.text)
        elif isinstance(ev, ProblemFound):
            problems.append(ev.problem)
        elif isinstance(ev, ToolCallStart):
            assert open_call is None, f"ToolCallStart {ev.index} while call {open_call} is still open"
            assert ev.index == len(calls), f"call indices not dense: {ev.index} after {len(calls)} calls"
            open_call = FoldedCall(ev.index, ev.id, ev.name)
            calls.append(open_call)
        elif isinstance(ev, ToolCallArgumentsDelta):
            assert open_call is not None and ev.index == open_call.index, f"fragment outside its call: {ev}"
            open_call.fragments.append(ev.fragment)
        elif isinstance(ev, ToolCallEnd):
            assert open_call is not None and ev.index == open_call.index, f"end outside its call: {ev}"
            open_call.end = ev
            open_call.arguments_json = "".join(open_call.fragments)
            open_call = None
        else:  # pragma: no cover - an event type the contract does not know
            raise AssertionError(f"unknown event {ev!r}")
    assert open_call is None, "finish() left a call open"
    return Folded("".join(content), "".join(reasoning), calls, problems)


def _reject_constant(name: str) -> Any:
    raise AssertionError(f"arguments_json is not strict JSON: contains {name}")


def assert_folds_to(folded: Folded, result: ParsedMessage) -> None:
    """The events concatenate to the result, and every call's arguments JSON is exact and strict."""
    assert folded.content == result.content
    assert folded.reasoning == (result.reasoning_content or "")
    assert folded.problems == list(result.problems)
    assert len(folded.calls) == len(result.tool_calls)
    for i, (call, tc) in enumerate(zip(folded.calls, result.tool_calls, strict=True)):
        assert call.end is not None
        assert (tc.index, call.index, call.end.index) == (i, i, i)
        assert (call.id, call.name) == (tc.id, tc.name)
        assert call.arguments_json == call.end.arguments_json == tc.arguments_json
        assert tc.arguments_json == json.dumps(tc.arguments, ensure_ascii=False)
        assert json.loads(tc.arguments_json, parse_constant=_reject_constant) == tc.arguments
        assert call.end.arguments == tc.arguments
        assert call.end.truncated == tc.truncated


def stream(chunks: Iterable[str], *, peek: bool = False, **options: Any) -> tuple[list[Event], ParsedMessage]:
    """Feed ``chunks`` to a fresh parser (reading the snapshot between feeds if ``peek``) and finish."""
    parser = StreamParser(id_factory=sequential_ids(), **options)
    events: list[Event] = []
    for chunk in chunks:
        events += parser.feed(chunk)
        if peek:
            assert isinstance(parser.result, ParsedMessage)
    events += parser.finish()
    assert parser.done
    return events, parser.result


def whole(text: str, **options: Any) -> ParsedMessage:
    return parse(text, id_factory=sequential_ids(), **options)


def assert_chunk_invariant(text: str, chunks: Sequence[str], **options: Any) -> None:
    assert "".join(chunks) == text
    expected = whole(text, **options)
    events_whole, result_whole = stream([text], **options)
    events, result = stream(chunks, peek=True, **options)
    folded = fold(events)
    assert_folds_to(folded, result)
    assert folded == fold(events_whole)
    assert result == result_whole == expected


def strictly_equal(a: Any, b: Any) -> bool:
    """``==`` that does not let True pass for 1 (ints and floats may still compare across types)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(strictly_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(strictly_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def assert_calls(result: ParsedMessage, calls: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    got = [(tc.name, tc.arguments) for tc in result.tool_calls]
    assert len(got) == len(calls), (got, calls)
    for (name, args), (want_name, want_args) in zip(got, calls, strict=True):
        assert name == want_name
        assert strictly_equal(args, dict(want_args)), (args, want_args)
    assert not any(tc.truncated for tc in result.tool_calls)


HOSTILE_TOOLS = [
    {"name": "x", "parameters": {"type": "object", "properties": {"k": {"type": "string"}, "n": {"type": "integer"}}}},
    {
        "type": "function",
        "function": {
            "name": "y",
            "parameters": {
                "type": "object",
                "properties": {"k": {"type": ["number", "null"]}, "m": {"type": "array"}},
                "required": ["k"],
            },
        },
    },
]


@st.composite
def options(draw: st.DrawFn) -> dict[str, Any]:
    """Parser options that never raise: both reasoning modes, tools or not, keep/drop policies."""
    opts: dict[str, Any] = {
        "reasoning": draw(st.sampled_from(["separated", "inline"])),
        "starts_in_reasoning": draw(st.booleans()),
        "infer_types": draw(st.booleans()),
        "unknown_tool": draw(st.sampled_from(["keep", "drop"])),
        "unknown_parameter": draw(st.sampled_from(["keep", "drop"])),
        "validate": draw(st.booleans()),
    }
    opts["tools"] = draw(st.one_of(st.none(), st.just(HOSTILE_TOOLS), tools(max_size=2)))
    return opts


# ------------------------------------------------------------------------------------------ chunk invariance


@given(data=st.data(), text=any_outputs())
def test_chunk_invariance_default_options(data: st.DataObject, text: str) -> None:
    assert_chunk_invariant(text, data.draw(chunkings(text)))


@settings(max_examples=HALF)
@given(data=st.data(), text=any_outputs(), opts=options())
def test_chunk_invariance_any_options(data: st.DataObject, text: str, opts: dict[str, Any]) -> None:
    assert_chunk_invariant(text, data.draw(chunkings(text)), **opts)


@settings(max_examples=HALF)
@given(turn=generated_turns())
def test_chunk_invariance_one_char_with_tools(turn: Turn) -> None:
    assert_chunk_invariant(turn.text, list(turn.text), tools=list(turn.tools))


# ------------------------------------------------------------------------------------------- never raises


@given(text=st.text())
def test_never_raises_on_arbitrary_text(text: str) -> None:
    assert_folds_to(fold(stream([text])[0]), whole(text))


@given(data=st.data(), text=any_outputs(), opts=options())
def test_never_raises_chunked_and_folds(data: st.DataObject, text: str, opts: dict[str, Any]) -> None:
    events, result = stream(data.draw(chunkings(text)), **opts)
    assert_folds_to(fold(events), result)
    if opts["reasoning"] == "inline":
        assert result.reasoning_content is None
        assert not any(isinstance(ev, ReasoningDelta) for ev in events)
    elif opts["starts_in_reasoning"]:
        assert isinstance(result.reasoning_content, str)


@given(data=st.data(), text=any_outputs())
def test_strict_raises_only_m2parseerror_on_first_problem(data: st.DataObject, text: str) -> None:
    lenient = whole(text)
    try:
        strict = whole(text, strict=True)
    except M2ParseError as err:
        assert lenient.problems, f"strict raised {err} but the lenient parse reports no problem"
        first = lenient.problems[0]
        assert (err.code, err.offset) == (first.code, first.offset)
    else:
        assert lenient.problems == ()
        assert strict == lenient
    chunks = data.draw(chunkings(text))
    try:
        stream(chunks, strict=True)
    except M2ParseError as err:
        assert lenient.problems and (err.code, err.offset) == (lenient.problems[0].code, lenient.problems[0].offset)
    else:
        assert lenient.problems == ()


@given(text=any_outputs(), policy=st.sampled_from(["unknown_tool", "unknown_parameter"]))
def test_error_policies_raise_only_m2parseerror(text: str, policy: str) -> None:
    lenient = whole(text, tools=HOSTILE_TOOLS)
    code = policy  # the policy and its problem code share a name
    try:
        whole(text, tools=HOSTILE_TOOLS, **{policy: "error"})
    except M2ParseError as err:
        assert err.code == code
        assert any(p.code == code for p in lenient.problems)
    else:
        assert all(p.code != code for p in lenient.problems)


# -------------------------------------------------------------------------------------------- no byte lost

_TAG_SPAN_RE = re.compile(r"</?(?:think|minimax:tool_call|invoke|parameter)\b[^>]*>?", re.IGNORECASE)


def _nonspace(text: str) -> Counter[str]:
    return Counter(ch for ch in text if not ch.isspace())


def _emitted(result: ParsedMessage) -> str:
    parts = [result.content, result.reasoning_content or ""]
    for tc in result.tool_calls:
        parts.append(tc.name)
        for k, v in tc.arguments.items():
            assert isinstance(v, str), "without tools and infer_types every value is a string"
            parts += [k, v]
    return "".join(parts)


def _first_marker(text: str) -> int:
    found = [i for i in (text.find(m) for m in TURN_MARKERS) if i >= 0]
    return min(found, default=-1)


@given(text=st.one_of(hostile_texts(), hostile_texts(markers=False), structured_hostile()))
@example(text="<minimax:tool_call>]")  # a partial turn marker at the end is text, not a cut tag
@example(text='</think>\n<minimax:tool_call>\n<invoke name="f">\n<parameter name="k">a[0]')
def test_no_byte_lost(text: str) -> None:
    result = whole(text)
    emitted = _nonspace(_emitted(result))
    # Nothing invented or duplicated: every emitted character comes from the input.
    assert not emitted - _nonspace(text), f"emitted characters not in the input: {emitted - _nonspace(text)}"

    marker = _first_marker(text)
    turn_problems = [p for p in result.problems if p.code == "turn_marker"]
    if marker >= 0:
        assert result.ended_by_turn_marker
        assert [p.offset for p in turn_problems] == [marker]
    else:
        assert not result.ended_by_turn_marker and not turn_problems

    # The region the parser must account for: up to a turn marker (the rest is discarded, and reported),
    # and up to a duplicate parameter (the later value is dropped, and reported).
    end = marker if marker >= 0 else len(text)
    for p in result.problems:
        if p.code == "duplicate_parameter":
            end = min(end, p.offset)
    # Characters that may legitimately vanish: anything that looks like a tag (recognised or not), and a
    # trailing partial tag at the end of the region (reported as truncated_tag, not emitted).
    covered = bytearray(len(text))
    for m in _TAG_SPAN_RE.finditer(text):
        covered[m.start() : m.end()] = b"\1" * (m.end() - m.start())
    tail = text.rfind("<", 0, end)
    if tail >= 0 and ">" not in text[tail:end]:
        covered[tail:end] = b"\1" * (end - tail)
    must = _nonspace("".join(ch for i, ch in enumerate(text[:end]) if not covered[i]))
    missing = must - emitted
    assert not missing, f"input characters lost: {dict(missing)}; problems: {[p.code for p in result.problems]}"


# -------------------------------------------------------------------------------------- template fidelity


_SPELLINGS = (
    "<think>",
    "</think>",
    "<minimax:tool_call>",
    "</minimax:tool_call>",
    "<invoke",
    "</invoke>",
    "<parameter",
    "</parameter>",
    *TURN_MARKERS,
)


def assert_no_problems(result: ParsedMessage, text: str) -> None:
    """No problem for well-formed output, except that text ending in what may be a cut tag may say so."""
    codes = [p.code for p in result.problems]
    if codes == ["truncated_tag"]:
        assert any(text.endswith(s[:i]) for s in _SPELLINGS for i in range(1, len(s))), text[-20:]
    else:
        assert codes == []


@settings(max_examples=HALF)
@given(tc=tools_and_calls())
def test_value_round_trip(tc: tuple[list[dict[str, Any]], list[tuple[str, dict[str, Any]]]]) -> None:
    tool_list, calls = tc
    result = whole("\n</think>\n\n" + render_tool_calls(calls), tools=tool_list)
    assert result.problems == ()
    assert_calls(result, calls)
    for call in result.tool_calls:
        for value in call.arguments.values():
            assert not (isinstance(value, float) and not math.isfinite(value))


@settings(max_examples=HALF)
@given(turn=template_turns())
def test_template_turn_gives_back_reasoning_content_calls(turn: Turn) -> None:
    result = whole(turn.text, tools=list(turn.tools))
    assert result.reasoning_content == turn.reasoning
    assert result.content == turn.content
    assert_calls(result, turn.calls)
    assert_no_problems(result, turn.text)
    assert not result.ended_by_turn_marker


@settings(max_examples=HALF)
@given(turn=generated_turns())
def test_generated_turn_with_and_without_tools(turn: Turn) -> None:
    result = whole(turn.text, tools=list(turn.tools))
    assert (result.reasoning_content, result.content) == (turn.reasoning, turn.content)
    assert_calls(result, turn.calls)
    assert_no_problems(result, turn.text)
    # Without tools every value is kept as the raw text the template wrote.
    untyped = whole(turn.text)
    assert (untyped.reasoning_content, untyped.content) == (turn.reasoning, turn.content)
    assert_calls(untyped, [(name, {k: render_value(v) for k, v in args.items()}) for name, args in turn.calls])
    assert untyped.problems == result.problems


# ------------------------------------------------------------------------------------- bounded hold-back

_LINE_CHARS = st.sampled_from([*"abc xyz<>/=]~[!e'{}:.,中😀é", "<m", "</", "]~b", "[e~", "<thi"])
HOLD_BACK = 64


def _line_texts(min_size: int) -> st.SearchStrategy[str]:
    return st.lists(_LINE_CHARS, min_size=min_size, max_size=4 * min_size).map("".join).filter(is_plain)


def _assert_bounded(prefix: str, text: str, kind: type, **options: Any) -> None:
    parser = StreamParser(id_factory=sequential_ids(), **options)
    parser.feed(prefix)
    emitted = 0
    for fed, ch in enumerate(text, 1):
        for ev in parser.feed(ch):
            if isinstance(ev, kind):
                emitted += len(ev.fragment if isinstance(ev, ToolCallArgumentsDelta) else ev.text)
        assert emitted >= fed - HOLD_BACK, f"{fed - emitted} characters held back after {fed} fed"


@settings(max_examples=FEW)
@given(text=_line_texts(200))
def test_bounded_hold_back_content(text: str) -> None:
    _assert_bounded("r\n</think>\n\n", text, ContentDelta)


@settings(max_examples=FEW)
@given(text=_line_texts(200))
def test_bounded_hold_back_reasoning(text: str) -> None:
    _assert_bounded("", text, ReasoningDelta)


@settings(max_examples=FEW)
@given(text=_line_texts(200), tool_list=st.sampled_from([None, HOSTILE_TOOLS]))
def test_bounded_hold_back_string_value(text: str, tool_list: list[dict[str, Any]] | None) -> None:
    # No JSON escaping in _LINE_CHARS, so the streamed fragments grow with the value.
    _assert_bounded(
        '\n</think>\n\n\n<minimax:tool_call>\n<invoke name="x">\n<parameter name="k">',
        text,
        ToolCallArgumentsDelta,
        tools=tool_list,
    )


def test_bounded_hold_back_long_content() -> None:
    text = "".join(f"word{i} <{i % 7}> a<b ]~ [e " for i in range(3000))
    assert is_plain(text)
    _assert_bounded("r\n</think>\n\n", text, ContentDelta)


# ---------------------------------------------------------------------------------------------- fixtures


def _fixture(name: str) -> tuple[str, dict[str, Any]]:
    fixture = load_fixture(name)
    return fixture.text, {**fixture.options, "tools": fixture.tools}


def _outcome(chunks: Sequence[str], **opts: Any) -> tuple[Any, ...]:
    try:
        events, result = stream(chunks, **opts)
    except M2ParseError as err:
        return ("raised", err.code, err.offset)
    return ("parsed", fold(events), result)


def _split_positions(text: str) -> list[int]:
    n = len(text)
    if n < 2048:
        return list(range(n + 1))
    step = max(1, n // 512)
    near_tags = [i for i in range(1, n) if text[i - 1] in "<>\n" or text[i] in "<>\n"]
    spread = near_tags[:: max(1, len(near_tags) // 512)]
    return sorted({*range(0, n + 1, step), n, *spread})


@pytest.mark.parametrize("name", fixture_names())
def test_fixture_every_split(name: str) -> None:
    text, opts = _fixture(name)
    try:
        reference: tuple[Any, ...] = ("parsed", None, whole(text, **opts))
    except M2ParseError as err:
        reference = ("raised", err.code, err.offset)
    single = _outcome([text], **opts)
    if reference[0] == "parsed":
        assert single[0] == "parsed" and single[2] == reference[2]
        assert_folds_to(single[1], single[2])
    else:
        assert single == reference
    for i in _split_positions(text):
        assert _outcome([text[:i], text[i:]], **opts) == single, f"split at {i}: {text[:i][-20:]!r}|{text[i:][:20]!r}"
    assert _outcome(list(text), **opts) == single, "1-char deltas"
