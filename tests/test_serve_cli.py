"""``m2parse serve`` as a real subprocess: startup checks, --help, --version, the model name it serves, /health,
and the max_tokens each backend receives when a request sets none.

The backends here are small real HTTP servers (stdlib, on 127.0.0.1, in a thread of the test process) that answer
the probes real engines answer (vLLM/SGLang ``/v1/models`` with ``max_model_len`` and ``/tokenize``, llama.cpp
``/props``, TGI ``/info``) and record what they receive.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from m2parse.backends import PROTOCOLS, check_base_url, llamacpp, openai_completions, tgi

from . import fake_backends

httpx = pytest.importorskip("httpx")

REPO = fake_backends.REPO


def m2parse(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "m2parse", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("m2parse: error: "), proc.stderr
    return proc.stderr


# ---------------------------------------------------------------------------------------------- stub backends


@dataclass
class Stub:
    """What a stub backend answers (path -> (status, JSON)) and what it received (method, path, headers, body)."""

    routes: dict[str, tuple[int, Any]]
    received: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)
    url: str = ""

    def bodies(self, path: str) -> list[Any]:
        return [body for method, p, _, body in self.received if method == "POST" and p == path]


@contextmanager
def stub_backend(routes: dict[str, tuple[int, Any]]) -> Iterator[Stub]:
    stub = Stub(routes)

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, method: str) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            stub.received.append((method, self.path, dict(self.headers), json.loads(raw) if raw else None))
            status, payload = stub.routes.get(self.path, (404, {"error": "no route"}))
            data = json.dumps(payload).encode()
            streamed = method == "POST" and raw and json.loads(raw).get("stream") is True
            if streamed:  # the same answer as one SSE event, then the end
                data = b"data: " + data + b"\n\ndata: [DONE]\n\n"
            self.send_response(status)
            self.send_header("content-type", "text/event-stream" if streamed else "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


COMPLETION = (200, {"choices": [{"index": 0, "text": "ok\n</think>\n\nHello.", "finish_reason": "stop"}]})


def openai_routes(*, max_model_len: int | None = 4096, tokenize: str | None = "/tokenize") -> dict[str, Any]:
    model: dict[str, Any] = {"id": "stub-model", "object": "model"}
    if max_model_len is not None:
        model["max_model_len"] = max_model_len
    routes: dict[str, Any] = {
        "/health": (200, {}),
        "/v1/models": (200, {"object": "list", "data": [model]}),
        "/v1/completions": COMPLETION,
    }
    if tokenize is not None:
        routes[tokenize] = (200, {"count": 37, "max_model_len": max_model_len, "tokens": list(range(37))})
    return routes


@contextmanager
def serving(backend_url: str, backend_type: str, *extra: str) -> Iterator[str]:
    url, stop = fake_backends.start_m2parse(backend_url, backend_type, *extra)
    try:
        yield url
    finally:
        stop()


def chat(server_url: str, **fields: Any) -> dict[str, Any]:
    body = {"model": "x", "messages": [{"role": "user", "content": "hi"}], **fields}
    response = httpx.post(server_url + "/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


# ---------------------------------------------------------------------------------------------- startup checks


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("127.0.0.1:8000", "http://"),
        ("localhost", "http://"),
        ("ftp://127.0.0.1:21", "http://"),
        ("http://", "no host"),
        ("http://127.0.0.1:99999", "invalid port"),
        ("http://127.0.0.1:8000/v1?x=1", "base URL"),
        (" http://127.0.0.1:8000", "whitespace"),
        ("http://[::1:8000", "cannot be read"),
        ("http://127.0.0.1:0", "port 0"),
    ],
)
def test_unusable_backend_url_exits_2_in_one_line(url: str, needle: str) -> None:
    err = one_line_error(m2parse("serve", "--backend", url, "--port", "0"))
    assert "--backend" in err and needle in err


def test_port_in_use_exits_2_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        err = one_line_error(m2parse("serve", "--backend", "http://127.0.0.1:9", "--port", str(port)))
    assert f"--port {port}" in err and "already in use" in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--default-max-tokens", "0"], "--default-max-tokens"),
        (["--host", "no-such-host.invalid"], "--host"),
        (["--template", "MiniMax-M9"], "--template"),
        (["--port", "70000"], "--port"),
    ],
)
def test_other_startup_errors_are_one_line(args: list[str], needle: str) -> None:
    err = one_line_error(m2parse("serve", "--backend", "http://127.0.0.1:9", *args))
    assert needle in err


# ---------------------------------------------------------------------------------------------- --help, --version


def test_help_shows_every_default_and_the_environment_variables() -> None:
    proc = m2parse("serve", "--help", env={"M2PARSE_BACKEND_API_KEY": "s3cret-b", "M2PARSE_API_KEY": "s3cret-a"})
    assert proc.returncode == 0
    text = proc.stdout
    options = text[text.index("options:") : text.index("environment:")]
    blocks = [block for block in options.split("\n  --")[1:] if not block.startswith(("help", "version"))]
    assert len(blocks) >= 20
    for block in blocks:
        assert "(default" in block or block.startswith("backend URL"), block
    assert "M2PARSE_BACKEND_API_KEY" in text and "M2PARSE_API_KEY" in text
    assert "s3cret" not in text  # the environment's values are never printed


def test_help_default_for_request_bytes_is_the_configs() -> None:
    from m2parse.server import ServerConfig

    default = ServerConfig(backend_url="http://127.0.0.1:9").max_request_bytes
    assert f"(default: {default}," in " ".join(m2parse("serve", "--help").stdout.split())


@pytest.mark.parametrize("argv", [["--version"], ["serve", "--version"], ["render", "--version"]])
def test_version(argv: list[str]) -> None:
    proc = m2parse(*argv)
    assert proc.returncode == 0
    assert proc.stdout == f"m2parse {version('m2parse')}\n"


def test_api_keys_come_from_the_environment() -> None:
    with stub_backend(openai_routes()) as stub:
        env = {**os.environ, "M2PARSE_BACKEND_API_KEY": "to-backend", "M2PARSE_API_KEY": "from-client"}
        port = fake_backends.free_port()
        args = [sys.executable, "-m", "m2parse", "serve", "--backend", stub.url, "--port", str(port)]
        server = subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            fake_backends.wait_until_up(base + "/health", proc=server)
            body = {"model": "x", "messages": [{"role": "user", "content": "hi"}]}
            assert httpx.post(base + "/v1/chat/completions", json=body, timeout=30).status_code == 401
            headers = {"Authorization": "Bearer from-client"}
            ok = httpx.post(base + "/v1/chat/completions", json=body, headers=headers, timeout=30)
            assert ok.status_code == 200, ok.text
        finally:
            server.terminate()
            server.wait(timeout=10)
    sent = [h for method, path, h, _ in stub.received if path == "/v1/completions"]
    assert sent and all(h.get("Authorization") == "Bearer to-backend" for h in sent)


# ---------------------------------------------------------------------------------------------- max_tokens


def test_openai_backend_gets_the_room_left_in_its_context() -> None:
    """vLLM/SGLang: max_model_len (4096) minus the prompt's tokens (37, from /tokenize) minus 1."""
    with stub_backend(openai_routes()) as stub, serving(stub.url, "vllm") as server:
        chat(server)
        chat(server, max_tokens=5)
        chat(server, stream=False, max_completion_tokens=7)
        streamed = httpx.post(
            server + "/v1/chat/completions",
            json={"model": "x", "messages": [{"role": "user", "content": "hi"}], "stream": True},
            timeout=30,
        )
        assert streamed.status_code == 200 and "Hello." in streamed.text and streamed.text.endswith("[DONE]\n\n")
    first, second, third, fourth = stub.bodies("/v1/completions")
    assert first["max_tokens"] == fourth["max_tokens"] == 4096 - 37 - 1 and fourth["stream"] is True
    assert (second["max_tokens"], third["max_tokens"]) == (5, 7)
    counted = stub.bodies("/tokenize")
    assert len(counted) == 2 and counted[0]["prompt"] == first["prompt"] and counted[0]["model"] == "stub-model"


