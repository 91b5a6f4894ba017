"""``m2parse serve --backend-type openai`` (the default) asks the backend which engine it is, once at startup, and
sends tool-call grammars in that engine's field; a backend that does not say keeps the clear 400, and a hostile
one cannot stall startup. Real processes over real HTTP: the fake backend answers each engine's own routes."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx")

from m2parse.server.chat import prepare_body  # noqa: E402
from m2parse.server.config import ServerConfig  # noqa: E402
from m2parse.server.workers import config_from_json, config_to_json  # noqa: E402

from . import fake_backends  # noqa: E402

WEATHER = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "tools" / "weather.json").read_text())
STRICT = [{**WEATHER[0], "function": {**WEATHER[0]["function"], "strict": True}}]
BODY = {"model": "m", "messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": STRICT}


def serve(backend_url: str, log: Path, *extra: str) -> tuple[str, Any, float]:
    """``m2parse serve`` with the default backend type, its log in ``log``; ``(url, stop, seconds to start)``."""
    port = fake_backends.free_port()
    args = [sys.executable, "-m", "m2parse", "serve", "--backend", backend_url, "--port", str(port), *extra]
    began = time.monotonic()
    url, stop = fake_backends._spawn_server(args, port, open(log, "w"))  # noqa: SIM115 (stop closes it)
    return url, stop, time.monotonic() - began


@pytest.fixture
def engine_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    with fake_backends.backend("openai", fixture="weather_basic", engine=request.param) as url:
        yield url


def grammar_fields(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k in ("structured_outputs", "ebnf", "grammar", "grammar_lazy")}


@pytest.mark.parametrize(
    ("engine_backend", "said", "field"),
    [
        ("vllm", "vLLM (GET /version)", "structured_outputs"),
        ("sglang", "SGLang (GET /server_info)", "ebnf"),
        ("llama.cpp", "llama.cpp (GET /props)", "grammar"),
    ],
    indirect=["engine_backend"],
)
def test_identified_engine_gets_its_grammar_field(engine_backend: str, said: str, field: str, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    url, stop, _ = serve(engine_backend, log)
    try:
        reply = httpx.post(url + "/v1/chat/completions", json=BODY, timeout=30)
        sent = fake_backends.last_request(engine_backend)
    finally:
        stop()
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    fields = grammar_fields(sent)
    assert list(fields) == [field]  # the whole-output grammar: no lazy fields on /v1/completions
    grammar = fields[field]["grammar"] if field == "structured_outputs" else fields[field]
    assert grammar.startswith("root ::= ")
    assert f"backend identified as {said}" in log.read_text()


@pytest.mark.parametrize("engine_backend", ["sglang"], indirect=True)
def test_backend_url_ending_in_v1_is_probed_at_its_root(engine_backend: str, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    _, stop, _ = serve(engine_backend + "/v1", log)
    stop()
    assert "backend identified as SGLang (GET /server_info)" in log.read_text()


@pytest.mark.parametrize("engine_backend", [None], indirect=True)
def test_unidentified_backend_keeps_the_400_and_says_why_at_startup(engine_backend: str, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    url, stop, _ = serve(engine_backend, log)
    try:
        reply = httpx.post(url + "/v1/chat/completions", json=BODY, timeout=30)
    finally:
        stop()
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "grammar_unsupported"
    warnings = [line for line in log.read_text().splitlines() if "backend engine not identified" in line]
    assert len(warnings) == 1 and "--backend-type" in warnings[0] and "--unconstrained-fallback" in warnings[0]


@pytest.mark.parametrize("engine_backend", ["llama.cpp"], indirect=True)
def test_explicit_backend_type_skips_the_probe(engine_backend: str, tmp_path: Path) -> None:
    """--backend-type vllm in front of a server that looks like llama.cpp: the flag wins, nothing is asked."""
    log = tmp_path / "serve.log"
    url, stop, _ = serve(engine_backend, log, "--backend-type", "vllm")
    try:
        httpx.post(url + "/v1/chat/completions", json=BODY, timeout=30)
        sent = fake_backends.last_request(engine_backend)
    finally:
        stop()
    assert list(grammar_fields(sent)) == ["structured_outputs"]
    assert "identified" not in log.read_text()


@pytest.mark.parametrize("engine_backend", ["hostile"], indirect=True)
def test_hostile_backend_cannot_stall_startup(engine_backend: str, tmp_path: Path) -> None:
    """/version trickles without end, /props sends 2 MiB, /server_info stalls a minute: the probes give up
    after 5 s together (the bound), and the server starts unidentified."""
    log = tmp_path / "serve.log"
    url, stop, seconds = serve(engine_backend, log)
    try:
        reply = httpx.post(url + "/v1/chat/completions", json=BODY, timeout=30)
    finally:
        stop()
    assert seconds < 15, seconds  # 5 s of probes plus the interpreter's start on a loaded machine
    assert reply.status_code == 400
    assert "backend engine not identified" in log.read_text()


def test_library_config_without_engine_is_todays_behaviour() -> None:
    assert ServerConfig(backend_url="http://127.0.0.1:9").grammar_engine is None
    with pytest.raises(ValueError, match="grammar_engine"):
        ServerConfig(backend_url="http://127.0.0.1:9", grammar_engine="tgi")


@pytest.mark.parametrize(
    ("engine", "field"), [("vllm", "structured_outputs"), ("sglang", "ebnf"), ("llama.cpp", "grammar")]
)
def test_config_engine_picks_the_field_and_survives_the_workers_json(engine: str, field: str) -> None:
    """create_app's config with grammar_engine set (as serve sets it) sends that engine's field; the --workers
    processes get the same config."""
    config = ServerConfig(backend_url="http://127.0.0.1:9", grammar_engine=engine)
    prepared = prepare_body({"messages": BODY["messages"], "tools": STRICT}, config)
    assert list(prepared.request.backend_extra or {}) == [field]
    assert config_from_json(config_to_json(config, "info", "text"))[0] == config
