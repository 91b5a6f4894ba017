"""Hypothesis strategies shared by the parser tests.

Tool definitions with JSON schemas across every JSON type, typed arguments drawn from those schemas, the
official template's tool-call rendering, whole generated outputs, hostile text and random chunkings.
The tag spellings are written out here on purpose: the tests check the parser against the documented format,
not against its own constants.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from hypothesis import strategies as st

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
BLOCK_OPEN = "<minimax:tool_call>"
BLOCK_CLOSE = "</minimax:tool_call>"
TURN_MARKERS = ("]~b]", "[e~[", "]~!b[")

#: Anything that could be read as markup by the parser; generated "plain" text never contains a match.
MARKUP_RE = re.compile(r"</?(?:think|minimax:tool_call|invoke|parameter)|\]~b\]|\[e~\[|\]~!b\[", re.IGNORECASE)

#: Markup-ish fragments for hostile text (turn markers are kept apart so they can be made rare).
HOSTILE_TAGS = (
    "<think>",
    "</think>",
    "<minimax:tool_call>",
    "</minimax:tool_call>",
    '<invoke name="x">',
    "<invoke name='y' a=b>",
    "<invoke name = x >",
    "<parameter name=k>",
    '<parameter name="n">',
    "<parameter a='1' name=\"m\">",
    "</parameter>",
    "</invoke>",
    "<invoke>",
    "<parameter>",
)
HOSTILE_BITS = ("<", "</", "\n", "\n\n", " ", '"', "'", "&", "&amp;", "=", ">", "你好", "😀", "NaN", "Infinity", "12")
HOSTILE_ALPHABET = "ab k xyn\n\t\"'&<>/=[]~!e中文😀{}:0-9."

Call = tuple[str, dict[str, Any]]
Tool = dict[str, Any]


def is_plain(text: str) -> bool:
    """True when ``text`` holds nothing the parser could take for markup or a turn marker."""
    return MARKUP_RE.search(text) is None


# --------------------------------------------------------------------------------------------------- text

_RICH_CHARS = st.one_of(
    st.characters(codec="utf-8"),
    st.sampled_from([*" \n\t<>/=\"'&[]~!{}:,\\", "中", "文", "😀", "é", "\u2028"]),
)


def plain_text(*, max_size: int = 40, alphabet: st.SearchStrategy[str] = _RICH_CHARS) -> st.SearchStrategy[str]:
    """Arbitrary text, markup-free (may contain ``<``, quotes, newlines, non-ASCII)."""
    return st.text(alphabet, max_size=max_size).filter(is_plain)


def edge_trimmed(text: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Text that neither starts nor ends with ``\\n`` (the template's ``.strip('\\n')``)."""
    return text.map(lambda s: s.strip("\n"))


_NAME_ALPHABET = st.sampled_from([*"abcdefghijklmnopqrstuvwxyzABCXYZ_0123456789.-", "中", "文"])
names = st.text(_NAME_ALPHABET, min_size=1, max_size=12)
"""Tool and parameter names: no whitespace, quotes, ``<``, ``>`` or ``&``."""

# ----------------------------------------------------------------------------------------- schemas/values
# Drawn imperatively from a few prebuilt strategies: building strategies per schema is what makes generation slow.

_SCALARS = ("string", "integer", "number", "boolean")
_KINDS = (*_SCALARS, "string_enum", "integer_enum", "nullable", "object", "array")
_TEXT = plain_text(max_size=20)
# A string in a string|null union is read verbatim; only a value that strips to "null" means None.
_UNION_TEXT = _TEXT.filter(lambda s: s.strip() != "null")
_INTEGERS = st.integers(-(2**63), 2**63)
_NUMBERS = st.one_of(st.integers(-(2**53), 2**53), st.floats(allow_nan=False, allow_infinity=False))
_SMALL_INTS = st.integers(-1000, 1000)
#: Code-like strings that contain a literal ``</parameter>`` followed by text (not by a tag of the call), which
#: the issue-9 rule keeps inside the value.
_LITERAL_CLOSE_TEXT = st.lists(
    st.tuples(plain_text(max_size=8), st.sampled_from(["x", " = 1", "\n  y", ";", "}", ' "</p>'])),
    min_size=1,
    max_size=3,
).map(lambda parts: "".join(a + "</parameter>" + b for a, b in parts))
_COUNT = st.integers(0, 4)
_PLAIN = plain_text()
_PLAIN_SHORT = plain_text(max_size=10)
_TRIMMED = edge_trimmed(_PLAIN)


