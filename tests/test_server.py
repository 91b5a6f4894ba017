"""The server end to end: real uvicorn process, real fake backends, the official openai SDK as the client.

For every fixture and backend type the SDK's own stream accumulation must give the same message as the
non-streaming call, and both must match the fixture's expectation.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from m2parse import parse
from m2parse.format import STOP_STRINGS

from . import fake_backends
from .fixture_loader import Fixture, all_fixtures, load_fixture

openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")
from openai.lib.streaming.chat import ChatCompletionStreamState  # noqa: E402

from m2parse.render import render_prompt  # noqa: E402

FIXTURES = all_fixtures()
KINDS = fake_backends.KINDS


@pytest.fixture(scope="module")
def stacks() -> Iterator[dict[str, tuple[str, str]]]:
    """kind -> (fake backend URL, m2parse server URL); one pair per backend type for the whole module."""
    # The fake backends take no grammar: strict tools (the SDK's .stream() helper needs them) go unconstrained
    # here; what the server sends to grammar-capable backends is tested in test_server_grammar.py.
    with fake_backends.stacks("--timeout", "5", "--unconstrained-fallback") as out:
        yield out


def client_for(url: str) -> Any:
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=30)


def effective_text(fixture: Fixture, kind: str) -> str:
    """What the backend delivers: TGI stops at a stop sequence, so the server sees the text cut there."""
    if kind != "tgi":
        return fixture.text
    cuts = [i for i in (fixture.text.find(s) for s in STOP_STRINGS) if i >= 0]
    return fixture.text[: min(cuts)] if cuts else fixture.text


def expected_finish(fixture: Fixture, calls: list[Any]) -> str:
    if fake_backends.fixture_is_truncated(fixture.name):
        return "length"
    return "tool_calls" if calls else "stop"


def summary(message: Any, finish_reason: str | None) -> dict[str, Any]:
    """The parts of a message the two paths must agree on (call ids are random per response)."""
    extra = message.model_extra or {}
    return {
        "content": message.content,
        "reasoning_content": extra.get("reasoning_content"),
        "tool_calls": [(c.function.name, c.function.arguments) for c in message.tool_calls or []],
        "finish_reason": finish_reason,
    }


def check_chunk_shape(chunks: list[Any], include_usage: bool) -> None:
    """What the SDK accumulator relies on, checked on the raw chunks."""
    dicts = [chunk.to_dict() for chunk in chunks]
    heads = {(d["id"], d["created"], d["model"], d["object"]) for d in dicts}
    assert len(heads) == 1, heads
    with_choices = [d for d in dicts if d["choices"]]
    roles = [i for i, d in enumerate(with_choices) if "role" in d["choices"][0]["delta"]]
    assert roles == [0]
    finishes = [d["choices"][0]["finish_reason"] for d in with_choices]
    assert all(f is None for f in finishes[:-1]) and finishes[-1] is not None
    assert "m2parse" in with_choices[-1]["choices"][0]
    seen: list[int] = []
    args: dict[int, str] = {}
    for d in with_choices:
        for call in d["choices"][0]["delta"].get("tool_calls", []):
            index = call["index"]
            if index not in seen:
                assert index == len(seen), "tool-call indices must be 0, 1, 2 without gaps"
                if seen:
                    json.loads(args[seen[-1]])  # the previous call is complete JSON before the next starts
                assert call["id"] and call["type"] == "function" and call["function"]["name"]
                assert call["function"]["arguments"] == ""
                seen.append(index)
                args[index] = ""
            else:
                assert index == seen[-1]
                assert set(call) == {"index", "function"} and set(call["function"]) == {"arguments"}
                args[index] += call["function"]["arguments"]
    if include_usage:
        assert dicts[-1]["choices"] == [] and dicts[-1]["usage"]["completion_tokens"] > 0
        assert all(d.get("usage") is None for d in dicts[:-1])
    else:
        assert all(d["choices"] for d in dicts) and all(d.get("usage") is None for d in dicts)


def request_args(fixture: Fixture, pieces: str) -> dict[str, Any]:
    args: dict[str, Any] = {
        "model": "MiniMax-M2",
        "messages": [{"role": "user", "content": f"go [[fake fixture={fixture.name} pieces={pieces}]]"}],
        "extra_body": {"m2parse": fixture.options} if fixture.options else None,
    }
    if fixture.tools:
        args["tools"] = fixture.tools
    return args


@pytest.mark.parametrize("pieces", ["token", "char"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f.name)
def test_stream_accumulates_to_the_non_streaming_message(
    stacks: dict[str, tuple[str, str]], fixture: Fixture, kind: str, pieces: str
) -> None:
    client = client_for(stacks[kind][1])
    args = request_args(fixture, pieces)
    whole = client.chat.completions.create(**args)
    state = ChatCompletionStreamState()
    chunks = []
    include_usage = pieces == "token"
    stream_options = {"include_usage": True} if include_usage else None
    for chunk in client.chat.completions.create(**args, stream=True, stream_options=stream_options):
        state.handle_chunk(chunk)
        chunks.append(chunk)
    # get_final_completion() raises on finish_reason "length"; the snapshot is the same accumulation
    streamed = state.current_completion_snapshot

    got = summary(whole.choices[0].message, whole.choices[0].finish_reason)
    assert summary(streamed.choices[0].message, streamed.choices[0].finish_reason) == got
    check_chunk_shape(chunks, include_usage)

    text = effective_text(fixture, kind)
    expected = parse(text, fixture.tools, **fixture.options)
    assert got["content"] == (expected.content or None)
    assert got["reasoning_content"] == expected.reasoning_content
    # a call cut off by the token limit is withheld from tool_calls and given in the extension (issue 14)
    complete_calls = [(c.name, c.arguments_json) for c in expected.tool_calls if not c.truncated]
    cut_calls = [(c.name, c.arguments_json) for c in expected.tool_calls if c.truncated]
    assert got["tool_calls"] == complete_calls
    assert got["finish_reason"] == expected_finish(fixture, got["tool_calls"])
    extension = whole.choices[0].model_extra["m2parse"]
    streamed_extension = chunks[-2 if include_usage else -1].choices[0].model_extra["m2parse"]
    for ext in (extension, streamed_extension):
        withheld = [(c["function"]["name"], c["function"]["arguments"]) for c in ext.get("truncated_tool_calls", [])]
        assert withheld == cut_calls
    codes = [p["code"] for p in extension["problems"]]
    assert codes == [p["code"] for p in streamed_extension["problems"]] == [p.code for p in expected.problems]
    if text == fixture.text:  # the hand-written expectation, not only the parser's own answer
        want = fixture.expected
        assert got["content"] == want["content"]
        assert got["reasoning_content"] == want["reasoning_content"]
        calls = [(c.function.name, json.loads(c.function.arguments)) for c in whole.choices[0].message.tool_calls or []]
        assert calls == [(c["name"], c["arguments"]) for c in want["tool_calls"] if not c.get("truncated")]
        assert codes == want["problems"]


@pytest.mark.parametrize("kind", KINDS)
def test_sdk_stream_helper(stacks: dict[str, tuple[str, str]], kind: str) -> None:
    """``client.chat.completions.stream`` (the SDK's event API) accumulates the same message."""
    fixture = load_fixture("parallel_calls_one_block")
    client = client_for(stacks[kind][1])
    tools = [{**t, "function": {**t["function"], "strict": True}} for t in fixture.tools or []]
    args = {**request_args(fixture, "token"), "tools": tools}
    whole = client.chat.completions.create(**args)
    with client.chat.completions.stream(**args) as stream:
        done = [e for e in stream if e.type == "tool_calls.function.arguments.done"]
        final = stream.get_final_completion()
    assert summary(final.choices[0].message, final.choices[0].finish_reason) == summary(
        whole.choices[0].message, whole.choices[0].finish_reason
    )
    assert [e.index for e in done] == [0, 1]
    assert [e.parsed_arguments for e in done] == [c.arguments for c in parse(fixture.text, fixture.tools).tool_calls]


def test_content_is_null_with_only_tool_calls(stacks: dict[str, tuple[str, str]]) -> None:
    fixture = load_fixture("empty_arguments")
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "[[fake fixture=empty_arguments]]"}],
        "tools": fixture.tools,
    }
    response = httpx.post(stacks["openai"][1] + "/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 200
    choice = response.json()["choices"][0]
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "list_files", "arguments": "{}"}
    assert choice["finish_reason"] == "tool_calls"


