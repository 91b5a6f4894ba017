"""Helpers for the concurrent-stream load tests (test_server_load.py, test_workers.py): the request plan, each
request's expected summary, and the concurrent run through the official openai SDK.

Each request replays a distinct output: the fixtures as they are, then the same fixtures with a unique prefix
(``req123 ``) and a different piece size, so a chunk delivered to the wrong stream cannot go unnoticed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from m2parse import parse

from . import fake_backends
from .fixture_loader import Fixture

openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")
from openai.lib.streaming.chat import ChatCompletionStreamState  # noqa: E402

CONCURRENCY = 200
PIECES = ("token", "char", "2", "7")


def plan(i: int, fixtures: list[Fixture]) -> tuple[Fixture, str, str]:
    """(fixture, prefix, pieces) for request ``i``: all distinct texts."""
    fixture = fixtures[i % len(fixtures)]
    prefix = "" if i < len(fixtures) else f"req{i:03d} "
    return fixture, prefix, PIECES[i % len(PIECES)] if prefix else "token"


def expected_summary(fixture: Fixture, prefix: str) -> dict[str, Any]:
    result = parse(prefix + fixture.text, fixture.tools, **fixture.options)
    if not prefix:  # the fixture's own hand-written expectation must agree
        assert result.content == (fixture.expected["content"] or "")
        assert result.reasoning_content == fixture.expected["reasoning_content"]
    truncated = fake_backends.fixture_is_truncated(fixture.name)
    return {
        "content": result.content or None,
        "reasoning_content": result.reasoning_content,
        # a call cut off by the token limit is withheld from tool_calls (issue 14; it is in the extension)
        "tool_calls": [(c.name, c.arguments_json) for c in result.tool_calls if not c.truncated],
        "finish_reason": "length" if truncated else ("tool_calls" if result.tool_calls else "stop"),
        "problems": [p.code for p in result.problems],
    }


async def one_stream(client: Any, i: int, fixtures: list[Fixture]) -> tuple[dict[str, Any], int, float]:
    fixture, prefix, pieces = plan(i, fixtures)
    directive = f"[[fake fixture={fixture.name} pieces={pieces} delay=0.001 tag=load{i}"
    if prefix:
        directive += f" prefix={prefix.replace(' ', '%20')}"
    args: dict[str, Any] = {
        "model": "MiniMax-M2",
        "messages": [{"role": "user", "content": f"request {i} {directive}]]"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if fixture.tools:
        args["tools"] = fixture.tools
    if fixture.options:
        args["extra_body"] = {"m2parse": fixture.options}
    state = ChatCompletionStreamState()
    chunks = 0
    finish_at = 0.0
    problems: list[str] = []
    async for chunk in await client.chat.completions.create(**args):
        chunks += 1
        state.handle_chunk(chunk)
        if chunk.choices and chunk.choices[0].finish_reason:
            finish_at = time.monotonic()
            problems = [p["code"] for p in chunk.choices[0].model_extra["m2parse"]["problems"]]
    choice = state.current_completion_snapshot.choices[0]
    message = choice.message
    got = {
        "content": message.content,
        "reasoning_content": (message.model_extra or {}).get("reasoning_content"),
        "tool_calls": [(c.function.name, c.function.arguments) for c in message.tool_calls or []],
        "finish_reason": choice.finish_reason,
        "problems": problems,
    }
    return got, chunks, finish_at


async def run_all(server_url: str, fixtures: list[Fixture]) -> tuple[list[tuple[dict[str, Any], int, float]], float]:
    limits = httpx.Limits(max_connections=CONCURRENCY + 10, max_keepalive_connections=CONCURRENCY + 10)
    async with httpx.AsyncClient(limits=limits, timeout=120) as http:
        client = openai.AsyncOpenAI(base_url=server_url + "/v1", api_key="x", http_client=http, max_retries=0)
        start = time.monotonic()
        results = await asyncio.gather(*(one_stream(client, i, fixtures) for i in range(CONCURRENCY)))
        return list(results), time.monotonic() - start
