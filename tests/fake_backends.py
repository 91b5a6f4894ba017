"""Fake raw-completion backends: real HTTP servers in their own process, speaking each protocol token by token.

Start one with :func:`start_backend` (or the :func:`backend` context manager); it replays ``fixtures/NAME.txt``
(or a given text) as the model output. What to replay is chosen per request by a directive in the prompt, so one
backend process serves many tests; the last directive in the prompt wins (the latest user message)::

    [[fake fixture=weather_basic pieces=char delay=0.01 fault=disconnect fault_after=3 tag=req17]]

- ``fixture=NAME`` or ``fixture=A;B``: with a list, the n-th assistant turn of the conversation (n = the number
  of ``]~b]ai`` already in the prompt, minus the generation prompt's) replays the n-th name (the last one after).
- ``pieces=token`` (default; 3-5 character pieces, format markers as whole tokens), ``char`` (1 character), or
  an integer piece length.
- ``prefix=TEXT``: text emitted before the fixture (``%20`` for a space), to make outputs unique;
  ``repeat=N``: the fixture (or text) N times over, for long outputs.
- ``finish=stop|length``: default ``length`` for a cut-off fixture (see :func:`fixture_is_truncated`).
- ``fault=`` ``500`` or ``422`` (the backend's error body with that status) | ``garbage`` (a non-JSON data line
  or body) | ``disconnect`` (connection dropped) | ``slow`` (sleep ``slow`` seconds, default 30) |
  ``error_event`` (the backend's in-band error); ``fault_after=N`` pieces are sent first.
- ``message=TEXT``: the error message of ``fault=500|422|error_event`` (percent-decoded, so ``%0A`` is a newline).
- Values are percent-decoded with ``surrogatepass``, so ``text=%ED%A0%80`` replays a lone surrogate (sent as the
  JSON escape ``\\ud800``, as a real server would).
- ``tag=ID``: count this request's outcome under its own name and record each piece's send time
  (``time.monotonic()``), for latency measurements.

Control endpoints: ``GET /_fake/last_request`` (the last completion request body), ``GET /_fake/stats``
(requests, completed, disconnects, active; ``completed:TAG``/``disconnects:TAG`` per tag),
``GET /_fake/timings?tag=ID``, ``POST /_fake/reset``.
``engine=vllm|sglang|llama.cpp|hostile`` (a start_backend option, not a directive): also answer the routes
``m2parse serve`` identifies that engine by (ENGINE_ROUTES), or answer them with a stall and oversized bodies.
A connection-refused backend is just :func:`refused_url`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, unquote

REPO = Path(__file__).resolve().parent.parent
FIXTURES_DIR = REPO / "fixtures"
KINDS = ("openai", "tgi", "llamacpp")

_MARKERS = (
    "<minimax:tool_call>",
    "</minimax:tool_call>",
    "<think>",
    "</think>",
    "]~!b[",
    "]~b]",
    "[e~[",
)
_EOS = "[e~["
_DIRECTIVE = re.compile(r"\[\[fake ([^\]]*)\]\]")

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


# ---------------------------------------------------------------------------------------------- pure helpers


def split_pieces(text: str, pieces: str = "token", seed: int = 0) -> list[str]:
    """Token-like pieces: markers whole, other text in 3-5 character runs (or 1 char, or N chars)."""
    if pieces == "char":
        return list(text)
    fixed = int(pieces) if pieces.isdigit() else 0
    rng = random.Random(seed)
    out: list[str] = []
    i = 0
    while i < len(text):
        marker = next((m for m in _MARKERS if text.startswith(m, i)), None)
        if marker is not None:
            out.append(marker)
            i += len(marker)
            continue
        size = fixed or rng.randint(3, 5)
        end = min(len(text), i + size)
        for m in _MARKERS:
            j = text.find(m, i + 1, end + len(m) - 1)
            if i < j < end:
                end = j
        out.append(text[i:end])
        i = end
    return out


def parse_directive(prompt: str) -> dict[str, str]:
    found = _DIRECTIVE.findall(prompt)
    if not found:
        return {}
    out: dict[str, str] = {}
    for item in found[-1].split():
        key, _, value = item.partition("=")
        out[key] = unquote(value, errors="surrogatepass")
    return out


def fixture_is_truncated(name: str) -> bool:
    """Whether the fixture's output was cut off by the token limit (so the backend reports ``length``)."""
    meta_path = FIXTURES_DIR / f"{name}.json"
    if name.startswith("truncated"):
        return True
    if not meta_path.exists():
        return False
    problems = json.loads(meta_path.read_text(encoding="utf-8"))["expected"].get("problems", [])
    return any(code.startswith("truncated") or code == "missing_think_end" for code in problems)


