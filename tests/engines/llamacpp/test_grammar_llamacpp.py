"""Grammars on a real llama-server: llama.cpp's GBNF parser takes every generated grammar, and under them the
kit's model, asked through ``m2parse serve --backend-type llamacpp`` with tool_choice required or a named
function, only writes calls that parse with no problem and validate (tests/engines/grammar_property.py)."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st

from m2parse.grammar import GrammarOptions, build_grammar, write

from ...grammar_strategies import tool_lists
from ...test_grammar import GOLDEN_CASES, golden_grammar
from ..grammar_property import PROMPT, PROPERTY, ask, check_reply
from .processes import ENGINE_MARKS, READY_TIMEOUT, Running

pytestmark = ENGINE_MARKS


def compile_on(llama: Running, grammar: str) -> httpx.Response:
    body = {"prompt": PROMPT, "grammar": grammar, "n_predict": 1, "temperature": 0}
    return httpx.post(llama.url + "/completion", json=body, timeout=READY_TIMEOUT)


def client(server: Running) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", timeout=READY_TIMEOUT, max_retries=0)


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_llama_cpp_takes_golden_grammars(llama: Running, name: str) -> None:
    assert compile_on(llama, golden_grammar(name)).status_code == 200


def test_llama_cpp_refuses_a_broken_grammar(llama: Running) -> None:
    """The compile check can fail: a grammar llama.cpp cannot parse is an error, not ignored."""
    assert compile_on(llama, 'root ::= "a" undefined-rule').status_code >= 400


@given(tools=tool_lists(), data=st.data())
@PROPERTY
def test_llama_cpp_takes_generated_grammars(llama: Running, tools: list[dict[str, Any]], data: Any) -> None:
    choice = data.draw(st.sampled_from(["required", "auto"]))
    lazy = data.draw(st.booleans())
    bound = data.draw(st.sampled_from([None, 5]))
    grammar = build_grammar(tools, choice, lazy=lazy, options=GrammarOptions(max_free_text=bound))
    response = compile_on(llama, write(grammar, "gbnf"))
    assert response.status_code == 200, response.text


@given(tools=tool_lists(bounded=True), data=st.data())
@PROPERTY
def test_required_and_named_outputs_parse_and_validate(
    serve: dict[str, Running], tools: list[dict[str, Any]], data: Any
) -> None:
    names = [t["function"]["name"] for t in tools]
    choice: Any = data.draw(st.sampled_from(["required", *names]))
    if choice != "required":
        choice = {"type": "function", "function": {"name": choice}}
    check_reply(ask(client(serve["llamacpp"]), tools, choice), tools, choice)


def test_strict_auto_is_lazy(serve: dict[str, Running]) -> None:
    """``auto`` with a strict tool sends a lazy grammar: the kit's model, free until the trigger, stops at once
    (its unconstrained behaviour), and the request succeeds with plain (empty) content."""
    tools = [{"type": "function", "function": {"name": "f", "strict": True, "parameters": {"type": "object"}}}]
    reply = client(serve["llamacpp"]).chat.completions.create(
        model="MiniMax-M2", messages=[{"role": "user", "content": "Hi"}], tools=tools, temperature=0, max_tokens=50
    )
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.tool_calls in (None, [])


def test_openai_type_identifies_llama_cpp(serve: dict[str, Running]) -> None:
    """``--backend-type openai`` in front of llama-server: the server identified llama.cpp at startup (``GET
    /props``) and sends its GBNF on the OpenAI endpoint, so a forced call holds the guarantee there too."""
    tools = [
        {
            "type": "function",
            "function": {
                "name": "f",
                "parameters": {
                    "type": "object",
                    "properties": {"n": {"type": "integer"}, "ok": {"type": "boolean"}},
                    "required": ["n", "ok"],
                },
            },
        }
    ]
    check_reply(ask(client(serve["openai"]), tools, "required"), tools, "required")
