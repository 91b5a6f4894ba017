"""Parser input families: each class of input that once made the parser re-scan or copy its buffer.

Every family is run whole (``parse``) and, where the streaming path differs, streamed in small deltas. The
deltas are cut in ``build`` (untimed), so the timed work is the parser's alone.
"""

from __future__ import annotations

from collections.abc import Callable

from m2parse.parser import StreamParser, parse

from .common import Family

TOOLS = [
    {
        "name": "write_file",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "content": {"type": "string"}, "data": {"type": "object"}},
        },
    }
]
BLOCK = "<minimax:tool_call>"
CALL = 'ok\n</think>\n\n<minimax:tool_call>\n<invoke name="write_file">\n'
CLOSE = "</invoke>\n</minimax:tool_call>"
CODE_LINE = "    if a < b and c[0] > d: x = f'<p>{a}</p>'  # ~ [e] ]~\n"


def _whole(text: str) -> object:
    return parse(text, TOOLS, validate=False)


def _stream(deltas: list[str]) -> object:
    parser = StreamParser(TOOLS, validate=False)
    feed = parser.feed
    for delta in deltas:
        feed(delta)
    parser.finish()
    return parser.result


def _cut(step: int) -> Callable[[str], list[str]]:
    return lambda text: [text[i : i + step] for i in range(0, len(text), step)]


def _pair(
    name: str, make: Callable[[int], str], n: int, quick_n: int, step: int | None = 4, whole_scale: int = 1
) -> list[Family]:
    """The family whole (at ``whole_scale`` times the sizes: whole text is cheaper per character; 0: not run
    whole), and streamed in ``step``-character deltas (None: whole only)."""
    out = (
        [Family(f"parser: {name}, whole", make, _whole, n * whole_scale, quick_n * whole_scale)] if whole_scale else []
    )
    if step is not None:
        cut = _cut(step)
        out.append(Family(f"parser: {name}, {step}-char deltas", lambda k: cut(make(k)), _stream, n, quick_n))
    return out


def _value(body: str, key: str = "content") -> str:
    return f'{CALL}<parameter name="{key}">{body}</parameter>\n{CLOSE}'


def _calls(body: str) -> str:
    return CALL.replace('<invoke name="write_file">\n', "") + body + "</minimax:tool_call>"


PADDED_INVOKE = '<invoke name="write_file"' + " " * 4000 + "></invoke>"
SMALL_CALL = '<invoke name="write_file"><parameter name="path">a.py</parameter></invoke>\n'

# Quick sizes: the tag families need n * 8 past the 4096-character tag window (the last window is decided
# at finish, in one step), and every small run should take a few milliseconds so that the ratio is stable.
FAMILIES: list[Family] = [
    Family("parser: leading whitespace, 1-char deltas", lambda n: [" "] * n, _stream, 100_000, 6_000),
    Family("parser: leading newlines, 1-char deltas", lambda n: ["\n"] * n + list("<thi"), _stream, 100_000, 6_000),
    *_pair("'a<' inside a tool-call block", lambda n: BLOCK + "a<" * n, 100_000, 3_000, whole_scale=30),
    *_pair("'<invoke ' inside a block", lambda n: BLOCK + "<invoke " * n, 50_000, 2_000),
    *_pair("'<parameter ' inside an invoke", lambda n: CALL + "<parameter " * n, 50_000, 2_000),
    *_pair(
        "long value with literal </parameter>",
        lambda n: _value("".join(f"<a>{i}</parameter> done\n" for i in range(n))),
        50_000,
        500,
        whole_scale=4,
    ),
    *_pair(
        "</parameter> + 64 spaces + text",
        lambda n: _value(("</parameter>" + " " * 64 + "x") * n),
        20_000,
        200,
        whole_scale=8,
    ),
    *_pair("code value (<, [, ], ~ everywhere)", lambda n: _value(CODE_LINE * n), 20_000, 300, whole_scale=40),
    *_pair(
        "'<parameter  na' near misses in a value", lambda n: _value("<parameter  na " * n), 50_000, 500, whole_scale=8
    ),
    *_pair("open tags padded close to the 4096 limit", lambda n: _calls(PADDED_INVOKE * n), 100, 16, step=16),
    *_pair("reasoning of newlines", lambda n: "a" + "\n" * n + "b", 200_000, 5_000, step=1, whole_scale=0),
    *_pair("reasoning lines 'a\\n'", lambda n: "a\n" * n, 100_000, 4_000, step=1, whole_scale=0),
    *_pair("literal </think> in content", lambda n: "r</think>" + "</think>x" * n, 50_000, 500),
    *_pair("</minimax:tool_call> in reasoning", lambda n: "</minimax:tool_call>" * n, 50_000, 1_000),
    *_pair("marker near misses ']~x[e~'", lambda n: "r</think>" + "]~x[e~" * n, 50_000, 1_000, whole_scale=200),
    *_pair("marker near misses in a block", lambda n: BLOCK + "]~x[e~" * n, 50_000, 500, whole_scale=40),
    *_pair(
        "object value, not streamed",
        lambda n: _value('{"k": [' + "1, " * n + "2]}", key="data"),
        100_000,
        3_000,
        whole_scale=10,
    ),
    *_pair("many small calls", lambda n: _calls(SMALL_CALL * n), 20_000, 100),
]

