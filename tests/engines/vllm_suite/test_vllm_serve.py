"""``m2parse serve`` in front of a real vLLM's /v1/completions, asked by the official openai SDK.

Each request forces the kit's model to write one fixture output, through the server's documented passthrough
``extra_body={"m2parse": {"backend_extra": {"structured_outputs": {"regex": ...}}}}``; the reply must equal
``parse()`` of that text under the server's policies (docs/server.md). The prompt vLLM received is checked too:
its token count equals the kit tokenizer's count of ``render_prompt(messages, tools)``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import LengthFinishReasonError, OpenAI
from tokenizers import Tokenizer

from m2parse.render import render_prompt

from .. import model_kit as kit
from ..forcing import FORCED_NAMES, Forced, forced_fixture, structured_regex
from .processes import ENGINE_MARKS, SERVED_NAME, Running
from .replies import MODES, Reply, ask, expected_reply

pytestmark = ENGINE_MARKS

#: A multi-turn history: a call, its result, and a new question (the forced output answers it).
HISTORY: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a careful assistant."},
    {"role": "user", "content": "What is the weather in Porto?"},
    {
        "role": "assistant",
        "content": "Checking.",
        "reasoning_content": "Porto: call the tool.",
        "tool_calls": [
            {
                "id": "call_0",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"location": "Porto, Portugal"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_0", "content": '{"temp_c": 19, "sky": "clear"}'},
    {"role": "assistant", "content": "It is 19 °C and clear in Porto."},
    {"role": "user", "content": "And now the next one, please."},
]


def forced_body(forced: Forced, **m2parse: Any) -> dict[str, Any]:
    return {"m2parse": {"backend_extra": structured_regex(forced.text), **m2parse}}


def request(forced: Forced, messages: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": SERVED_NAME,
        "messages": messages or HISTORY,
        "temperature": 0,
        "extra_body": forced_body(forced, **extra.pop("m2parse", {})),
    }
    if forced.tools:
        body["tools"] = forced.tools
    return {**body, **extra}


def prompt_tokens(kit_dir: Path, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> int:
    tokenizer = Tokenizer.from_file(str(kit_dir / "tokenizer.json"))
    return len(tokenizer.encode(render_prompt(messages, tools), add_special_tokens=False).ids)


def check(reply: Reply, expected: Reply, mode: str) -> None:
    assert reply.message() == expected.message()
    if mode != "helper":  # the SDK's accumulator keeps no extension fields
        assert reply.extension() == expected.extension()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", FORCED_NAMES)
def test_forced_output_equals_parse(serve_client: OpenAI, kit_dir: Path, name: str, mode: str) -> None:
    forced = forced_fixture(name)
    reply = ask(serve_client, mode, "reasoning_content", **request(forced, max_tokens=2000))
    check(reply, expected_reply(forced.text, forced.tools), mode)
    if reply.prompt_tokens is not None:
        assert reply.prompt_tokens == prompt_tokens(kit_dir, HISTORY, forced.tools)
    assert len(set(reply.ids)) == len(reply.ids), "call ids are unique"


def cut_inside_first_value(kit_dir: Path, forced: Forced) -> int:
    """A max_tokens that stops the model inside the first parameter value."""
    target = forced.text.index("<parameter") + forced.text[forced.text.index("<parameter") :].index(">") + 4
    raw = kit.token_bytes_of(kit_dir)
    written = 0
    for count, token in enumerate(kit.longest_prefix_ids(kit_dir, forced.text), 1):
        written += len(raw[token])
        if written >= target:
            return count
    raise AssertionError("the text has no parameter value")


@pytest.mark.parametrize("keep", [False, True])
@pytest.mark.parametrize("mode", ["create", "stream"])
def test_truncated_call_by_max_tokens(serve_client: OpenAI, kit_dir: Path, mode: str, keep: bool) -> None:
    forced = forced_fixture("weather_basic")
    limit = cut_inside_first_value(kit_dir, forced)
    written = forced.written(limit, kit_dir)
    assert "<parameter" in written and written != forced.text
    extra = {"m2parse": {"keep_truncated_tool_calls": True}} if keep else {}
    reply = ask(serve_client, mode, "reasoning_content", **request(forced, max_tokens=limit, **extra))
    expected = expected_reply(written, forced.tools, hit_limit=True, withhold_truncated=not keep)
    check(reply, expected, mode)
    assert reply.finish_reason == "length"
    assert (len(reply.tool_calls), len(reply.truncated_calls or [])) == ((1, 0) if keep else (0, 1))


def test_truncation_raises_in_the_stream_helper(serve_client: OpenAI, kit_dir: Path) -> None:
    forced = forced_fixture("weather_basic")
    with pytest.raises(LengthFinishReasonError):
        ask(serve_client, "helper", "reasoning_content", **request(forced, max_tokens=10))


@pytest.mark.parametrize("mode", MODES)
def test_no_max_tokens_yields_the_whole_output(serve_client: OpenAI, mode: str) -> None:
    """vLLM stops after 16 tokens when max_tokens is left out (or null): the server must send the room left."""
    forced = forced_fixture("long_code_argument")
    reply = ask(serve_client, mode, "reasoning_content", **request(forced))
    check(reply, expected_reply(forced.text, forced.tools), mode)
    assert reply.finish_reason == "tool_calls"


@pytest.mark.parametrize("mode", ["create", "stream"])
def test_stop_strings(serve_client: OpenAI, mode: str) -> None:
    forced = forced_fixture("weather_basic")
    stop = "forecast"
    reply = ask(serve_client, mode, "reasoning_content", **request(forced, max_tokens=2000, stop=[stop]))
    check(reply, expected_reply(forced.text[: forced.text.index(stop)], forced.tools), mode)
    assert reply.content == "Let me check the "


@pytest.mark.parametrize("mode", MODES)
def test_tool_choice_none(serve_client: OpenAI, kit_dir: Path, mode: str) -> None:
    """The tools are not in the prompt; the call the model writes anyway stays in the content, as text."""
    forced = forced_fixture("weather_basic")
    reply = ask(serve_client, mode, "reasoning_content", **request(forced, max_tokens=2000, tool_choice="none"))
    expected = expected_reply(forced.text, forced.tools, tool_calls=False)
    check(reply, expected, mode)
    assert reply.tool_calls == [] and "<minimax:tool_call>" in (reply.content or "")
    if reply.prompt_tokens is not None:
        assert reply.prompt_tokens == prompt_tokens(kit_dir, HISTORY, None)


def aborted_requests(vllm: Running) -> int:
    """How many requests vLLM aborted because their client went away (``--enable-log-requests`` logs each)."""
    return vllm.log.read_text(encoding="utf-8", errors="replace").count("Aborted request")


def test_client_disconnect_mid_stream(serve: Running, serve_client: OpenAI, vllm: Running) -> None:
    """Closing the stream after a few chunks aborts the vLLM request; the next request is served in full."""
    forced = forced_fixture("long_code_argument")
    before = aborted_requests(vllm)
    body = request(forced)
    with httpx.Client(timeout=600) as http:
        payload = {k: v for k, v in body.items() if k != "extra_body"} | body["extra_body"] | {"stream": True}
        with http.stream("POST", serve.url + "/v1/chat/completions", json=payload) as response:
            assert response.status_code == 200
            # Leave at the first reasoning text: the long call after it is withheld until complete, so waiting
            # for more lines could outlast the generation (how many lines the reasoning takes depends on how
            # many tokens vLLM merges per event, which depends on load).
            for line in filter(None, response.iter_lines()):
                assert line.startswith("data: {")
                if '"reasoning_content"' in line:
                    break
            else:
                pytest.fail("the stream ended before any reasoning arrived")
    deadline = time.monotonic() + 120  # a bounded wait for vLLM's own bookkeeping, not a speed check
    while aborted_requests(vllm) <= before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert aborted_requests(vllm) > before, "vLLM never saw the request aborted"
    after = forced_fixture("weather_basic")
    reply = ask(serve_client, "create", "reasoning_content", **request(after, max_tokens=2000))
    check(reply, expected_reply(after.text, after.tools), "create")


def test_model_name_defaults_to_the_backends(serve_client: OpenAI) -> None:
    assert [m.id for m in serve_client.models.list().data] == [SERVED_NAME]
