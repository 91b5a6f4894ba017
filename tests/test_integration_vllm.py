"""The vLLM plugin against the real installed vLLM (0.33), on CPU, with no model: requests go through vLLM's own
``ParserManager``, ``ChatCompletionRequest``, ``ChatStreamProcessor`` and the engine's incremental detokenizer,
exactly as ``vllm serve`` drives them, and the streamed deltas must reassemble to ``parse()`` for every fixture.

Run by ``.ci/run_integrations.sh`` in its own venv (``pip install --no-deps vllm==0.33.0`` + ``.[vllm-test]``).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from m2parse import parse
from m2parse.format import THINK_CLOSE, TOOL_CALL_OPEN

from .fake_backends import fixture_is_truncated
from .fixture_loader import Fixture, all_fixtures, load_fixture
from .m3_cases import Case, generation_prompt, m3_cases, tiny_m3_tokenizer
from .test_integration_transformers import GENERATION_PROMPT, NO_REASONING_PROMPT, VARIANTS, tiny_tokenizer

try:
    import vllm  # noqa: F401
except ImportError:  # the core run: these tests need the vLLM venv (.ci/run_integrations.sh)
    HAVE_VLLM = False
else:
    HAVE_VLLM = True

pytestmark = [pytest.mark.vllm, pytest.mark.skipif(not HAVE_VLLM, reason="needs vllm (.ci/run_integrations.sh)")]

if HAVE_VLLM:
    from vllm import SamplingParams
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.entrypoints.openai.chat_completion.stream_processor import ChatStreamProcessor
    from vllm.parser import ParserManager
    from vllm.v1.engine import EngineCoreRequest
    from vllm.v1.engine.detokenizer import IncrementalDetokenizer

    from m2parse.integrations import vllm_plugin  # noqa: F401  (registers "m2parse", as --tool-parser-plugin does)
    from m2parse.integrations.vllm import (
        M2ParseM3ReasoningParser,
        M2ParseReasoningParser,
        M2ParseToolParser,
        restore_markers,
    )

CHUNKINGS = ("token", "random", "whole")


def openai_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """vLLM's request model takes only the OpenAI shape (one fixture uses the bare one)."""
    if not tools:
        return None
    return [t if "function" in t else {"type": "function", "function": t} for t in tools]


def chat_request(fx: Fixture, stream: bool = True, **extra: Any) -> Any:
    if fx.options.get("tool_calls") is False:  # parse()'s tool_calls=False is what tool_choice "none" gives
        extra.setdefault("tool_choice", "none")
    return ChatCompletionRequest(
        model="MiniMaxAI/MiniMax-M2",
        messages=[{"role": "user", "content": "hi"}],
        tools=openai_tools(fx.tools),
        stream=stream,
        **extra,
    )


def parser_names(fx: Fixture, reasoning: bool = True) -> dict[str, Any]:
    """Inline fixtures are served without a reasoning parser (vLLM then asks the tool parser to keep it)."""
    inline = fx.options.get("reasoning") == "inline"
    return {
        "tool_parser_name": "m2parse",
        "reasoning_parser_name": None if inline or not reasoning else "m2parse",
        "enable_auto_tools": True,
    }


def prompt_ids(tok: Any, fx: Fixture) -> list[int]:
    prompt = GENERATION_PROMPT if fx.options.get("starts_in_reasoning", True) else NO_REASONING_PROMPT
    return tok.encode(prompt, add_special_tokens=False)


def chunks(ids: list[int], how: str, seed: int = 0) -> list[list[int]]:
    if how == "whole":
        return [ids]
    if how == "token":
        return [[t] for t in ids]
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(ids):
        n = rng.randint(1, 7)
        out.append(ids[i : i + n])
        i += n
    return out


@dataclass
class Reassembled:
    content: str = ""
    reasoning: str = ""
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    finish_reason: str | None = None

    def add(self, delta: Any) -> None:
        if delta.content:
            self.content += delta.content
        if delta.reasoning:
            self.reasoning += delta.reasoning
        for tc in delta.tool_calls:
            call = self.calls.setdefault(tc.index, {"id": None, "name": None, "arguments": ""})
            if tc.id is not None:
                assert call["id"] is None, "a call's id is sent once"
                call["id"] = tc.id
                assert tc.type == "function"
            if tc.function is not None:
                if tc.function.name is not None:
                    call["name"] = tc.function.name
                call["arguments"] += tc.function.arguments or ""

    def summary(self) -> tuple[str, str, list[tuple[str, str]]]:
        return self.content, self.reasoning, [(c["name"], c["arguments"]) for _, c in sorted(self.calls.items())]


