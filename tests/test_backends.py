"""Backend protocols: request bodies in each server's names, decoders on the servers' real framing, the client."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import pytest

from m2parse.backends import (
    BackendError,
    Piece,
    SamplingParams,
    StopTrimmer,
    get_protocol,
    llamacpp,
    openai_completions,
    stop_strings,
    tgi,
)
from m2parse.backends.base import sse_events
from m2parse.format import STOP_STRINGS

from . import fake_backends
from .fixture_loader import load_fixture

httpx = pytest.importorskip("httpx")

PARAMS = SamplingParams(temperature=0.7, top_p=0.9, top_k=20, max_tokens=64, stop=("Observation:",), seed=7)


# ---------------------------------------------------------------------------------------------- request bodies


def test_stop_strings_put_turn_markers_first_and_dedupe() -> None:
    assert stop_strings(["x", "[e~[", "x"]) == [*STOP_STRINGS, "x"]
    assert stop_strings() == list(STOP_STRINGS)


def test_openai_completions_request() -> None:
    body = openai_completions.request_body("P", PARAMS, stream=True, model="m")
    assert body == {
        "prompt": "P",
        "stream": True,
        "model": "m",
        "max_tokens": 64,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 20,
        "seed": 7,
        "stop": ["[e~[", "]~b]", "Observation:"],
        "skip_special_tokens": False,
        "stream_options": {"include_usage": True},
    }
    assert openai_completions.request_body("P", SamplingParams(top_k=0), stream=False)["top_k"] == -1
    plain = openai_completions.request_body("P", SamplingParams(), stream=False)
    assert plain == {
        "prompt": "P",
        "stream": False,
        "max_tokens": None,  # null, not missing: missing means 16 tokens (docs/server.md, "max_tokens")
        "stop": list(STOP_STRINGS),
        "skip_special_tokens": False,
    }


def test_tgi_request() -> None:
    body = tgi.request_body("P", PARAMS, stream=True)
    assert body == {
        "inputs": "P",
        "parameters": {
            "details": True,
            "temperature": 0.7,
            "top_p": 0.9,
            "top_k": 20,
            "max_new_tokens": 64,
            "seed": 7,
            "stop": ["[e~[", "]~b]", "Observation:"],
        },
    }


def test_tgi_request_respects_its_ranges() -> None:
    """TGI rejects temperature 0 and top_p 1.0; they mean greedy and "no nucleus"."""
    params = tgi.request_body("P", SamplingParams(temperature=0.0, top_p=1.0, top_k=-1), stream=False)["parameters"]
    assert params == {"details": True, "do_sample": False, "max_new_tokens": None, "stop": list(STOP_STRINGS)}


def test_llamacpp_request() -> None:
    body = llamacpp.request_body("P", PARAMS, stream=True)
    assert body == {
        "prompt": "P",
        "stream": True,
        "n_predict": 64,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 20,
        "seed": 7,
        "stop": ["[e~[", "]~b]", "Observation:"],
    }


def test_backend_aliases() -> None:
    assert get_protocol("vllm") is get_protocol("openai") is get_protocol("sglang")
    assert get_protocol("llama.cpp").name == "llamacpp"
    with pytest.raises(ValueError, match="unknown backend type"):
        get_protocol("ollama")


# ---------------------------------------------------------------------------------------------- SSE framing


def test_sse_framing_variants() -> None:
    body = (
        'data:{"a":1}\n\n'  # TGI: no space
        ": a comment\n"
        'data: {"b":\r\ndata: 2}\r\n\r\n'  # CRLF and multi-line data
        "event: ping\ndata: x\n\n"
        'error: {"message":"boom"}\n\n'  # llama.cpp's older in-stream error
        "data: [DONE]"  # no final blank line
    )
    events = sse_events(body.splitlines(keepends=True))
    assert [(e.event, e.data) for e in events] == [
        ("message", '{"a":1}'),
        ("message", '{"b":\n2}'),
        ("ping", "x"),
        ("error", '{"message":"boom"}'),
        ("message", "[DONE]"),
    ]


# ---------------------------------------------------------------------------------------------- decoders


def test_openai_stream_decoder() -> None:
    chunk = {"id": "c", "object": "text_completion", "created": 1, "model": "m"}
    text = {**chunk, "choices": [{"index": 0, "text": "<think>", "logprobs": None, "finish_reason": None}]}
    assert openai_completions.decode_stream_data(json.dumps(text)) == Piece("<think>")
    last = {**chunk, "choices": [{"index": 0, "text": "!", "finish_reason": "length", "stop_reason": None}]}
    assert openai_completions.decode_stream_data(json.dumps(last)) == Piece("!", "length")
    usage = {**chunk, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}
    decoded = openai_completions.decode_stream_data(json.dumps(usage))
    assert decoded is not None and decoded.usage is not None
    assert decoded.usage.to_openai() == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    assert openai_completions.decode_stream_data("[DONE]") is None
    stop = {**chunk, "choices": [{"index": 0, "text": "", "finish_reason": "stop", "stop_reason": "[e~["}]}
    assert openai_completions.decode_stream_data(json.dumps(stop)) == Piece("", "stop")


@pytest.mark.parametrize(
    "data",
    [
        '{"error": {"message": "boom", "type": "InternalServerError", "code": 500}}',
        '{"object": "error", "message": "boom", "type": "BadRequestError", "code": 400}',
        '{"choices": [{"index": 0, "text": "", "finish_reason": "abort"}]}',
    ],
)
def test_openai_in_band_errors(data: str) -> None:
    with pytest.raises(BackendError) as info:
        openai_completions.decode_stream_data(data)
    assert info.value.kind == "backend"


@pytest.mark.parametrize("data", ["not json", '{"foo": 1}', '{"choices": [{"text": 3}]}', "[1, 2]"])
def test_openai_garbage_is_a_protocol_error(data: str) -> None:
    with pytest.raises(BackendError) as info:
        openai_completions.decode_stream_data(data)
    assert info.value.kind == "protocol"


def test_openai_non_streaming_response() -> None:
    body = {
        "choices": [{"index": 0, "text": "a</think>b", "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6},
    }
    piece = openai_completions.decode_response(body)
    assert (piece.text, piece.finish_reason) == ("a</think>b", "stop")


def _tgi_event(text: str, special: bool = False, details: dict[str, Any] | None = None) -> str:
    token = {"id": 5, "text": text, "logprob": -0.1, "special": special}
    return json.dumps(
        {"index": 1, "token": token, "generated_text": None if details is None else "x", "details": details}
    )


def test_tgi_stream_decoder_keeps_special_tokens() -> None:
    assert tgi.decode_stream_data(_tgi_event("<minimax:tool_call>", special=True)) == Piece("<minimax:tool_call>")
    details = {"finish_reason": "length", "generated_tokens": 9, "seed": None, "input_length": 4}
    last = tgi.decode_stream_data(_tgi_event("ab", details=details))
    assert last is not None and (last.text, last.finish_reason) == ("ab", "length")
    assert last.usage is not None and last.usage.to_openai()["total_tokens"] == 13


def test_tgi_drops_only_the_closing_eos_token() -> None:
    details = {"finish_reason": "eos_token", "generated_tokens": 3, "seed": None}
    assert tgi.decode_stream_data(_tgi_event("[e~[", special=True, details=details)) == Piece(
        "", "stop", tgi._usage(details)
    )
    stop = {"finish_reason": "stop_sequence", "generated_tokens": 3, "seed": 1}
    piece = tgi.decode_stream_data(_tgi_event("[e~[", special=True, details=stop))
    assert piece is not None and piece.text == "[e~[" and piece.finish_reason == "stop"


def test_tgi_error_event() -> None:
    with pytest.raises(BackendError, match="generation"):
        tgi.decode_stream_data('{"error": "Request failed during generation: oom", "error_type": "generation"}')


def test_tgi_generate_builds_text_from_tokens_not_generated_text() -> None:
    tokens = [
        {"id": 1, "text": "hi", "logprob": -1.0, "special": False},
        {"id": 2, "text": "</think>", "logprob": -1.0, "special": True},
        {"id": 3, "text": "[e~[", "logprob": -1.0, "special": True},
    ]
    body = {"generated_text": "hi", "details": {"finish_reason": "eos_token", "generated_tokens": 3, "tokens": tokens}}
    piece = tgi.decode_response(body)
    assert (piece.text, piece.finish_reason) == ("hi</think>", "stop")
    with pytest.raises(BackendError, match=r"details\.tokens"):
        tgi.decode_response({"generated_text": "hi"})


@dataclass
class _HubToken:  # the attribute shape of huggingface_hub's TextGenerationStreamOutputToken
    id: int
    text: str
    logprob: float
    special: bool


@dataclass
class _HubDetails:
    finish_reason: str
    generated_tokens: int
    seed: int | None = None


@dataclass
class _HubEvent:
    index: int
    token: _HubToken
    generated_text: str | None = None
    details: _HubDetails | None = None


def test_tgi_decoder_takes_huggingface_hub_objects() -> None:
    events = [
        _HubEvent(1, _HubToken(1, "<think>", -1, True)),
        _HubEvent(2, _HubToken(2, "x", -1, False)),
        _HubEvent(3, _HubToken(3, "[e~[", -1, True), "x", _HubDetails("eos_token", 3)),
    ]
    pieces = [tgi.decode_stream_event(event) for event in events]
    assert "".join(p.text for p in pieces) == "<think>x"
    assert pieces[-1].finish_reason == "stop"


def test_llamacpp_stream_decoder() -> None:
    partial = {"index": 0, "content": "<think>", "tokens": [1], "stop": False, "id_slot": 0, "tokens_predicted": 1}
    assert llamacpp.decode_stream_data(json.dumps(partial)) == Piece("<think>")
    final = {
        "index": 0,
        "content": "",
        "stop": True,
        "stop_type": "limit",
        "tokens_predicted": 8,
        "tokens_evaluated": 5,
    }
    piece = llamacpp.decode_stream_data(json.dumps(final))
    assert piece is not None and piece.finish_reason == "length"
    assert piece.usage is not None and piece.usage.to_openai() == {
        "prompt_tokens": 5,
        "completion_tokens": 8,
        "total_tokens": 13,
    }
    for stop_type in ("eos", "word"):
        piece = llamacpp.decode_stream_data(json.dumps({**final, "stop_type": stop_type}))
        assert piece is not None and piece.finish_reason == "stop"
    legacy = {"content": "", "stop": True, "stopped_limit": True, "stopped_eos": False}
    piece = llamacpp.decode_stream_data(json.dumps(legacy))
    assert piece is not None and piece.finish_reason == "length"


def test_llamacpp_non_streaming_and_errors() -> None:
    body = {"content": "a</think>b", "stop": True, "stop_type": "eos", "tokens_predicted": 3, "tokens_evaluated": 2}
    assert llamacpp.decode_response(body).text == "a</think>b"
    with pytest.raises(BackendError):
        llamacpp.decode_stream_data('{"error": {"code": 500, "message": "slot failed", "type": "server_error"}}')


def test_stop_trimmer() -> None:
    trimmer = StopTrimmer(("[e~[", "]~b]"))
    assert trimmer.feed("abc[") == "abc"
    assert trimmer.feed("e~") == ""
    assert trimmer.feed("x") == "[e~x"
    assert trimmer.feed("tail]~") == "tail"
    assert trimmer.feed("b]user") == "" and trimmer.stopped
    assert trimmer.flush() == ""
    unfinished = StopTrimmer(("[e~[",))
    assert unfinished.feed("ok[e") + unfinished.flush() == "ok[e"


# ---------------------------------------------------------------------------------------------- the client


@pytest.fixture(scope="module", params=fake_backends.KINDS)
def fake(request: pytest.FixtureRequest) -> Any:
    url, stop = fake_backends.start_backend(request.param)
    yield request.param, url
    stop()


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _collect(kind: str, url: str, prompt: str, timeout: float = 5.0) -> tuple[list[Piece], Piece]:
    from m2parse.backends.client import BackendClient

    async with httpx.AsyncClient(timeout=timeout) as http:
        client = BackendClient(get_protocol(kind), url, http)
        stream = await client.open_stream(prompt, SamplingParams(max_tokens=100))
        try:
            pieces = [piece async for piece in stream.pieces()]
        finally:
            await stream.aclose()
        whole = await client.complete(prompt, SamplingParams())
    return pieces, whole


@pytest.mark.parametrize("pieces", ["token", "char"])
@pytest.mark.parametrize("name", ["weather_basic", "truncated_in_value", "chinese_text"])
def test_client_replays_fixtures(fake: tuple[str, str], name: str, pieces: str) -> None:
    kind, url = fake
    text = load_fixture(name).text
    streamed, whole = _run(_collect(kind, url, f"user says [[fake fixture={name} pieces={pieces}]]"))
    assert "".join(p.text for p in streamed) == text == whole.text
    assert all(p.finish_reason is None for p in streamed[:-1])
    expected = "length" if name.startswith("truncated") else "stop"
    assert streamed[-1].finish_reason == whole.finish_reason == expected
    assert streamed[-1].usage is not None and streamed[-1].usage.completion_tokens
    if pieces == "char":
        assert len(streamed) >= len(text) - 1


def test_client_sends_the_protocol_body(fake: tuple[str, str]) -> None:
    kind, url = fake
    _run(_collect(kind, url, "P [[fake text=hello]]"))
    body = fake_backends.last_request(url)
    prompt_key = "inputs" if kind == "tgi" else "prompt"
    assert body[prompt_key] == "P [[fake text=hello]]"
    stops = body["parameters"]["stop"] if kind == "tgi" else body["stop"]
    assert stops[:2] == list(STOP_STRINGS)


def test_tgi_client_trims_stop_sequence() -> None:
    """TGI leaves a matched stop sequence in its output; the client cuts it like the other servers do."""
    with fake_backends.backend("tgi") as url:
        streamed, whole = _run(_collect("tgi", url, "[[fake fixture=turn_marker_after_call]]"))
    text = load_fixture("turn_marker_after_call").text
    cut = min(i for i in (text.find(s) for s in STOP_STRINGS) if i >= 0)
    assert "".join(p.text for p in streamed) == text[:cut] == whole.text


@pytest.mark.parametrize(
    ("directive", "kind"),
    [
        ("fault=500", "http"),
        ("fault=garbage", "protocol"),
        ("fault=disconnect fault_after=3", "protocol"),
        ("fault=error_event fault_after=2", "backend"),
        ("fault=slow slow=3", "timeout"),
    ],
)
def test_client_faults_are_backend_errors(fake: tuple[str, str], directive: str, kind: str) -> None:
    backend_kind, url = fake

    async def stream_it() -> None:
        await _collect(backend_kind, url, f"[[fake fixture=weather_basic {directive}]]", timeout=0.5)

    with pytest.raises(BackendError) as info:
        _run(stream_it())
    assert info.value.kind == kind, info.value.message


def test_client_connection_refused() -> None:
    with pytest.raises(BackendError) as info:
        _run(_collect("openai", fake_backends.refused_url(), "x"))
    assert info.value.kind == "unreachable"


def test_split_pieces_keeps_markers_whole() -> None:
    text = load_fixture("parallel_calls_one_block").text
    pieces = fake_backends.split_pieces(text)
    assert "".join(pieces) == text
    assert "<minimax:tool_call>" in pieces and "</think>" in pieces
    assert all(1 <= len(p) <= 5 or p.startswith(("<", "]", "[")) for p in pieces)