def test_counting_path_is_found_once() -> None:
    """SGLang counts on /v1/tokenize: /tokenize's 404 is remembered, not asked again."""
    with stub_backend(openai_routes(tokenize="/v1/tokenize")) as stub, serving(stub.url, "sglang") as server:
        chat(server)
        chat(server)
    assert [b["max_tokens"] for b in stub.bodies("/v1/completions")] == [4058, 4058]
    assert len(stub.bodies("/tokenize")) == 1 and len(stub.bodies("/v1/tokenize")) == 2


def test_openai_backend_without_a_context_length_gets_null() -> None:
    """llama.cpp's server and llama-cpp-python list no max_model_len: null means "up to the context" there."""
    with stub_backend(openai_routes(max_model_len=None)) as stub, serving(stub.url, "openai") as server:
        chat(server)
    (body,) = stub.bodies("/v1/completions")
    assert "max_tokens" in body and body["max_tokens"] is None
    assert stub.bodies("/tokenize") == []


def test_default_max_tokens_caps_requests_that_set_none() -> None:
    with stub_backend(openai_routes()) as stub, serving(stub.url, "vllm", "--default-max-tokens", "300") as server:
        chat(server)
        chat(server, max_tokens=4000)
    assert [b["max_tokens"] for b in stub.bodies("/v1/completions")] == [300, 4000]
    assert stub.bodies("/tokenize") == []