def plugin_reference(fx: Fixture) -> Any:
    """``parse()`` as the plugin in vLLM gives it: for a request without tools vLLM runs no tool parser, so call
    markup stays in the content verbatim, which is ``parse(..., tool_calls=False)``."""
    options = fx.options if fx.tools else {**fx.options, "tool_calls": False}
    return parse(fx.text, fx.tools, **options)


def expected(fx: Fixture) -> tuple[str, str, list[tuple[str, str]]]:
    ref = plugin_reference(fx)
    return ref.content, ref.reasoning_content or "", [(c.name, c.arguments_json) for c in ref.tool_calls]


def serve_stream(
    fx: Fixture,
    tok: Any,
    *,
    chunking: str = "token",
    adjusted: bool = True,
    reasoning: bool = True,
    text: str | None = None,
    **request_extra: Any,
) -> Reassembled:
    """One streamed chat completion, the way OpenAIServingChat runs it, with the engine replaced by the ids."""
    # Server start: the composed parser class, validated against the tokenizer.
    parser_cls = ParserManager.get_parser(**parser_names(fx, reasoning), tokenizer=tok)
    assert parser_cls is not None
    request = chat_request(fx, **request_extra)
    prompt = prompt_ids(tok, fx)
    if adjusted:  # OnlineRenderer: a parser instance adjusts the request before sampling params are made
        render_parser = parser_cls(tok, request.tools, chat_template_kwargs={}, model_config=None)
        render_parser.set_prompt_token_ids(prompt)
        request = render_parser.adjust_request(request)
    output = tok.encode(fx.text if text is None else text, add_special_tokens=False)
    finish = "length" if fixture_is_truncated(fx.name) else "stop"
    if finish == "stop":
        output.append(tok.eos_token_id)  # the engine stops on [e~[ and reports it among the ids, not the text
    params = request.to_sampling_params(max_tokens=len(output) + 1, default_sampling_params={})
    assert params.skip_special_tokens is (not adjusted)
    engine_request = EngineCoreRequest(
        request_id="r",
        prompt_token_ids=prompt,
        mm_features=None,
        sampling_params=params,
        pooling_params=None,
        arrival_time=time.time(),
        lora_request=None,
        cache_salt=None,
        data_parallel_rank=None,
    )
    detokenizer = IncrementalDetokenizer.from_new_request(tok, engine_request)
    processor = ChatStreamProcessor(
        request,
        parser_cls(tok, request.tools, chat_template_kwargs={}, model_config=None),
        enable_auto_tools=True,
        parser_cls=parser_cls,
    )
    out = Reassembled()
    pieces = chunks(output, chunking)
    for n, piece in enumerate(pieces):
        last = n == len(pieces) - 1
        detokenizer.update(piece, stop_terminated=last and finish == "stop")
        delta_text = detokenizer.get_next_output_text(last, delta=True)
        step = processor.step(delta_text, piece, finish if last else None, prompt)
        if step.delta is not None:
            out.add(step.delta)
        if last:
            out.finish_reason = step.finish_reason
    return out


# ---------------------------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("chunking", CHUNKINGS)
@pytest.mark.parametrize("adjusted", [True, False], ids=["markers-as-text", "markers-as-ids-only"])
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("fx", all_fixtures(), ids=lambda fx: fx.name)
def test_streamed_deltas_reassemble_to_parse(fx: Fixture, variant: str, adjusted: bool, chunking: str) -> None:
    tok = tiny_tokenizer(variant)
    got = serve_stream(fx, tok, chunking=chunking, adjusted=adjusted)
    assert got.summary() == expected(fx)
    ids = [c["id"] for c in got.calls.values()]
    assert all(isinstance(i, str) and i for i in ids) and len(set(ids)) == len(ids)
    finish = "length" if fixture_is_truncated(fx.name) else "tool_calls" if got.calls else "stop"
    assert got.finish_reason == finish