def _draw_schema(draw: st.DrawFn, depth: int, *, in_union: bool = False) -> dict[str, Any]:
    kinds = _KINDS if depth < 2 else _KINDS[:-2]
    if in_union:  # string enums (arbitrary edges, "null") and nested unions stay out of unions
        kinds = tuple(k for k in kinds if k not in ("string_enum", "nullable"))
    kind = draw(st.sampled_from(kinds))
    if kind in _SCALARS:
        return {"type": kind}
    if kind == "string_enum":
        return {"type": "string", "enum": draw(st.lists(_TEXT, min_size=1, max_size=4, unique=True))}
    if kind == "integer_enum":
        return {"type": "integer", "enum": draw(st.lists(_SMALL_INTS, min_size=1, max_size=4, unique=True))}
    if kind == "nullable":
        inner = _draw_schema(draw, depth + 1, in_union=True)
        if draw(st.booleans()):
            return {"anyOf": [inner, {"type": "null"}]}
        return {**inner, "type": [inner["type"], "null"]}
    if kind == "object":
        props = {draw(names): _draw_schema(draw, depth + 1) for _ in range(draw(_COUNT))}
        return {"type": "object", "properties": props, "required": [k for k in props if draw(st.booleans())]}
    return {"type": "array", "items": _draw_schema(draw, depth + 1)}


def draw_value(draw: st.DrawFn, schema: Mapping[str, Any], *, in_union: bool = False) -> Any:
    """A value valid under ``schema`` (as produced by :func:`schemas`)."""
    if "anyOf" in schema:
        return None if draw(st.booleans()) else draw_value(draw, schema["anyOf"][0], in_union=True)
    if "enum" in schema:
        return draw(st.sampled_from(schema["enum"]))
    kind = schema["type"]
    if isinstance(kind, list):
        return None if draw(st.booleans()) else draw_value(draw, {**schema, "type": kind[0]}, in_union=True)
    if kind == "string":
        if in_union:
            return draw(_UNION_TEXT)
        return draw(st.one_of(_TEXT, _TEXT, _TEXT, _LITERAL_CLOSE_TEXT))
    if kind == "integer":
        return draw(_INTEGERS)
    if kind == "number":
        return draw(_NUMBERS)
    if kind == "boolean":
        return draw(st.booleans())
    if kind == "array":
        return [draw_value(draw, schema["items"]) for _ in range(draw(_COUNT))]
    required = set(schema["required"])
    return {k: draw_value(draw, s) for k, s in schema["properties"].items() if k in required or draw(st.booleans())}


@st.composite
def schemas(draw: st.DrawFn) -> dict[str, Any]:
    """A parameter JSON schema: scalars, enums, nullable unions (``type`` list or ``anyOf``), objects, arrays."""
    return _draw_schema(draw, 0)


