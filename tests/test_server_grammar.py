"""The server sends a tool-call grammar in each backend's own field, and refuses (400) where it cannot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")

from m2parse.server.chat import prepare_body
from m2parse.server.config import ServerConfig
from m2parse.server.errors import APIError

WEATHER = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "tools" / "weather.json").read_text())
STRICT = [{**WEATHER[0], "function": {**WEATHER[0]["function"], "strict": True}}]
USER = [{"role": "user", "content": "Weather in Paris?"}]
NAMED = {"type": "function", "function": {"name": "get_weather"}}


def extra(backend_type: str, body: dict[str, Any], **config: Any) -> dict[str, Any]:
    conf = ServerConfig(backend_url="http://127.0.0.1:9", backend_type=backend_type, **config)
    prepared = prepare_body({"messages": USER, **body}, conf)
    return dict(prepared.request.backend_extra or {})


@pytest.mark.parametrize("choice", ["required", NAMED])
def test_fields_per_backend(choice: Any) -> None:
    body = {"tools": WEATHER, "tool_choice": choice}
    vllm = extra("vllm", body)
    assert list(vllm) == ["structured_outputs"] and vllm["structured_outputs"]["grammar"].startswith("root ::= ")
    sglang = extra("sglang", body)
    assert list(sglang) == ["ebnf"] and sglang["ebnf"] == vllm["structured_outputs"]["grammar"]
    for kind in ("llamacpp", "llama.cpp"):
        llama = extra(kind, body)
        assert list(llama) == ["grammar"] and "reasoning" in llama["grammar"]


def test_no_grammar_without_need() -> None:
    assert extra("vllm", {"tools": WEATHER}) == {}
    assert extra("vllm", {"tools": WEATHER, "tool_choice": "auto"}) == {}
    assert extra("vllm", {"tools": STRICT, "tool_choice": "none"}) == {}
    assert extra("tgi", {}) == {}


def test_strict_auto_is_lazy_on_llamacpp_and_whole_output_on_xgrammar() -> None:
    llama = extra("llamacpp", {"tools": STRICT})
    assert llama["grammar_lazy"] is True
    assert llama["grammar_triggers"] == [{"type": 1, "value": "<minimax:tool_call>"}]
    assert llama["preserved_tokens"] == ["<minimax:tool_call>"]
    assert llama["grammar"].startswith("root ::= block\n")
    vllm = extra("vllm", {"tools": STRICT, "tool_choice": "auto"})["structured_outputs"]["grammar"]
    assert "content-final" in vllm


@pytest.mark.parametrize("kind", ["tgi", "openai"])
def test_backend_without_grammar_is_a_clear_400(kind: str) -> None:
    with pytest.raises(APIError) as info:
        extra(kind, {"tools": WEATHER, "tool_choice": "required"})
    assert info.value.status == 400 and "--unconstrained-fallback" in info.value.message
    assert extra(kind, {"tools": WEATHER, "tool_choice": "required"}, unconstrained_fallback=True) == {}


def test_client_keys_win_and_bounds() -> None:
    body = {
        "tools": WEATHER,
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "m2parse": {"grammar": {"max_free_text": 8}, "backend_extra": {"grammar": 'root ::= "x"'}},
    }
    assert extra("llamacpp", body) == {"grammar": 'root ::= "x"'}
    del body["m2parse"]["backend_extra"]
    text = extra("llamacpp", body)["grammar"]
    assert "{0,8}" in text and "invoke{1}" in text.replace(" ", "").replace("invoke+", "")
    with pytest.raises(APIError, match="grammar bound"):
        extra("llamacpp", {**body, "m2parse": {"grammar": {"max_tokens": 3}}})
    with pytest.raises(APIError, match="from 1 to"):
        extra("llamacpp", {**body, "m2parse": {"grammar": {"max_items": 0}}})