def test_markers_as_ids_only_really_lose_their_text() -> None:
    """The ``markers-as-ids-only`` runs above are the real thing: vLLM's detokenizer drops the special tokens."""
    fx = load_fixture("weather_basic")
    tok = tiny_tokenizer("special")
    ids = tok.encode(fx.text, add_special_tokens=False)
    params = SamplingParams(skip_special_tokens=True)
    engine_request = EngineCoreRequest("r", prompt_ids(tok, fx), None, params, None, time.time(), None, None, None)
    detokenizer = IncrementalDetokenizer.from_new_request(tok, engine_request)
    detokenizer.update(ids, stop_terminated=False)
    text = detokenizer.get_next_output_text(True, delta=True)
    assert THINK_CLOSE not in text and TOOL_CALL_OPEN not in text and "<invoke" in text


@pytest.mark.parametrize("fx", all_fixtures(), ids=lambda fx: fx.name)
def test_non_streaming_parse_equals_parse(fx: Fixture) -> None:
    tok = tiny_tokenizer("special")
    parser_cls = ParserManager.get_parser(**parser_names(fx), tokenizer=tok)
    request = chat_request(fx, stream=False)
    parser = parser_cls(tok, request.tools, chat_template_kwargs={}, model_config=None)
    parser.set_prompt_token_ids(prompt_ids(tok, fx))
    reasoning, content, calls = parser.parse(fx.text, request, enable_auto_tools=True)
    ref = plugin_reference(fx)
    assert reasoning == ref.reasoning_content
    assert (content or "") == ref.content
    assert [(c.name, c.arguments) for c in calls or []] == [(c.name, c.arguments_json) for c in ref.tool_calls]


# ---------------------------------------------------------------------------------------------- configurations


def test_reasoning_parser_alone_leaves_the_rest_to_vllm() -> None:
    """Without --tool-call-parser vLLM streams what follows the reasoning verbatim (markup included)."""
    fx = load_fixture("weather_basic")
    tok = tiny_tokenizer("special")
    parser_cls = ParserManager.get_parser(reasoning_parser_name="m2parse", tokenizer=tok)
    request = chat_request(fx)
    processor = ChatStreamProcessor(request, parser_cls(tok), enable_auto_tools=False, parser_cls=parser_cls)
    out = Reassembled()
    prompt = prompt_ids(tok, fx)
    for token in tok.encode(fx.text, add_special_tokens=False):
        step = processor.step(tok.decode([token]), [token], None, prompt)
        if step.delta is not None:
            out.add(step.delta)
    ref = parse(fx.text, fx.tools)
    assert out.reasoning == ref.reasoning_content
    assert out.content == fx.text[fx.text.index(THINK_CLOSE) + len(THINK_CLOSE) :]
    assert not out.calls


def test_tool_choice_none_keeps_the_call_as_text() -> None:
    """vLLM drops the tool_calls a parser returns for tool_choice "none"; the call must stay in the content
    (as m2parse serve does), not vanish."""
    fx = load_fixture("weather_basic")
    got = serve_stream(fx, tiny_tokenizer("special"), tool_choice="none")
    ref = parse(fx.text, fx.tools, tool_calls=False)
    assert (got.content, got.reasoning, got.calls) == (ref.content, ref.reasoning_content, {})
    assert TOOL_CALL_OPEN in got.content


def test_parallel_tool_calls_false_keeps_the_first_call() -> None:
    fx = load_fixture("parallel_calls_one_block")
    got = serve_stream(fx, tiny_tokenizer("special"), parallel_tool_calls=False)
    assert [c[0] for c in got.summary()[2]] == [parse(fx.text, fx.tools).tool_calls[0].name]


def test_include_reasoning_false_hides_reasoning() -> None:
    fx = load_fixture("weather_basic")
    got = serve_stream(fx, tiny_tokenizer("special"), include_reasoning=False)
    assert got.reasoning == "" and got.summary()[0::2] == expected(fx)[0::2]


# ---------------------------------------------------------------------------------------------- pieces


