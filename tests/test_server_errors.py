"""Every error path: status and OpenAI error shape, mid-stream failures, disconnects; the server never dies."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from . import fake_backends

openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")

KEY = "sk-test-secret"
AUTH = {"Authorization": f"Bearer {KEY}"}
TIMEOUT = "0.6"


@pytest.fixture(scope="module")
def stacks() -> Iterator[dict[str, tuple[str, str]]]:
    """kind -> (fake backend URL, m2parse URL), servers with an API key and a short backend timeout."""
    with fake_backends.stacks("--api-key", KEY, "--timeout", TIMEOUT) as out:
        yield out


@pytest.fixture
def server(stacks: dict[str, tuple[str, str]]) -> str:
    return stacks["openai"][1]


def post(url: str, body: Any, *, headers: dict[str, str] | None = None, raw: bytes | None = None) -> Any:
    content = raw if raw is not None else json.dumps(body).encode()
    return httpx.post(
        url + "/v1/chat/completions",
        content=content,
        headers={"content-type": "application/json", **(AUTH if headers is None else headers)},
        timeout=30,
    )


def assert_error(response: Any, status: int, *, param: Any = "unset", code: Any = "unset") -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    if param != "unset":
        assert error["param"] == param, error
    if code != "unset":
        assert error["code"] == code, error
    return error


def still_serves(server_url: str) -> None:
    """After any fault the same server process answers a normal request."""
    ok = post(server_url, {"model": "m", "messages": [{"role": "user", "content": "[[fake text=fine]]"}]})
    assert ok.status_code == 200, ok.text
    assert ok.json()["choices"][0]["message"]["reasoning_content"] == "fine"


USER = {"role": "user", "content": "[[fake fixture=weather_basic]]"}
CALL = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"location": "Oslo"}'}}
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": ["hi"]}, "messages[0]"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages[0].content[0]",
        ),
        ({"messages": [USER, {"role": "tool", "tool_call_id": "c1", "content": "x"}]}, "messages[1]"),
        (
            {
                "messages": [
                    USER,
                    {"role": "assistant", "content": None, "tool_calls": [CALL]},
                    {"role": "user", "content": "and?"},
                    {"role": "tool", "tool_call_id": "c1", "content": "late"},
                ]
            },
            "messages[3]",
        ),
        (
            {
                "messages": [
                    USER,
                    {"role": "assistant", "tool_calls": [{**CALL, "function": {"name": "f", "arguments": "{"}}]},
                ]
            },
            "messages[1].tool_calls[0].function.arguments",
        ),
        (
            {"messages": [USER, {"role": "assistant", "tool_calls": [{"id": "x"}]}]},
            "messages[1].tool_calls[0].function",
        ),
        ({"messages": [USER], "temperature": "hot"}, "temperature"),
        ({"messages": [USER], "temperature": 3}, "temperature"),
        ({"messages": [USER], "top_p": -0.1}, "top_p"),
        ({"messages": [USER], "top_k": 1.5}, "top_k"),
        ({"messages": [USER], "max_tokens": 0}, "max_tokens"),
        ({"messages": [USER], "max_completion_tokens": "9"}, "max_completion_tokens"),
        ({"messages": [USER], "seed": "1"}, "seed"),
        ({"messages": [USER], "stop": [1]}, "stop"),
        ({"messages": [USER], "n": 2}, "n"),
        ({"messages": [USER], "stream": "yes"}, "stream"),
        (
            {"messages": [USER], "stream": True, "stream_options": {"include_usage": "y"}},
            "stream_options.include_usage",
        ),
        ({"messages": [USER], "tools": {"type": "function"}}, "tools"),
        (
            {"messages": [USER], "tools": [TOOL, {"type": "function", "function": {"description": "x"}}]},
            "tools[1].function.name",
        ),
        ({"messages": [USER], "tools": [{"type": "retrieval"}]}, "tools[0].type"),
        (
            {
                "messages": [USER],
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "objekt"}}}],
            },
            "tools[0].function.parameters",
        ),
        ({"messages": [USER], "tools": [TOOL], "tool_choice": "sometimes"}, "tool_choice"),
        (
            {"messages": [USER], "tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice",
        ),
        ({"messages": [USER], "m2parse": {"strict": True}}, "m2parse.strict"),
        ({"messages": [USER], "m2parse": {"unknown_tool": "error"}}, "m2parse.unknown_tool"),
        ({"messages": [USER], "m2parse": "inline"}, "m2parse"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_malformed_requests_are_400_naming_the_field(
    server: str, body: dict[str, Any], param: str, stream: bool
) -> None:
    if stream and "stream" not in body:
        body = {**body, "stream": True}
    error = assert_error(post(server, {"model": "m", **body}), 400, param=param)
    assert error["type"] == "invalid_request_error"


def test_bad_json_and_non_object_bodies(server: str) -> None:
    assert_error(post(server, None, raw=b'{"messages": ['), 400, code="invalid_json")
    assert_error(post(server, None, raw=b"\xff\xfe"), 400, code="invalid_json")
    assert_error(post(server, [1, 2]), 400)
    assert_error(post(server, None, raw=b"[" * 100_000 + b"]" * 100_000), 400, code="invalid_json")
    still_serves(server)


def test_the_sdk_raises_bad_request(server: str) -> None:
    client = openai.OpenAI(base_url=server + "/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="m", messages=[{"role": "tool", "content": "orphan", "tool_call_id": "x"}])
    assert info.value.status_code == 400
    assert info.value.body["param"] == "messages[0]"


def test_api_key(server: str) -> None:
    body = {"model": "m", "messages": [USER]}
    assert_error(post(server, body, headers={}), 401, code="missing_api_key")
    assert_error(post(server, body, headers={"Authorization": "Bearer wrong"}), 401, code="invalid_api_key")
    assert_error(post(server, body, headers={"Authorization": KEY}), 401, code="invalid_api_key")
    response = httpx.get(server + "/v1/models", timeout=10)
    assert_error(response, 401)
    assert httpx.get(server + "/health", timeout=10).status_code == 200  # health stays open
    client = openai.OpenAI(base_url=server + "/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="m", messages=[USER])
    still_serves(server)


def test_unknown_route_and_method(server: str) -> None:
    assert_error(httpx.get(server + "/v1/nothing", timeout=10), 404)
    assert_error(httpx.get(server + "/v1/chat/completions", headers=AUTH, timeout=10), 405)


BACKEND_FAULTS = [
    ("fault=500", 502, "backend_error"),
    ("fault=422", 400, "backend_rejected_request"),
    ("fault=garbage", 502, "backend_bad_response"),
    ("fault=disconnect", 502, "backend_bad_response"),
    ("fault=slow slow=5", 504, "backend_timeout"),
]


@pytest.mark.parametrize(("directive", "status", "code"), BACKEND_FAULTS)
@pytest.mark.parametrize("kind", fake_backends.KINDS)
def test_backend_faults_before_the_first_byte(
    stacks: dict[str, tuple[str, str]], kind: str, directive: str, status: int, code: str
) -> None:
    """Non-streaming: every fault is an HTTP error. Streaming: a fault before the stream starts is too."""
    server = stacks[kind][1]
    body = {"model": "m", "messages": [{"role": "user", "content": f"[[fake fixture=weather_basic {directive}]]"}]}
    assert_error(post(server, body), status, code=code)
    if directive in ("fault=500", "fault=422"):
        assert_error(post(server, {**body, "stream": True}), status, code=code)
    still_serves(server)


def sse_events(response: Any) -> list[str]:
    return [line[len("data: ") :] for line in response.text.split("\n\n") if line.startswith("data: ")]


MID_STREAM_FAULTS = [
    ("fault=disconnect fault_after=5", "backend_bad_response"),
    ("fault=garbage fault_after=5", "backend_bad_response"),
    ("fault=error_event fault_after=5", "backend_error"),
    ("fault=slow slow=5 fault_after=5", "backend_timeout"),
]


@pytest.mark.parametrize(("directive", "code"), MID_STREAM_FAULTS)
@pytest.mark.parametrize("kind", fake_backends.KINDS)
def test_mid_stream_failure_is_one_error_event(
    stacks: dict[str, tuple[str, str]], kind: str, directive: str, code: str
) -> None:
    server = stacks[kind][1]
    body = {
        "model": "m",
        "stream": True,
        "messages": [{"role": "user", "content": f"[[fake fixture=weather_basic {directive}]]"}],
    }
    response = post(server, body)
    assert response.status_code == 200
    events = sse_events(response)
    assert events[-1] != "[DONE]" and "[DONE]" not in events
    *chunks, last = (json.loads(e) for e in events)
    assert set(last) == {"error"} and last["error"]["code"] == code
    assert set(last["error"]) == {"message", "type", "param", "code"}
    assert chunks and all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)
    client = openai.OpenAI(base_url=server + "/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(model="m", messages=body["messages"], stream=True):
            pass
    still_serves(server)


@pytest.mark.parametrize("kind", fake_backends.KINDS)
def test_client_disconnect_cancels_the_backend_request(stacks: dict[str, tuple[str, str]], kind: str) -> None:
    backend_url, server = stacks[kind]
    tag = f"disconnect-{kind}"
    body = {
        "model": "m",
        "stream": True,
        "messages": [{"role": "user", "content": f"[[fake fixture=long_code_argument delay=0.02 tag={tag}]]"}],
    }
    with httpx.stream("POST", server + "/v1/chat/completions", json=body, headers=AUTH, timeout=30) as response:
        lines = response.iter_lines()
        received = [next(lines) for _ in range(6)]
        assert any(line.startswith("data: ") for line in received)
    deadline = time.monotonic() + 5
    while True:
        stats = fake_backends.stats(backend_url)
        if stats.get(f"disconnects:{tag}") == 1:
            break
        assert time.monotonic() < deadline, stats
        time.sleep(0.05)
    assert f"completed:{tag}" not in stats
    still_serves(server)


def test_unreachable_backend() -> None:
    server, stop = fake_backends.start_m2parse(fake_backends.refused_url(), "tgi")
    try:
        health = httpx.get(server + "/health", timeout=10)
        assert health.status_code == 503
        assert health.json()["backend"]["reachable"] is False
        body = {"model": "m", "messages": [USER]}
        for stream in (False, True):
            error = assert_error(
                httpx.post(server + "/v1/chat/completions", json={**body, "stream": stream}, timeout=10),
                502,
                code="backend_unreachable",
            )
            assert error["type"] == "server_error"
        client = openai.OpenAI(base_url=server + "/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model="m", messages=[USER])
        assert info.value.status_code == 502
        assert httpx.get(server + "/v1/models", timeout=10).status_code == 200
    finally:
        stop()


def test_many_faults_in_a_row_leave_the_process_alive(stacks: dict[str, tuple[str, str]]) -> None:
    server = stacks["llamacpp"][1]
    directives = [
        f"fixture=weather_basic {fault}"
        for fault in ("fault=disconnect fault_after=1", "fault=garbage", "fault=500", "fault=error_event fault_after=1")
    ]
    for directive in directives * 3:
        for stream in (False, True):
            body = {"model": "m", "stream": stream, "messages": [{"role": "user", "content": f"[[fake {directive}]]"}]}
            assert post(server, body).status_code in (200, 502)
    still_serves(server)


@pytest.mark.parametrize(
    "args",
    [
        ["--template", "MiniMax-M9"],
        ["--chat-template", "/nonexistent/template.jinja"],
        ["--timeout", "0"],
        ["--port", "70000"],
    ],
)
def test_serve_command_line_errors_exit_2(args: list[str]) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "m2parse", "serve", "--backend", "http://127.0.0.1:9", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=fake_backends.REPO,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("m2parse: error: ") and proc.stderr.count("\n") == 1
