"""m2parse's detectors inside the real installed SGLang (0.5.23), on CPU, with no model.

Requests go through SGLang's own ``OpenAIServingChat``: its streaming handler (``_generate_chat_stream``) and its
non-streaming one (``_build_chat_response``), which build ``ReasoningParser`` and ``FunctionCallParser`` exactly
as ``sglang serve`` does. Only the tokenizer manager is a stand-in: it yields the fixture text in chunks, the way
the detokenizer reports a generation. The streamed SSE chunks go through the OpenAI SDK's own stream accumulator
and must equal the non-streaming response and ``m2parse.parse()`` for every fixture.

Run by ``.ci/run_sglang.sh`` in its own venv (``pip install --no-deps sglang==0.5.23`` + ``.[sglang-test]``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import subprocess
import sys
import types
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from m2parse import parse
from m2parse.format import THINK_CLOSE

from .fake_backends import fixture_is_truncated
from .fixture_loader import Fixture, all_fixtures, load_fixture
from .m3_cases import Case, m3_cases, tiny_m3_tokenizer

try:
    import sglang.srt.entrypoints.openai.serving_chat  # noqa: F401
except ImportError:  # the core run: these tests need the SGLang venv (.ci/run_sglang.sh)
    HAVE_SGLANG = False
else:
    HAVE_SGLANG = True

pytestmark = [pytest.mark.sglang, pytest.mark.skipif(not HAVE_SGLANG, reason="needs sglang (.ci/run_sglang.sh)")]

if HAVE_SGLANG:
    from openai.lib.streaming.chat import ChatCompletionStreamState
    from openai.types.chat import ChatCompletionChunk
    from sglang.srt.entrypoints.openai.protocol import ChatCompletionRequest
    from sglang.srt.entrypoints.openai.serving_chat import OpenAIServingChat
    from sglang.srt.function_call.function_call_parser import FunctionCallParser
    from sglang.srt.parser.reasoning_parser import ReasoningParser
    from sglang.srt.parser.template_manager import TemplateManager
    from sglang.srt.runtime_context import get_server_args
    from sglang.srt.server_args import ServerArgs, set_global_server_args_for_tokenizer

    from m2parse.integrations.sglang import register
    from m2parse.integrations.sglang.detectors import M2ParseDetector

    from .test_integration_transformers import tiny_tokenizer

    register()  # what the launcher does before SGLang parses its arguments

REFERENCE = Path(__file__).resolve().parent.parent.parent / "shared" / "reference"
#: (tool-call parser, reasoning parser) as given to ``sglang serve``, and the parse() mode they must equal.
PAIRS = {
    "separated": ("m2parse", "m2parse", "separated"),
    "append-think": ("m2parse", "m2parse-append-think", "inline"),
}
#: Not in the matrix: with no reasoning parser, SGLang's non-streaming path runs no tool detector on an output
#: without any markup, so the ``<think>`` that inline mode adds is missing there (docs/integrations.md).
TOOL_PARSER_ONLY = ("m2parse", None, "inline")
CHUNKINGS = ("chars", "random", "whole")


# ---------------------------------------------------------------------------------------------- the stand-in


@dataclass
class StandInTokenizerManager:
    """What ``OpenAIServingChat`` reads from its tokenizer manager; ``generate_request`` replays a text."""

    tokenizer: Any
    tool_call_parser: str | None
    reasoning_parser: str | None
    pieces: tuple[str, ...] = ()
    finish: str = "stop"

    def __post_init__(self) -> None:
        config = types.SimpleNamespace(architectures=["MiniMaxM2ForCausalLM"], model_type="minimax_m2")
        self.model_config = types.SimpleNamespace(hf_config=config, get_default_sampling_params=dict)
        self.server_args = get_server_args()  # the published ones (the module fixture)

    def config_value(self, name: str) -> Any:
        return getattr(self, name)

    async def generate_request(self, adapted_request: Any, raw_request: Any) -> AsyncIterator[dict[str, Any]]:
        """Cumulative text per step, as SGLang's detokenizer reports it (``incremental_streaming_output`` off)."""
        text = ""
        for n, piece in enumerate(self.pieces, 1):
            text += piece
            last = n == len(self.pieces)
            finish = {"type": self.finish, "matched": None} if last else None
            meta = {"id": "chatcmpl-test", "prompt_tokens": 3, "completion_tokens": n, "finish_reason": finish}
            meta["weight_version"] = "default"
            yield {"text": text, "index": 0, "meta_info": meta, "output_ids": []}


