"""The server under hostile requests and hostile backend output (issue 9), over real HTTP.

One fake backend and one m2parse server (small caps, so the limits are reached with small inputs) serve the
module; each test is one class of attack, checked with raw HTTP where the wire matters and with the official
openai SDK where a client would see it.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .. import fake_backends

openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")

MAX_BODY = 20_000
MAX_LINE = 4096
SECRET = "s3cr3t-pass"
USER = {"role": "user", "content": "[[fake text=fine]]"}


@pytest.fixture(scope="module")
def backend() -> Iterator[str]:
    with fake_backends.backend("openai") as url:
        yield url


@pytest.fixture(scope="module")
def log_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server") / "server.log"


@pytest.fixture(scope="module")
def server(backend: str, log_file: Path) -> Iterator[str]:
    with_credentials = backend.replace("http://", f"http://admin:{SECRET}@")
    with fake_backends.app_server(
        str(log_file),
        backend_url=with_credentials,
        max_request_bytes=MAX_BODY,
        max_backend_line_bytes=MAX_LINE,
        allowed_origins=["https://app.example.com", "chrome-extension://*"],
    ) as url:
        yield url


def post(url: str, body: Any = None, *, raw: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    content = raw if raw is not None else json.dumps(body).encode()
    return httpx.post(
        url + "/v1/chat/completions",
        content=content,
        headers={"content-type": "application/json", **(headers or {})},
        timeout=30,
    )


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return dict(body["error"])


def client_for(url: str) -> Any:
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=30)


def sse_events(response: Any) -> list[Any]:
    return [json.loads(line[6:]) for line in response.text.split("\n\n") if line.startswith("data: {")]


def still_serves(url: str) -> None:
    reply = post(url, {"model": "m", "messages": [USER]})
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["reasoning_content"] == "fine"


# ---------------------------------------------------------------------------------------------- body size


def test_declared_oversize_body_is_413_before_it_is_sent(server: str) -> None:
    """Content-Length over the limit: the answer comes while the client has sent almost nothing."""
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {100 * 1024 * 1024}\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"messages": [')
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    status_line, _, rest = answer.partition(b"\r\n")
    assert b" 413 " in status_line
    error = json.loads(rest.partition(b"\r\n\r\n")[2])["error"]
    assert error["code"] == "request_too_large" and str(MAX_BODY) in error["message"]
    still_serves(server)


def test_chunked_oversize_body_is_413(server: str) -> None:
    """No Content-Length (chunked): counted while it streams in."""

    def body() -> Iterator[bytes]:
        yield b'{"model": "m", "messages": [{"role": "user", "content": "'
        for _ in range(40):
            yield b"x" * 1000
        yield b'"}]}'

    response = httpx.post(
        server + "/v1/chat/completions", content=body(), headers={"content-type": "application/json"}, timeout=30
    )
    assert error_of(response, 413)["code"] == "request_too_large"
    still_serves(server)


def test_oversize_body_through_the_sdk(server: str) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client_for(server).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x" * (MAX_BODY + 1)}]
        )
    assert info.value.status_code == 413
    assert info.value.body["code"] == "request_too_large"


def test_a_body_under_the_limit_passes(server: str) -> None:
    content = "[[fake text=fine]]" + "y" * (MAX_BODY - 500)
    assert post(server, {"model": "m", "messages": [{"role": "user", "content": content}]}).status_code == 200


# ---------------------------------------------------------------------------------------------- backend lines


@pytest.mark.parametrize("stream", [True, False])
def test_backend_line_over_the_cap(server: str, stream: bool) -> None:
    """One backend line (or whole body) past the cap: an error event in a stream, 502 otherwise."""
    directive = f"[[fake text=abcdefghij repeat={MAX_LINE // 5} pieces={MAX_LINE * 3}]]"
    body = {"model": "m", "stream": stream, "messages": [{"role": "user", "content": directive}]}
    response = post(server, body)
    if stream:
        assert response.status_code == 200
        last = sse_events(response)[-1]
        assert set(last) == {"error"} and last["error"]["code"] == "backend_bad_response"
        assert "[DONE]" not in response.text
    else:
        assert error_of(response, 502)["code"] == "backend_bad_response"
    still_serves(server)


def test_many_lines_each_under_the_cap_pass(server: str) -> None:
    directive = f"[[fake text=abcdefghij repeat={MAX_LINE // 5} pieces=50]]"
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": directive}]}
    reply = client_for(server).chat.completions.create(**body)
    text = "".join(
        (chunk.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for chunk in reply if chunk.choices
    )
    assert text == "abcdefghij" * (MAX_LINE // 5)


# ---------------------------------------------------------------------------------------------- lone surrogates


def test_lone_surrogate_in_a_request_is_400_naming_the_field(server: str) -> None:
    raw = b'{"model": "m", "messages": [{"role": "user", "content": "x \\ud800"}]}'
    error = error_of(post(server, raw=raw), 400)
    assert error["param"] == "messages[0].content" and "surrogate" in error["message"]
    raw = b'{"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "\\udfff"}]}]}'
    assert error_of(post(server, raw=raw), 400)["param"] == "messages[0].content[0].text"
    raw = b'{"model": "m", "messages": [{"role": "user", "content": "ok"}], "user": "\\ud83d"}'
    assert error_of(post(server, raw=raw), 400)["param"] == "user"
    raw = b'{"model": "m", "messages": [{"role": "user", "content": "pair \\ud83d\\ude00 is fine [[fake text=ok]]"}]}'
    assert post(server, raw=raw).status_code == 200
    still_serves(server)


CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


@pytest.mark.parametrize(
    ("arguments", "word"),
    [
        ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "deeply"),
        ('{"a": "\\ud800"}', "surrogate"),
        ('{"a": {"\\udc00": 1}}', "surrogate"),
    ],
    ids=["nested-100000", "surrogate-value", "surrogate-key"],
)
def test_hostile_tool_call_arguments_are_400(backend: str, arguments: str, word: str) -> None:
    call = {**CALL, "function": {"name": "f", "arguments": arguments}}
    messages = [USER, {"role": "assistant", "content": None, "tool_calls": [call]}]
    with fake_backends.app_server(backend_url=backend) as server:  # default body limit
        error = error_of(post(server, {"model": "m", "messages": messages}), 400)
        assert error["param"] == "messages[1].tool_calls[0].function.arguments" and word in error["message"]
        still_serves(server)


@pytest.mark.parametrize("stream", [False, True])
def test_lone_surrogate_from_the_backend_becomes_fffd_and_a_problem(server: str, stream: bool) -> None:
    messages = [{"role": "user", "content": "[[fake text=a%ED%A0%80b%ED%B0%80c pieces=2]]"}]
    client = client_for(server)
    if not stream:
        reply = client.chat.completions.create(model="m", messages=messages)
        reasoning = reply.choices[0].message.model_extra["reasoning_content"]
        problems = reply.choices[0].model_extra["m2parse"]["problems"]
    else:
        reasoning, problems = "", []
        for chunk in client.chat.completions.create(model="m", messages=messages, stream=True):
            if chunk.choices:
                reasoning += (chunk.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
                problems = (chunk.choices[0].model_extra or {}).get("m2parse", {}).get("problems", problems)
    assert reasoning == "a\ufffdb\ufffdc"
    unicode_problems = [p for p in problems if p["code"] == "invalid_unicode"]
    assert len(unicode_problems) == 1 and unicode_problems[0]["offset"] == 1
    assert "2 lone surrogate" in unicode_problems[0]["message"]


# ---------------------------------------------------------------------------------------------- /health


def test_health_never_shows_backend_credentials(server: str) -> None:
    response = httpx.get(server + "/health", timeout=10)
    assert response.status_code == 200
    assert SECRET not in response.text and "admin" not in response.text
    assert response.json()["backend"]["url"].startswith("http://127.0.0.1:")


def test_health_of_an_unreachable_backend_with_credentials() -> None:
    url = fake_backends.refused_url().replace("http://", f"http://admin:{SECRET}@")
    with fake_backends.app_server(backend_url=url) as server:
        response = httpx.get(server + "/health", timeout=10)
    assert response.status_code == 503 and response.json()["backend"]["reachable"] is False
    assert SECRET not in response.text


# ---------------------------------------------------------------------------------------------- backend error text


@pytest.mark.parametrize("fault", ["500", "error_event fault_after=1"])
def test_backend_error_text_is_bounded_one_line_and_cannot_forge_log_lines(
    server: str, log_file: Path, fault: str
) -> None:
    forged = "%0AERROR%20m2parse.server:%20forged%20line%0D%0A" + "z" * 3000
    body = {
        "model": "m",
        "stream": fault != "500",
        "messages": [
            {"role": "user", "content": f"[[fake text=hello-world pieces=2 fault={fault} message=boom{forged}]]"}
        ],
    }
    response = post(server, body)
    error = error_of(response, 502) if fault == "500" else sse_events(response)[-1]["error"]
    message = error["message"]
    assert "boom" in message and "forged line" in message
    assert "\n" not in message and "\r" not in message and len(message) < 1200
    assert "\\n" in message  # escaped, not dropped
    still_serves(server)
    lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    assert any("boom" in line for line in lines)
    assert not any(line.startswith("ERROR m2parse.server: forged") for line in lines)


# ---------------------------------------------------------------------------------------------- API key


def test_non_ascii_api_key_is_refused_at_startup() -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "m2parse", "serve", "--backend", "http://127.0.0.1:9", "--api-key", "clé-secrète"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=fake_backends.REPO,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "ASCII" in proc.stderr


def test_api_key_compares_the_raw_header_bytes(backend: str) -> None:
    with fake_backends.app_server(backend_url=backend, api_key="k-123") as server:
        assert post(server, {"model": "m", "messages": [USER]}, headers={"authorization": "Bearer k-123"}).is_success
        latin = "Bearer k-123\u00e9".encode("latin-1")
        response = httpx.post(
            server + "/v1/chat/completions",
            content=json.dumps({"model": "m", "messages": [USER]}).encode(),
            headers=[(b"content-type", b"application/json"), (b"authorization", latin)],
            timeout=10,
        )
        assert error_of(response, 401)["code"] == "invalid_api_key"


# ---------------------------------------------------------------------------------------------- origins


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "null",
        "http://localhost.evil.example",
        "http://127.0.0.1.nip.io:8000",
        "file://",
        "chrome-extension-x://abc",
    ],
)
def test_foreign_origins_are_403(server: str, origin: str) -> None:
    response = post(server, {"model": "m", "messages": [USER]}, headers={"origin": origin})
    assert error_of(response, 403)["code"] == "origin_not_allowed"
    assert httpx.get(server + "/health", headers={"origin": origin}, timeout=10).status_code == 403


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost:3000",
        "http://127.0.0.1",
        "https://[::1]:8443",
        "HTTP://LOCALHOST:5173",
        "https://app.example.com",
        "chrome-extension://abcdef",
    ],
)
def test_loopback_and_configured_origins_pass_with_cors_headers(server: str, origin: str) -> None:
    response = post(server, {"model": "m", "messages": [USER]}, headers={"origin": origin})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == origin
    preflight = httpx.options(
        server + "/v1/chat/completions",
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type",
        },
        timeout=10,
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == origin
    assert "POST" in preflight.headers["access-control-allow-methods"]


def test_requests_without_origin_pass(server: str) -> None:
    still_serves(server)


def test_any_origin_when_configured(backend: str) -> None:
    with fake_backends.app_server(backend_url=backend, allowed_origins=["*"]) as server:
        response = post(server, {"model": "m", "messages": [USER]}, headers={"origin": "https://anything.test"})
        assert response.status_code == 200


# ---------------------------------------------------------------------------------------------- field types


BAD_FIELDS = [
    ("n", True),
    ("n", 1.0),
    ("n", "1"),
    ("max_tokens", 10**40),
    ("max_tokens", True),
    ("max_tokens", 5.0),
    ("max_completion_tokens", 2**31),
    ("seed", 10**30),
    ("seed", 1.5),
    ("top_k", True),
    ("top_k", 10**12),
    ("temperature", True),
    ("temperature", "0.5"),
    ("top_p", 10**40),
    ("presence_penalty", 3),
    ("frequency_penalty", "high"),
    ("logprobs", "yes"),
    ("top_logprobs", 21),
    ("top_logprobs", 1.0),
    ("logit_bias", [1]),
    ("parallel_tool_calls", 1),
    ("user", 5),
    ("model", 5),
    ("response_format", "json"),
    ("stream", 1),
]


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS, ids=[f"{f}={v!r}"[:40] for f, v in BAD_FIELDS])
def test_request_fields_are_typed_as_openai_types_them(server: str, field: str, value: Any) -> None:
    error = error_of(post(server, {"model": "m", "messages": [USER], field: value}), 400)
    assert error["param"] == field and error["type"] == "invalid_request_error"


def test_logit_bias_values_are_bounded(server: str) -> None:
    error = error_of(post(server, {"model": "m", "messages": [USER], "logit_bias": {"42": 500}}), 400)
    assert error["param"] == "logit_bias.42"


def test_valid_edge_values_pass(server: str, backend: str) -> None:
    body = {
        "model": "m",
        "messages": [USER],
        "n": 1,
        "max_tokens": 2**31 - 1,
        "seed": -(2**63),
        "top_k": -1,
        "temperature": 0,
        "top_p": 1,
        "presence_penalty": -2,
        "logprobs": False,
        "top_logprobs": 0,
        "logit_bias": {"1": -100},
        "user": "u",
        "parallel_tool_calls": True,
    }
    assert post(server, body).status_code == 200
    sent = fake_backends.last_request(backend)
    assert sent["max_tokens"] == 2**31 - 1 and sent["seed"] == -(2**63)


# ---------------------------------------------------------------------------------------------- stop lists


def test_thirty_thousand_stop_strings_are_deduplicated(server: str, backend: str) -> None:
    stops = [f"s{i % 15000}" for i in range(30_000)]
    body = {"model": "m", "messages": [USER], "stop": stops}
    raw = json.dumps(body).encode()
    assert len(raw) < MAX_BODY * 20
    with fake_backends.app_server(backend_url=backend) as big:
        assert post(big, raw=raw).status_code == 200
    sent = fake_backends.last_request(backend)["stop"]
    assert sent == ["[e~[", "]~b]", *(f"s{i}" for i in range(15000))]
