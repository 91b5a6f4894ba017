"""The TGI helpers against a real HTTP server speaking TGI's ``/generate_stream`` SSE framing (the shared fake
backend: one token per event, markers as ``special: true`` tokens, the EOS token last, ``generated_text`` with the
special tokens skipped), read through huggingface_hub's clients and through raw SSE lines."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
from huggingface_hub import AsyncInferenceClient, InferenceClient

from m2parse import ParsedMessage, StreamParser, parse, sequential_ids
from m2parse.backends import BackendError
from m2parse.integrations.tgi import aiter_events, aiter_sse_events, iter_events, iter_sse_events

from .fake_backends import backend
from .fixture_loader import Fixture, all_fixtures, load_fixture

FIXTURES = all_fixtures()


@pytest.fixture(scope="module")
def tgi() -> Iterator[str]:
    with backend("tgi") as url:
        yield url


def prompt(name: str, pieces: str = "token", **extra: str) -> str:
    directive = " ".join([f"fixture={name}", f"pieces={pieces}", *(f"{k}={v}" for k, v in extra.items())])
    return f"]~b]user\nhi[e~[\n]~b]ai\n<think>\n [[fake {directive}]]"


def new_parser(fx: Fixture) -> StreamParser:
    return StreamParser(fx.tools, id_factory=sequential_ids(), **fx.options)


def reference(fx: Fixture) -> ParsedMessage:
    return parse(fx.text, fx.tools, id_factory=sequential_ids(), **fx.options)


@pytest.mark.parametrize("fx", FIXTURES, ids=lambda fx: fx.name)
def test_inference_client_stream_equals_parse(tgi: str, fx: Fixture) -> None:
    client = InferenceClient(model=tgi + "/generate_stream")
    stream = client.text_generation(prompt(fx.name), stream=True, details=True, max_new_tokens=4096)
    parser = new_parser(fx)
    events = list(iter_events(stream, parser))
    assert parser.result == reference(fx)
    assert events and parser.done


@pytest.mark.parametrize("pieces", ["token", "char"])
@pytest.mark.parametrize("fx", FIXTURES, ids=lambda fx: fx.name)
def test_raw_sse_lines_equal_parse(tgi: str, fx: Fixture, pieces: str) -> None:
    body = {"inputs": prompt(fx.name, pieces), "parameters": {"details": True, "max_new_tokens": 4096}}
    parser = new_parser(fx)
    with httpx.Client(timeout=30) as client, client.stream("POST", tgi + "/generate_stream", json=body) as response:
        response.raise_for_status()
        list(iter_sse_events(response.iter_lines(), parser))
    assert parser.result == reference(fx)


def test_generated_text_has_lost_the_markers(tgi: str) -> None:
    """Why the helpers rebuild the text from the tokens: TGI's own ``generated_text`` cannot be parsed."""
    fx = load_fixture("weather_basic")
    client = InferenceClient(model=tgi + "/generate_stream")
    outputs = list(client.text_generation(prompt(fx.name), stream=True, details=True))
    assert "</think>" not in outputs[-1].generated_text
    assert not parse(outputs[-1].generated_text, fx.tools).tool_calls
    assert any(o.token.special for o in outputs)
    parser = new_parser(fx)
    list(iter_events(outputs, parser))
    assert parser.result.tool_calls == reference(fx).tool_calls


def test_without_details_the_eos_token_is_a_turn_marker(tgi: str) -> None:
    fx = load_fixture("weather_basic")
    client = InferenceClient(model=tgi + "/generate_stream")
    tokens = list(client.text_generation(prompt(fx.name), stream=True))
    assert all(isinstance(t, str) for t in tokens) and tokens[-1] == "[e~["
    parser = new_parser(fx)
    list(iter_events(tokens, parser))
    want = reference(fx)
    assert (parser.result.content, parser.result.tool_calls) == (want.content, want.tool_calls)
    assert [p.code for p in parser.result.problems] == ["turn_marker"]


def test_events_as_dicts(tgi: str) -> None:
    fx = load_fixture("chinese_text")
    body = {"inputs": prompt(fx.name), "parameters": {"details": True}}
    with httpx.Client(timeout=30) as client, client.stream("POST", tgi + "/generate_stream", json=body) as response:
        dicts = [json.loads(line[len("data:") :]) for line in response.iter_lines() if line.startswith("data:")]
    parser = new_parser(fx)
    list(iter_events(dicts, parser))
    assert parser.result == reference(fx)


def test_async_clients(tgi: str) -> None:
    fx = load_fixture("parallel_calls_one_block")

    async def run() -> tuple[ParsedMessage, ParsedMessage]:
        client = AsyncInferenceClient(model=tgi + "/generate_stream")
        stream = await client.text_generation(prompt(fx.name), stream=True, details=True)
        first = new_parser(fx)
        async for _ in aiter_events(stream, first):
            pass
        second = new_parser(fx)
        body = {"inputs": prompt(fx.name, "char"), "parameters": {"details": True}}
        async with httpx.AsyncClient(timeout=30) as http, http.stream("POST", tgi + "/generate_stream", json=body) as r:
            async for _ in aiter_sse_events(r.aiter_lines(), second):
                pass
        return first.result, second.result

    first, second = asyncio.run(run())
    assert first == second == reference(fx)


def test_stop_sequences_are_cut_off(tgi: str) -> None:
    """TGI keeps the matched stop sequence in its output; the helper removes it, as a stop should."""
    fx = load_fixture("no_tool_call_plain_answer")
    stop = fx.text[len(fx.text) // 2 : len(fx.text) // 2 + 6]
    client = InferenceClient(model=tgi + "/generate_stream")
    stream = client.text_generation(prompt(fx.name), stream=True, details=True)
    parser = new_parser(fx)
    list(iter_events(stream, parser, stop=[stop]))
    cut = fx.text[: fx.text.index(stop)]
    assert parser.result == parse(cut, fx.tools, id_factory=sequential_ids(), **fx.options)


def test_in_band_errors_raise(tgi: str) -> None:
    body = {"inputs": prompt("weather_basic", fault="error_event", fault_after="3"), "parameters": {}}
    with httpx.Client(timeout=30) as http, http.stream("POST", tgi + "/generate_stream", json=body) as response:
        lines = list(response.iter_lines())
    with pytest.raises(BackendError, match="fake"):
        list(iter_sse_events(lines, StreamParser()))