def values_for(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid under ``schema`` (as produced by :func:`schemas`)."""
    return st.composite(lambda draw: draw_value(draw, schema))()


@st.composite
def tools(draw: st.DrawFn, *, min_size: int = 1, max_size: int = 4) -> list[Tool]:
    """A tools list: OpenAI-shaped or bare ``{"name", "parameters"}`` entries with unique names."""
    tool_names = draw(st.lists(names, min_size=min_size, max_size=max_size, unique=True))
    out: list[Tool] = []
    for name in tool_names:
        props = {draw(names): _draw_schema(draw, 0) for _ in range(draw(_COUNT))}
        required = [k for k in props if draw(st.booleans())]
        params = {"type": "object", "properties": props, "required": required}
        function = {"name": name, "description": f"tool {name}", "parameters": params}
        out.append({"type": "function", "function": function} if draw(st.booleans()) else function)
    return out


def tool_function(tool: Mapping[str, Any]) -> Mapping[str, Any]:
    return tool.get("function", tool)


@st.composite
def calls_for(draw: st.DrawFn, tool_list: Sequence[Tool], *, max_size: int = 3) -> list[Call]:
    """Calls of tools from ``tool_list`` with schema-valid arguments (required ones always present)."""
    out: list[Call] = []
    for _ in range(draw(st.integers(0, max_size))):
        fn = tool_function(draw(st.sampled_from(list(tool_list))))
        props: Mapping[str, Any] = fn["parameters"]["properties"]
        required = set(fn["parameters"]["required"])
        keys = [k for k in props if k in required or draw(st.booleans())]
        keys = draw(st.permutations(keys))
        out.append((fn["name"], {k: draw_value(draw, props[k]) for k in keys}))
    return out


@st.composite
def tools_and_calls(draw: st.DrawFn) -> tuple[list[Tool], list[Call]]:
    tool_list = draw(tools())
    return tool_list, draw(calls_for(tool_list).filter(bool))


# ------------------------------------------------------------------------------------------------ render


def render_value(value: Any) -> str:
    """A parameter value the way the template writes it: strings raw, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def render_tool_calls(calls: Sequence[Call]) -> str:
    """One tool-call block exactly as the official template writes it (leading ``\\n`` included)."""
    out = ["\n", BLOCK_OPEN, "\n"]
    for name, args in calls:
        out.append(f'<invoke name="{name}">\n')
        out.extend(f'<parameter name="{k}">{render_value(v)}</parameter>\n' for k, v in args.items())
        out.append("</invoke>\n")
    out.append(BLOCK_CLOSE)
    return "".join(out)


# ------------------------------------------------------------------------------------------------ outputs


@dataclass(frozen=True)
class Turn:
    """A generated output and what parsing it (separated mode, with ``tools``) must give back."""

    text: str
    reasoning: str
    content: str
    calls: tuple[Call, ...]
    tools: tuple[Tool, ...]


@st.composite
def template_turns(draw: st.DrawFn) -> Turn:
    """``REASONING\\n</think>\\n\\nCONTENT`` + an optional block, exactly as the template renders a turn."""
    tool_list = draw(tools())
    reasoning = draw(_TRIMMED)
    content = draw(_TRIMMED)
    calls = draw(calls_for(tool_list))
    text = reasoning + "\n" + THINK_CLOSE + "\n\n" + content + (render_tool_calls(calls) if calls else "")
    return Turn(text, reasoning, content, tuple(calls), tuple(tool_list))


@st.composite
def generated_turns(draw: st.DrawFn) -> Turn:
    """Looser well-formed outputs: an optional own ``<think>``, ``\\n`` at the text edges, several blocks,
    text between and after blocks."""
    tool_list = draw(tools())
    lead = draw(st.sampled_from(["", THINK_OPEN + "\n", "\n" + THINK_OPEN + "\n", THINK_OPEN]))
    reasoning = draw(_PLAIN)
    parts = [lead, reasoning, "\n", THINK_CLOSE, "\n\n"]
    between = [draw(_PLAIN)]
    all_calls: list[Call] = []
    for _ in range(draw(st.integers(0, 3))):
        calls = draw(calls_for(tool_list).filter(bool))
        all_calls += calls
        between.append(draw(_PLAIN_SHORT))
        parts += [between[-2], render_tool_calls(calls)]
    parts.append(between[-1])
    content = ("\n\n" + "".join(between)).strip("\n")
    return Turn("".join(parts), reasoning.strip("\n"), content, tuple(all_calls), tuple(tool_list))


def _prefixes(tags: Sequence[str]) -> st.SearchStrategy[str]:
    return st.sampled_from(list(tags)).flatmap(lambda t: st.integers(1, len(t) - 1).map(lambda i: t[:i]))


def hostile_pieces(*, markers: bool = True) -> st.SearchStrategy[str]:
    """One piece of hostile text: free text, a tag, a partial tag, a special bit, rarely a turn marker."""
    pieces = [
        st.text(st.sampled_from(list(HOSTILE_ALPHABET)), max_size=6),
        st.text(max_size=3),
        st.sampled_from(HOSTILE_TAGS),
        st.sampled_from(HOSTILE_TAGS),
        _prefixes(HOSTILE_TAGS),
        st.sampled_from(HOSTILE_BITS),
    ]
    if markers:
        rare = list(TURN_MARKERS) + ["]~b", "[e~", "]~!", "]~"] + [""] * 14
        pieces.append(st.sampled_from(rare))
    return st.one_of(pieces)


def hostile_texts(*, max_pieces: int = 40, markers: bool = True) -> st.SearchStrategy[str]:
    """Arbitrary text interleaved with markup fragments, partial tags and (rarely) turn markers."""
    return st.lists(hostile_pieces(markers=markers), max_size=max_pieces).map("".join)


_INVOKE_OPENS = ('<invoke name="x">', "<invoke name='y' id=2>", "<invoke name = z>", '<invoke\nname="中">', "<invoke>")
_PARAM_NAMES = ("k", "n", "m", "中文", "k")
_PARAM_OPENS = ('<parameter name="{}">', "<parameter name='{}' t=1>", "<parameter name = {}>", "<parameter>")


_NOISE = hostile_texts(max_pieces=3)
_HOSTILE_VALUE = st.one_of(hostile_texts(max_pieces=4, markers=False), _PLAIN_SHORT)
_PIECE = hostile_pieces()


@st.composite
def structured_hostile(draw: st.DrawFn) -> str:
    """Output-shaped hostile text: reasoning, blocks, invokes and parameters in roughly the right order, with
    tags dropped, duplicated names, unquoted or extra attributes, and hostile text everywhere."""
    noise = _NOISE
    out = [draw(noise), draw(st.sampled_from(["\n</think>\n\n", "</think>", ""]))]
    for _ in range(draw(st.integers(0, 2))):
        out += [draw(noise), draw(st.sampled_from(["\n<minimax:tool_call>\n", "<minimax:tool_call>"]))]
        for _ in range(draw(st.integers(0, 2))):
            out += [draw(st.sampled_from(_INVOKE_OPENS)), draw(st.sampled_from(["\n", "", " x "]))]
            for _ in range(draw(st.integers(0, 3))):
                tag = draw(st.sampled_from(_PARAM_OPENS)).format(draw(st.sampled_from(_PARAM_NAMES)))
                value = draw(_HOSTILE_VALUE)
                out += [tag, value, draw(st.sampled_from(["</parameter>\n", "</parameter>", "\n", ""]))]
            out.append(draw(st.sampled_from(["</invoke>\n", "</invoke>", ""])))
        out.append(draw(st.sampled_from(["</minimax:tool_call>", "</minimax:tool_call>\n", ""])))
    out.append(draw(noise))
    return "".join(out)


@st.composite
def mutated_turns(draw: st.DrawFn) -> str:
    """A generated output with hostile pieces inserted, ranges deleted, and possibly cut off."""
    text = draw(generated_turns()).text
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(0, len(text)))
        if draw(st.booleans()):
            text = text[:i] + draw(_PIECE) + text[i:]
        else:
            text = text[:i] + text[i + draw(st.integers(1, 8)) :]
    if draw(st.booleans()):
        text = text[: draw(st.integers(0, len(text)))]
    return text


