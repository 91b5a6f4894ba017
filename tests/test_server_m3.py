"""The server serving MiniMax-M3: real uvicorn processes, real fake backends, the official openai SDK as the client.

The format comes from ``--template`` (the built-in ``MiniMax-M3`` variant) or is detected in a template file; the
request's ``chat_template_kwargs.thinking_mode`` reaches both the renderer (the prompt's generation prompt) and
the parser (where the output starts). Streamed and non-streamed answers must equal ``parse(..., format="m3")``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from m2parse import parse
from m2parse.formats import m3
from m2parse.formats.detect import detect_format, template_format
from m2parse.formats.m3 import NAMESPACE as NS

from . import fake_backends
from .fixture_loader import FIXTURES_DIR, Fixture, load_fixture
from .m3_cases import ORDER_ARGS as ORDER_XML
from .m3_cases import ORDER_PROPERTIES, calls, el, tool

openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")
from openai.lib.streaming.chat import ChatCompletionStreamState  # noqa: E402

REFERENCE = Path(os.environ.get("M2PARSE_REFERENCE_DIR") or FIXTURES_DIR.parent.parent / "shared" / "reference")
M3_TEMPLATE = REFERENCE / "MiniMax-M3" / "chat_template.jinja"
KINDS = fake_backends.KINDS


ORDER_TOOLS = [
    tool("create_order", {**ORDER_PROPERTIES, "note": {"type": "string"}}),
    tool("get_weather", {"location": {"type": "string"}}),
]
ORDER_ARGS = {
    "customer": {"name": "Ana", "vip": True},
    "items": [{"sku": "book-001", "qty": 2}, {"sku": "pen-7", "qty": 10}],
    "note": "x < y && </b> stays",
}
ORDER_BLOCK = calls(
    ("create_order", ORDER_XML + el("note", "x < y && </b> stays")), ("get_weather", el("location", "Lisbon"))
)
#: (thinking_mode, model output written for that mode's prompt, reasoning, content)
MODES: list[tuple[str | None, str, str | None, str | None]] = [
    ("enabled", "Two calls are needed.</mm:think>On it." + ORDER_BLOCK, "Two calls are needed.", "On it."),
    ("disabled", "On it." + ORDER_BLOCK, None, "On it."),
    ("adaptive", "<mm:think>Two calls.</mm:think>On it." + ORDER_BLOCK, "Two calls.", "On it."),
    ("adaptive", "</mm:think>On it." + ORDER_BLOCK, None, "On it."),
    (None, "<mm:think>Two calls.</mm:think>On it." + ORDER_BLOCK, "Two calls.", "On it."),
]


def m3_fixtures() -> list[Fixture]:
    return [load_fixture(f"m3/{p.stem}") for p in sorted((FIXTURES_DIR / "m3").glob("*.txt"))]


@pytest.fixture(scope="module")
def stacks() -> Iterator[dict[str, tuple[str, str]]]:
    """kind -> (fake backend URL, m2parse URL) with ``--template MiniMax-M3``."""
    with fake_backends.stacks("--timeout", "5", "--template", "MiniMax-M3") as out:
        yield out


def client_for(url: str) -> Any:
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=30)


def directive(text: str, pieces: str = "token", finish: str = "stop") -> str:
    """A user message that makes the fake backend replay ``text`` (percent-encoded: M3's ``]`` would end it)."""
    return f"go [[fake text={quote(text, safe='')} pieces={pieces} finish={finish}]]"


def request_args(
    text: str, tools: list[Any] | None, mode: str | None, pieces: str = "token", finish: str = "stop", **more: Any
) -> Any:
    extra: dict[str, Any] = dict(more.pop("extra_body", None) or {})
    if mode is not None:
        extra["chat_template_kwargs"] = {"thinking_mode": mode}
    message = {"role": "user", "content": directive(text, pieces, finish)}
    args: dict[str, Any] = {"model": "MiniMax-M3", "messages": [message]}
    if tools:
        args["tools"] = tools
    return {**args, "extra_body": extra or None, **more}


def both(client: Any, args: dict[str, Any]) -> tuple[Any, Any, list[Any]]:
    """(non-streamed choice, the SDK's accumulation of the streamed one, the raw chunks)."""
    whole = client.chat.completions.create(**args).choices[0]
    state = ChatCompletionStreamState()
    chunks = []
    for chunk in client.chat.completions.create(**args, stream=True):
        state.handle_chunk(chunk)
        chunks.append(chunk)
    return whole, state.current_completion_snapshot.choices[0], chunks


def summary(choice: Any) -> dict[str, Any]:
    message = choice.message
    return {
        "content": message.content,
        "reasoning_content": (message.model_extra or {}).get("reasoning_content"),
        "tool_calls": [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or []],
        "finish_reason": choice.finish_reason,
    }


def prompt_of(kind: str, backend_url: str) -> str:
    return str(fake_backends.last_request(backend_url)["inputs" if kind == "tgi" else "prompt"])


# ---------------------------------------------------------------------------------------------- thinking modes


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("mode", "text", "reasoning", "content"), MODES)
def test_thinking_mode_reaches_renderer_and_parser(
    stacks: dict[str, tuple[str, str]], kind: str, mode: str | None, text: str, reasoning: str | None, content: str
) -> None:
    backend_url, server_url = stacks[kind]
    whole, streamed, _ = both(client_for(server_url), request_args(text, ORDER_TOOLS, mode))
    # the renderer: the prompt ends with the generation prompt the template writes for this mode
    assert prompt_of(kind, backend_url).endswith(m3.GENERATION_PROMPTS[mode])
    # the parser: where the output starts follows the same mode
    want = {
        "content": content,
        "reasoning_content": reasoning,
        "tool_calls": [("create_order", ORDER_ARGS), ("get_weather", {"location": "Lisbon"})],
        "finish_reason": "tool_calls",
    }
    assert summary(whole) == summary(streamed) == want
    ref = parse(text, ORDER_TOOLS, format="m3", thinking_mode=mode)
    assert [c.arguments_json for c in ref.tool_calls] == [c.function.arguments for c in whole.message.tool_calls]
    assert whole.model_extra["m2parse"]["problems"] == []