@pytest.mark.parametrize(("kind", "key"), [("llamacpp", "n_predict"), ("tgi", "max_new_tokens")])
def test_native_backends_get_their_unlimited_value(kind: str, key: str) -> None:
    with fake_backends.backend(kind) as backend_url, serving(backend_url, kind) as server:
        chat(server, messages=[{"role": "user", "content": "[[fake text=hi]]"}])
        sent = fake_backends.last_request(backend_url)
    if kind == "llamacpp":
        assert sent[key] == -1
    else:
        assert key in sent["parameters"] and sent["parameters"][key] is None


# ---------------------------------------------------------------------------------------------- model name, health


@pytest.mark.parametrize(
    ("kind", "routes", "expected"),
    [
        ("vllm", openai_routes(), "stub-model"),
        (
            "llamacpp",
            {"/health": (200, {}), "/props": (200, {"model_alias": "", "model_path": "/m/tiny.gguf"})},
            "tiny.gguf",
        ),
        (
            "llama.cpp",
            {"/health": (200, {}), "/props": (200, {"model_alias": "m2-tiny", "model_path": "/m/t.gguf"})},
            "m2-tiny",
        ),
        ("tgi", {"/health": (200, {}), "/info": (200, {"model_id": "MiniMaxAI/MiniMax-M2"})}, "MiniMaxAI/MiniMax-M2"),
        ("llamacpp", {"/health": (200, {}), "/v1/models": (200, {"data": [{"id": "/m/old.gguf"}]})}, "old.gguf"),
        ("tgi", {"/health": (200, {})}, "MiniMax-M2"),
    ],
)
def test_model_name_defaults_to_the_backends(kind: str, routes: dict[str, Any], expected: str) -> None:
    with stub_backend(routes) as stub, serving(stub.url, kind) as server:
        listed = httpx.get(server + "/v1/models", timeout=10).json()
    assert [m["id"] for m in listed["data"]] == [expected]


def test_model_name_flag_wins_and_unreachable_backend_keeps_the_default() -> None:
    with stub_backend(openai_routes()) as stub, serving(stub.url, "vllm", "--model-name", "mine") as server:
        assert httpx.get(server + "/v1/models", timeout=10).json()["data"][0]["id"] == "mine"
    with serving(fake_backends.refused_url(), "vllm") as server:
        assert httpx.get(server + "/v1/models", timeout=10).json()["data"][0]["id"] == "MiniMax-M2"


def test_health_falls_back_when_the_backend_has_no_health_route() -> None:
    """llama-cpp-python's OpenAI server has no /health: /v1/models answering means it serves."""
    routes = openai_routes(max_model_len=None, tokenize=None)
    del routes["/health"]
    with stub_backend(routes) as stub, serving(stub.url, "openai") as server:
        health = httpx.get(server + "/health", timeout=10)
    assert health.status_code == 200
    assert health.json()["backend"]["ready"] is True and health.json()["backend"]["probe"] == "/v1/models"


def test_health_still_fails_when_neither_route_answers() -> None:
    with stub_backend({"/v1/completions": COMPLETION}) as stub, serving(stub.url, "openai") as server:
        health = httpx.get(server + "/health", timeout=10)
    assert health.status_code == 503
    backend = health.json()["backend"]
    assert backend["reachable"] is True and backend["ready"] is False and backend["status_code"] == 404


# ---------------------------------------------------------------------------------------------- pure readers


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