def test_problems_are_in_the_extension_field_and_log(stacks: dict[str, tuple[str, str]]) -> None:
    fixture = load_fixture("truncated_in_value")
    whole = client_for(stacks["llamacpp"][1]).chat.completions.create(**request_args(fixture, "token"))
    choice = whole.choices[0]
    assert choice.finish_reason == "length"
    problems = choice.model_extra["m2parse"]["problems"]
    assert [p["code"] for p in problems] == ["truncated_value", "truncated_tool_call"]
    assert all(isinstance(p["message"], str) and isinstance(p["offset"], int) for p in problems)


@pytest.mark.parametrize("kind", KINDS)
def test_sampling_parameters_are_forwarded(stacks: dict[str, tuple[str, str]], kind: str) -> None:
    backend_url, server_url = stacks[kind]
    client_for(server_url).chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "[[fake text=hi]]"}],
        temperature=0.6,
        top_p=0.9,
        max_tokens=77,
        stop=["Observation:"],
        seed=11,
        extra_body={"top_k": 20},
    )
    body = fake_backends.last_request(backend_url)
    stops = ["[e~[", "]~b]", "Observation:"]
    if kind == "tgi":
        params = body["parameters"]
        assert params["temperature"] == 0.6 and params["top_p"] == 0.9 and params["top_k"] == 20
        assert params["max_new_tokens"] == 77 and params["seed"] == 11 and params["stop"] == stops
        assert params["details"] is True
    else:
        assert body["temperature"] == 0.6 and body["top_p"] == 0.9 and body["top_k"] == 20 and body["seed"] == 11
        assert body["stop"] == stops
        assert body["n_predict" if kind == "llamacpp" else "max_tokens"] == 77
        if kind == "openai":
            assert body["skip_special_tokens"] is False and body["model"] == "fake-m2"