def test_restore_markers() -> None:
    tok = tiny_tokenizer("special")
    vocab = tok.get_vocab()
    markers = {vocab[THINK_CLOSE]: THINK_CLOSE, vocab[TOOL_CALL_OPEN]: TOOL_CALL_OPEN}

    def decode(ids: list[int]) -> str:
        return tok.decode(ids, skip_special_tokens=True)

    a, b = tok.encode("ab\n", add_special_tokens=False), tok.encode("\ncd", add_special_tokens=False)
    ids = [*a, vocab[THINK_CLOSE], *b, vocab[TOOL_CALL_OPEN]]
    assert restore_markers("ab\n\ncd", ids, markers, decode) == "ab\n</think>\ncd<minimax:tool_call>"
    assert restore_markers("ab\n</think>\ncd<minimax:tool_call>", ids, markers, decode) == (
        "ab\n</think>\ncd<minimax:tool_call>"
    )
    assert restore_markers("", [vocab[THINK_CLOSE]], markers, decode) == THINK_CLOSE
    assert restore_markers("xyz", a, markers, decode) == "xyz"
    # Held-back text at the start of the delta (a multi-byte character finished here): anchored from the end.
    assert restore_markers("é" + "ab\n\ncd", ids, markers, decode) == "éab\n</think>\ncd<minimax:tool_call>"


def test_reasoning_end_checks_use_ids() -> None:
    tok = tiny_tokenizer("special")
    vocab = tok.get_vocab()
    parser = M2ParseReasoningParser(tok)
    prompt = tok.encode("]~b]user\nhi[e~[\n]~b]ai\n<think>\n", add_special_tokens=False)
    assert not parser.is_reasoning_end(prompt)
    assert parser.is_reasoning_end(prompt + tok.encode("x</think>\n", add_special_tokens=False))
    assert parser.is_reasoning_end_streaming(prompt, [vocab["a"], vocab[THINK_CLOSE]])
    assert not parser.is_reasoning_end_streaming(prompt, [vocab["a"]])
    out = tok.encode("ab</think>cd", add_special_tokens=False)
    assert parser.extract_content_ids(out) == tok.encode("cd", add_special_tokens=False)
    assert parser.count_reasoning_tokens(out) == len(tok.encode("ab", add_special_tokens=False))


def test_adjust_request_keeps_special_tokens() -> None:
    tok = tiny_tokenizer("special")
    fx = load_fixture("weather_basic")
    for parser in (M2ParseReasoningParser(tok), M2ParseToolParser(tok, chat_request(fx).tools)):
        request = chat_request(fx)
        assert request.skip_special_tokens is None
        assert parser.adjust_request(request).skip_special_tokens is False
        assert request.structured_outputs is None  # M2's XML calls are never forced into JSON


def plugin_path() -> str:
    """What ``m2parse vllm-plugin-path`` prints."""
    return subprocess.run(
        [sys.executable, "-m", "m2parse", "vllm-plugin-path"], capture_output=True, text=True, check=True
    ).stdout.strip()


def loaded_parsers(parser: str, names: list[str]) -> tuple[list[str], list[str]]:
    """In a fresh interpreter, vLLM's own plugin loader and server-argument check given the plugin file and
    ``--tool-call-parser``/``--reasoning-parser`` ``parser``: the tool and reasoning parser classes then
    registered under ``names``."""
    path = plugin_path()
    script = f"""
import argparse, json
from vllm.entrypoints.common.cli_args import init_parser_plugin, validate_api_server_args
from vllm.reasoning import ReasoningParserManager
from vllm.tool_parsers import ToolParserManager
from vllm.config import StructuredOutputsConfig
args = argparse.Namespace(tool_parser_plugin={path!r}, reasoning_parser_plugin={path!r},
    enable_auto_tool_choice=True, tool_call_parser={parser!r},
    structured_outputs_config=StructuredOutputsConfig(reasoning_parser={parser!r}))
init_parser_plugin(args)
validate_api_server_args(args)
names = {names!r}
print(json.dumps([[ToolParserManager.get_tool_parser(n).__qualname__ for n in names],
                  [ReasoningParserManager.get_reasoning_parser(n).__qualname__ for n in names]]))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    tools, reasoning = json.loads(proc.stdout.strip().splitlines()[-1])
    return tools, reasoning


def test_plugin_file_is_what_vllm_loads() -> None:
    """``m2parse vllm-plugin-path`` names a file vLLM's own plugin loader accepts, in a fresh interpreter."""
    assert plugin_path().endswith("vllm_plugin.py")
    assert loaded_parsers("m2parse", ["m2parse"]) == (["M2ParseToolParser"], ["M2ParseReasoningParser"])


# ---------------------------------------------------------------------------------------------- MiniMax-M3