@pytest.fixture(scope="module", autouse=True)
def published_server_args(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The serving config SGLang's handlers read (``get_serving()``), as the HTTP server publishes it."""
    model = tmp_path_factory.mktemp("model")
    (model / "config.json").write_text(
        json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_layer": 1, "n_embd": 8})
    )
    args = ServerArgs(model_path=str(model), tool_call_parser="m2parse", reasoning_parser="m2parse", device="cpu")
    set_global_server_args_for_tokenizer(args)


def serving(pair: str, pieces: list[str] = (), finish: str = "stop") -> OpenAIServingChat:  # type: ignore[assignment]
    tool, reasoning, _ = TOOL_PARSER_ONLY if pair == "tool-parser-only" else PAIRS[pair]
    manager = StandInTokenizerManager(tiny_tokenizer("special"), tool, reasoning, tuple(pieces), finish)
    return OpenAIServingChat(manager, TemplateManager())


def openai_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if not tools:
        return None
    return [t if "function" in t else {"type": "function", "function": t} for t in tools]


def chat_request(tools: list[dict[str, Any]] | None, stream: bool, **extra: Any) -> ChatCompletionRequest:
    messages = [{"role": "user", "content": "hi"}]
    return ChatCompletionRequest(model="m", messages=messages, tools=openai_tools(tools), stream=stream, **extra)


def chunks(text: str, how: str, seed: int = 0) -> list[str]:
    if how == "whole":
        return [text]
    if how == "chars":
        return list(text) or [""]
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(text):
        n = rng.randint(1, 9)
        out.append(text[i : i + n])
        i += n
    return out or [""]


def stream(chat: OpenAIServingChat, request: ChatCompletionRequest) -> Any:
    """SGLang's SSE stream through the OpenAI SDK's accumulator: the message a client's SDK builds."""

    async def collect() -> list[str]:
        return [line async for line in chat._generate_chat_stream(None, request, None)]

    state = ChatCompletionStreamState()
    for line in asyncio.run(collect()):
        payload = line.removeprefix("data: ").strip()
        if payload and payload != "[DONE]":
            list(state.handle_chunk(ChatCompletionChunk.model_validate_json(payload)))
    # The snapshot, not get_final_completion(): that one raises on finish_reason "length" (a cut-off output).
    return state.current_completion_snapshot.choices[0]


def respond(chat: OpenAIServingChat, request: ChatCompletionRequest) -> Any:
    """SGLang's non-streaming response for the same generation."""

    async def first() -> dict[str, Any]:
        last = None
        async for item in chat.tokenizer_manager.generate_request(None, None):
            last = item
        assert last is not None
        return last

    response = chat._build_chat_response(request, [asyncio.run(first())], 0)
    return response.choices[0]


def summary(choice: Any) -> tuple[str, str, list[tuple[str, str]]]:
    message = choice.message
    reasoning = getattr(message, "reasoning_content", None)
    if reasoning is None and message.model_extra:
        reasoning = message.model_extra.get("reasoning_content")
    calls = [(c.function.name, c.function.arguments) for c in message.tool_calls or []]
    return message.content or "", reasoning or "", calls


def expected(fx: Fixture, mode: str) -> tuple[str, str, list[tuple[str, str]]]:
    ref = parse(fx.text, fx.tools, reasoning=mode)
    return ref.content, ref.reasoning_content or "", [(c.name, c.arguments_json) for c in ref.tool_calls]


def finish_reason(fx: Fixture, calls: list[Any]) -> str:
    if fixture_is_truncated(fx.name):
        return "length"
    ref = parse(fx.text, fx.tools)
    return "tool_calls" if calls and not any(c.truncated for c in ref.tool_calls) else "stop"


# ---------------------------------------------------------------------------------------------- serving path


@pytest.mark.parametrize("chunking", CHUNKINGS)
@pytest.mark.parametrize("pair", PAIRS)
@pytest.mark.parametrize("fx", all_fixtures(), ids=lambda fx: fx.name)
def test_stream_equals_non_streaming_equals_parse(fx: Fixture, pair: str, chunking: str) -> None:
    finish = "length" if fixture_is_truncated(fx.name) else "stop"
    chat = serving(pair, chunks(fx.text, chunking), finish)
    streamed = stream(chat, chat_request(fx.tools, stream=True))
    whole = respond(chat, chat_request(fx.tools, stream=False))
    want = expected(fx, PAIRS[pair][2])
    assert summary(streamed) == want
    assert summary(whole) == want
    ids = [c.id for c in streamed.message.tool_calls or []]
    assert all(ids) and len(set(ids)) == len(ids)
    assert streamed.finish_reason == finish_reason(fx, ids)


def test_reasoning_parser_alone_hands_the_rest_on_verbatim() -> None:
    """``--reasoning-parser m2parse`` without a tool parser: the text after ``</think>`` reaches the client."""
    fx = load_fixture("weather_basic")
    chat = serving("separated", chunks(fx.text, "random"))
    chat.tool_call_parser = None
    got = stream(chat, chat_request(fx.tools, stream=True))
    assert got.message.content == fx.text[fx.text.index(THINK_CLOSE) + len(THINK_CLOSE) :]
    assert summary(got)[1] == parse(fx.text).reasoning_content
    assert not got.message.tool_calls


def test_tool_parser_only_parses_inline() -> None:
    fx = load_fixture("weather_basic")
    chat = serving("tool-parser-only", chunks(fx.text, "random"))
    assert summary(stream(chat, chat_request(fx.tools, stream=True))) == expected(fx, "inline")
    assert summary(respond(chat, chat_request(fx.tools, stream=False))) == expected(fx, "inline")


def test_separate_reasoning_false_parses_inline() -> None:
    fx = load_fixture("weather_basic")
    chat = serving("separated", chunks(fx.text, "random"))
    got = stream(chat, chat_request(fx.tools, stream=True, separate_reasoning=False))
    assert summary(got) == expected(fx, "inline")


def test_force_reasoning_sglang_passes_for_the_m2_templates_is_irrelevant() -> None:
    """SGLang derives ``force_reasoning`` from its template detection; the detector must not depend on it."""
    templates = sorted(REFERENCE.glob("MiniMax-M2*/chat_template.jinja"))
    if not templates:
        pytest.skip("shared/reference templates not present")
    fx = load_fixture("weather_basic")
    request = chat_request(fx.tools, stream=True)
    for path in templates:
        chat = serving("separated")
        chat.template_manager._run_template_detection(
            path.read_text(encoding="utf-8"), chat.tokenizer_manager.tokenizer
        )
        # No detection rule matches M2's template (False); serving_chat then falls back to the detector's
        # reasoning_default ("always", BaseReasoningFormatDetector's), so what it passes is True.
        assert chat.template_manager.force_reasoning is False, path
        passed = chat.template_manager.force_reasoning or chat._get_reasoning_from_request(request)
        assert passed is True, path
        for force in {passed, not passed}:
            parser = ReasoningParser("m2parse", True, force, request, tool_call_parser_active=False)
            reasoning = "".join(parser.parse_stream_chunk(piece)[0] or "" for piece in chunks(fx.text, "chars"))
            assert reasoning == parse(fx.text).reasoning_content


# ---------------------------------------------------------------------------------------------- the detector


def test_name_at_invoke_close_and_strings_character_by_character() -> None:
    fx = load_fixture("weather_basic")
    request = chat_request(fx.tools, stream=True)
    parser = FunctionCallParser(request.tools, "m2parse")
    head = "</think>\n\nOk.\n<minimax:tool_call>\n" + '<invoke name="get_weather"'
    assert parser.parse_stream_chunk(head)[1] == []
    calls = parser.parse_stream_chunk(">")[1]
    assert [(c.tool_index, c.name, c.parameters) for c in calls] == [(0, "get_weather", "")]
    parser.parse_stream_chunk('\n<parameter name="location">')
    fragments = [parser.parse_stream_chunk(ch)[1] for ch in "Lisbon"]
    assert all(len(f) == 1 and f[0].name is None for f in fragments)
    assert "".join(f[0].parameters for f in fragments).endswith("Lisbon")


def test_tool_index_non_streaming_is_the_tools_position() -> None:
    """SGLang's non-streaming path reads ``tool_index`` as the tool's position in the request (-1 unknown)."""
    tools = [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}} for n in ("a", "b")]
    request = chat_request(tools, stream=False)
    text = '<minimax:tool_call>\n<invoke name="b">\n</invoke>\n<invoke name="zz">\n</invoke>\n</minimax:tool_call>'
    _, calls = FunctionCallParser(request.tools, "m2parse").parse_non_stream(THINK_CLOSE + text)
    assert [(c.tool_index, c.name) for c in calls] == [(1, "b"), (-1, "zz")]


