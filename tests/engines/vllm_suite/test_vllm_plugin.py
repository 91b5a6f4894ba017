"""The m2parse vLLM plugin inside a real vLLM server: the openai SDK against vLLM's own /v1/chat/completions.

vLLM renders the prompt with the official M2 chat template (from the reference folder, via the kit), forces the
fixture output with ``structured_outputs`` (``enable_in_reasoning``, so the regex holds inside the reasoning
too) and runs the plugin's reasoning and tool parsers over it. Every reply must equal ``parse()`` of the forced
text: vLLM has no extension field, so a truncated call comes back as an ordinary call (use ``m2parse serve`` for
the withholding policy), and the reasoning is in vLLM's ``reasoning`` field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from .. import model_kit as kit
from ..forcing import FORCED_NAMES, Forced, forced_fixture, structured_regex
from .processes import ENGINE_MARKS, SERVED_NAME
from .replies import MODES, Reply, ask, expected_reply
from .test_vllm_serve import HISTORY, prompt_tokens

pytestmark = ENGINE_MARKS

REASONING_FIELD = "reasoning"


@pytest.fixture(scope="module", autouse=True)
def needs_template(kit_dir: Path) -> None:
    if not kit.has_chat_template(kit_dir):
        pytest.skip("the kit's model has no chat template: set M2PARSE_REFERENCE_DIR (see model_kit)")


def request(forced: Forced, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": SERVED_NAME,
        "messages": HISTORY,
        "temperature": 0,
        "max_tokens": 2000,
        "extra_body": structured_regex(forced.text),
    }
    if forced.tools:
        body["tools"] = forced.tools
    return {**body, **extra}


def plugin_expectation(forced: Forced, **options: Any) -> Reply:
    return expected_reply(forced.text, forced.tools, withhold_truncated=False, with_extension=False, **options)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", FORCED_NAMES)
def test_plugin_reply_equals_parse(vllm_client: OpenAI, kit_dir: Path, name: str, mode: str) -> None:
    forced = forced_fixture(name)
    reply = ask(vllm_client, mode, REASONING_FIELD, **request(forced))
    assert reply.message() == plugin_expectation(forced).message()
    if reply.prompt_tokens is not None:  # vLLM's template rendering is m2parse's render_prompt, token for token
        assert reply.prompt_tokens == prompt_tokens(kit_dir, HISTORY, forced.tools)


@pytest.mark.parametrize("mode", MODES)
def test_plugin_tool_choice_none(vllm_client: OpenAI, kit_dir: Path, mode: str) -> None:
    """As ``m2parse serve``: no tools in the prompt (``--exclude-tools-when-tool-choice-none``), and a call the
    model writes anyway stays in the content as text (the plugin parses with ``tool_calls=False``)."""
    forced = forced_fixture("weather_basic")
    reply = ask(vllm_client, mode, REASONING_FIELD, **request(forced, tool_choice="none"))
    assert reply.message() == plugin_expectation(forced, tool_calls=False).message()
    assert reply.tool_calls == [] and "<minimax:tool_call>" in (reply.content or "")
    if reply.prompt_tokens is not None:
        assert reply.prompt_tokens == prompt_tokens(kit_dir, HISTORY, None)


def test_unconstrained_generation_stops_at_once(vllm_client: OpenAI) -> None:
    """The kit's promise, seen through the real engine: without a constraint the model writes nothing."""
    reply = vllm_client.chat.completions.create(model=SERVED_NAME, messages=HISTORY, temperature=0, max_tokens=50)
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.completion_tokens == 1  # the eos token
    assert not reply.choices[0].message.content