M3_CASES = m3_cases()
M3_VARIANTS = ("plain", "special")


def m3_reference(case: Case) -> Any:
    """``parse()`` as ``m2parse_m3`` in vLLM gives it (without tools vLLM runs no tool parser: markup is content)."""
    options = dict(case.options) if case.tools else {**dict(case.options), "tool_calls": False}
    return parse(case.text, case.tools, format="m3", thinking_mode=case.thinking_mode, **options)


def m3_parser_names(case: Case, reasoning: bool = True) -> dict[str, Any]:
    """Inline cases are served without a reasoning parser (vLLM then asks the tool parser to keep it)."""
    inline = dict(case.options).get("reasoning") == "inline"
    return {
        "tool_parser_name": "m2parse_m3",
        "reasoning_parser_name": None if inline or not reasoning else "m2parse_m3",
    }


def m3_prompt(tok: Any, case: Case) -> list[int]:
    """A real M3 prompt (system block with its think-tag instructions, a user turn, the mode's generation prompt)."""
    head = "]~!b[]~b]system\nwrap reasoning in <mm:think></mm:think>[e~[\n]~b]user\nhi[e~[\n"
    return tok.encode(head + generation_prompt(case.thinking_mode), add_special_tokens=False)


def m3_serve_stream(
    case: Case, tok: Any, *, chunking: str, adjusted: bool = True, reasoning: bool = True, **extra: Any
) -> Reassembled:
    parser_cls = ParserManager.get_parser(**m3_parser_names(case, reasoning), enable_auto_tools=True, tokenizer=tok)
    kwargs = {"thinking_mode": case.thinking_mode} if case.thinking_mode else {}
    request = ChatCompletionRequest(
        model="MiniMaxAI/MiniMax-M3",
        messages=[{"role": "user", "content": "hi"}],
        tools=openai_tools(case.tools),
        stream=True,
        chat_template_kwargs=kwargs,
        **extra,
    )
    prompt = m3_prompt(tok, case)
    if adjusted:
        render_parser = parser_cls(tok, request.tools, chat_template_kwargs=kwargs, model_config=None)
        render_parser.set_prompt_token_ids(prompt)
        request = render_parser.adjust_request(request)
    output = tok.encode(case.text, add_special_tokens=False)
    finish = "length" if case.truncated else "stop"
    if finish == "stop":
        output.append(tok.eos_token_id)
    params = request.to_sampling_params(max_tokens=len(output) + 1, default_sampling_params={})
    engine_request = EngineCoreRequest("r", prompt, None, params, None, time.time(), None, None, None)
    detokenizer = IncrementalDetokenizer.from_new_request(tok, engine_request)
    processor = ChatStreamProcessor(
        request,
        parser_cls(tok, request.tools, chat_template_kwargs=kwargs, model_config=None),
        enable_auto_tools=True,
        parser_cls=parser_cls,
    )
    out = Reassembled()
    pieces = chunks(output, chunking)
    for n, piece in enumerate(pieces):
        last = n == len(pieces) - 1
        detokenizer.update(piece, stop_terminated=last and finish == "stop")
        step = processor.step(
            detokenizer.get_next_output_text(last, delta=True), piece, finish if last else None, prompt
        )
        if step.delta is not None:
            out.add(step.delta)
        if last:
            out.finish_reason = step.finish_reason
    return out


def m3_expected(case: Case) -> tuple[str, str, list[tuple[str, str]]]:
    ref = m3_reference(case)
    return ref.content, ref.reasoning_content or "", [(c.name, c.arguments_json) for c in ref.tool_calls]


@pytest.mark.parametrize("chunking", CHUNKINGS)
@pytest.mark.parametrize("adjusted", [True, False], ids=["markers-as-text", "markers-as-ids-only"])
@pytest.mark.parametrize("variant", M3_VARIANTS)
@pytest.mark.parametrize("case", M3_CASES, ids=lambda c: c.name)
def test_m3_streamed_deltas_reassemble_to_parse(case: Case, variant: str, adjusted: bool, chunking: str) -> None:
    got = m3_serve_stream(case, tiny_m3_tokenizer(variant), chunking=chunking, adjusted=adjusted)
    assert got.summary() == m3_expected(case)
    ids = [c["id"] for c in got.calls.values()]
    assert all(isinstance(i, str) and i for i in ids) and len(set(ids)) == len(ids)
    assert got.finish_reason == ("length" if case.truncated else "tool_calls" if got.calls else "stop")


