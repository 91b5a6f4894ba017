"""The grammar property shared by the real-engine suites (llama.cpp, vLLM): a hypothesis tool list is sent
through ``m2parse serve`` with ``tool_choice`` required or a named function; the engine decodes under the grammar
m2parse sends; the reply must have no problem, only allowed tools, and arguments that validate.

The kit's model never stops writing free text on its own (its longest-token preference), so the requests bound
free text, arrays and calls with ``m2parse.grammar`` (documented options): a bound narrows what the grammar
admits, it never widens it, so the guarantee checked here is the one users get.
"""

from __future__ import annotations

import json
import os
from typing import Any

import openai
from hypothesis import HealthCheck, settings

from m2parse.grammar import GrammarOptions, build_grammar
from m2parse.schema import normalize_tools, validate_arguments

#: bounds sent with every property request (see the module docstring)
BOUNDS = {"max_free_text": 12, "max_items": 2, "max_calls": 2}
#: examples per property test in CI; the benchmark (benchmarks/bench_grammar.py) runs more
EXAMPLES = int(os.environ.get("M2PARSE_GRAMMAR_EXAMPLES", "50"))
USER = [{"role": "user", "content": "Use a tool."}]
#: A raw M2 prompt for the engines' own grammar-compile checks (one token under the grammar).
PROMPT = "]~b]user\nGo.[e~[\n]~b]ai\n<think>\n"
#: The property tests' settings: a fixed example count, deterministic, every example a real request.
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


def ask(
    client: openai.OpenAI,
    tools: list[dict[str, Any]],
    choice: Any,
    *,
    seed: int = 7,
    backend_extra: dict[str, Any] | None = None,
) -> Any:
    """One non-streaming chat request under the grammar; the raw reply (the SDK's object). ``backend_extra``
    fields win over the server's (the benchmark switches the grammar off with them)."""
    extra: dict[str, Any] = {"grammar": BOUNDS}
    if backend_extra is not None:
        extra["backend_extra"] = backend_extra
    return client.chat.completions.create(
        model="MiniMax-M2",
        messages=USER,
        tools=tools,
        tool_choice=choice,
        temperature=0,
        seed=seed,
        max_tokens=2000,
        extra_body={"m2parse": extra},
    )


def check_reply(reply: Any, tools: list[dict[str, Any]], choice: Any) -> dict[str, Any]:
    """The guarantee; returns a summary (for the benchmark's counts)."""
    choice_obj = reply.choices[0]
    problems = choice_obj.model_extra["m2parse"]["problems"]
    message = choice_obj.message
    names = [t["function"]["name"] for t in tools]
    allowed = {choice["function"]["name"]} if isinstance(choice, dict) else set(names)
    grammar = build_grammar(tools, choice, options=GrammarOptions(**BOUNDS))
    codes = [p["code"] for p in problems]
    # Where the grammar said it cannot enforce part of a schema, a schema violation is the documented outcome.
    assert [c for c in codes if not (grammar.notes and c == "schema_violation")] == [], (problems, message)
    assert choice_obj.finish_reason == "tool_calls", (choice_obj.finish_reason, message)
    assert message.tool_calls, message
    specs = normalize_tools(tools)
    for call in message.tool_calls:
        assert call.function.name in allowed
        if not grammar.notes:
            arguments = json.loads(call.function.arguments)
            assert validate_arguments(specs[call.function.name], arguments) == [], arguments
    return {"calls": len(message.tool_calls), "notes": len(grammar.notes)}
