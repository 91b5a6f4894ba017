"""The official ``openai`` SDK against ``m2parse serve`` in front of a real llama-server, through both of
m2parse's ways to reach it: the native ``/completion`` (``--backend-type llamacpp``) and the OpenAI-style
``/v1/completions`` (``--backend-type openai``).

The engine writes a chosen fixture output, forced by a GBNF grammar that the request passes through
``m2parse.backend_extra``; every reply must equal the parse of exactly what the engine wrote (``cases.py``).
Each output is asked for three ways: ``create()``, ``create(stream=True)`` accumulated by the SDK's own
``ChatCompletionStreamState``, and the SDK's ``.stream()`` helper.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState

from .. import model_kit as kit
from .cases import FORCED, LONG, Reply, expected_reply, fixture, forced_prefixes, reply_of
from .grammar import exact_text
from .processes import ALIAS, BACKEND_TYPES, ENGINE_MARKS, READY_TIMEOUT, Running

pytestmark = ENGINE_MARKS
MODES = ("create", "stream", "helper")
USER = [{"role": "user", "content": "Go ahead."}]


def client(server: Running) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", timeout=READY_TIMEOUT, max_retries=0)


def forcing(text: str) -> dict[str, Any]:
    """``extra_body`` that makes the engine write ``text``: the grammar, passed through to the backend request."""
    return {"m2parse": {"backend_extra": {"grammar": exact_text(text)}}}


def ask(server: Running, mode: str, **args: Any) -> Reply:
    """One chat request in the given SDK mode, as a Reply (the stream's problems come from its last chunk)."""
    # None means "not sent" (the SDK's .stream() refuses tools=None)
    args = {"model": "MiniMax-M2", "temperature": 0, **{k: v for k, v in args.items() if v is not None}}
    sdk = client(server).chat.completions
    if mode == "create":
        return reply_of(sdk.create(**args).choices[0])
    if mode == "stream":
        state = ChatCompletionStreamState()
        finish_chunk = None
        for chunk in sdk.create(**args, stream=True):
            state.handle_chunk(chunk)
            if chunk.choices and chunk.choices[0].finish_reason:
                finish_chunk = chunk
        assert finish_chunk is not None
        snapshot = state.current_completion_snapshot  # get_final_completion() raises on "length"
        return reply_of(snapshot.choices[0], finish_chunk.choices[0].model_extra["m2parse"])
    with sdk.stream(**args) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    return reply_of(final.choices[0], {})


def same(got: Reply, want: Reply, mode: str) -> None:
    assert got == (want.without_extension() if mode == "helper" else want)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", BACKEND_TYPES)
@pytest.mark.parametrize("name", sorted(FORCED))
def test_forced_output_equals_its_parse(serve: dict[str, Running], name: str, kind: str, mode: str) -> None:
    case = fixture(name)
    got = ask(serve[kind], mode, messages=USER, tools=case.tools, extra_body=forcing(case.text))
    same(got, expected_reply(case.text, case.tools), mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", BACKEND_TYPES)
def test_no_max_tokens_yields_the_whole_output(serve: dict[str, Running], kind: str, mode: str) -> None:
    """A long output (hundreds of tokens) with no max_tokens: whole, not cut at an engine default."""
    case = fixture(LONG)
    got = ask(serve[kind], mode, messages=USER, tools=case.tools, extra_body=forcing(case.text))
    same(got, expected_reply(case.text, case.tools), mode)
    assert got.finish_reason == "tool_calls"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", BACKEND_TYPES)
def test_multi_turn_history(serve: dict[str, Running], kind: str, mode: str) -> None:
    """A conversation with an earlier call, its result and a reply, then the forced next turn."""
    first, second = fixture("content_after_block"), fixture("parallel_calls_one_block")
    earlier = expected_reply(first.text, first.tools)
    history = [
        {"role": "system", "content": "You are a helpful agent."},
        {"role": "user", "content": "Build the release."},
        {
            "role": "assistant",
            "content": earlier.content,
            "reasoning_content": earlier.reasoning_content,
            "tool_calls": [
                {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
                for i, (n, a) in enumerate(earlier.tool_calls)
            ],
        },
        {"role": "tool", "tool_call_id": "call_0", "content": "started, pid 4242"},
        {"role": "assistant", "content": "The build is running."},
        {"role": "user", "content": "And the weather in Tokyo and Osaka?"},
    ]
    tools = [*(first.tools or []), *(second.tools or [])]
    got = ask(serve[kind], mode, messages=history, tools=tools, extra_body=forcing(second.text))
    same(got, expected_reply(second.text, tools), mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", BACKEND_TYPES)
def test_truncation_by_max_tokens(serve: dict[str, Running], kit_dir: Path, kind: str, mode: str) -> None:
    """max_tokens cuts the forced output inside the first call: finish_reason "length", the parse of the
    prefix, and the cut-off call only in ``m2parse.truncated_tool_calls``. The SDK's .stream() helper raises."""
    case = fixture("parallel_calls_one_block")
    # the first token count whose output ends a few characters into the first call's first value
    value_at = case.text.index("Tokyo, Japan")
    prefixes = forced_prefixes(kit_dir, case.text)
    n_tokens = next(n for n, text in enumerate(prefixes, 1) if len(text) > value_at + 2)
    prefix = prefixes[n_tokens - 1]
    assert "</parameter>" not in prefix
    args = {"messages": USER, "tools": case.tools, "max_tokens": n_tokens, "extra_body": forcing(case.text)}
    if mode == "helper":
        with pytest.raises(openai.LengthFinishReasonError):
            ask(serve[kind], mode, **args)
        return
    got = ask(serve[kind], mode, **args)
    same(got, expected_reply(prefix, case.tools, hit_limit=True), mode)
    assert got.finish_reason == "length" and got.tool_calls == ()
    assert [name for name, _ in got.truncated_calls] == ["get_weather"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", BACKEND_TYPES)
def test_stop_strings(serve: dict[str, Running], kind: str, mode: str) -> None:
    """A stop string ends the output before it (the engine drops the match)."""
    case = fixture("parallel_calls_one_block")
    stop = "Osaka"
    got = ask(serve[kind], mode, messages=USER, tools=case.tools, stop=[stop], extra_body=forcing(case.text))
    same(got, expected_reply(case.text[: case.text.index(stop)], case.tools), mode)
    assert got.finish_reason == "stop"


def slots_idle(llama: Running) -> bool:
    return not any(slot.get("is_processing") for slot in httpx.get(llama.url + "/slots", timeout=30).json())


def decode_calls(llama: Running) -> float:
    """llama-server's count of llama_decode() calls (one per generated token with one slot), from /metrics."""
    for line in httpx.get(llama.url + "/metrics", timeout=30).text.splitlines():
        if line.startswith("llamacpp:n_decode_total"):
            return float(line.split()[-1])
    raise AssertionError("no llamacpp:n_decode_total in /metrics")


@pytest.mark.parametrize("kind", BACKEND_TYPES)
def test_client_disconnect_mid_stream(serve: dict[str, Running], llama: Running, kit_dir: Path, kind: str) -> None:
    """The client drops a stream after a few chunks: the engine stops generating (far fewer decode steps than
    the forced output has tokens), and the next request gets its whole answer."""
    long_case = fixture(LONG)
    endless = long_case.text * 3  # more than the context holds: left alone, it runs until the context is full
    one_copy = len(kit.longest_prefix_ids(kit_dir, long_case.text))
    assert slots_idle(llama)
    before = decode_calls(llama)
    stream = client(serve[kind]).chat.completions.create(
        model="MiniMax-M2", messages=USER, tools=long_case.tools, stream=True, extra_body=forcing(endless)
    )
    # Leave at the first reasoning text: the call after it is withheld until complete, so waiting for more
    # chunks could outlast the first copy (how many chunks the reasoning takes depends on load).
    for chunk in stream:
        if chunk.choices and getattr(chunk.choices[0].delta, "reasoning_content", None):
            break
    else:
        pytest.fail("the stream ended before any reasoning arrived")
    stream.close()
    deadline = time.monotonic() + READY_TIMEOUT
    while not slots_idle(llama):
        assert time.monotonic() < deadline, "llama-server still generating long after the client left"
        time.sleep(0.1)
    assert decode_calls(llama) - before < one_copy
    case = fixture("content_after_block")
    got = ask(serve[kind], "create", messages=USER, tools=case.tools, extra_body=forcing(case.text))
    same(got, expected_reply(case.text, case.tools), "create")


@pytest.mark.parametrize("kind", BACKEND_TYPES)
def test_health_and_model_name(serve: dict[str, Running], kind: str) -> None:
    """/health reports the real backend ready; with no --model-name the server takes the engine's model name
    (``/props`` for the native backend, ``/v1/models`` for the OpenAI-style one): llama-server's ``--alias``."""
    health = httpx.get(serve[kind].url + "/health", timeout=30)
    assert health.status_code == 200, health.text
    assert health.json()["backend"]["ready"] is True
    assert [m.id for m in client(serve[kind]).models.list().data] == [ALIAS]
    case = fixture("content_after_block")
    reply = client(serve[kind]).chat.completions.create(
        model="anything", messages=USER, tools=case.tools, extra_body=forcing(case.text)
    )
    assert reply.model == ALIAS
