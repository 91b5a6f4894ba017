"""render_prompt() without transformers: exact strings from the template notes, errors, warnings, strict mode,
the escape hatch, and agreement with the output parser. Also home of the conversation strategies that the
conformance and reader tests share.
"""

from __future__ import annotations

import json
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from m2parse import parse
from m2parse.render import RenderError, RenderWarning, render_assistant_turn, render_prompt
from m2parse.templates import M2_TEMPLATES, VARIANTS, get_variant

from .strategies import calls_for, edge_trimmed, plain_text, tools

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ("MiniMax-M2", "MiniMax-M2-original", "MiniMax-M2.1", "MiniMax-M2.5", "MiniMax-M2.7")

# ------------------------------------------------------------------------------------------- strategies

PLAIN_BITS = ("", "a", "Hello", " ", "  ", "\n", "\n\n", "\t", "中文", "😀", "é", '"', "'", "<", ">", "&", "{}")
#: Every piece of the prompt's own markup, so generated text collides with it.
MARKUP_BITS = (
    "<think>",
    "</think>",
    "<think>\n",
    "\n</think>\n\n",
    "<minimax:tool_call>",
    "\n<minimax:tool_call>\n",
    "</minimax:tool_call>",
    '<invoke name="f">\n',
    '<invoke name="',
    "</invoke>\n",
    '<parameter name="k">',
    '<parameter name="',
    "</parameter>\n",
    '">\n',
    '">',
    "\n<response>",
    "</response>",
    "\n</response>",
    "]~b]",
    "[e~[",
    "]~!b[",
    "[e~[\n",
    "[e~[\n]~b]user\n",
    "[e~[\n]~b]ai\n",
    "[e~[\n]~b]tool\n<response>",
    "[e~[\n]~b]tool[e~[\n",
    "]~b]ai\n<think>\n",
    "\nCurrent date: ",
    "\nCurrent location: ",
    "<tool>",
    "</tool>\n",
    "\n\n# Tools\n",
    "None",
)
NAMES = ("get_weather", "f", "search", "中文", "a-b.c")


def texts(*, hostile: bool = True, max_bits: int = 6) -> st.SearchStrategy[str]:
    """Short text: random characters, or glued pieces (with the prompt's markup when ``hostile``)."""
    bits = PLAIN_BITS + (MARKUP_BITS if hostile else ())
    return st.one_of(st.text(max_size=10), st.lists(st.sampled_from(bits), max_size=max_bits).map("".join))


def json_values(text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | text
    return st.recursive(
        scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3), max_leaves=6
    )


