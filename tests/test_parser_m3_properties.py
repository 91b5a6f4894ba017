"""Property tests of the parser on the MiniMax-M3 format: the same contract as M2 (docs/architecture.md).

The M3 spellings and the call writer below are written from the official template
(../shared/reference/MiniMax-M3/chat_template.jinja, its ``to_xml`` macro and the tool-call loop), not from
m2parse's constants, so the parser is checked against the format, not against itself.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from m2parse.parser import parse, sequential_ids

from .m3_value_support import to_xml
from .strategies import chunkings
from .test_parser_properties import assert_chunk_invariant, stream, strictly_equal

NS = "]<]minimax[>["
THINK_OPEN, THINK_CLOSE = "<mm:think>", "</mm:think>"
TURN_MARKERS = ("]~b]", "[e~[", "]~!b[")
MODES = (None, "enabled", "disabled", "adaptive")
FEW = max(10, settings.default.max_examples // 4)


# ------------------------------------------------------------------------------------------- the template's writer


def write_calls(calls: list[tuple[str, dict[str, Any]]]) -> str:
    """The template's tool-call block for one assistant turn."""
    out = [NS + "<tool_call>\n"]
    for name, arguments in calls:
        out.append(f'{NS}<invoke name="{name}">')
        for key, value in arguments.items():
            if value is not None:
                out.append(f"{NS}<{key}>{to_xml(value)}{NS}</{key}>")
        out.append(NS + "</invoke>\n")
    out.append(NS + "</tool_call>")
    return "".join(out)


# ------------------------------------------------------------------------------------------- tools and arguments

_SAFE_TEXT = (
    st.lists(
        st.sampled_from([*"abc xyz<>/=&\"'\n\t[]{}:0129.-中文😀", "<foo>", "</city>", "<item>", "a < b"]), max_size=12
    )
    .map("".join)
    .filter(lambda s: NS not in s and not any(m in s for m in TURN_MARKERS))
)
_STRING = {"type": "string"}
_INT = {"type": "integer"}
_NUM = {"type": "number"}
_BOOL = {"type": "boolean"}
_LEAF = {
    "s": (_STRING, _SAFE_TEXT),
    "i": (_INT, st.integers(-(10**12), 10**12)),
    "n": (_NUM, st.floats(allow_nan=False, allow_infinity=False, width=64)),
    "b": (_BOOL, st.booleans()),
}


@st.composite
def schema_and_value(draw: st.DrawFn, depth: int = 0) -> tuple[dict[str, Any], Any]:
    """A schema and a value of it: scalars, objects of them, arrays of them (nested up to depth 3)."""
    kind = draw(st.sampled_from(["s", "i", "n", "b", "obj", "arr"] if depth < 3 else ["s", "i", "n", "b"]))
    if kind in _LEAF:
        schema, values = _LEAF[kind]
        return schema, draw(values)
    if kind == "obj":
        keys = draw(
            st.lists(st.sampled_from(["a", "b_c", "key-1", "item", "invoke", "tool_call"]), unique=True, max_size=4)
        )
        parts = [draw(schema_and_value(depth + 1)) for _ in keys]
        schema = {"type": "object", "properties": {k: s for k, (s, _) in zip(keys, parts, strict=True)}}
        return schema, {k: v for k, (_, v) in zip(keys, parts, strict=True)}
    item_schema, first = draw(schema_and_value(depth + 1))
    values = [first]
    for _ in range(draw(st.integers(0, 3))):
        values.append(draw(_values_of(item_schema, depth + 1)))
    return {"type": "array", "items": item_schema}, values