# ------------------------------------------------------------------------------- issue-9 adversarial classes

MAX_TAG_LENGTH = 4096  # the documented limit of an open tag, '<' to '>' inclusive
CLOSE_FOLLOWERS = ("<parameter", "</invoke>", "<invoke", "</minimax:tool_call>", *TURN_MARKERS)
_BLOCK_HEAD = '\n</think>\n\n<minimax:tool_call>\n<invoke name="x">\n'


@st.composite
def long_tags(draw: st.DrawFn) -> str:
    """An <invoke> or <parameter> open tag padded to around the length limit (accepted or not), in a block."""
    kind = draw(st.sampled_from(["invoke", "parameter"]))
    head = '<invoke name="x"' if kind == "invoke" else '<parameter name="k"'
    length = draw(st.integers(MAX_TAG_LENGTH - 2, MAX_TAG_LENGTH + 2))  # the tag's length with its '>'
    pad = draw(st.sampled_from([" ", "\n", " a=1"]))
    body = (pad * length)[: length - len(head) - 1]
    tag = head + body + draw(st.sampled_from([">", ""]))
    prefix = "\n</think>\n\n<minimax:tool_call>\n" + ('<invoke name="x">\n' if kind == "parameter" else "")
    return prefix + tag + draw(st.sampled_from(["v</parameter>\n</invoke>\n</minimax:tool_call>", " tail", ""]))


