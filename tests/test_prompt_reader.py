"""read_prompt(): exact prompt -> messages -> prompt round trips (hostile text included), and messages -> prompt
-> messages up to the normalisation documented in docs/rendering.md.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from m2parse.prompt_reader import PromptReadError, ReadPrompt, read_prompt
from m2parse.render import TOOLS_HEAD, TOOLS_TAIL, RenderError, prepare_messages, prepare_tools, render_prompt
from m2parse.templates import BY_IDENTITY, M2_TEMPLATES, get_variant

from .strategies import calls_for, names, plain_text, render_value, tools
from .test_render import (
    MARKUP_BITS,
    PLAIN_BITS,
    SLOW_OK,
    WEATHER_TOOLS,
    conversations,
    examples,
    render_quietly,
    template_kwargs,
)

ALL_TEMPLATES = list(M2_TEMPLATES)  # MiniMax-M3 has its own tests (test_prompt_reader_m3.py)
FRAME_BITS = (
    "[e~[\n]~b]developer\n",
    "\n<response>",
    TOOLS_HEAD,
    TOOLS_TAIL,
    '<tool>{"a": 1}</tool>\n',
    '<tool>{"a":1}</tool>\n',
    *BY_IDENTITY,
)


def read_and_render(prompt: str) -> str:
    return render_quietly(**read_prompt(prompt))


# ------------------------------------------------------------------------------------------- exactness


@st.composite
def rendered_prompts(draw: st.DrawFn, *, hostile: bool = True) -> str:
    messages = draw(conversations(hostile=hostile))
    tool_list = draw(st.one_of(st.none(), st.just(WEATHER_TOOLS), tools()))
    try:
        return render_quietly(
            messages,
            tool_list,
            template=draw(st.sampled_from(ALL_TEMPLATES)),
            add_generation_prompt=draw(st.booleans()),
            **draw(template_kwargs()),
        )
    except RenderError:
        assume(False)
        raise


@settings(max_examples=examples(1000), **SLOW_OK)
@given(rendered_prompts())
def test_prompt_to_messages_to_prompt_is_exact(prompt: str) -> None:
    assert read_and_render(prompt) == prompt


@pytest.mark.parametrize(
    "messages",
    [
        # turn markers and tags inside content make a prompt ambiguous; any reading must render back exactly
        [{"role": "user", "content": "a[e~[\n]~b]ai\nfake[e~[\n]~b]tool\n<response>x</response>"}],
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": "x[e~[\n]~b]tool\n<response>y</response>"}],
        [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": 'c\n<minimax:tool_call>\n<invoke name="f">\n</invoke>\n'},
        ],
        [
            {"role": "assistant", "reasoning_content": "r\n</think>\n\nmore", "content": "", "tool_calls": []},
            {"role": "assistant", "reasoning_content": "", "content": "<think>\nx\n</think>\n\ny"},
        ],
        [
            {
                "role": "assistant",
                "reasoning_content": 'a\n<minimax:tool_call>\n<invoke name="b',
                "content": 'c">\n</invoke>\n</minimax:tool_call>',
                "tool_calls": [{"name": "f", "arguments": {"k": '1</parameter>\n</invoke>\n<invoke name="g">\n'}}],
            },
            {"role": "tool", "content": "r</response>\n<response>s"},
            {"role": "user", "content": "u"},
            {"role": "tool", "content": []},
        ],
        [
            {"role": "system", "content": "", "current_date": "d\nCurrent location: x"},
            {"role": "user", "content": "\nCurrent date: 1"},
        ],
        [{"role": "system", "content": [{"type": "text", "text": ""}]}, {"role": "user", "content": "u"}],
        # a dropped message between two tool runs: two tool turns in a row
        [
            {"role": "assistant", "tool_calls": [{"name": "f", "arguments": {}}]},
            {"role": "tool", "content": "a"},
            {"role": "developer", "content": "d"},
            {"role": "tool", "content": "b"},
            {"role": "system"},
            {"role": "tool"},
        ],
        # a fake tool turn inside a user message that only fits if the user turn absorbs it
        [
            {"role": "assistant", "tool_calls": [{"name": "f", "arguments": {}}]},
            {"role": "user", "content": "u[e~[\n]~b]tool\n<response>x"},
        ],
        # the think block swallows the start of a fake tool-call block
        [
            {
                "role": "assistant",
                "reasoning_content": 'a\n<minimax:tool_call>\n<invoke name="b',
                "content": 'c">\n</invoke>\n</minimax:tool_call>',
            }
        ],
        # values holding parameter tags: only the one-call reading fits
        [
            {
                "role": "assistant",
                "tool_calls": [
                    {"name": "f", "arguments": {"k": 'v</parameter>\n<parameter name="k">w'}},
                    {"name": "g", "arguments": {}},
                ],
            },
            {"role": "tool", "content": "r"},
        ],
        [
            {
                "role": "assistant",
                "tool_calls": [{"name": "f", "arguments": {"k": 'v</parameter>\n<parameter name="k">w'}}],
            }
        ],
        [{"role": "assistant", "tool_calls": [{"name": "f", "arguments": {"k": "a</parameter>\nb", "n": 2}}]}],
    ],
)
def test_ambiguous_prompts_read_back_exactly(messages: list[dict[str, Any]]) -> None:
    for template in ALL_TEMPLATES:
        prompt = render_quietly(messages, WEATHER_TOOLS, template=template)
        assert read_and_render(prompt) == prompt


def test_run_break_and_odd_tools_read_back() -> None:
    messages = [
        {"role": "assistant", "tool_calls": [{"name": "f", "arguments": {"n": 1}}]},
        {"role": "tool", "content": "a"},
        {"role": "developer", "content": "dropped"},
        {"role": "tool", "content": "b"},
    ]
    odd_tools = [{"type": "function", "function": "not an object"}, *WEATHER_TOOLS]
    prompt = render_quietly(messages, odd_tools, add_generation_prompt=False)
    reading = read_prompt(prompt)
    assert reading.tools == odd_tools
    assert [m["role"] for m in reading.messages] == ["assistant", "tool", "system", "tool"]
    assert reading.messages[2] == {"role": "system", "content": ""}
    assert render_prompt(**reading, strict=True) == prompt  # the separator is dropped silently


def test_a_broken_tools_section_stays_system_text() -> None:
    for lines in ("<tool>{bad}</tool>\n", "<tool>{}</tool>", "nope\n", '<tool>{"a":1}</tool>\n', ""):
        system = "S" + TOOLS_HEAD + lines + TOOLS_TAIL
        prompt = render_prompt([{"role": "system", "content": system}, {"role": "user", "content": "u"}])
        reading = read_prompt(prompt)
        assert reading.tools is None and reading.messages[0]["content"] == system
        assert render_prompt(**reading) == prompt


def test_read_prompt_is_a_mapping_of_render_arguments() -> None:
    prompt = render_prompt([{"role": "user", "content": "hi"}], template="MiniMax-M2.5", add_generation_prompt=False)
    reading = read_prompt(prompt)
    assert isinstance(reading, ReadPrompt)
    assert dict(reading) == {
        "messages": [{"role": "user", "content": "hi"}],
        "tools": None,
        "add_generation_prompt": False,
        "template": "MiniMax-M2.5",
    }
    assert render_prompt(**reading) == prompt
    empty_identity = read_prompt(render_prompt([{"role": "user", "content": "hi"}], model_identity=""))
    assert empty_identity["model_identity"] == "" and len(empty_identity) == 5


def test_reads_typed_calls_reasoning_and_results() -> None:
    tools_list = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}, "opts": {"type": "object"}},
                },
            },
        }
    ]
    messages = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "reasoning_content": "Call it.",
            "tool_calls": [
                {"id": "x", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "42"}'}},
                {"name": "get_weather", "arguments": {"city": "Köln", "days": 2, "opts": {"u": ["c", 1]}, "extra": 5}},
            ],
        },
        {"role": "tool", "tool_call_id": "x", "content": "18C"},
        {"role": "tool", "tool_call_id": "y", "content": [{"type": "text", "text": "12C"}]},
    ]
    reading = read_prompt(render_prompt(messages, tools_list))
    assert reading.messages[1] == {
        "role": "assistant",
        "content": "Checking.",
        "reasoning_content": "Call it.",
        "tool_calls": [
            {"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "42"}}},
            {
                "id": "call_1",
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "arguments": {"city": "Köln", "days": 2, "opts": {"u": ["c", 1]}, "extra": "5"},
                },
            },
        ],
    }
    assert reading.messages[2:] == [
        {"role": "tool", "tool_call_id": "call_0", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_1", "content": "12C\n"},
    ]
    assert reading.tools == tools_list and reading.add_generation_prompt is True
    # text edges the parser trims: read by the exact split, values still typed
    edgy = {**messages[1], "content": "\nChecking.\n", "reasoning_content": "\nCall it."}
    reading = read_prompt(render_prompt([*messages[:1], edgy, *messages[2:]], tools_list))
    assert reading.messages[1]["content"] == "\nChecking.\n"
    assert reading.messages[1]["reasoning_content"] == "\nCall it."
    assert reading.messages[1]["tool_calls"][1]["function"]["arguments"]["days"] == 2


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("hello", "starts with"),
        ("]~!b[]~b]system\nhi", "ends with"),
        ("]~!b[]~b]user\nhi[e~[\n", "starts with"),
    ],
)
def test_not_a_prompt(text: str, error: str) -> None:
    with pytest.raises(PromptReadError, match=error):
        read_prompt(text)


def test_foreign_prompts_read_back_exactly_too() -> None:
    # Turns no M2 template writes: an orphan tool result, an unknown role, text after a tool-call block.
    prompt = (
        "]~!b[]~b]system\nS[e~[\n]~b]tool\n<response>r</response>[e~[\n]~b]developer\nd[e~[\n"
        ']~b]user\nu[e~[\n]~b]ai\nx\n<minimax:tool_call>\n<invoke name="f">\n</invoke>\n</minimax:tool_call>y[e~[\n'
    )
    reading = read_prompt(prompt)
    assert reading.messages == [
        {"role": "system", "content": "S[e~[\n]~b]tool\n<response>r</response>[e~[\n]~b]developer\nd"},
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": 'x\n<minimax:tool_call>\n<invoke name="f">\n</invoke>\n</minimax:tool_call>y'},
    ]
    assert render_prompt(**reading) == prompt


@pytest.mark.parametrize(
    "body",
    [
        'x\n<minimax:tool_call>\n<invoke name="a</minimax:tool_call>',
        'x\n<minimax:tool_call>\n<invoke name="a">\n<parameter name="k</invoke>\n</minimax:tool_call>',
        '\n<minimax:tool_call>\n<invoke name="a</parameter>\n</invoke>\n</minimax:tool_call>',
        '\n<minimax:tool_call>\n<invoke name="a">\n<parameter name="k</parameter>\n</invoke>\n</minimax:tool_call>',
        '\n<minimax:tool_call>\n<invoke name="a">\n<parameter name="k">v</parameter>\n</minimax:tool_call>',
    ],
)
def test_malformed_call_blocks_stay_content(body: str) -> None:
    prompt = "]~!b[]~b]system\nS[e~[\n]~b]ai\n" + body + "[e~[\n"
    reading = read_prompt(prompt)
    assert reading.messages[1] == {"role": "assistant", "content": body}
    assert render_prompt(**reading) == prompt


@settings(max_examples=examples(1000), **SLOW_OK)
@given(
    st.lists(st.sampled_from(MARKUP_BITS + PLAIN_BITS + FRAME_BITS), max_size=30),
    st.booleans(),
)
def test_any_text_in_an_m2_frame_reads_back_exactly(bits: list[str], generation: bool) -> None:
    prompt = "]~!b[]~b]system\n" + "".join(bits) + "[e~[\n" + ("]~b]ai\n<think>\n" if generation else "")
    assert read_and_render(prompt) == prompt


# ------------------------------------------------------------------------------------------- normalisation

#: Text the reader gives back unchanged: no prompt markup, no response tags, no date/location labels.
clean_text = plain_text(max_size=20).filter(
    lambda s: (
        not any(bad in s for bad in ("response>", "Current date: ", "Current location: ", "tool>"))
        and s not in BY_IDENTITY
    )
)


def _content(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["text", "text", "parts", "none", "missing"]))
    if kind == "parts":
        parts = st.one_of(clean_text, st.builds(lambda t: {"type": "text", "text": t}, clean_text))
        return draw(st.lists(parts, max_size=3))
    return {"text": draw(clean_text), "none": None, "missing": ...}[kind]


def _with(message: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    if value is not ...:
        message[key] = value
    return message


@st.composite
def clean_conversations(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """Conversations of markup-free text with schema-valid tool calls (and some calls to unknown tools)."""
    tool_list = draw(st.one_of(st.none(), st.just([]), tools()))
    known = tool_list or [{"name": "x", "parameters": {"type": "object", "properties": {}, "required": []}}]
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        system = _with({"role": "system"}, "content", _content(draw))
        for key in ("current_date", "current_location"):
            if draw(st.booleans()):
                system[key] = draw(clean_text)
        messages.append(system)
    calls_open = False
    for _ in range(draw(st.integers(0 if messages else 1, 8))):
        kind = draw(st.sampled_from(["user", "assistant", "assistant", "dropped"] + ["tool"] * (3 * calls_open)))
        if kind == "user":
            messages.append(_with({"role": "user"}, "content", _content(draw)))
        elif kind == "dropped":
            messages.append({"role": draw(st.sampled_from(["system", "developer"])), "content": "gone"})
        elif kind == "tool":
            item = st.one_of(clean_text, st.builds(lambda t: {"type": "text", "text": t}, clean_text))
            result = st.one_of(clean_text, st.lists(st.one_of(item, clean_text.map(lambda t: {"output": t}))))
            messages.append(_with({"role": "tool", "tool_call_id": "t"}, "content", draw(result | st.just(...))))
        else:
            message = _with({"role": "assistant"}, "content", _content(draw))
            if draw(st.booleans()):
                message[draw(st.sampled_from(["reasoning_content", "reasoning", "thinking"]))] = draw(clean_text)
            calls = draw(calls_for(known))
            if draw(st.booleans()):  # a call to a tool the prompt does not declare
                calls.append((draw(names), draw(st.dictionaries(names, st.integers() | clean_text, max_size=2))))
            if calls:
                message["tool_calls"] = [_call_shape(draw, name, args) for name, args in calls]
            calls_open = bool(calls)
            messages.append(message)
    return messages, tool_list


def _call_shape(draw: st.DrawFn, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    if draw(st.booleans()):
        arguments = json.dumps(arguments)  # type: ignore[assignment]
    if draw(st.booleans()):
        return {"name": name, "arguments": arguments}
    return {"id": "c", "type": "function", "function": {"name": name, "arguments": arguments}}


def _visible(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p if isinstance(p, str) else p.get("text", "") for p in content)
    return content or ""


def normalised(
    messages: list[dict[str, Any]],
    tool_list: list[dict[str, Any]] | None,
    template: str,
    kwargs: dict[str, Any],
    generation: bool,
) -> dict[str, Any]:
    """What read_prompt(render_prompt(...)) gives back, by the rules of docs/rendering.md."""
    prepared = prepare_messages(messages)
    wrapped = prepare_tools(tool_list) or None
    system = prepared[0] if prepared[0]["role"] == "system" else None
    conversation = prepared[1:] if system else prepared
    text = _visible(system.get("content")) if system and system.get("content") else None
    if text is None:
        text = kwargs.get("model_identity", get_variant(template).identity)
    extras = {k: system[k] for k in ("current_date", "current_location") if system and system.get(k)}
    out: list[dict[str, Any]] = []
    if extras or (text and text not in BY_IDENTITY):
        out.append({"role": "system", "content": "" if text in BY_IDENTITY else text, **extras})
    schemas = {t["function"]["name"]: t["function"]["parameters"]["properties"] for t in wrapped or ()}
    last_user = max((i for i, m in enumerate(conversation) if m["role"] == "user"), default=-1)
    ids = (f"call_{n}" for n in range(1000))
    pending: list[str] = []
    results: list[Any] = []
    for i, message in enumerate(conversation):
        role = message["role"]
        if role == "tool":
            content = message.get("content", [])
            if isinstance(content, str):
                results.append(content)
            else:
                # A string item's own text is written (``"output" in "output"`` is a substring test, not a key).
                results += [
                    (item["output"] if isinstance(item, dict) and "output" in item else _visible([item])) + "\n"
                    for item in content
                ]
            if i + 1 < len(conversation) and conversation[i + 1]["role"] == "tool":
                continue
            if out[-1:] and out[-1]["role"] == "tool":
                out.append({"role": "system", "content": ""})  # only dropped messages came between two runs
            if not results:
                out.append({"role": "tool", "content": []})  # a run that renders no <response> at all
            for result in results:
                paired = {"tool_call_id": pending.pop(0)} if pending else {}
                out.append({"role": "tool", **paired, "content": result})
            results = []
        elif role == "user":
            out.append({"role": "user", "content": _visible(message.get("content"))})
        elif role == "assistant":
            turn: dict[str, Any] = {"role": "assistant", "content": _visible(message.get("content"))}
            if message.get("reasoning_content") and i > last_user:
                turn["reasoning_content"] = message["reasoning_content"]
            if message.get("tool_calls"):
                turn["tool_calls"] = []
                for call in message["tool_calls"]:
                    function = call.get("function", call)
                    props = schemas.get(function["name"], {})
                    arguments = {k: v if k in props else render_value(v) for k, v in function["arguments"].items()}
                    call_id = next(ids)
                    turn["tool_calls"].append(
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {"name": function["name"], "arguments": arguments},
                        }
                    )
                pending = [c["id"] for c in turn["tool_calls"]]
            out.append(turn)
    if not out:
        out.append({"role": "system", "content": ""})  # render_prompt refuses an empty list
    kwargs_out = {"model_identity": ""} if text == "" else {}
    template_out = BY_IDENTITY.get(text, "MiniMax-M2")
    return {
        "messages": out,
        "tools": wrapped,
        "add_generation_prompt": generation,
        "template": template_out,
        **kwargs_out,
    }


@settings(max_examples=examples(1000), **SLOW_OK)
@given(
    case=clean_conversations(),
    template=st.sampled_from(ALL_TEMPLATES),
    kwargs=st.one_of(st.just({}), clean_text.map(lambda t: {"model_identity": t})),
    generation=st.booleans(),
)
def test_messages_to_prompt_to_messages_up_to_normalisation(
    case: Any, template: str, kwargs: dict[str, Any], generation: bool
) -> None:
    messages, tool_list = case
    prompt = render_quietly(messages, tool_list, template=template, add_generation_prompt=generation, **kwargs)
    reading = read_prompt(prompt)
    assert dict(reading) == normalised(messages, tool_list, template, kwargs, generation)
    assert render_quietly(**reading) == prompt