def test_problems_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    fx = load_fixture("weather_basic")
    parser = FunctionCallParser(chat_request(fx.tools, stream=False).tools, "m2parse")
    text = THINK_CLOSE + '<minimax:tool_call>\n<invoke name="no_such_tool">\n</invoke>\n</minimax:tool_call>'
    with caplog.at_level(logging.WARNING, logger="m2parse.integrations.sglang"):
        _, calls = parser.parse_non_stream(text)
    assert [c.name for c in calls] == ["no_such_tool"]  # m2parse's default policy keeps it
    assert "unknown_tool" in caplog.text


def test_no_constrained_decoding_is_claimed() -> None:
    detector = M2ParseDetector()
    assert detector.supports_structural_tag() is False
    with pytest.raises(NotImplementedError):
        detector.structure_info()
    assert detector.get_structural_tag_name() is None


def test_truncated_call_is_reported_incomplete() -> None:
    fx = load_fixture("weather_basic")
    cut = fx.text[: fx.text.index("</parameter>")]
    chat = serving("separated", chunks(cut, "random"), finish="stop")
    got = stream(chat, chat_request(fx.tools, stream=True))
    assert got.finish_reason == "stop"  # not "tool_calls": the call is incomplete
    assert summary(got) == expected(Fixture("cut", cut, fx.tools, {}, {}), "separated")


