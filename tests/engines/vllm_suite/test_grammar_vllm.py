"""Grammars on a real vLLM (xgrammar): vLLM takes every generated grammar in ``structured_outputs.grammar``, and
under them the kit's model, asked through ``m2parse serve --backend-type vllm`` with tool_choice required or a
named function, only writes calls that parse with no problem and validate (tests/engines/grammar_property.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st

from m2parse.grammar import GrammarOptions, build_grammar, structural_tag, write

from ...grammar_strategies import tool_lists
from ...test_grammar import GOLDEN_CASES, golden_grammar
from ..grammar_property import PROMPT, PROPERTY, ask, check_reply
from .processes import ENGINE_MARKS, SERVED_NAME, Running, m2parse_serve

pytestmark = ENGINE_MARKS


def compile_on(vllm: Running, grammar: str) -> httpx.Response:
    body = {
        "model": SERVED_NAME,
        "prompt": PROMPT,
        "max_tokens": 1,
        "temperature": 0,
        "structured_outputs": {"grammar": grammar},
    }
    return httpx.post(vllm.url + "/v1/completions", json=body, timeout=600)


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_vllm_takes_golden_grammars(vllm: Running, name: str) -> None:
    tools, choice, lazy, options, _ = GOLDEN_CASES[name]
    response = compile_on(vllm, write(build_grammar(tools, choice, lazy=lazy, options=options), "xgrammar"))
    assert response.status_code == 200, response.text
    assert golden_grammar(name)


def test_vllm_takes_the_structural_tag(vllm: Running) -> None:
    tools, *_ = GOLDEN_CASES["weather_required.gbnf"]
    body = {
        "model": SERVED_NAME,
        "prompt": PROMPT,
        "max_tokens": 1,
        "temperature": 0,
        "structured_outputs": {"structural_tag": json.dumps(structural_tag(tools))},
    }
    response = httpx.post(vllm.url + "/v1/completions", json=body, timeout=600)
    assert response.status_code == 200, response.text


def test_vllm_refuses_a_broken_grammar(vllm: Running) -> None:
    assert compile_on(vllm, 'root ::= "a" undefined_rule').status_code >= 400


@given(tools=tool_lists(), data=st.data())
@PROPERTY
def test_vllm_takes_generated_grammars(vllm: Running, tools: list[dict[str, Any]], data: Any) -> None:
    choice = data.draw(st.sampled_from(["required", "auto"]))
    bound = data.draw(st.sampled_from([None, 5]))
    grammar = build_grammar(tools, choice, options=GrammarOptions(max_free_text=bound))
    response = compile_on(vllm, write(grammar, "xgrammar"))
    assert response.status_code == 200, response.text


@given(tools=tool_lists(bounded=True), data=st.data())
@PROPERTY
def test_required_and_named_outputs_parse_and_validate(
    serve_client: openai.OpenAI, tools: list[dict[str, Any]], data: Any
) -> None:
    names = [t["function"]["name"] for t in tools]
    choice: Any = data.draw(st.sampled_from(["required", *names]))
    if choice != "required":
        choice = {"type": "function", "function": {"name": choice}}
    check_reply(ask(serve_client, tools, choice), tools, choice)


def test_strict_auto_sends_a_whole_output_grammar(serve_client: openai.OpenAI) -> None:
    """``auto`` with a strict tool: the whole-output grammar lets the model end after content (the kit's model
    ends at once), and the reply is a plain answer with no problem."""
    tools = [{"type": "function", "function": {"name": "f", "strict": True, "parameters": {"type": "object"}}}]
    reply = serve_client.chat.completions.create(
        model="MiniMax-M2",
        messages=[{"role": "user", "content": "Hi"}],
        tools=tools,
        temperature=0,
        max_tokens=200,
        extra_body={"m2parse": {"grammar": {"max_free_text": 8}}},
    )
    choice = reply.choices[0]
    assert choice.model_extra["m2parse"]["problems"] == []
    assert choice.finish_reason in ("stop", "tool_calls")


def test_default_backend_type_identifies_vllm(vllm: Running, engine_logs: Path) -> None:
    """``m2parse serve`` with the generic openai type asks vLLM's /version at startup, so a strict tool with a
    forced call gets vLLM's grammar field and a constrained call, not a 400 (docs/grammar.md)."""
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "strict": True,
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    log = engine_logs / "m2parse-serve-openai.log"
    with m2parse_serve(vllm.url, log, "--backend-type", "openai", "--log-level", "info") as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=600)
        reply = ask(client, tools, "required")
    check_reply(reply, tools, "required")
    assert "backend identified as vLLM (GET /version)" in log.read_text()