def test_max_completion_tokens_wins(stacks: dict[str, tuple[str, str]]) -> None:
    backend_url, server_url = stacks["openai"]
    client_for(server_url).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "[[fake text=hi]]"}], max_tokens=5, max_completion_tokens=9
    )
    assert fake_backends.last_request(backend_url)["max_tokens"] == 9


def test_tool_choice_none_drops_tools_from_the_prompt(stacks: dict[str, tuple[str, str]]) -> None:
    backend_url, server_url = stacks["openai"]
    tools = load_fixture("weather_basic").tools
    messages = [{"role": "user", "content": "[[fake fixture=no_tool_call_plain_answer]]"}]
    client_for(server_url).chat.completions.create(model="m", messages=messages, tools=tools, tool_choice="none")
    prompt = fake_backends.last_request(backend_url)["prompt"]
    assert prompt == render_prompt(messages) and "<tools>" not in prompt
    client_for(server_url).chat.completions.create(model="m", messages=messages, tools=tools, tool_choice="auto")
    assert fake_backends.last_request(backend_url)["prompt"] == render_prompt(messages, tools)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_tool_choice_none_returns_a_written_call_as_content(
    stacks: dict[str, tuple[str, str]], kind: str, stream: bool
) -> None:
    """The model is not offered tools; a call it writes anyway is not a tool call, and its text is not lost."""
    backend_url, server_url = stacks[kind]
    fixture = load_fixture("weather_basic")
    messages = [{"role": "user", "content": "[[fake fixture=weather_basic]]"}]
    client = client_for(server_url)
    if stream:
        state = ChatCompletionStreamState()
        for chunk in client.chat.completions.create(
            model="m", messages=messages, tools=fixture.tools, tool_choice="none", stream=True
        ):
            state.handle_chunk(chunk)
            if chunk.choices and chunk.choices[0].finish_reason:
                problems = chunk.choices[0].model_extra["m2parse"]["problems"]
        choice = state.current_completion_snapshot.choices[0]
    else:
        choice = client.chat.completions.create(model="m", messages=messages, tools=fixture.tools, tool_choice="none")
        choice = choice.choices[0]
        problems = choice.model_extra["m2parse"]["problems"]
    prompt = fake_backends.last_request(backend_url)["inputs" if kind == "tgi" else "prompt"]
    assert "<tools>" not in prompt
    expected = parse(effective_text(fixture, kind), fixture.tools, tool_calls=False)
    assert not choice.message.tool_calls and choice.finish_reason == "stop"
    assert choice.message.content == expected.content and '<invoke name="get_weather">' in expected.content
    assert [p["code"] for p in problems] == [p.code for p in expected.problems] != []