# ---------------------------------------------------------------------------------------------- the launcher


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, check=False, timeout=600)


@pytest.mark.parametrize(
    "command",
    [("-m", "m2parse.integrations.sglang", "--help"), ("-m", "m2parse", "sglang", "--", "--help")],
    ids=["python-m", "m2parse-verb"],
)
def test_sglang_serve_help_lists_the_names(command: tuple[str, ...]) -> None:
    proc = _run(*command)
    assert proc.returncode == 0, proc.stderr[-3000:]
    tool_choices = proc.stdout.split("--tool-call-parser {", 1)[1].split("}", 1)[0].split(",")
    reasoning_choices = proc.stdout.split("--reasoning-parser {", 1)[1].split("}", 1)[0].split(",")
    assert "m2parse" in tool_choices
    assert {"m2parse", "m2parse-append-think"} <= set(reasoning_choices)


def test_plain_sglang_rejects_the_names() -> None:
    """The launcher is what makes the names valid: SGLang's own CLI refuses them."""
    script = "import sys; from sglang.cli.main import main; sys.argv[1:] = sys.argv[1:]; main()"
    proc = _run("-c", script, "serve", "--model-path", "x", "--tool-call-parser", "m2parse")
    assert proc.returncode != 0
    assert "invalid choice: 'm2parse'" in proc.stderr


def test_real_argument_parsing_accepts_the_names() -> None:
    script = """
import json, m2parse.integrations.sglang.__main__
from sglang.srt.server_args import prepare_server_args
a = prepare_server_args(["--model-path", "x", "--tool-call-parser", "m2parse", "--reasoning-parser", "m2parse"])
print(json.dumps([a.tool_call_parser, a.reasoning_parser]))
"""
    proc = _run("-c", script)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == ["m2parse", "m2parse"]


def test_spawned_workers_get_the_registration() -> None:
    """SGLang's workers start with multiprocessing ``spawn``, which re-imports ``__main__`` as ``__mp_main__``."""
    script = """
import json, runpy
runpy.run_module("m2parse.integrations.sglang.__main__", run_name="__mp_main__")
from sglang.srt.parser.reasoning_parser import ReasoningParser
from sglang.srt.function_call.function_call_parser import FunctionCallParser
print(json.dumps([type(ReasoningParser("m2parse", stream_reasoning=False).detector).__name__,
                  FunctionCallParser.ToolCallParserEnum["m2parse"].__name__]))
"""
    proc = _run("-c", script)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == ["M2ParseReasoningDetector", "M2ParseDetector"]