def read_fixture_text(name: str) -> str:
    with open(FIXTURES_DIR / f"{name}.txt", encoding="utf-8", newline="") as handle:
        return handle.read()


@dataclass(frozen=True)
class Plan:
    """What one request replays and how."""

    pieces: list[str]
    finish: str  # "stop" | "length"
    delay: float = 0.0
    fault: str | None = None
    fault_after: int = 0
    slow: float = 30.0
    tag: str | None = None
    message: str = ""


def make_plan(prompt: str, defaults: dict[str, str]) -> Plan:
    opts = {**defaults, **parse_directive(prompt)}
    names = [n for n in opts.get("fixture", "").split(";") if n]
    text, finish = opts.get("text", ""), "stop"
    if names:
        turn = max(0, prompt.count("]~b]ai") - 1)
        name = names[min(turn, len(names) - 1)]
        text = read_fixture_text(name)
        finish = "length" if fixture_is_truncated(name) else "stop"
    text = opts.get("prefix", "") + text * int(opts.get("repeat", "1"))
    finish = opts.get("finish", finish)
    seed = int(opts.get("seed", "0")) or sum(map(ord, prompt[-64:]))
    return Plan(
        pieces=split_pieces(text, opts.get("pieces", "token"), seed),
        finish=finish,
        delay=float(opts.get("delay", "0")),
        fault=opts.get("fault") or None,
        fault_after=int(opts.get("fault_after", "0")),
        slow=float(opts.get("slow", "30")),
        tag=opts.get("tag") or None,
        message=opts.get("message", ""),
    )


# ---------------------------------------------------------------------------------------------- wire formats


def _special(text: str) -> bool:
    return text in _MARKERS


class Wire:
    """One protocol's framing; ``chunk`` returns the SSE bytes for one piece (``last`` carries the finish)."""

    kind = ""
    stream_paths: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()

    def prompt(self, body: dict[str, Any]) -> str:
        return str(body.get("prompt", ""))

    def is_stream(self, path: str, body: dict[str, Any]) -> bool:
        return bool(body.get("stream"))

    def chunk(self, index: int, text: str, last: bool, plan: Plan, usage: tuple[int, int]) -> bytes:
        raise NotImplementedError

    def tail(self, body: dict[str, Any], plan: Plan, usage: tuple[int, int]) -> bytes:
        return b""

    def whole(self, plan: Plan, usage: tuple[int, int]) -> dict[str, Any]:
        raise NotImplementedError

    def error_500(self, message: str = "") -> dict[str, Any]:
        raise NotImplementedError

    def error_event(self, message: str = "") -> bytes:
        raise NotImplementedError