@pytest.mark.parametrize("kind", KINDS)
def test_a_call_cut_off_by_the_token_limit_is_withheld(stacks: dict[str, tuple[str, str]], kind: str) -> None:
    """Not in tool_calls (an agent ignoring finish_reason would run it), but in the extension, streamed or not."""
    fixture = load_fixture("truncated_in_value")
    client = client_for(stacks[kind][1])
    args = request_args(fixture, "token")
    expected = parse(fixture.text, fixture.tools).tool_calls[0]
    whole = client.chat.completions.create(**args).choices[0]
    assert whole.finish_reason == "length" and whole.message.tool_calls is None
    assert whole.message.content == "Creating the entry point."
    (cut,) = whole.model_extra["m2parse"]["truncated_tool_calls"]
    assert cut["truncated"] is True and cut["function"]["name"] == "write_file"
    assert json.loads(cut["function"]["arguments"]) == expected.arguments

    with client.chat.completions.stream(**args) as events:  # the SDK's helper
        for event in events:
            assert event.type != "tool_calls.function.arguments.delta"
        snapshot = events.current_completion_snapshot
    assert snapshot.choices[0].message.tool_calls is None and snapshot.choices[0].finish_reason == "length"

    state = ChatCompletionStreamState()
    for chunk in client.chat.completions.create(**args, stream=True):
        state.handle_chunk(chunk)
        if chunk.choices and chunk.choices[0].finish_reason:
            (streamed_cut,) = chunk.choices[0].model_extra["m2parse"]["truncated_tool_calls"]
            assert {**streamed_cut, "id": cut["id"]} == cut  # ids are random per response
    assert state.current_completion_snapshot.choices[0].message.tool_calls is None


@pytest.mark.parametrize("stream", [False, True])
def test_keep_truncated_tool_calls_returns_them(stacks: dict[str, tuple[str, str]], stream: bool) -> None:
    fixture = load_fixture("truncated_in_value")
    args = request_args(fixture, "token")
    args["extra_body"] = {"m2parse": {"keep_truncated_tool_calls": True}}
    client = client_for(stacks["openai"][1])
    if stream:
        state = ChatCompletionStreamState()
        for chunk in client.chat.completions.create(**args, stream=True):
            state.handle_chunk(chunk)
        choice = state.current_completion_snapshot.choices[0]
    else:
        choice = client.chat.completions.create(**args).choices[0]
        assert "truncated_tool_calls" not in choice.model_extra["m2parse"]
    (call,) = choice.message.tool_calls
    assert call.function.arguments == parse(fixture.text, fixture.tools).tool_calls[0].arguments_json
    assert choice.finish_reason == "length"


@pytest.mark.parametrize("kind", KINDS)
def test_backend_extra_is_merged_into_the_backend_request(stacks: dict[str, tuple[str, str]], kind: str) -> None:
    backend_url, server_url = stacks[kind]
    extra = {"grammar": 'root ::= "x"', "structured_outputs": {"regex": "a+"}, "max_tokens": 3}
    for stream in (False, True):
        reply = client_for(server_url).chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "[[fake text=hi]]"}],
            max_tokens=50,
            stream=stream,
            extra_body={"m2parse": {"backend_extra": extra}},
        )
        if stream:
            list(reply)
        sent = fake_backends.last_request(backend_url)
        assert sent["grammar"] == extra["grammar"] and sent["structured_outputs"] == {"regex": "a+"}
        assert sent["max_tokens"] == 3  # the extra overrides m2parse's own keys
        assert ("inputs" if kind == "tgi" else "prompt") in sent


@pytest.mark.parametrize(
    ("extra", "param"), [({"prompt": "x"}, "prompt"), ({"stream": False}, "stream"), ({"inputs": "x"}, "inputs")]
)
def test_backend_extra_may_not_replace_the_prompt_or_stream(
    stacks: dict[str, tuple[str, str]], extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client_for(stacks["openai"][1]).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], extra_body={"m2parse": {"backend_extra": extra}}
        )
    assert info.value.body["param"] == f"m2parse.backend_extra.{param}"
    with pytest.raises(openai.BadRequestError) as info:
        client_for(stacks["openai"][1]).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], extra_body={"m2parse": {"backend_extra": [1]}}
        )
    assert info.value.body["param"] == "m2parse.backend_extra"