@pytest.mark.parametrize("pieces", ["char", "token"])
def test_nested_arguments_stream_as_json_fragments(stacks: dict[str, tuple[str, str]], pieces: str) -> None:
    """With ``keep_truncated_tool_calls`` the server streams a call's arguments as the parser emits them: the
    fragments of a nested value concatenate to the final JSON."""
    text = "</mm:think>" + ORDER_BLOCK
    args = request_args(
        text, ORDER_TOOLS, "adaptive", pieces, extra_body={"m2parse": {"keep_truncated_tool_calls": True}}
    )
    fragments: dict[int, list[str]] = {}
    for chunk in client_for(stacks["openai"][1]).chat.completions.create(**args, stream=True):
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            fragments.setdefault(call.index, []).append(call.function.arguments or "")
    assert json.loads("".join(fragments[0])) == ORDER_ARGS
    assert len([f for f in fragments[0] if f]) > 1


def test_unknown_thinking_mode_is_a_400_naming_the_field(stacks: dict[str, tuple[str, str]]) -> None:
    url = stacks["openai"][1] + "/v1/chat/completions"
    messages = [{"role": "user", "content": directive("hi")}]
    for kwargs, param in [
        ({"thinking_mode": "sometimes"}, "chat_template_kwargs.thinking_mode"),
        ({"thinking_mode": True}, "chat_template_kwargs.thinking_mode"),
        ("enabled", "chat_template_kwargs"),
    ]:
        response = httpx.post(
            url, json={"model": "m", "messages": messages, "chat_template_kwargs": kwargs}, timeout=30
        )
        assert response.status_code == 400, kwargs
        error = response.json()["error"]
        assert error["param"] == param and param in error["message"]
    body = {"model": "m", "messages": messages, "m2parse": {"starts_in_reasoning": True}}
    response = httpx.post(url, json=body, timeout=30)
    assert response.status_code == 400 and response.json()["error"]["param"] == "m2parse.starts_in_reasoning"
    # null is "unset": the template's default (adaptive)
    body = {"model": "m", "messages": messages, "chat_template_kwargs": {"thinking_mode": None, "other": 1}}
    response = httpx.post(url, json=body, timeout=30)
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == "hi"


# ---------------------------------------------------------------------------------------------- the M3 fixtures


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fixture", m3_fixtures(), ids=lambda f: f.name)
def test_m3_fixtures_stream_equals_whole_equals_parse(
    stacks: dict[str, tuple[str, str]], fixture: Fixture, kind: str
) -> None:
    options = {k: v for k, v in fixture.options.items() if k not in ("format", "thinking_mode")}
    mode = fixture.options.get("thinking_mode")
    finish = "length" if fake_backends.fixture_is_truncated(fixture.name) else "stop"
    extra = {"m2parse": options} if options else None
    args = request_args(fixture.text, fixture.tools, mode, finish=finish, extra_body=extra)
    whole, streamed, _ = both(client_for(stacks[kind][1]), args)
    text = fixture.text
    if kind == "tgi":  # TGI stops at a stop sequence: the server sees the text cut there
        cuts = [i for i in (text.find(s) for s in m3.STOP_STRINGS) if i >= 0]
        text = text[: min(cuts)] if cuts else text
    ref = parse(text, fixture.tools, format="m3", thinking_mode=mode, **options)
    got = summary(whole)
    assert summary(streamed) == got
    assert got["content"] == (ref.content or None)
    assert got["reasoning_content"] == ref.reasoning_content
    assert got["tool_calls"] == [(c.name, c.arguments) for c in ref.tool_calls if not c.truncated]
    codes = [p["code"] for p in whole.model_extra["m2parse"]["problems"]]
    assert codes == [p.code for p in ref.problems]


# ---------------------------------------------------------------------------------------------- per format


