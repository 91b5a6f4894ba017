"""Server-side input families: the per-request and per-chunk work of ``m2parse.server`` and the backend client,
timed as plain function calls (no HTTP), each at n and 10n.

Needs the ``[server]`` extra (httpx, starlette); without it the area has no families.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from m2parse.backends.base import SSEParser, StopTrimmer, stop_strings
from m2parse.backends.client import capped_lines
from m2parse.events import ContentDelta, Event, ProblemFound, ToolCallArgumentsDelta, ToolCallEnd, ToolCallStart
from m2parse.parser import StreamParser
from m2parse.problems import Problem
from m2parse.server.chat import decode_body, parse_request, surrogate_path
from m2parse.server.config import ServerConfig
from m2parse.server.streaming import ChunkWriter, DeltaWriter

from .common import Family

CONFIG = ServerConfig(backend_url="http://127.0.0.1:9")


def _writer(hold_calls: bool = True) -> DeltaWriter:
    return DeltaWriter(
        ChunkWriter("chatcmpl-bench", "m", include_usage=False), "reasoning_content", hold_calls=hold_calls
    )


def _think_events(n: int) -> list[Event]:
    """What one backend piece of n × ``x</think>`` yields after the reasoning ended: alternating text and
    problems (each stray ``</think>`` is literal text, reported)."""
    problem = ProblemFound(Problem("unexpected_tag", "stray </think>", 0))
    out: list[Event] = []
    for _ in range(n):
        out += [ContentDelta("x"), problem, ContentDelta("</think>")]
    return out


def _call_events(n: int) -> list[Event]:
    out: list[Event] = [ToolCallStart(0, "call_0", "write_file")]
    out += [ToolCallArgumentsDelta(0, "ab") for _ in range(n)]
    out.append(ToolCallEnd(0, {}, "{}", False))
    return out


def _piece_through_parser(n: int) -> str:
    return "done\n</think>\n" + "x</think>" * n


def _parse_and_merge(text: str) -> bytes:
    parser = StreamParser()
    return _writer().render(parser.feed(text))


def _stops(n: int) -> list[str]:
    return [f"stop{i % (n // 2 + 1)}" for i in range(n)]


def _trim(pieces: list[str]) -> str:
    trimmer = StopTrimmer(tuple(stop_strings(["Observation:", "\n\nUser:"])))
    return "".join(trimmer.feed(piece) for piece in pieces) + trimmer.flush()


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _lines(args: tuple[bytes, int]) -> int:
    data, size = args

    async def count() -> int:
        return sum([len(lines) async for lines in capped_lines(_chunks(data, size), len(data) + 1)])

    return asyncio.run(count())


def _sse_one_event(lines: list[str]) -> Any:
    parser = SSEParser(max_chars=10**9)
    for line in lines:
        parser.feed_line(line)
    return parser.close()


def _body(n: int) -> bytes:
    """A chat of n turns, the last user text full of emoji (surrogate-pair escapes: the walk runs)."""
    messages: list[dict[str, Any]] = []
    for i in range(n):
        messages.append({"role": "user", "content": f"question {i} \U0001f600"})
        messages.append({"role": "assistant", "content": f"answer {i}"})
    messages.append({"role": "user", "content": "go"})
    return json.dumps({"model": "m", "messages": messages, "stop": _stops(n)}).encode()


def _nested(n: int) -> Any:
    value: Any = "leaf"
    for _ in range(n):
        value = {"k": [value, "x"]}
    return value


# Sizes: each n run takes some tens of milliseconds, so that on a shared machine both runs span many scheduler
# slices (a run shorter than one slice is not interrupted, and the ratio would overstate the larger one).
FAMILIES = [
    Family("server: merge events of n x '</think>'", _think_events, _writer().render, 60_000, 20_000),
    Family("server: parse+merge one piece n x '</think>'", _piece_through_parser, _parse_and_merge, 4_000, 1_000),
    Family("server: held call, n argument fragments", _call_events, _writer().render, 100_000, 40_000),
    Family(
        "server: streamed call, n argument fragments", _call_events, _writer(hold_calls=False).render, 100_000, 40_000
    ),
    # half of the stops distinct; kept small so that the table fits the CPU caches at 10n too: past them every
    # insert is a memory miss and the ratio times the memory hierarchy (200k -> 2M stops gives 60 on a linear
    # dict insert), not the algorithm (the quadratic dedupe this replaced gives about 100 here)
    Family("server: stop-list dedupe, n stops", _stops, stop_strings, 5_000, 5_000),
    Family("server: stop trimmer, n pieces", lambda n: ["abc Observ", "ation? no "] * n, _trim, 4_000, 1_000),
    Family("server: backend lines, one n-byte line", lambda n: (b"x" * n + b"\n", 65536), _lines, 4_000_000, 1_000_000),
    Family("server: backend lines, n short lines", lambda n: (b"data: x\r\n" * n, 65536), _lines, 50_000, 10_000),
    Family("server: SSE event of n data lines", lambda n: ["data: abc"] * n, _sse_one_event, 50_000, 10_000),
    Family("server: decode+surrogate walk, n turns", _body, decode_body, 6_000, 3_000),
    Family(
        "server: validate request, n turns",
        lambda n: json.loads(_body(n)),
        lambda b: parse_request(b, CONFIG),
        6_000,
        3_000,
    ),
    Family("server: surrogate walk, n deep", _nested, surrogate_path, 20_000, 5_000),
]