# ---------------------------------------------------------------------------------------------- MiniMax-M3
# The M3 value scanner: namespace tokens everywhere, tags that never close, nesting past the builder's depth.
NS = "]<]minimax[>["
M3_CALL = f'</mm:think>{NS}<tool_call>\n{NS}<invoke name="write_file">'
M3_CLOSE = f"{NS}</invoke>\n{NS}</tool_call>"


def _m3_whole(text: str) -> object:
    return parse(text, TOOLS, validate=False, format="m3")


def _m3_stream(deltas: list[str]) -> object:
    parser = StreamParser(TOOLS, validate=False, format="m3")
    feed = parser.feed
    for delta in deltas:
        feed(delta)
    parser.finish()
    return parser.result


def _m3_value(body: str, key: str = "data") -> str:
    return f"{M3_CALL}{NS}<{key}>{body}{NS}</{key}>{M3_CLOSE}"


def _m3_pair(name: str, make: Callable[[int], str], n: int, quick_n: int, step: int = 4) -> list[Family]:
    cut = _cut(step)
    return [
        Family(f"parser m3: {name}, whole", make, _m3_whole, n, quick_n),
        Family(f"parser m3: {name}, {step}-char deltas", lambda k: cut(make(k)), _m3_stream, n, quick_n),
    ]


FAMILIES += [
    *_m3_pair("deep nesting", lambda n: _m3_value(f"{NS}<k>" * n + "v" + f"{NS}</k>" * n), 20_000, 500),
    *_m3_pair("namespace tokens opening no tag", lambda n: _m3_value(NS * n, key="content"), 20_000, 500),
    *_m3_pair("cut namespace tokens ']<]mini'", lambda n: _m3_value("]<]mini" * n, key="content"), 50_000, 1_000),
    *_m3_pair("tags never closed '<a' + token", lambda n: _m3_value(f"{NS}<a" * n), 20_000, 500),
    *_m3_pair(
        "many keys in one object",
        lambda n: _m3_value("".join(f"{NS}<k{i}>{i}{NS}</k{i}>" for i in range(n))),
        20_000,
        300,
    ),
]

M3_PADDED = f"{NS}<{'k' * 4000}>v{NS}</{'k' * 4000}>"
FAMILIES += [
    *_m3_pair("element tags padded close to the 4096 limit", lambda n: _m3_value(M3_PADDED * n), 100, 16, step=16),
    *_m3_pair(
        "unclosed element tags between arguments",
        lambda n: M3_CALL + f"{NS}<{'a' * 50}" * n + M3_CLOSE,
        20_000,
        500,
    ),
]