@pytest.mark.parametrize("kind", KINDS)
def test_agent_loop_prompts_equal_render_prompt(stacks: dict[str, tuple[str, str]], kind: str) -> None:
    """The model calls tools twice, the test answers, the model answers; every prompt is render_prompt's."""
    backend_url, server_url = stacks[kind]
    client = client_for(server_url)
    tools = load_fixture("weather_basic").tools
    script = "weather_basic;parallel_calls_one_block;no_tool_call_plain_answer"
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a weather assistant."},
        {"role": "user", "content": f"Plan my trip. [[fake fixture={script}]]"},
    ]
    prompt_key = "inputs" if kind == "tgi" else "prompt"
    for turn in range(3):
        stream = turn % 2 == 1
        if stream:
            state = ChatCompletionStreamState()
            for chunk in client.chat.completions.create(model="m", messages=messages, tools=tools, stream=True):
                state.handle_chunk(chunk)
            reply = state.get_final_completion().choices[0]
        else:
            reply = client.chat.completions.create(model="m", messages=messages, tools=tools).choices[0]
        assert fake_backends.last_request(backend_url)[prompt_key] == render_prompt(messages, tools)
        message = reply.message
        assistant: dict[str, Any] = {"role": "assistant", "content": message.content}
        reasoning = (message.model_extra or {}).get("reasoning_content")
        if reasoning is not None:
            assistant["reasoning_content"] = reasoning
        if message.tool_calls:
            assistant["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.function.name, "arguments": c.function.arguments},
                }
                for c in message.tool_calls
            ]
        messages.append(assistant)
        if turn == 2:
            assert reply.finish_reason == "stop" and not message.tool_calls
            break
        assert reply.finish_reason == "tool_calls"
        for call in message.tool_calls or []:
            city = json.loads(call.function.arguments)["location"]
            messages.append({"role": "tool", "tool_call_id": call.id, "content": f"{city}: sunny, 24C"})
    final_prompt = fake_backends.last_request(backend_url)[prompt_key]
    assert final_prompt.count('<invoke name="get_weather">') == 3
    assert final_prompt.count("<response>") == 3


def test_models_and_health(stacks: dict[str, tuple[str, str]]) -> None:
    server_url = stacks["tgi"][1]
    models = client_for(server_url).models.list()
    assert [m.id for m in models.data] == ["MiniMax-M2"]
    health = httpx.get(server_url + "/health", timeout=10)
    assert health.status_code == 200
    assert health.json()["backend"]["reachable"] is True


def test_reasoning_field_and_recommended_sampling() -> None:
    """--reasoning-field both sends both names; --recommended-sampling fills in what the request left out."""
    with fake_backends.backend("openai") as backend_url:
        server_url, stop = fake_backends.start_m2parse(
            backend_url, "vllm", "--reasoning-field", "both", "--recommended-sampling", "--model-name", "m2"
        )
        try:
            client = client_for(server_url)
            fixture = load_fixture("weather_basic")
            whole = client.chat.completions.create(**request_args(fixture, "token"), temperature=0.3)
            extra = whole.choices[0].message.model_extra
            assert extra["reasoning_content"] == extra["reasoning"] == fixture.expected["reasoning_content"]
            body = fake_backends.last_request(backend_url)
            assert (body["temperature"], body["top_p"], body["top_k"]) == (0.3, 0.95, 20)
            state = ChatCompletionStreamState()
            for chunk in client.chat.completions.create(**request_args(fixture, "token"), stream=True):
                state.handle_chunk(chunk)
            message = state.get_final_completion().choices[0].message
            assert message.model_extra["reasoning"] == message.model_extra["reasoning_content"]
            assert whole.model == "m2"
        finally:
            stop()


def test_client_disconnect_cancels_a_non_streaming_request(stacks: dict[str, tuple[str, str]]) -> None:
    """The backend "generates" for ~4 s (under the server's 5 s timeout); the client gives up after 0.2 s."""
    backend_url, server = stacks["tgi"]
    tag = "disconnect-nonstream"
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": f"[[fake fixture=weather_basic delay=0.05 tag={tag}]]"}],
    }
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server + "/v1/chat/completions", json=body, timeout=0.2)
    deadline = time.monotonic() + 2
    while fake_backends.stats(backend_url).get(f"disconnects:{tag}") != 1:
        assert time.monotonic() < deadline, fake_backends.stats(backend_url)
        time.sleep(0.05)
    ok = client_for(server).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "[[fake text=ok]]"}]
    )
    assert ok.choices[0].message.model_extra["reasoning_content"] == "ok"