@st.composite
def literal_closes(draw: st.DrawFn) -> str:
    """A value with ``</parameter>`` followed by whitespace (around the 64 bound) and then text, a follower,
    or the end of the output: the cases the rule tells apart."""
    parts = [_BLOCK_HEAD, '<parameter name="k">', draw(_PLAIN_SHORT)]
    for _ in range(draw(st.integers(1, 3))):
        space = draw(st.sampled_from([0, 1, 2, 63, 64, 65, 66]))
        parts += ["</parameter>", draw(st.sampled_from([" ", "\n", "\t"])) * space]
        parts.append(draw(st.sampled_from([*CLOSE_FOLLOWERS, "text", "x<", "<p>", "</para", "<param", ""])))
    parts.append(draw(st.sampled_from(["</parameter>\n</invoke>\n</minimax:tool_call>", "</invoke>", ""])))
    return "".join(parts)


@st.composite
def back_to_back_blocks(draw: st.DrawFn) -> str:
    """Tool-call blocks run together or apart, with newlines before, between and after them."""
    parts = ["r\n</think>\n\n", draw(_PLAIN_SHORT)]
    for _ in range(draw(st.integers(1, 3))):
        parts += [draw(st.sampled_from(["", "\n", "\n\n", "x\n"])), "<minimax:tool_call>"]
        parts += [draw(st.sampled_from(["", '\n<invoke name="f">\n<parameter name="k">v</parameter>\n</invoke>\n']))]
        parts.append("</minimax:tool_call>")
    parts.append(draw(st.sampled_from(["", "b", "\nb", "\n"])))
    return "".join(parts)


@st.composite
def dense_markup(draw: st.DrawFn) -> str:
    """What once made the parser quadratic, at small sizes: runs of '<', open tags without '>', leading
    whitespace, marker near misses, literal tags in the wrong state."""
    unit = draw(st.sampled_from(["a<", "<invoke ", "<parameter ", "<parameter  na", "]~x[e~", "</think>", " ", "\n"]))
    where = draw(
        st.sampled_from(["", "r</think>", "<minimax:tool_call>", _BLOCK_HEAD, _BLOCK_HEAD + '<parameter name="k">'])
    )
    return where + unit * draw(st.integers(1, 60))


def adversarial_outputs() -> st.SearchStrategy[str]:
    """The issue-9 input classes: long tags, literal </parameter>, back-to-back blocks, dense markup."""
    return st.one_of(long_tags(), literal_closes(), back_to_back_blocks(), dense_markup())


def any_outputs() -> st.SearchStrategy[str]:
    """Everything: arbitrary text, hostile text, well-formed and mutated outputs, the adversarial classes."""
    return st.one_of(
        st.text(),
        hostile_texts(),
        structured_hostile(),
        generated_turns().map(lambda t: t.text),
        mutated_turns(),
        adversarial_outputs(),
    )


# ----------------------------------------------------------------------------------------------- chunking


def split_text(text: str, points: Sequence[int]) -> list[str]:
    """``text`` cut at ``points`` (sorted or not, repeats give empty chunks)."""
    cuts = [0, *sorted(points), len(text)]
    return [text[a:b] for a, b in pairwise(cuts)]


def chunkings(text: str) -> st.SearchStrategy[list[str]]:
    """Ways to deliver ``text`` as deltas: one char at a time, or cut at random points (empty chunks too)."""
    by_char = st.just([text[i : i + 1] for i in range(len(text))])
    small = st.integers(1, 5).map(lambda n: [text[i : i + n] for i in range(0, len(text), n)])
    random_points = st.lists(st.integers(0, len(text)), max_size=min(len(text) + 2, 30))
    return st.one_of(by_char, small, random_points.map(lambda pts: split_text(text, pts)))
