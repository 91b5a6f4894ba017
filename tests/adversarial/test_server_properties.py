"""Properties of the server's own input handling, over generated hostile inputs (no HTTP: the functions the
HTTP tests reach, checked on many more cases)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("httpx")
pytest.importorskip("starlette")

from m2parse.backends.base import BackendError, one_line, stop_strings
from m2parse.backends.client import capped_lines
from m2parse.events import (
    ContentDelta,
    ProblemFound,
    ReasoningDelta,
    ToolCallArgumentsDelta,
    ToolCallEnd,
    ToolCallStart,
)
from m2parse.format import STOP_STRINGS
from m2parse.problems import Problem
from m2parse.server.chat import surrogate_path
from m2parse.server.streaming import ChunkWriter, DeltaWriter

from ..strategies import chunkings

#: text with line breaks of every kind, surrogate-free and lone-surrogate characters, controls
HOSTILE_CHARS = st.sampled_from(["a", "é", "\n", "\r", "\r\n", "\x00", "\x1b", "\u2028", "\ud800", "\udfff", " "])
hostile_strings = st.lists(HOSTILE_CHARS, max_size=30).map("".join)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | hostile_strings,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_strings, inner, max_size=4),
    max_leaves=30,
)


def encodable(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


@given(json_values)
def test_surrogate_path_finds_exactly_what_utf8_cannot_carry(value: Any) -> None:
    assert (surrogate_path(value) is None) == encodable(value)


def test_surrogate_path_names_nested_fields() -> None:
    body = {"messages": [{"content": "ok"}, {"content": [{"type": "text", "text": "x\udc00"}]}]}
    assert surrogate_path(body) == "messages[1].content[0].text"
    assert surrogate_path({"a": {"k\ud800": 1}}) == "a.k\ud800"
    deep: Any = "\ud800"
    for _ in range(100_000):
        deep = [deep]
    assert surrogate_path(deep) == "[0]" * 100_000


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def lines_of(parts: list[bytes], limit: int = 10**9) -> list[str]:
    async def collect() -> list[str]:
        return [line async for lines in capped_lines(_chunks(parts), limit) for line in lines]

    return asyncio.run(collect())


@given(
    st.lists(st.sampled_from(["data: x", "é", "\r", "\n", "\r\n", ":", " ", "\ud7ff"]), max_size=40).map("".join),
    st.data(),
)
def test_backend_lines_do_not_depend_on_the_chunking(text: str, data: st.DataObject) -> None:
    """Lines end at CRLF, LF or CR (as SSE says), whatever the network cut, also inside a CRLF or a character."""
    raw = text.encode()
    expected = re.split(r"\r\n|\r|\n", text)
    if expected and expected[-1] == "":
        expected.pop()
    cuts = data.draw(chunkings(raw.decode("latin-1")))
    assert lines_of([part.encode("latin-1") for part in cuts]) == expected


def test_a_line_over_the_cap_is_a_protocol_error_before_it_is_held_whole() -> None:
    assert lines_of([b"x" * 100, b"\n", b"y" * 10, b"\n"], limit=100) == ["x" * 100, "y" * 10]
    with pytest.raises(BackendError) as info:
        lines_of([b"x" * 60, b"x" * 60], limit=100)
    assert info.value.kind == "protocol"
    produced: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        while True:
            produced.append(1)
            yield b"z" * 1000

    async def run() -> None:
        async for _ in capped_lines(endless(), 10_000):
            pass

    with pytest.raises(BackendError):
        asyncio.run(run())
    assert len(produced) == 11


@given(hostile_strings, st.integers(1, 50))
def test_one_line_is_one_bounded_encodable_line(text: str, limit: int) -> None:
    out = one_line(text * 3, limit)
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", out)
    out.encode()
    assert len(out) <= limit * 6 + 40  # each kept character escaped at most as \uXXXX, plus the count


@given(st.lists(st.sampled_from(["a", "b", "", "[e~[", "]~b]", "stop"]), max_size=30))
def test_stop_strings_keep_first_seen_order_without_duplicates(stops: list[str]) -> None:
    out = stop_strings(stops)
    assert out[: len(STOP_STRINGS)] == list(STOP_STRINGS)
    assert len(out) == len(set(out)) and "" not in out
    assert [s for s in out if s not in STOP_STRINGS] == list(
        dict.fromkeys(s for s in stops if s and s not in STOP_STRINGS)
    )


EVENT = st.one_of(
    st.builds(ContentDelta, hostile_strings.map(lambda s: s.encode("utf-8", "replace").decode())),
    st.builds(ReasoningDelta, st.sampled_from(["r", "", "think"])),
    st.just(ProblemFound(Problem("stray_text", "x", 0))),
)


def _call(index: int, fragments: list[str], truncated: bool) -> list[Any]:
    return [
        ToolCallStart(index, f"call_{index}", "f"),
        *(ToolCallArgumentsDelta(index, f) for f in fragments),
        ToolCallEnd(index, {}, "".join(fragments), truncated),
    ]


@given(
    st.lists(
        st.one_of(
            EVENT.map(lambda e: [e]),
            st.tuples(st.lists(st.sampled_from(['{"a', '": 1', "}"]), max_size=4), st.booleans()),
        ),
        max_size=20,
    ),
    st.booleans(),
    st.data(),
)
def test_delta_writer_joins_runs_and_withholds_cut_calls(items: list[Any], hold: bool, data: st.DataObject) -> None:
    """Whatever way the events are split into pieces, the chunks carry the same text, a held call is sent whole,
    and a truncated call is never sent when calls are held."""
    events: list[Any] = []
    index = 0
    for item in items:
        if isinstance(item, list):
            events += item
        else:
            events += _call(index, item[0], item[1])
            index += 1
    writer = DeltaWriter(ChunkWriter("id", "m", include_usage=False), "reasoning_content", hold_calls=hold)
    cut = sorted(set(data.draw(st.lists(st.integers(0, len(events)), max_size=5))))
    pieces = [events[a:b] for a, b in zip([0, *cut], [*cut, len(events)], strict=True)]
    chunks = [json.loads(line[6:]) for piece in pieces for line in writer.render(piece).decode().split("\n\n") if line]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    content = "".join(d.get("content", "") for d in deltas)
    assert content == "".join(e.text for e in events if isinstance(e, ContentDelta))
    sent_calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d and "id" in d["tool_calls"][0]]
    ends = [e for e in events if isinstance(e, ToolCallEnd)]
    expected = [e.index for e in ends if not (hold and e.truncated)]
    assert [c["index"] for c in sent_calls] == expected
    for end in ends:
        arguments = "".join(
            d["tool_calls"][0]["function"]["arguments"]
            for d in deltas
            if "tool_calls" in d and d["tool_calls"][0]["index"] == end.index
        )
        assert arguments == ("" if hold and end.truncated else end.arguments_json)
    if hold:
        assert all(len(piece_chunks) <= len(events) for piece_chunks in [chunks])