def odd_values(text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """Values no API sends but the template still renders (or raises on)."""
    return st.one_of(st.integers(-5, 5), st.booleans(), st.floats(), st.dictionaries(text, text, max_size=2))


def think_texts(text: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Text around ``<think>``/``</think>`` tags, to exercise the template's split of content."""
    tag = st.sampled_from(["</think>", "</think>", "<think>", "\n</think>\n\n", "<think>\n"])
    return st.lists(st.one_of(text, tag), min_size=1, max_size=5).map("".join)


def contents(text: st.SearchStrategy[str], *, odd: bool = False) -> st.SearchStrategy[Any]:
    """A message content: a string, None, or a list of text parts, bare strings and non-text parts."""
    part = st.one_of(
        text,
        st.builds(lambda t: {"type": "text", "text": t}, text),
        st.just({"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}),
        st.just({"type": "text"}),
    )
    options = [text, text, think_texts(text), st.none(), st.lists(part, max_size=3)]
    return st.one_of(*options, odd_values(text)) if odd else st.one_of(*options)


def tool_results(text: st.SearchStrategy[str], *, odd: bool = False) -> st.SearchStrategy[Any]:
    item = st.one_of(
        text,
        st.builds(lambda t: {"type": "text", "text": t}, text),
        st.builds(lambda v: {"output": v}, json_values(text)),
        st.just({"type": "image_url", "image_url": {"url": "u"}}),
    )
    options = [text, text, st.none(), st.lists(item, max_size=3)]
    return st.one_of(*options, odd_values(text)) if odd else st.one_of(*options)


@st.composite
def tool_calls(draw: st.DrawFn, text: st.SearchStrategy[str], *, odd: bool = False) -> dict[str, Any]:
    name = draw(st.sampled_from(NAMES) | text)
    arguments = draw(st.dictionaries(st.sampled_from(NAMES) | text, json_values(text), max_size=3))
    shape = draw(st.sampled_from(["openai", "openai", "flat", "empty function"] + ["outer name"] * odd))
    if shape == "flat":
        return {"name": name, "arguments": arguments}
    if shape == "empty function":  # a falsy "function" makes the template read the call itself
        return {"function": draw(st.sampled_from([{}, None])), "name": name, "arguments": arguments}
    call = {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}
    if shape == "outer name":  # the release body reads this key for its tool-result check
        call["name"] = draw(st.none() | text)
    return call


def _optional(draw: st.DrawFn, message: dict[str, Any], key: str, values: st.SearchStrategy[Any]) -> None:
    if draw(st.booleans()):
        message[key] = draw(values)


def turn_kind(draw: st.DrawFn, calls_open: bool, odd: bool) -> str:
    """The next message's kind in a generated conversation (M2 and M3 alike): a tool result only after a turn
    with calls, except that ``odd`` rarely puts one where the template raises."""
    kinds = ["user", "user", "assistant", "assistant", "assistant", "dropped"]
    kinds += ["tool"] * (3 * calls_open) + ["tool"] * (odd and not calls_open and draw(st.integers(0, 9)) == 0)
    return str(draw(st.sampled_from(kinds)))


@st.composite
def conversations(
    draw: st.DrawFn, *, hostile: bool = True, max_turns: int = 8, odd: bool = False
) -> list[dict[str, Any]]:
    """Conversations over every role, shape and branch of the templates.

    Without ``odd`` the templates render them all; with it, rare inputs make a template raise (a tool result
    with no call before it, a non-string date, a numeric tool content, a release-body ``"name": None``).
    """
    text = texts(hostile=hostile)
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        system: dict[str, Any] = {"role": "system"}
        _optional(draw, system, "content", contents(text, odd=odd))
        date = st.one_of(text, st.integers()) if odd else text
        _optional(draw, system, "current_date", date)
        _optional(draw, system, "current_location", text)
        messages.append(system)
    calls_open = False
    for _ in range(draw(st.integers(1 if not messages else 0, max_turns))):
        kind = turn_kind(draw, calls_open, odd)
        if kind == "user":
            message: dict[str, Any] = {"role": "user"}
            _optional(draw, message, "content", contents(text, odd=odd))
        elif kind == "tool":
            message = {"role": "tool", "tool_call_id": "call_1"}
            _optional(draw, message, "content", tool_results(text, odd=odd))
        elif kind == "dropped":
            role = draw(st.sampled_from(["system", "developer", "function", None]))
            message = {"role": role, "content": draw(text)} if role else {"content": draw(text)}
        else:
            message = {"role": "assistant"}
            _optional(draw, message, "content", contents(text, odd=odd))
            reasoning_key = draw(st.sampled_from(["reasoning_content", "reasoning_content", "reasoning", "thinking"]))
            reasoning = st.none() | text | (st.lists(text, max_size=2) if odd else text)
            _optional(draw, message, reasoning_key, reasoning)
            _optional(draw, message, "tool_calls", st.none() | st.lists(tool_calls(text, odd=odd), max_size=3))
            calls_open = bool(message.get("tool_calls"))
        messages.append(message)
    return messages


@st.composite
def template_kwargs(draw: st.DrawFn) -> dict[str, Any]:
    return draw(st.one_of(st.just({}), st.builds(lambda t: {"model_identity": t}, texts())))


def examples(n: int) -> int:
    """At most ``n`` examples, fewer when the loaded hypothesis profile asks for fewer (dev)."""
    return min(n, settings().max_examples)


SLOW_OK = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much]}


def render_quietly(*args: Any, **kwargs: Any) -> str:
    """render_prompt with its RenderWarnings (dropped input, the template's behaviour) silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RenderWarning)
        return render_prompt(*args, **kwargs)


# ------------------------------------------------------------------------------------------- examples

WEATHER_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
M2_IDENTITY = "You are MiniMax-M2, a helpful AI assistant built by MiniMax. Knowledge cutoff: 2025-06."
TOOLS_SECTION = (
    "\n\n# Tools\nYou may call one or more tools to assist with the user query.\nHere are the tools available in "
    'JSONSchema format:\n\n<tools>\n<tool>{"name": "get_weather", "description": "Get weather", "parameters": '
    '{"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}</tool>\n</tools>\n\n'
    "When making tool calls, use XML format to invoke tools and pass parameters:\n\n<minimax:tool_call>\n"
    '<invoke name="tool-name-1">\n<parameter name="param-key-1">param-value-1</parameter>\n'
    '<parameter name="param-key-2">param-value-2</parameter>\n...\n</invoke>\n</minimax:tool_call>'
)


def _weather_conversation() -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Weather in Paris and Köln?"},
        {
            "role": "assistant",
            "content": "",
            "reasoning_content": "Two cities, call twice.",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                {
                    "id": "c2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": {"city": "Köln", "days": 2}},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "18C"},
        {"role": "tool", "tool_call_id": "c2", "content": "12C"},
    ]


def test_worked_example_from_the_template_notes() -> None:
    expected = (
        "]~!b[]~b]system\nYou are terse."
        + TOOLS_SECTION
        + "[e~[\n]~b]user\nWeather in Paris and Köln?[e~[\n]~b]ai\n<think>\nTwo cities, call twice.\n</think>\n\n"
        '\n<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="city">Paris</parameter>\n</invoke>\n'
        '<invoke name="get_weather">\n<parameter name="city">Köln</parameter>\n<parameter name="days">2</parameter>\n'
        "</invoke>\n</minimax:tool_call>[e~[\n]~b]tool\n<response>18C</response>\n<response>12C</response>[e~[\n"
        "]~b]ai\n<think>\n"
    )
    assert render_prompt(_weather_conversation(), WEATHER_TOOLS) == expected


def test_minimal_prompt_and_generation_prompt_switch() -> None:
    hi = [{"role": "user", "content": "hi"}]
    assert render_prompt(hi) == f"]~!b[]~b]system\n{M2_IDENTITY}[e~[\n]~b]user\nhi[e~[\n]~b]ai\n<think>\n"
    assert render_prompt(hi, add_generation_prompt=False) == f"]~!b[]~b]system\n{M2_IDENTITY}[e~[\n]~b]user\nhi[e~[\n"


def test_history_turn_loses_its_reasoning_but_keeps_calls() -> None:
    messages = [*_weather_conversation(), {"role": "user", "content": "thanks"}]
    prompt = render_prompt(messages, WEATHER_TOOLS, add_generation_prompt=False)
    assert "Two cities" not in prompt
    assert ']~b]ai\n\n<minimax:tool_call>\n<invoke name="get_weather">' in prompt


@pytest.mark.parametrize("name", M2_TEMPLATES)
def test_each_variant_writes_its_identity_and_model_identity_overrides_it(name: str) -> None:
    hi = [{"role": "user", "content": "hi"}]
    assert render_prompt(hi, template=name).startswith(f"]~!b[]~b]system\n{VARIANTS[name].identity}[e~[\n")
    assert render_prompt(hi, template=name, model_identity="Me.").startswith("]~!b[]~b]system\nMe.[e~[\n")


def test_model_identity_none_means_the_default() -> None:
    # A divergence: transformers passes None through and the template writes "None" (see the conformance test).
    hi = [{"role": "user", "content": "hi"}]
    assert render_prompt(hi, model_identity=None) == render_prompt(hi)


def test_template_names_are_case_insensitive_and_take_the_hub_prefix() -> None:
    assert get_variant("minimaxai/minimax-m2.5").name == "MiniMax-M2.5"
    with pytest.raises(RenderError, match="unknown template 'M3'"):
        render_prompt([{"role": "user", "content": "x"}], template="M3")


def test_system_extras_and_empty_system_text() -> None:
    system = {"role": "system", "content": "", "current_date": "2025-11-01", "current_location": "Paris"}
    prompt = render_prompt([system, {"role": "user", "content": "x"}], add_generation_prompt=False)
    assert prompt.startswith(f"]~!b[]~b]system\n{M2_IDENTITY}\nCurrent date: 2025-11-01\nCurrent location: Paris[e~[")
    image_only = {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}
    assert render_quietly([image_only]).startswith("]~!b[]~b]system\n[e~[\n")


def test_arguments_as_json_string_are_decoded() -> None:
    as_dict = [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1, "b": "x"}}}]}]
    as_text = [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": '{"a": 1, "b": "x"}'}}]}]
    assert render_prompt(as_text) == render_prompt(as_dict)
    empty = [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": ""}}]}]
    assert '<invoke name="f">\n</invoke>\n' in render_prompt(empty)


@pytest.mark.parametrize(
    ("arguments", "error"),
    [("{oops", "not valid JSON"), ("[1, 2]", "must be a JSON object"), (None, "arguments must be an object")],
)
def test_bad_arguments_raise_render_error(arguments: Any, error: str) -> None:
    messages = [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": arguments}}]}]
    with pytest.raises(RenderError, match=error):
        render_prompt(messages)


def test_tool_result_without_a_call_raises_a_value_error() -> None:
    messages = [{"role": "user", "content": "x"}, {"role": "tool", "content": "18C"}]
    with pytest.raises(ValueError, match=r"messages\[1\] is a tool result, but the last assistant message"):
        render_prompt(messages)


def test_dropped_messages_warn_and_strict_raises() -> None:
    messages = [
        {"role": "user", "content": "x"},
        {"role": "system", "content": "late"},
        {"role": "developer", "content": "dev"},
    ]
    with pytest.warns(RenderWarning) as caught:
        prompt = render_prompt(messages)
    assert [str(w.message).split(" is")[0] for w in caught] == ["messages[1]", "messages[2]"]
    assert "late" not in prompt and "dev" not in prompt
    with pytest.raises(RenderError, match=r"messages\[1\] is not rendered"):
        render_prompt(messages, strict=True)


def test_dropping_an_empty_message_is_silent_and_splits_a_tool_run() -> None:
    messages = [
        {"role": "assistant", "tool_calls": [{"name": "f", "arguments": {}}]},
        {"role": "tool", "content": "a"},
        {"role": "system", "content": ""},
        {"role": "tool", "content": "b"},
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prompt = render_prompt(messages, strict=True, add_generation_prompt=False)
    assert prompt.endswith("]~b]tool\n<response>a</response>[e~[\n]~b]tool\n<response>b</response>[e~[\n")


def test_several_think_closers_warn_about_the_lost_middle() -> None:
    messages = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "a</think>b</think>c"}]
    with pytest.warns(RenderWarning, match="drops the rest"):
        prompt = render_prompt(messages, add_generation_prompt=False)
    assert prompt.endswith("]~b]ai\n<think>\na\n</think>\n\nc[e~[\n")
    with pytest.raises(RenderError):
        render_prompt(messages, strict=True)


def test_non_text_parts_warn() -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "see"}, {"type": "image_url"}]}]
    with pytest.warns(RenderWarning, match=r"messages\[0\].content\[1\] \('image_url'\) is not rendered"):
        assert "]~b]user\nsee[e~[" in render_prompt(messages)


def test_reasoning_aliases_and_think_in_content() -> None:
    base = [{"role": "user", "content": "x"}]
    expected = render_prompt([*base, {"role": "assistant", "content": "A", "reasoning_content": "R"}])
    for key in ("reasoning", "thinking"):
        assert render_prompt([*base, {"role": "assistant", "content": "A", key: "R"}]) == expected
    assert render_prompt([*base, {"role": "assistant", "content": "<think>\nR\n</think>\n\nA"}]) == expected
    literal = render_prompt([*base, {"role": "assistant", "content": "<think>R</think>A", "reasoning_content": ""}])
    assert literal.endswith("]~b]ai\n<think>R</think>A[e~[\n]~b]ai\n<think>\n")


def test_bare_tools_are_wrapped_and_callables_refused() -> None:
    bare = [WEATHER_TOOLS[0]["function"]]
    hi = [{"role": "user", "content": "hi"}]
    assert render_prompt(hi, bare) == render_prompt(hi, WEATHER_TOOLS)

    def get_weather(city: str) -> str:
        """Get weather.

        Args:
            city: the city
        """
        return city

    with pytest.raises(RenderError, match="Python callable"):
        render_prompt(hi, [get_weather])


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([], "messages is empty"),
        ("hi", "messages must be a list"),
        ([1], r"messages\[0\] must be a dict"),
        ([{"role": "system", "content": "s", "current_date": 20250101}], "current_date must be a string"),
        ([{"role": "assistant", "tool_calls": [{"function": {"arguments": {}}}]}], "name must be a string"),
        ([{"role": "assistant", "tool_calls": {"name": "f"}}], "tool_calls must be a list"),
        ([{"role": "assistant", "tool_calls": [{"name": "f", "arguments": {"x": {1, 2}}}]}], "not JSON-serialisable"),
        (
            [{"role": "assistant", "tool_calls": [{"name": "f", "arguments": {}}]}, {"role": "tool", "content": 5}],
            r"messages\[1\].content must be a string or a list",
        ),
        ([{"role": "assistant", "tool_calls": ["f"]}], r"tool_calls\[0\] must be a dict"),
        ([{"role": "assistant", "tool_calls": [{"function": "f"}]}], "function must be a dict"),
        ([{"role": "assistant", "tool_calls": [{"name": "f", "arguments": {1: 2}}]}], "argument names must be"),
    ],
)
def test_input_errors_are_render_errors(messages: Any, error: str) -> None:
    with pytest.raises(RenderError, match=error):
        render_prompt(messages)


@pytest.mark.parametrize(
    ("tools", "error"),
    [
        ({"type": "function"}, "tools must be a list"),
        (["get_weather"], r"tools\[0\] must be a dict"),
        ([{"type": "function", "parameters": {}}], "neither 'function' nor 'name'"),
    ],
)
def test_tools_errors_are_render_errors(tools: Any, error: str) -> None:
    with pytest.raises(RenderError, match=error):
        render_prompt([{"role": "user", "content": "x"}], tools)


def test_pydantic_like_messages_are_dumped() -> None:
    class Message:
        def model_dump(self) -> dict[str, Any]:
            return {"role": "user", "content": "hi", "name": None}

    assert render_prompt([Message()]) == render_prompt([{"role": "user", "content": "hi"}])


def test_inputs_are_not_modified() -> None:
    messages = _weather_conversation()
    messages[2]["tool_calls"][0]["function"]["arguments"] = '{"city": "Paris"}'
    messages[2]["content"] = None
    snapshot = json.dumps(messages)
    render_prompt(messages, WEATHER_TOOLS)
    assert json.dumps(messages) == snapshot


# ------------------------------------------------------------------------------------------- escape hatch


def _reference_dir() -> Path | None:
    """``$M2PARSE_REFERENCE_DIR``, else ``<repo>/../shared/reference``: the folder of official templates."""
    for candidate in (os.environ.get("M2PARSE_REFERENCE_DIR"), ROOT.parent / "shared" / "reference"):
        if candidate and (Path(candidate) / "MiniMax-M2" / "chat_template.jinja").is_file():
            return Path(candidate)
    return None


REFERENCE = _reference_dir()
needs_reference = pytest.mark.skipif(
    REFERENCE is None, reason="no reference templates: set M2PARSE_REFERENCE_DIR or provide ../shared/reference"
)


@needs_reference
@settings(max_examples=examples(300), **SLOW_OK)
@given(messages=conversations(max_turns=5))
def test_escape_hatch_on_the_official_file_equals_the_builtin(messages: list[dict[str, Any]]) -> None:
    pytest.importorskip("jinja2", reason="the [jinja] extra is not installed")
    assert REFERENCE is not None
    for name in TEMPLATES:
        path = REFERENCE / name / "chat_template.jinja"
        assert render_quietly(messages, chat_template=str(path)) == render_quietly(messages, template=name)


def test_escape_hatch_takes_a_template_string_with_transformers_features() -> None:
    pytest.importorskip("jinja2", reason="the [jinja] extra is not installed")
    source = (
        "{%- for m in messages %}{% if loop.index0 > 1 %}{% break %}{% endif %}"
        "{{ m | tojson }}|{% generation %}{{ m.role }}{% endgeneration %}\n{% endfor %}{{ bos_token }}"
        "{% set ns = namespace(n=0) %}{% set ns.n = 2 %}{{ ns.n }}{{ strftime_now('%Y')[:2] }}"
    )
    messages = [{"role": "user", "content": "é<&>", "b": 1}, {"role": "user"}, {"role": "user"}]
    expected = '{"role": "user", "content": "é<&>", "b": 1}|user{"role": "user"}|user]~!b[220'  # trim_blocks
    assert render_prompt(messages, chat_template=source) == expected
    with pytest.raises(RenderError, match="TemplateError: stop"):
        render_prompt(messages, chat_template="{{ raise_exception('stop') }}")
    with pytest.raises(RenderError, match="SecurityError"):
        render_prompt(messages, chat_template="{% set ns = namespace(a=1) %}{% set ns._x = 1 %}")
    with pytest.raises(RenderError, match="does not compile"):
        render_prompt(messages, chat_template="{% if %}")
    with pytest.raises(RenderError, match="no such file"):
        render_prompt(messages, chat_template="/nonexistent/chat_template.jinja")


def test_escape_hatch_reads_a_model_folder(tmp_path: Path) -> None:
    pytest.importorskip("jinja2", reason="the [jinja] extra is not installed")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages[0].content }}!"}))
    assert render_prompt([{"role": "user", "content": "hi"}], chat_template=str(tmp_path)) == "hi!"
    (tmp_path / "chat_template.jinja").write_text("{{ messages | length }}\n")
    assert render_prompt([{"role": "user", "content": "hi"}], chat_template=tmp_path) == "1"
    named = tmp_path / "named.json"
    named.write_text(
        json.dumps({"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]})
    )
    assert render_prompt([{"role": "user", "content": "hi"}], chat_template=named) == "D"
    named.write_text(json.dumps({"bos_token": "x"}))
    with pytest.raises(RenderError, match="no 'chat_template' string"):
        render_prompt([{"role": "user", "content": "hi"}], chat_template=named)


def test_escape_hatch_refuses_old_jinja2(monkeypatch: pytest.MonkeyPatch) -> None:
    jinja2 = pytest.importorskip("jinja2", reason="the [jinja] extra is not installed")
    from m2parse import jinja_render

    jinja_render._compile.cache_clear()
    monkeypatch.setattr(jinja2, "__version__", "3.1.5")
    with pytest.raises(ImportError, match=r"jinja2 >= 3.1.6"):
        render_prompt([{"role": "user", "content": "hi"}], chat_template="{{ 1 }}")
    jinja_render._compile.cache_clear()


def test_escape_hatch_without_jinja2_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from m2parse import jinja_render

    jinja_render._compile.cache_clear()
    monkeypatch.setitem(sys.modules, "jinja2", None)
    with pytest.raises(ImportError, match=r"pip install 'm2parse\[jinja\]'"):
        render_prompt([{"role": "user", "content": "hi"}], chat_template="{{ 1 }}")
    jinja_render._compile.cache_clear()


# ------------------------------------------------------------------------------------------- parser agreement


@st.composite
def assistant_turns(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, Any], list[tuple[str, Any]]]:
    """A clean assistant message (no markup, no \\n at the text edges) and the calls it holds."""
    tool_list = draw(tools())
    calls = draw(calls_for(tool_list))
    message: dict[str, Any] = {"role": "assistant", "content": draw(edge_trimmed(plain_text()))}
    reasoning = draw(edge_trimmed(plain_text()))
    if reasoning:
        message["reasoning_content"] = reasoning
    if calls:
        message["tool_calls"] = [{"type": "function", "function": {"name": n, "arguments": a}} for n, a in calls]
    return tool_list, message, calls


@settings(max_examples=examples(500), **SLOW_OK)
@given(assistant_turns())
def test_rendered_turn_parses_back_to_the_same_message(case: Any) -> None:
    tool_list, message, calls = case
    text = render_assistant_turn(message)
    parsed = parse(text, tool_list, starts_in_reasoning=False)
    assert parsed.reasoning_content == message.get("reasoning_content")
    assert parsed.content == message["content"]
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == calls
    if "reasoning_content" in message:
        # what the model itself writes after the generation prompt's "<think>\n"
        output = parse(text.removeprefix("<think>\n"), tool_list)
        assert (output.reasoning_content, output.content) == (message["reasoning_content"], message["content"])
        assert [(c.name, c.arguments) for c in output.tool_calls] == calls
        assert not output.problems


def test_rendering_doc_examples_run() -> None:
    pytest.importorskip("jinja2", reason="the escape-hatch example needs the [jinja] extra")
    doc = ROOT / "docs" / "rendering.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 5
    namespace: dict[str, Any] = {}
    for block in blocks:
        exec(compile(block, str(doc), "exec"), namespace)