# ---------------------------------------------------------------------------------------------- MiniMax-M3

M3_CASES = [c for c in m3_cases() if dict(c.options).get("reasoning") != "inline"]


def m3_serving(pieces: list[str], finish: str = "stop", reasoning: str | None = "m2parse-m3") -> OpenAIServingChat:
    manager = StandInTokenizerManager(tiny_m3_tokenizer("plain"), "m2parse-m3", reasoning, tuple(pieces), finish)
    return OpenAIServingChat(manager, TemplateManager())


def m3_request(case: Case, stream: bool, **extra: Any) -> ChatCompletionRequest:
    kwargs = {"thinking_mode": case.thinking_mode} if case.thinking_mode else None
    return chat_request(case.tools, stream, chat_template_kwargs=kwargs, **extra)


def m3_expected(case: Case, **options: Any) -> tuple[str, str, list[tuple[str, str]]]:
    ref = parse(case.text, case.tools, format="m3", thinking_mode=case.thinking_mode, **dict(case.options), **options)
    return ref.content, ref.reasoning_content or "", [(c.name, c.arguments_json) for c in ref.tool_calls]


@pytest.mark.parametrize("chunking", CHUNKINGS)
@pytest.mark.parametrize("case", M3_CASES, ids=lambda c: c.name)
def test_m3_stream_equals_non_streaming_equals_parse(case: Case, chunking: str) -> None:
    finish = "length" if case.truncated else "stop"
    chat = m3_serving(chunks(case.text, chunking), finish)
    streamed = stream(chat, m3_request(case, stream=True))
    whole = respond(chat, m3_request(case, stream=False))
    want = m3_expected(case)
    assert summary(streamed) == want
    assert summary(whole) == want
    ids = [c.id for c in streamed.message.tool_calls or []]
    assert all(ids) and len(set(ids)) == len(ids)
    ref = parse(case.text, case.tools, format="m3", thinking_mode=case.thinking_mode, **dict(case.options))
    complete = ids and not any(c.truncated for c in ref.tool_calls)
    assert streamed.finish_reason == ("length" if case.truncated else "tool_calls" if complete else "stop")


@pytest.mark.parametrize("mode", ["enabled", "disabled", "adaptive", None])
def test_m3_thinking_mode_reaches_the_detector(mode: str | None) -> None:
    """SGLang's ReasoningParser passes only force_reasoning; register() makes it hand on the request's kwargs."""
    case = Case("x", "R</mm:think>C", None, mode)
    parser = ReasoningParser("m2parse-m3", True, True, m3_request(case, stream=True), tool_call_parser_active=False)
    assert parser.detector.thinking_mode == mode
    reasoning = "".join(parser.parse_stream_chunk(piece)[0] or "" for piece in chunks(case.text, "chars"))
    assert reasoning == (m3_expected(case)[1])
    assert ReasoningParser("minimax-m3", True, None, m3_request(case, stream=True)).detector is not None  # theirs


def test_m3_tool_parser_only_reads_the_raw_output_inline() -> None:
    case = next(c for c in M3_CASES if c.name == "m3_adaptive_think_weather")
    chat = m3_serving(chunks(case.text, "random"), reasoning=None)
    got = summary(stream(chat, m3_request(case, stream=True)))
    assert got == m3_expected(case, reasoning="inline")


def test_m3_names_are_accepted_beside_sglangs_own() -> None:
    script = """
import json, m2parse.integrations.sglang.__main__
from sglang.srt.server_args import prepare_server_args
a = prepare_server_args(["--model-path", "x", "--tool-call-parser", "m2parse-m3", "--reasoning-parser", "m2parse-m3"])
b = prepare_server_args(["--model-path", "x", "--tool-call-parser", "minimax-m3", "--reasoning-parser", "minimax-m3"])
print(json.dumps([a.tool_call_parser, a.reasoning_parser, b.tool_call_parser]))
"""
    proc = _run("-c", script)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == ["m2parse-m3", "m2parse-m3", "minimax-m3"]