@pytest.mark.parametrize("kind", KINDS)
def test_stop_strings_are_m3s(stacks: dict[str, tuple[str, str]], kind: str) -> None:
    backend_url, server_url = stacks[kind]
    client_for(server_url).chat.completions.create(**request_args("hi", None, None), stop=["Observation:"])
    body = fake_backends.last_request(backend_url)
    stops = body["parameters"]["stop"] if kind == "tgi" else body["stop"]
    assert stops == [*m3.STOP_STRINGS, "Observation:"]


def test_a_turn_marker_in_the_output_ends_the_turn(stacks: dict[str, tuple[str, str]]) -> None:
    text = "</mm:think>Done.[e~[\n]~b]user\nmore"
    choice = client_for(stacks["openai"][1]).chat.completions.create(**request_args(text, None, None)).choices[0]
    assert choice.message.content == "Done." and choice.finish_reason == "stop"
    assert [p["code"] for p in choice.model_extra["m2parse"]["problems"]] == ["turn_marker"]


def test_m2_server_ignores_thinking_mode_and_does_not_read_m3() -> None:
    """The default template is M2's: thinking_mode changes nothing, and M3 markup is plain content there."""
    text = "</mm:think>On it." + ORDER_BLOCK
    with fake_backends.stacks("--timeout", "5") as out:
        backend_url, server_url = out["openai"]
        client = client_for(server_url)
        plain = client.chat.completions.create(**request_args(text, ORDER_TOOLS, None)).choices[0]
        prompt = prompt_of("openai", backend_url)
        moded = client.chat.completions.create(**request_args(text, ORDER_TOOLS, "disabled")).choices[0]
        assert prompt_of("openai", backend_url) == prompt and prompt.endswith("]~b]ai\n<think>\n")
    assert summary(plain) == summary(moded)
    assert plain.message.tool_calls is None and NS + "<tool_call>" in summary(plain)["reasoning_content"]


# ---------------------------------------------------------------------------------------------- template files


@pytest.mark.skipif(not M3_TEMPLATE.exists(), reason="needs the reference M3 template (M2PARSE_REFERENCE_DIR)")
@pytest.mark.parametrize("flag", ["--chat-template", "--template"])
def test_a_template_file_is_detected_as_m3(flag: str) -> None:
    pytest.importorskip("jinja2")
    text = "<mm:think>Two calls.</mm:think>On it." + ORDER_BLOCK
    with fake_backends.backend("openai") as backend_url:
        server_url, stop = fake_backends.start_m2parse(backend_url, "openai", flag, str(M3_TEMPLATE))
        try:
            for mode in ("enabled", "disabled", None):
                out = client_for(server_url).chat.completions.create(**request_args(text, ORDER_TOOLS, mode))
                assert prompt_of("openai", backend_url).endswith(m3.GENERATION_PROMPTS[mode])
            choice = client_for(server_url).chat.completions.create(**request_args(text, ORDER_TOOLS, None)).choices[0]
        finally:
            stop()
    assert out.choices[0].message.tool_calls is not None
    assert summary(choice)["tool_calls"] == [("create_order", ORDER_ARGS), ("get_weather", {"location": "Lisbon"})]
    assert summary(choice)["reasoning_content"] == "Two calls."


def test_format_flag_overrides_detection() -> None:
    """``--format m3`` with an M2 template name: the parser reads M3 whatever the template says."""
    text = "R</mm:think>C"
    with fake_backends.backend("openai") as backend_url:
        server_url, stop = fake_backends.start_m2parse(backend_url, "openai", "--format", "m3")
        try:
            choice = client_for(server_url).chat.completions.create(**request_args(text, None, None)).choices[0]
        finally:
            stop()
    # M2's prompt ends without an M3 think tag: the parser is adaptive, and the bare text is content
    assert choice.message.content == parse(text, format="m3").content


# ---------------------------------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ ']<]minimax[>[' ~ '<tool_call>' }}", "m3"),
        ("{%- set think_begin_token = '<mm:think>' -%}", "m3"),
        ("reasoning ends at </mm:think>", "m3"),
        ("<think>\n{{ content }}</think><minimax:tool_call>", "m2"),
        ("{{ messages[0].content }}", "m2"),
        ("", "m2"),
    ],
)
def test_detect_format_keys_on_m3_spellings(text: str, expected: str) -> None:
    assert detect_format(text) == expected


def test_detect_format_on_the_reference_templates() -> None:
    found = {
        p.parent.name: detect_format(p.read_text(encoding="utf-8")) for p in REFERENCE.glob("*/chat_template.jinja")
    }
    if not found:
        pytest.skip("needs the reference templates (M2PARSE_REFERENCE_DIR)")
    assert found.pop("MiniMax-M3") == "m3"
    assert found and set(found.values()) == {"m2"}


def test_template_format_of_names_and_texts() -> None:
    assert template_format("MiniMax-M3") == "m3" and template_format("minimaxai/minimax-m3") == "m3"
    assert template_format("MiniMax-M2.7") == "m2" and template_format("no-such-template") == "m2"
    assert template_format("MiniMax-M2", chat_template="x ]<]minimax[>[ y") == "m3"