@given(info=json_values | st.fixed_dictionaries({"data": st.lists(json_values, max_size=2)}))
def test_probe_readers_never_raise(info: Any) -> None:
    for protocol in PROTOCOLS.values():
        name = protocol.served_model(info)
        assert name is None or (isinstance(name, str) and name)
    length = openai_completions.context_length(info)
    assert length is None or (isinstance(length, int) and length > 0)
    count = openai_completions.token_count(info)
    assert count is None or (isinstance(count, int) and count >= 0)


def test_probe_readers() -> None:
    assert openai_completions.served_model({"data": [{"id": "a", "max_model_len": 2048}, {"id": "b"}]}) == "a"
    assert openai_completions.context_length({"data": [{"id": "a", "max_model_len": 2048}]}) == 2048
    assert openai_completions.context_length({"data": [{"id": "a", "max_model_len": True}]}) is None
    assert openai_completions.token_count({"count": 12, "tokens": [1]}) == 12
    assert openai_completions.token_count({"tokens": [1, 2]}) is None  # llama.cpp's shape: not a count
    assert llamacpp.served_model({"model_alias": "", "model_path": "C:\\models\\m2.gguf"}) == "m2.gguf"
    assert llamacpp.served_model({"model_path": ""}) is None
    # llama-server without --alias reports the -m path as the alias as well
    assert llamacpp.served_model({"model_alias": "/tmp/x/tiny.gguf", "model_path": "/tmp/x/tiny.gguf"}) == "tiny.gguf"
    assert llamacpp.served_model({"data": [{"id": "/models/m2-tiny.gguf"}]}) == "m2-tiny.gguf"  # /v1/models
    assert tgi.served_model({"model_id": "org/m"}) == "org/m"


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "https://h.example/v1/", "http://[::1]:80", "http://h"])
def test_usable_base_urls(url: str) -> None:
    assert check_base_url(url) == url


def test_request_size_and_origin_flags_reach_the_server() -> None:
    args = ("--max-request-bytes", "2000", "--allowed-origins", "https://app.example, chrome-extension://*")
    with stub_backend(openai_routes()) as stub, serving(stub.url, "vllm", *args) as server:
        endpoint = server + "/v1/chat/completions"
        big = {"model": "x", "messages": [{"role": "user", "content": "x" * 3000}]}
        assert httpx.post(endpoint, json=big, timeout=30).status_code == 413
        small = {"model": "x", "messages": [{"role": "user", "content": "hi"}]}
        for origin, status in [("https://app.example", 200), ("chrome-extension://abc", 200), ("https://evil", 403)]:
            response = httpx.post(endpoint, json=small, headers={"Origin": origin}, timeout=30)
            assert response.status_code == status, (origin, response.text)
    with stub_backend(openai_routes()) as stub, serving(stub.url, "vllm") as server:  # the config's defaults
        big = {"model": "x", "messages": [{"role": "user", "content": "x" * 3000}]}
        assert httpx.post(server + "/v1/chat/completions", json=big, timeout=30).status_code == 200
        refused = httpx.post(server + "/v1/chat/completions", json=big, headers={"Origin": "https://app.example"})
        assert refused.status_code == 403


@pytest.mark.parametrize("value", ["0", "-5"])
def test_request_size_flag_must_be_positive(value: str) -> None:
    err = one_line_error(m2parse("serve", "--backend", "http://127.0.0.1:9", "--max-request-bytes", value))
    assert "max_request_bytes" in err or "--max-request-bytes" in err


@given(st.text(max_size=40) | st.builds(lambda s: "http://" + s, st.text(max_size=30)))
def test_base_url_check_accepts_only_http_urls_and_never_crashes(url: str) -> None:
    try:
        assert check_base_url(url) == url
    except ValueError as exc:
        assert "\n" not in str(exc)  # one line: the URL is quoted with repr()
    else:
        assert url.lower().startswith(("http://", "https://")) and url.strip() == url


def test_serve_without_the_server_extra_is_one_line() -> None:
    code = (
        "import sys; sys.modules['starlette'] = None\n"
        "from m2parse.cli import main\n"
        "sys.exit(main(['serve', '--backend', 'http://127.0.0.1:9']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    err = one_line_error(proc)
    assert "[server] extra" in err and "pip install '.[server]'" in err