def _values_of(schema: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    """Another value of an already drawn schema (array entries share one item schema)."""
    for leaf_schema, values in _LEAF.values():
        if schema is leaf_schema:
            return values
    if schema["type"] == "object":
        props = schema["properties"]
        return st.fixed_dictionaries({k: _values_of(s, depth + 1) for k, s in props.items()})
    return st.lists(_values_of(schema["items"], depth + 1), min_size=1, max_size=3)


@st.composite
def tools_and_calls(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[tuple[str, dict[str, Any]]]]:
    tools = []
    calls = []
    for t in range(draw(st.integers(1, 2))):
        keys = draw(st.lists(st.sampled_from(["q", "opts", "rows", "n", "flag", "text"]), unique=True, max_size=4))
        parts = [draw(schema_and_value(1)) for _ in keys]
        params = {"type": "object", "properties": {k: s for k, (s, _) in zip(keys, parts, strict=True)}}
        tools.append({"type": "function", "function": {"name": f"tool_{t}", "parameters": params}})
        calls.append((f"tool_{t}", {k: v for k, (_, v) in zip(keys, parts, strict=True)}))
    return tools, calls


# ------------------------------------------------------------------------------------------------- properties


@settings(max_examples=FEW)
@given(data=tools_and_calls(), content=_SAFE_TEXT, reasoning=_SAFE_TEXT, chunks=st.data())
def test_written_calls_parse_back(data: Any, content: str, reasoning: str, chunks: st.DataObject) -> None:
    """What the template writes for typed arguments parses back to the same arguments, whole or streamed."""
    tools, calls = data
    reasoning = reasoning.strip("\n") or "ok"
    content = content.strip("\n")
    text = reasoning + THINK_CLOSE + content + write_calls(calls)
    result = parse(text, tools, format="m3", thinking_mode="enabled", id_factory=sequential_ids())
    assert result.problems == (), [p.message for p in result.problems]
    assert result.reasoning_content == reasoning
    assert result.content == content
    got = [(c.name, c.arguments) for c in result.tool_calls]
    assert len(got) == len(calls)
    for (name, args), (want_name, want) in zip(got, calls, strict=True):
        assert name == want_name
        assert strictly_equal(args, want), (args, want)
    split = chunks.draw(chunkings(text))
    assert_chunk_invariant(text, split, tools=tools, format="m3", thinking_mode="enabled")


_HOSTILE_PIECES = st.sampled_from(
    [
        NS,
        NS[:3],
        NS[:7],
        NS[:12],  # up to the token's own '>'
        "]",
        "[",
        "<",
        "</",
        ">",
        " ",
        "\n",
        "abc",
        "3",
        "true",
        '"',
        "\\",
        THINK_OPEN,
        THINK_CLOSE,
        NS + "<tool_call>\n",
        NS + "</tool_call>",
        NS + '<invoke name="t">',
        NS + "<invoke name=u>",
        NS + "<invoke ",
        NS + "</invoke>\n",
        NS + "<q>",
        NS + "</q>",
        NS + "<opts>",
        NS + "</opts>",
        NS + "<item>",
        NS + "</item>",
        NS + "<n>",
        NS + "</n>",
        NS + "<>",
        NS + "<x",
        "<tool_call>",
        "<minimax:tool_call>",
    ]
)
#: Where hostile text starts: anywhere, or already inside a block, an invoke, a string or an object argument (so
#: that short texts reach the inner states often).
_PREFIXES = st.sampled_from(
    [
        "",
        "</mm:think>" + NS + "<tool_call>\n",
        "</mm:think>" + NS + '<tool_call>\n]<]minimax[>[<invoke name="t">',
        "</mm:think>" + NS + '<tool_call>\n]<]minimax[>[<invoke name="t">' + NS + "<q>",
        "</mm:think>" + NS + '<tool_call>\n]<]minimax[>[<invoke name="t">' + NS + "<opts>",
    ]
)
_HOSTILE = st.tuples(
    _PREFIXES,
    st.one_of(
        st.lists(_HOSTILE_PIECES, max_size=40).map("".join),
        st.lists(st.one_of(_HOSTILE_PIECES, st.sampled_from(TURN_MARKERS)), max_size=40).map("".join),
    ),
).map("".join)
_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "t",
            "parameters": {
                "type": "object",
                "properties": {
                    "q": {"type": "string"},
                    "n": {"type": "integer"},
                    "opts": {"type": "object", "properties": {"q": {"type": "string"}, "n": {"type": "number"}}},
                },
            },
        },
    }
]


@given(
    text=_HOSTILE,
    mode=st.sampled_from(MODES),
    with_tools=st.booleans(),
    inline=st.booleans(),
    extra=st.fixed_dictionaries(
        {},
        optional={
            "infer_types": st.booleans(),
            "unknown_tool": st.sampled_from(["keep", "drop"]),
            "unknown_parameter": st.sampled_from(["keep", "drop"]),
            "tool_calls": st.booleans(),
            "starts_in_reasoning": st.booleans(),
        },
    ),
    chunks=st.data(),
)
@example(
    text=NS + "<tool_call>\n" + NS + '<invoke name="t">' + NS + "<q>",
    mode=None,
    with_tools=True,
    inline=False,
    extra={},
    chunks=None,
)
def test_hostile_text_is_chunk_invariant_and_never_raises(
    text: str,
    mode: str | None,
    with_tools: bool,
    inline: bool,
    extra: dict[str, Any],
    chunks: st.DataObject | None,
) -> None:
    """Any output, any default-safe options: every chunking gives parse()'s result and events that fold to it."""
    options: dict[str, Any] = {"format": "m3", "thinking_mode": mode, "reasoning": "inline" if inline else "separated"}
    options.update(extra)
    if with_tools:
        options["tools"] = _TOOLS
    split = [text] if chunks is None else chunks.draw(chunkings(text))
    assert_chunk_invariant(text, split, **options)


@given(text=st.text(max_size=60), mode=st.sampled_from(MODES))
def test_arbitrary_text_never_raises(text: str, mode: str | None) -> None:
    result = parse("</mm:think>" + text, _TOOLS, format="m3", thinking_mode=mode)
    for call in result.tool_calls:
        assert json.loads(call.arguments_json) == call.arguments


@settings(max_examples=FEW)
@given(text=_HOSTILE, mode=st.sampled_from(MODES))
def test_nothing_but_layout_is_lost(text: str, mode: str | None) -> None:
    """Inline reasoning and tool calls off: every character up to a turn marker comes back as content, except
    whitespace (outer newlines are trimmed, whitespace before a leading think tag is layout) and the bare
    think-close that an adaptive output starts with."""
    events, result = stream([text], format="m3", thinking_mode=mode, tool_calls=False, reasoning="inline")
    del events
    cut = min((text.find(m) for m in TURN_MARKERS if m in text), default=len(text))
    expected = "".join(text[:cut].split())
    if mode in (None, "adaptive") and expected.startswith(THINK_CLOSE):
        expected = expected[len(THINK_CLOSE) :]
    if mode == "enabled" and not expected.startswith(THINK_OPEN):
        expected = THINK_OPEN + expected
    assert "".join(result.content.split()) == expected