def _dumps(obj: Any) -> bytes:
    """JSON bytes; text with a lone surrogate goes out escaped (``\\ud800``), as Python and Rust servers send it."""
    try:
        return json.dumps(obj, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return json.dumps(obj).encode()


def _sse(obj: Any, field_name: str = "data", space: bool = True) -> bytes:
    return f"{field_name}:{' ' if space else ''}".encode() + _dumps(obj) + b"\n\n"


class OpenAIWire(Wire):
    kind = "openai"
    stream_paths = ("/v1/completions",)
    paths = ("/v1/completions",)

    def _base(self) -> dict[str, Any]:
        return {"id": "cmpl-fake", "object": "text_completion", "created": 1700000000, "model": "fake-m2"}

    def chunk(self, index: int, text: str, last: bool, plan: Plan, usage: tuple[int, int]) -> bytes:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": plan.finish if last else None}
        choice["stop_reason"] = None
        return _sse({**self._base(), "choices": [choice], "usage": None})

    def tail(self, body: dict[str, Any], plan: Plan, usage: tuple[int, int]) -> bytes:
        out = b""
        if (body.get("stream_options") or {}).get("include_usage"):
            counts = {"prompt_tokens": usage[0], "total_tokens": sum(usage), "completion_tokens": usage[1]}
            out += _sse({**self._base(), "choices": [], "usage": counts})
        return out + b"data: [DONE]\n\n"

    def whole(self, plan: Plan, usage: tuple[int, int]) -> dict[str, Any]:
        choice = {"index": 0, "text": "".join(plan.pieces), "logprobs": None, "finish_reason": plan.finish}
        counts = {"prompt_tokens": usage[0], "total_tokens": sum(usage), "completion_tokens": usage[1]}
        return {**self._base(), "choices": [choice], "usage": counts}

    def error_500(self, message: str = "") -> dict[str, Any]:
        text = message or "fake engine failure"
        return {"error": {"message": text, "type": "InternalServerError", "param": None, "code": 500}}

    def error_event(self, message: str = "") -> bytes:
        text = message or "fake in-stream failure"
        return _sse({"error": {"message": text, "type": "InternalServerError", "code": 500}})


class TGIWire(Wire):
    kind = "tgi"
    stream_paths = ("/generate_stream",)
    paths = ("/generate",)

    def prompt(self, body: dict[str, Any]) -> str:
        return str(body.get("inputs", ""))

    def is_stream(self, path: str, body: dict[str, Any]) -> bool:
        return path in self.stream_paths

    def _tokens(self, plan: Plan) -> list[dict[str, Any]]:
        pieces = list(plan.pieces)
        if plan.finish == "stop":
            pieces.append(_EOS)  # the real server streams the EOS token, marked special
        return [{"id": 1000 + i, "text": p, "logprob": -0.5, "special": _special(p)} for i, p in enumerate(pieces)]

    def _details(self, plan: Plan, usage: tuple[int, int]) -> dict[str, Any]:
        reason = "eos_token" if plan.finish == "stop" else "length"
        return {"finish_reason": reason, "generated_tokens": usage[1], "seed": None, "input_length": usage[0]}

    def chunk(self, index: int, text: str, last: bool, plan: Plan, usage: tuple[int, int]) -> bytes:
        event = {
            "index": index + 1,
            "token": {"id": 1000 + index, "text": text, "logprob": -0.5, "special": _special(text)},
            "generated_text": None,
            "details": None,
        }
        if not last:
            return _sse(event, space=False)
        out = b""
        if plan.finish == "stop":
            out += _sse(event, space=False)
            event = {
                "index": index + 2,
                "token": {"id": 2, "text": _EOS, "logprob": -0.1, "special": True},
                "generated_text": None,
                "details": None,
            }
        skipped = "".join(p for p in plan.pieces if not _special(p))
        event["generated_text"] = skipped
        event["details"] = self._details(plan, usage)
        return out + _sse(event, space=False)

    def whole(self, plan: Plan, usage: tuple[int, int]) -> dict[str, Any]:
        details = {**self._details(plan, usage), "prefill": [], "tokens": self._tokens(plan)}
        return {"generated_text": "".join(p for p in plan.pieces if not _special(p)), "details": details}

    def error_500(self, message: str = "") -> dict[str, Any]:
        return {"error": message or "fake shard failure", "error_type": "generation"}

    def error_event(self, message: str = "") -> bytes:
        text = message or "Request failed during generation: fake"
        return _sse({"error": text, "error_type": "generation"}, space=False)


class LlamaCppWire(Wire):
    kind = "llamacpp"
    stream_paths = ("/completion",)
    paths = ("/completion",)

    def _final(self, plan: Plan, usage: tuple[int, int], content: str) -> dict[str, Any]:
        return {
            "index": 0,
            "content": content,
            "tokens": [],
            "id_slot": 0,
            "stop": True,
            "model": "fake-m2.gguf",
            "tokens_predicted": usage[1],
            "tokens_evaluated": usage[0],
            "generation_settings": {"n_predict": -1},
            "prompt": "",
            "has_new_line": "\n" in content,
            "truncated": False,
            "stop_type": "limit" if plan.finish == "length" else "eos",
            "stopping_word": "",
            "tokens_cached": usage[0],
            "timings": {"prompt_n": usage[0], "predicted_n": usage[1], "predicted_per_second": 50.0},
        }

    def chunk(self, index: int, text: str, last: bool, plan: Plan, usage: tuple[int, int]) -> bytes:
        partial = {"index": 0, "content": text, "tokens": [1000 + index], "stop": False, "id_slot": 0}
        partial.update(tokens_predicted=index + 1, tokens_evaluated=usage[0])
        out = _sse(partial)
        if last:
            out += _sse(self._final(plan, usage, ""))
        return out

    def whole(self, plan: Plan, usage: tuple[int, int]) -> dict[str, Any]:
        return self._final(plan, usage, "".join(plan.pieces))

    def error_500(self, message: str = "") -> dict[str, Any]:
        return {"error": {"code": 500, "message": message or "fake llama failure", "type": "server_error"}}

    def error_event(self, message: str = "") -> bytes:
        text = message or "fake llama failure"
        return _sse({"code": 500, "message": text, "type": "server_error"}, field_name="error")


WIRES: dict[str, type[Wire]] = {"openai": OpenAIWire, "tgi": TGIWire, "llamacpp": LlamaCppWire}


# ---------------------------------------------------------------------------------------------- the ASGI app


class _Abort(Exception):
    """Raised after the response started: uvicorn then drops the connection without ending the body."""


@dataclass
class FakeBackend:
    wire: Wire
    defaults: dict[str, str]
    last_request: Any = None
    stats: dict[str, int] = field(
        default_factory=lambda: {"requests": 0, "completed": 0, "disconnects": 0, "active": 0}
    )
    timings: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    #: the engine whose identification routes it answers (see ENGINE_ROUTES), or None: no such routes
    engine: str | None = None

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        path, method = scope["path"], scope["method"]
        raw = b""
        more = True
        while more:
            message = await receive()
            raw += message.get("body", b"")
            more = message.get("more_body", False)
        if method == "GET" and path == "/health":
            return await _json(send, 200, {"status": "ok"})
        if method == "GET" and path == "/v1/models" and self.wire.kind == "openai":
            return await _json(send, 200, {"object": "list", "data": [{"id": "fake-m2", "object": "model"}]})
        if path.startswith("/_fake/"):
            return await self._control(path, scope, send)
        if method == "GET" and self.engine == "hostile" and path in ("/version", "/server_info", "/props"):
            return await _hostile(path, send)
        if method == "GET" and (answer := ENGINE_ROUTES.get(self.engine or "", {}).get(path)) is not None:
            return await _json(send, 200, answer)
        if method == "POST" and path in (*self.wire.stream_paths, *self.wire.paths):
            try:
                body = json.loads(raw)
            except ValueError:
                return await _json(send, 400, {"error": "bad json"})
            self.last_request = body
            self.stats["requests"] += 1
            self.stats["active"] += 1
            try:
                await self._complete(path, body, receive, send)
            finally:
                self.stats["active"] -= 1
            return None
        return await _json(send, 404, {"error": f"no route {method} {path}"})

    def _count(self, what: str, tag: str | None) -> None:
        self.stats[what] += 1
        if tag:
            self.stats[f"{what}:{tag}"] = self.stats.get(f"{what}:{tag}", 0) + 1

    async def _control(self, path: str, scope: dict[str, Any], send: Send) -> None:
        if path == "/_fake/last_request":
            return await _json(send, 200, {"body": self.last_request})
        if path == "/_fake/stats":
            return await _json(send, 200, self.stats)
        if path == "/_fake/timings":
            tag = parse_qs(scope["query_string"].decode()).get("tag", [""])[0]
            return await _json(send, 200, {"timings": self.timings.get(tag, [])})
        if path == "/_fake/reset":
            self.last_request = None
            self.timings.clear()
            for key in self.stats:
                self.stats[key] = 0 if key != "active" else self.stats[key]
            return await _json(send, 200, {"ok": True})
        return await _json(send, 404, {"error": "no such control"})

    async def _complete(self, path: str, body: dict[str, Any], receive: Receive, send: Send) -> None:
        plan = make_plan(self.wire.prompt(body), self.defaults)
        usage = (max(1, len(self.wire.prompt(body)) // 4), len(plan.pieces))
        if plan.fault in ("500", "422"):
            return await _json(send, int(plan.fault), self.wire.error_500(plan.message))
        if self.wire.is_stream(path, body):
            return await self._stream(body, plan, usage, receive, send)
        if plan.fault == "slow":
            await asyncio.sleep(plan.slow)
        if plan.delay and not await _generate_or_disconnect(plan.delay * len(plan.pieces), receive):
            self._count("disconnects", plan.tag)
            return None
        if plan.fault == "garbage":
            return await _raw(send, 200, b"<html>this is not json</html>")
        payload = _dumps(self.wire.whole(plan, usage))
        if plan.fault == "disconnect":
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": payload[: len(payload) // 2], "more_body": True})
            raise _Abort("fake mid-response disconnect")
        await _raw(send, 200, payload)
        self.stats["completed"] += 1
        return None

    async def _stream(
        self, body: dict[str, Any], plan: Plan, usage: tuple[int, int], receive: Receive, send: Send
    ) -> None:
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.ensure_future(watch())
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        record = self.timings.setdefault(plan.tag, []) if plan.tag else None
        try:
            for i, text in enumerate(plan.pieces or [""]):
                if plan.fault and i == plan.fault_after:
                    await self._fault(plan, send)
                if plan.delay:
                    await asyncio.sleep(plan.delay)
                if gone.is_set():
                    self._count("disconnects", plan.tag)
                    return
                last = i == max(len(plan.pieces), 1) - 1
                if record is not None:
                    record.append((time.monotonic(), text))
                await send(
                    {
                        "type": "http.response.body",
                        "body": self.wire.chunk(i, text, last, plan, usage),
                        "more_body": True,
                    }
                )
            await send({"type": "http.response.body", "body": self.wire.tail(body, plan, usage), "more_body": False})
            self._count("completed", plan.tag)
        finally:
            watcher.cancel()

    async def _fault(self, plan: Plan, send: Send) -> None:
        if plan.fault == "slow":
            await asyncio.sleep(plan.slow)
        elif plan.fault == "garbage":
            await send({"type": "http.response.body", "body": b"data: {this is not json\n\n", "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            raise _Done
        elif plan.fault == "error_event":
            await send({"type": "http.response.body", "body": self.wire.error_event(plan.message), "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            raise _Done
        elif plan.fault == "disconnect":
            raise _Abort("fake mid-stream disconnect")


async def _generate_or_disconnect(seconds: float, receive: Receive) -> bool:
    """Spend ``seconds`` "generating" a non-streamed reply; False if the client went away meanwhile."""

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    try:
        await asyncio.wait_for(watch(), seconds)
    except asyncio.TimeoutError:
        return True
    return False


class _Done(Exception):
    """The fault already ended the response."""


async def _raw(send: Send, status: int, payload: bytes, content_type: bytes = b"application/json") -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]})
    await send({"type": "http.response.body", "body": payload})


async def _json(send: Send, status: int, obj: Any) -> None:
    await _raw(send, status, json.dumps(obj).encode())


#: what each engine answers on the routes ``m2parse serve`` identifies it by (the shapes of vLLM 0.32's
#: /version and dev-mode /server_info, SGLang 0.5's /server_info, llama.cpp's /props), for ``engine=NAME``
ENGINE_ROUTES: dict[str, dict[str, Any]] = {
    "vllm": {
        "/version": {"version": "0.32.0"},
        "/server_info": {"vllm_config": "model='fake-m2'", "vllm_env": {}, "system_env": {}},
    },
    "sglang": {
        "/server_info": {"model_path": "fake-m2", "tp_size": 1, "dp_size": 1, "version": "0.5.23"},
        "/get_server_info": {"model_path": "fake-m2", "tp_size": 1, "dp_size": 1, "version": "0.5.23"},
    },
    "llama.cpp": {
        "/props": {"default_generation_settings": {"n_ctx": 4096}, "build_info": "b1-fake", "total_slots": 1}
    },
}


async def _hostile(path: str, send: Send) -> None:
    """``engine=hostile``: /version trickles an endless body, /props sends 2 MiB at once, /server_info stalls."""
    if path == "/server_info":
        await asyncio.sleep(60)
        return await _json(send, 200, {"model_path": "x", "tp_size": 1})
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    if path == "/props":
        await send({"type": "http.response.body", "body": b'{"default_generation_settings": "' + b"x" * (2 << 20)})
        return None
    await send({"type": "http.response.body", "body": b'{"version": "', "more_body": True})
    for _ in range(600):  # about a minute: the client is meant to give up long before
        await asyncio.sleep(0.1)
        await send({"type": "http.response.body", "body": b"9" * 1024, "more_body": True})
    await send({"type": "http.response.body", "body": b'"}'})
    return None


def _app(kind: str, defaults: dict[str, str]) -> Callable[..., Awaitable[None]]:
    engine = defaults.pop("engine", None)
    backend = FakeBackend(WIRES[kind](), defaults, engine=engine)

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        with contextlib.suppress(_Done):
            await backend(scope, receive, send)

    return app


def _serve(kind: str, defaults: dict[str, str]) -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(_app(kind, defaults), log_level="critical", lifespan="on", timeout_keep_alive=30)
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))


# ---------------------------------------------------------------------------------------------- process control


def start_backend(kind: str, **defaults: Any) -> tuple[str, Callable[[], None]]:
    """Start a fake ``kind`` backend (openai | tgi | llamacpp) in its own process on 127.0.0.1.

    ``defaults`` are directive values used when the prompt does not set them (e.g. ``fixture="weather_basic"``,
    ``text="raw output"``, ``pieces="char"``, ``delay=0.01``). Returns ``(base_url, stop)``.
    """
    if kind not in WIRES:
        raise ValueError(f"unknown fake backend kind {kind!r}")
    args = [sys.executable, str(Path(__file__).resolve()), kind, json.dumps({k: str(v) for k, v in defaults.items()})]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"fake {kind} backend did not start (said {line!r})")
    url = f"http://127.0.0.1:{int(line.split()[1])}"
    wait_until_up(url + "/health", proc=proc)

    def stop() -> None:
        proc.kill()  # nothing to flush, and a graceful stop would wait out requests parked by fault=slow
        proc.wait()

    return url, stop


@contextlib.contextmanager
def backend(kind: str, **defaults: Any) -> Iterator[str]:
    url, stop = start_backend(kind, **defaults)
    try:
        yield url
    finally:
        stop()


def wait_until_up(url: str, timeout: float = 20.0, proc: subprocess.Popen[Any] | None = None) -> None:
    """Poll ``url`` until anything answers; fail fast if ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"the process serving {url} exited with {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def refused_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def last_request(url: str) -> Any:
    """The body of the last completion request the fake backend at ``url`` received."""
    return _get_json(url + "/_fake/last_request")["body"]


def stats(url: str) -> dict[str, int]:
    return dict(_get_json(url + "/_fake/stats"))


def timings(url: str, tag: str) -> list[tuple[float, str]]:
    return [(float(t), str(s)) for t, s in _get_json(url + f"/_fake/timings?tag={tag}")["timings"]]


def reset(url: str) -> None:
    request = urllib.request.Request(url + "/_fake/reset", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass


# ---------------------------------------------------------------------------------------------- m2parse server


def _spawn_server(args: list[str], port: int, log: IO[str] | None) -> tuple[str, Callable[[], None]]:
    """Run ``args`` (a server on 127.0.0.1:``port``), wait until its /v1/models answers; returns ``(url, stop)``,
    ``stop.process`` being the process. ``log`` (None: inherit the test's output) is closed by ``stop``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(args, stdout=log, stderr=log, env=env, cwd=REPO)
    url = f"http://127.0.0.1:{port}"

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log is not None:
            log.close()

    try:
        wait_until_up(url + "/v1/models", proc=proc)
    except (OSError, RuntimeError):
        stop()
        raise
    stop.process = proc  # type: ignore[attr-defined]
    return url, stop


def start_m2parse(
    backend_url: str, backend_type: str, *extra: str, port: int | None = None
) -> tuple[str, Callable[[], None]]:
    """Run ``python -m m2parse serve`` as a real uvicorn process on 127.0.0.1; returns ``(base_url, stop)``."""
    port = port or free_port()
    args = [sys.executable, "-m", "m2parse", "serve", "--backend", backend_url, "--backend-type", backend_type]
    args += ["--host", "127.0.0.1", "--port", str(port), *extra]
    log = open(os.devnull, "w") if not os.environ.get("M2PARSE_TEST_SERVER_LOG") else None  # noqa: SIM115
    return _spawn_server(args, port, log)


_APP_RUNNER = """
import json, sys, logging, uvicorn
from m2parse.server import ServerConfig, create_app
options = {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(sys.argv[1]).items()}
logging.basicConfig(level="INFO", format="%(levelname)s %(name)s: %(message)s")
uvicorn.run(create_app(ServerConfig(**options)), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def start_app(log_path: str | None = None, **config: Any) -> tuple[str, Callable[[], None]]:
    """Run ``create_app(ServerConfig(**config))`` under uvicorn in its own process on 127.0.0.1 (for settings
    the command line does not have); its log goes to ``log_path`` when given. Returns ``(base_url, stop)``."""
    port = free_port()
    args = [sys.executable, "-c", _APP_RUNNER, json.dumps(config), str(port)]
    return _spawn_server(args, port, open(log_path or os.devnull, "w"))


@contextlib.contextmanager
def app_server(log_path: str | None = None, **config: Any) -> Iterator[str]:
    url, stop = start_app(log_path, **config)
    try:
        yield url
    finally:
        stop()


@contextlib.contextmanager
def stacks(*server_args: str) -> Iterator[dict[str, tuple[str, str]]]:
    """kind -> (fake backend URL, m2parse URL): one backend of every kind, each with an m2parse server in front
    started with ``server_args``; all stopped on exit, newest first."""
    stops: list[Callable[[], None]] = []
    out: dict[str, tuple[str, str]] = {}
    try:
        for kind in KINDS:
            backend_url, stop_backend = start_backend(kind)
            stops.append(stop_backend)
            server_url, stop_server = start_m2parse(backend_url, kind, *server_args)
            stops.append(stop_server)
            out[kind] = (backend_url, server_url)
        yield out
    finally:
        for stop in reversed(stops):
            stop()


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description="run one fake backend (prints 'PORT n')")
    cli.add_argument("kind", choices=KINDS)
    cli.add_argument("defaults", nargs="?", default="{}")
    ns = cli.parse_args()
    _serve(ns.kind, json.loads(ns.defaults))