@pytest.mark.parametrize("case", M3_CASES, ids=lambda c: c.name)
def test_m3_non_streaming_parse_equals_parse(case: Case) -> None:
    tok = tiny_m3_tokenizer("plain")
    parser_cls = ParserManager.get_parser(**m3_parser_names(case), enable_auto_tools=True, tokenizer=tok)
    kwargs = {"thinking_mode": case.thinking_mode} if case.thinking_mode else {}
    request = ChatCompletionRequest(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        tools=openai_tools(case.tools),
        chat_template_kwargs=kwargs,
    )
    parser = parser_cls(tok, request.tools, chat_template_kwargs=kwargs, model_config=None)
    parser.set_prompt_token_ids(m3_prompt(tok, case))
    reasoning, content, calls = parser.parse(case.text, request, enable_auto_tools=True)
    ref = m3_reference(case)
    assert reasoning == ref.reasoning_content
    assert (content or "") == ref.content
    assert [(c.name, c.arguments) for c in calls or []] == [(c.name, c.arguments_json) for c in ref.tool_calls]


@pytest.mark.parametrize("mode", ["enabled", "disabled", "adaptive", None])
def test_m3_thinking_mode_comes_from_the_prompt_else_the_kwarg(mode: str | None) -> None:
    """The prompt's end decides (it is what the model saw); without a prompt, ``chat_template_kwargs``."""
    tok = tiny_m3_tokenizer("plain")
    case = Case("x", "", None, mode)
    parser = M2ParseM3ReasoningParser(tok, chat_template_kwargs={"thinking_mode": "enabled"})
    assert parser._thinking_mode == "enabled"
    parser.set_prompt_token_ids(m3_prompt(tok, case))
    assert parser._thinking_mode == (mode or "adaptive")
    # vLLM's prompt check: never closed at the prompt (M3's system block holds think tags; a "disabled" output
    # may still open <mm:think>), so the reasoning parser sees the start of every output
    prompt = m3_prompt(tok, case)
    assert parser.is_reasoning_end(prompt) is False
    answer = tok.encode("Hi", add_special_tokens=False)
    assert parser.is_reasoning_end(prompt + answer) is (mode == "disabled")  # the structured-output gate
    reasoning = tok.encode("<mm:think>R</mm:think>C", add_special_tokens=False)
    assert parser.is_reasoning_end(prompt + reasoning) is True
    assert M2ParseM3ReasoningParser(tok)._thinking_mode is None  # unset: the template's default, adaptive


def test_m3_adaptive_without_reasoning_parser_is_inline() -> None:
    """No reasoning parser: the tool parser keeps the reasoning in the content (m2parse's inline mode)."""
    case = next(c for c in M3_CASES if c.name == "m3_adaptive_think_weather")
    got = m3_serve_stream(case, tiny_m3_tokenizer("plain"), chunking="token", reasoning=False)
    ref = parse(case.text, case.tools, format="m3", thinking_mode=case.thinking_mode, reasoning="inline")
    assert got.summary() == (ref.content, "", [(c.name, c.arguments_json) for c in ref.tool_calls])


def test_m3_tool_choice_none_keeps_the_call_as_text() -> None:
    case = next(c for c in M3_CASES if c.name == "m3_enabled_weather")
    got = m3_serve_stream(case, tiny_m3_tokenizer("plain"), chunking="random", tool_choice="none")
    ref = parse(case.text, case.tools, format="m3", thinking_mode="enabled", tool_calls=False)
    assert (got.content, got.reasoning, got.calls) == (ref.content, ref.reasoning_content, {})


def test_m3_plugin_names_load_beside_vllms_own() -> None:
    """``m2parse_m3`` comes from the plugin file; vLLM's own ``minimax_m3`` is still there."""
    tools, reasoning = loaded_parsers("m2parse_m3", ["m2parse_m3", "minimax_m3", "m2parse"])
    assert tools[0] == "M2ParseM3ToolParser" and tools[2] == "M2ParseToolParser"
    assert reasoning[0] == "M2ParseM3ReasoningParser" and reasoning[2] == "M2ParseReasoningParser"
    assert tools[1] != tools[0] and reasoning[1] != reasoning[0]
