"""render_prompt(template="MiniMax-M3") without transformers: exact strings written from the template, the value
writer, errors, warnings and bounds. Also home of the M3 conversation strategies that the conformance, golden
and reader tests share.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m2parse.formats.xml_writer import write_xml_value
from m2parse.render import MAX_DEPTH, RenderError, RenderWarning, render_prompt
from m2parse.render_m3 import render_assistant_turn
from m2parse.templates import get_variant

from .test_render import PLAIN_BITS, WEATHER_TOOLS, _optional, render_quietly, turn_kind

NS = "]<]minimax[>["
M3 = "MiniMax-M3"
M3_IDENTITY = get_variant(M3).identity
INSTRUCTIONS = (
    "\n\n<thinking_instructions>\nYou have a thinking capability that allows you to reason step by step before "
    "responding. When thinking is enabled, wrap your reasoning in <mm:think></mm:think> tags before your response. "
    "When thinking is disabled, begin your response directly after the </mm:think> prefix. When thinking is "
    "adaptive, decide on your own whether to think for the current turn.\n"
)
ADAPTIVE_LINE = (
    "Current thinking mode: adaptive. You are encouraged to think for complex decision-making, multi-step "
    "reasoning, or when analyzing function/tool results.\n"
)

# ------------------------------------------------------------------------------------------- strategies

#: M3's own markup, so generated text collides with it.
M3_MARKUP_BITS = (
    "<mm:think>",
    "</mm:think>",
    NS,
    NS + "<tool_call>\n",
    NS + "</tool_call>",
    NS + '<invoke name="f">',
    NS + '<invoke name="',
    '">',
    NS + "</invoke>\n",
    NS + "<a>",
    NS + "</a>",
    NS + "<item>",
    NS + "</item>",
    NS + "<",
    NS + "</",
    "\n<response>",
    "</response>",
    "]~b]",
    "[e~[",
    "]~!b[",
    "[e~[\n",
    "[e~[\n]~b]user\n",
    "[e~[\n]~b]ai\n",
    "[e~[\n]~b]ai\n</mm:think>",
    "[e~[\n]~b]ai\n<mm:think>",
    "[e~[\n]~b]tool\n<response>",
    "[e~[\n]~b]developer\n",
    "</thinking_instructions>",
    "\n\n<thinking_instructions>\n",
    "]<]image[>[",
    "<tool>",
    "</tool>\n",
    "\n\n# Tools\n",
    "None",
)
M3_NAMES = ("get_weather", "f", "search", "中文", "a-b.c", "item", "a")


def m3_texts(*, hostile: bool = True, max_bits: int = 6) -> st.SearchStrategy[str]:
    bits = PLAIN_BITS + (M3_MARKUP_BITS if hostile else ())
    return st.one_of(st.text(max_size=10), st.lists(st.sampled_from(bits), max_size=max_bits).map("".join))


def nested_values(text: st.SearchStrategy[str], keys: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """Argument values: scalars of every JSON type (big ints, floats with exponents, NaN), objects, arrays, arrays
    of objects, and None at any level."""
    scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | text
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(keys, inner, max_size=3)
            | st.lists(st.dictionaries(keys, inner, min_size=1, max_size=2), min_size=1, max_size=2)
        ),
        max_leaves=10,
    )


def m3_contents(text: st.SearchStrategy[str], *, odd: bool = False) -> st.SearchStrategy[Any]:
    part = st.one_of(
        text,
        st.builds(lambda t: {"type": "text", "text": t}, text),
        st.sampled_from([{"type": "image"}, {"type": "video"}, {"type": "image_url", "image_url": {"url": "u"}}]),
        st.just({"type": "text"}),
    )
    think = st.lists(st.one_of(text, st.sampled_from(["</mm:think>", "<mm:think>", "\n</mm:think>\n"])), min_size=1,
                     max_size=5).map("".join)  # fmt: skip
    options = [text, text, think, st.none(), st.lists(part, max_size=3)]
    odd_values = st.one_of(st.integers(-5, 5), st.booleans(), st.floats(), st.dictionaries(text, text, max_size=2))
    return st.one_of(*options, odd_values) if odd else st.one_of(*options)


def m3_tool_results(text: st.SearchStrategy[str], *, odd: bool = False) -> st.SearchStrategy[Any]:
    item = st.one_of(
        text,
        st.builds(lambda t: {"type": "text", "text": t}, text),
        st.builds(lambda v: {"output": v}, nested_values(text, text)),
        st.sampled_from([{"type": "image"}, {"type": "video"}, {"type": "text"}, {"type": "image_url"}]),
    )
    options = [text, text, st.none(), st.lists(item, max_size=3)]
    return (
        st.one_of(*options, st.integers(-5, 5), st.dictionaries(text, text, max_size=2)) if odd else st.one_of(*options)
    )


@st.composite
def m3_calls(draw: st.DrawFn, text: st.SearchStrategy[str], *, odd: bool = False) -> dict[str, Any]:
    keys = st.sampled_from(M3_NAMES) | text
    name = draw(st.sampled_from(M3_NAMES) | text)
    arguments: Any = draw(st.dictionaries(keys, nested_values(text, keys), max_size=4))
    if odd and draw(st.integers(0, 19)) == 0:
        arguments = draw(st.sampled_from([[1], {1: "x"}, {"k": [None]}, "not json"]))
    shape = draw(st.sampled_from(["openai", "openai", "flat", "empty function"]))
    if shape == "flat":
        return {"name": name, "arguments": arguments}
    if shape == "empty function":
        return {"function": draw(st.sampled_from([{}, None])), "name": name, "arguments": arguments}
    return {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}


@st.composite
def m3_conversations(
    draw: st.DrawFn, *, hostile: bool = True, max_turns: int = 8, odd: bool = False
) -> list[dict[str, Any]]:
    """Conversations over every role of the M3 template: root, system/developer (first or misplaced), user,
    assistant (reasoning fields, think tags in content, multi-call turns with nested arguments), tool runs.
    With ``odd``, rare inputs make the template raise (a result with no call before it, non-object arguments)."""
    text = m3_texts(hostile=hostile)
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        root: dict[str, Any] = {"role": "root"}
        _optional(draw, root, "content", m3_contents(text, odd=odd))
        messages.append(root)
    if draw(st.booleans()):
        front: dict[str, Any] = {"role": draw(st.sampled_from(["system", "developer"]))}
        _optional(draw, front, "content", m3_contents(text, odd=odd))
        messages.append(front)
    calls_open = False
    for _ in range(draw(st.integers(1 if not messages else 0, max_turns))):
        kind = turn_kind(draw, calls_open, odd)
        if kind == "user":
            message: dict[str, Any] = {"role": "user"}
            _optional(draw, message, "content", m3_contents(text, odd=odd))
        elif kind == "tool":
            message = {"role": "tool", "tool_call_id": "call_1"}
            _optional(draw, message, "content", m3_tool_results(text, odd=odd))
        elif kind == "dropped":
            role = draw(st.sampled_from(["root", "system", "developer", "function", None]))
            message = {"role": role, "content": draw(text)} if role else {"content": draw(text)}
        else:
            message = {"role": "assistant"}
            _optional(draw, message, "content", m3_contents(text, odd=odd))
            key = draw(st.sampled_from(["reasoning_content", "reasoning_content", "reasoning", "thinking"]))
            _optional(draw, message, key, st.none() | text)
            _optional(draw, message, "tool_calls", st.none() | st.lists(m3_calls(text, odd=odd), max_size=3))
            calls_open = bool(message.get("tool_calls"))
        messages.append(message)
    return messages


@st.composite
def m3_kwargs(draw: st.DrawFn, *, unknown: bool = True) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    modes = ["enabled", "disabled", "adaptive"] + ["auto"] * unknown
    if draw(st.integers(0, 4)) > 0:
        kwargs["thinking_mode"] = draw(st.sampled_from(modes))
    if draw(st.integers(0, 5)) == 0:
        kwargs["model_identity"] = draw(m3_texts())
    return kwargs


def m3_render(*args: Any, **kwargs: Any) -> str:
    return render_quietly(*args, template=M3, **kwargs)


# ------------------------------------------------------------------------------------------- exact strings


def test_minimal_prompt_and_the_generation_prompt_by_thinking_mode() -> None:
    hi = [{"role": "user", "content": "hi"}]
    head = (
        f"]~!b[]~b]system\n{M3_IDENTITY}{INSTRUCTIONS}{{mode}}</thinking_instructions>[e~[\n"
        "]~b]developer\nYou are a helpful assistant.[e~[\n]~b]user\nhi[e~[\n"
    )
    assert render_prompt(hi, template=M3) == head.format(mode=ADAPTIVE_LINE) + "]~b]ai\n"
    assert render_prompt(hi, template=M3, add_generation_prompt=False) == head.format(mode=ADAPTIVE_LINE)
    enabled = render_prompt(hi, template=M3, thinking_mode="enabled")
    assert enabled.endswith("[e~[\n]~b]ai\n<mm:think>") and "Current thinking mode: enabled. You MUST" in enabled
    disabled = render_prompt(hi, template=M3, thinking_mode="disabled")
    assert disabled.endswith("[e~[\n]~b]ai\n</mm:think>") and "Current thinking mode: disabled." in disabled
    assert render_prompt(hi, template=M3, thinking_mode="adaptive") == render_prompt(hi, template=M3)


def test_unknown_thinking_mode_follows_the_template_and_warns() -> None:
    hi = [{"role": "user", "content": "hi"}]
    with pytest.warns(RenderWarning, match="thinking_mode='auto'"):
        prompt = render_prompt(hi, template=M3, thinking_mode="auto")
    assert "Current thinking mode" not in prompt and prompt.endswith("hi[e~[\n]~b]ai\n")
    with pytest.raises(RenderError, match="thinking_mode"):
        render_prompt(hi, template=M3, thinking_mode="auto", strict=True)
    assert render_prompt(hi, template=M3, thinking_mode=None) == render_prompt(hi, template=M3)


def test_roles_root_developer_and_tools() -> None:
    messages = [
        {"role": "root", "content": "R"},
        {"role": "system", "content": [{"type": "text", "text": "D "}, {"type": "image"}, {"type": "video"}]},
        {"role": "user", "content": "u"},
    ]
    prompt = render_prompt(messages, WEATHER_TOOLS, template=M3, add_generation_prompt=False)
    assert prompt.startswith(f"]~!b[]~b]system\nR{INSTRUCTIONS}")
    assert "[e~[\n]~b]developer\nD ]<]image[>[]<]video[>[\n\n# Tools\n" in prompt
    assert '<tool>{"name": "get_weather", "description": "Get weather"' in prompt
    assert render_prompt([{"role": "developer", "content": "D"}], template=M3) == render_prompt(
        [{"role": "system", "content": "D"}], template=M3
    )
    bob = render_prompt([{"role": "user", "content": "x"}], template=M3, model_identity="Bob.")
    assert "]~b]developer\nBob.[e~[" in bob


def test_assistant_turns_reasoning_and_calls() -> None:
    call = {"name": "f", "arguments": {"a": 1, "b": None, "c": {"d": [1, None, {"e": True, "n": None}]}, "s": "<x>"}}
    assert render_assistant_turn({"content": "hi"}) == "</mm:think>hi"
    assert render_assistant_turn({"content": "x", "reasoning_content": "r"}) == "<mm:think>r</mm:think>x"
    assert render_assistant_turn({"content": "\n<mm:think>\nr\n</mm:think>\n\nx"}) == "<mm:think>r</mm:think>x"
    assert render_assistant_turn({"content": "", "tool_calls": [call, {"name": "g", "arguments": "{}"}]}) == (
        f'</mm:think>{NS}<tool_call>\n{NS}<invoke name="f">{NS}<a>1{NS}</a>{NS}<c>{NS}<d>{NS}<item>1{NS}</item>'
        f"{NS}<item>{NS}</item>{NS}<item>{NS}<e>true{NS}</e>{NS}</item>{NS}</d>{NS}</c>{NS}<s><x>{NS}</s>"
        f'{NS}</invoke>\n{NS}<invoke name="g">{NS}</invoke>\n{NS}</tool_call>'
    )


def test_tool_results_share_one_turn_one_response_each() -> None:
    messages = [
        {"role": "assistant", "tool_calls": [{"name": "f", "arguments": {}}]},
        {"role": "tool", "content": "a"},
        {"role": "tool", "content": [{"type": "text", "text": "t"}, {"output": 5}, {"type": "image"}, "s"]},
    ]
    prompt = render_prompt(messages, template=M3, add_generation_prompt=False)
    assert prompt.endswith("]~b]tool\n<response>a</response>\n<response>t5]<]image[>[s</response>[e~[\n")


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("text <b>", "text <b>"),
        (5, "5"),
        (-(2**70), str(-(2**70))),
        (2.5, "2.5"),
        (1e100, "1e+100"),
        (1e-7, "1e-07"),
        (float("nan"), "nan"),
        (float("-inf"), "-inf"),
        (True, "true"),
        (False, "false"),
        (None, ""),
        ([], ""),
        ({}, ""),
        ({"a": None}, ""),
        ([None], f"{NS}<item>{NS}</item>"),
        ({"k": [{"x": 1}]}, f"{NS}<k>{NS}<item>{NS}<x>1{NS}</x>{NS}</item>{NS}</k>"),
        ({1: "one", None: "n"}, f"{NS}<1>one{NS}</1>{NS}<None>n{NS}</None>"),
        (("t", 1), f"{NS}<item>t{NS}</item>{NS}<item>1{NS}</item>"),
    ],
)
def test_xml_writer_follows_to_xml(value: Any, written: str) -> None:
    assert write_xml_value(value) == written


def test_errors_name_the_field() -> None:
    def one_call(arguments: Any) -> list[dict[str, Any]]:
        return [
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [{"name": "f", "arguments": arguments}]},
        ]

    with pytest.raises(RenderError, match=r"messages\[1\].tool_calls\[0\].arguments\['n'\]: .*4300 digits"):
        render_prompt(one_call({"n": {"deep": 10**5000}}), template=M3)
    deep: Any = "x"
    for _ in range(MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(RenderError, match=f"nested deeper than {MAX_DEPTH}"):
        render_prompt(one_call({"v": deep}), template=M3)
    looped: dict[str, Any] = {}
    looped["self"] = looped
    with pytest.raises(RenderError, match="contains itself"):
        render_prompt(one_call({"v": looped}), template=M3)
    with pytest.raises(RenderError, match="argument names must be strings"):
        render_prompt(one_call({1: "x"}), template=M3)
    assert "<1>" not in render_prompt(one_call({1: None}), template=M3)  # None values are skipped first
    with pytest.raises(RenderError, match="arguments must be an object"):
        render_prompt(one_call([1]), template=M3)
    with pytest.raises(RenderError, match="tool result, but the last assistant"):
        render_prompt([{"role": "user", "content": "x"}, {"role": "tool", "content": "r"}], template=M3)
    with pytest.raises(RenderError, match=r"messages\[0\].content: lone surrogate"):
        render_prompt([{"role": "root", "content": "\ud800"}], template=M3)


def test_dropped_messages_warn_and_strict_raises() -> None:
    messages = [
        {"role": "user", "content": "x"},
        {"role": "root", "content": "late"},
        {"role": "developer", "content": "d"},
    ]
    with pytest.warns(RenderWarning) as caught:
        prompt = render_prompt(messages, template=M3)
    assert [str(w.message).split(":")[1] for w in caught] == [
        " a root message is only read at index 0 (the template drops it silently)",
        " a developer message is only read first, or right after a root message (the template drops it silently)",
    ]
    assert "late" not in prompt and "]~b]developer\nYou are a helpful assistant." in prompt
    with pytest.raises(RenderError, match="not rendered"):
        render_prompt(messages, template=M3, strict=True)


@settings(max_examples=50, deadline=None)
@given(m3_conversations(odd=True), m3_kwargs())
def test_generated_conversations_render_or_raise_render_error(
    messages: list[dict[str, Any]], kwargs: dict[str, Any]
) -> None:
    try:
        prompt = m3_render(messages, WEATHER_TOOLS, **kwargs)
    except RenderError:
        return
    assert prompt.startswith("]~!b[]~b]system\n")
