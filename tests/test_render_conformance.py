"""Differential tests: render_prompt() against real transformers 5.23.0 rendering the official templates, offline.

The reference renderer is transformers' own ``render_jinja_template`` with the one input step
``apply_chat_template`` adds in 5.23 (None-valued message keys dropped); one test checks that this equals
``PreTrainedTokenizerFast.apply_chat_template(tokenize=False)`` with a tiny in-test tokenizer.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from m2parse.render import RenderError, RenderWarning, render_prompt

from .render_cases import CASES, M3_CASES, RICH_TOOLS
from .render_cases import call as _call
from .strategies import tools as generated_tools
from .test_render import REFERENCE, TEMPLATES, WEATHER_TOOLS, conversations, render_quietly, template_kwargs
from .test_render_m3 import m3_conversations, m3_kwargs

PINNED = "5.23.0"
transformers = pytest.importorskip("transformers", reason="conformance needs the [conformance] extra (transformers)")
if transformers.__version__ != PINNED:
    pytest.skip(
        f"conformance is pinned to transformers=={PINNED} (None handling and reasoning aliases differ between "
        f"5.x minors); found {transformers.__version__}",
        allow_module_level=True,
    )

import jinja2  # noqa: E402 - after the skip: transformers needs it
from transformers.utils.chat_template_utils import render_jinja_template  # noqa: E402

if REFERENCE is None:
    pytest.skip(
        "no reference templates: set M2PARSE_REFERENCE_DIR to a folder holding MiniMax-M2*/chat_template.jinja "
        "(default ../shared/reference)",
        allow_module_level=True,
    )
SOURCES = {name: (REFERENCE / name / "chat_template.jinja").read_text(encoding="utf-8") for name in TEMPLATES}
M3 = "MiniMax-M3"
if (REFERENCE / M3 / "chat_template.jinja").is_file():
    SOURCES[M3] = (REFERENCE / M3 / "chat_template.jinja").read_text(encoding="utf-8")
needs_m3 = pytest.mark.skipif(M3 not in SOURCES, reason=f"no {M3}/chat_template.jinja in the reference folder")
SPECIAL_TOKENS = {"bos_token": "]~!b[", "eos_token": "[e~[", "unk_token": "]!d~["}


def hf_render(
    name: str,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    *,
    add_generation_prompt: bool = True,
    drop_none: bool = True,
    **kwargs: Any,
) -> str:
    """transformers' rendering; ``drop_none=False`` shows what transformers < 5.23 rendered."""
    if drop_none:
        messages = [{k: v for k, v in m.items() if v is not None} for m in messages]
    rendered, _ = render_jinja_template(
        conversations=[messages],
        tools=tools,
        chat_template=SOURCES[name],
        add_generation_prompt=add_generation_prompt,
        **{**SPECIAL_TOKENS, **kwargs},
    )
    return rendered[0]


def outcome(render: Any, *args: Any, **kwargs: Any) -> str | type[Exception]:
    """The rendered text, or the fact that rendering raised."""
    try:
        return render(*args, **kwargs)
    except (RenderError, jinja2.TemplateError, TypeError, ValueError):
        return Exception


def tiny_tokenizer(source: str) -> Any:
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(WordLevel({"]!d~[": 0}, unk_token="]!d~[")), **SPECIAL_TOKENS
    )
    tok.chat_template = source
    return tok


# ------------------------------------------------------------------------------------------- fixed cases
# The conversations are in render_cases.py (the golden vectors include them too).


@pytest.mark.parametrize("name", TEMPLATES)
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("generation", [True, False])
def test_fixed_conversations_are_byte_identical(name: str, case: str, generation: bool) -> None:
    messages, tools, kwargs = CASES[case]
    expected = hf_render(name, messages, tools, add_generation_prompt=generation, **kwargs)
    got = render_quietly(messages, tools, template=name, add_generation_prompt=generation, **kwargs)
    assert got == expected


@st.composite
def tool_lists(draw: st.DrawFn) -> list[dict[str, Any]] | None:
    generated = generated_tools().map(
        lambda ts: [t if "function" in t else {"type": "function", "function": t} for t in ts]
    )
    return draw(st.one_of(st.none(), st.just([]), st.just(RICH_TOOLS), generated))


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=conversations(odd=True), tools=tool_lists(), kwargs=template_kwargs(), generation=st.booleans())
def test_generated_conversations_are_byte_identical_on_every_template(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, kwargs: dict[str, Any], generation: bool
) -> None:
    for name in TEMPLATES:
        options = {"add_generation_prompt": generation, **kwargs}
        ours = outcome(render_quietly, messages, tools, template=name, **options)
        theirs = outcome(hf_render, name, messages, tools, **options)
        assert ours == theirs
        event("rendered" if isinstance(ours, str) else "raised in both")


def test_reference_renderer_equals_apply_chat_template() -> None:
    for name in TEMPLATES:
        tok = tiny_tokenizer(SOURCES[name])
        for messages, tools, kwargs in CASES.values():
            via_tokenizer = tok.apply_chat_template(
                messages, tools=tools, tokenize=False, add_generation_prompt=True, **kwargs
            )
            assert via_tokenizer == hf_render(name, messages, tools, **kwargs)


def test_empty_conversation_raises_in_both() -> None:
    with pytest.raises(ValueError, match="empty conversation"):
        tiny_tokenizer(SOURCES["MiniMax-M2"]).apply_chat_template([], tokenize=False)
    with pytest.raises(RenderError, match="messages is empty"):
        render_prompt([])


# ------------------------------------------------------------------------------------------- divergences
# Each test shows transformers' behaviour and ours side by side (docs/rendering.md lists them).


def test_divergence_json_string_arguments_are_decoded() -> None:
    as_text = [{"role": "assistant", "tool_calls": [_call("f", '{"city": "Köln", "days": 2}')]}]
    as_dict = [{"role": "assistant", "tool_calls": [_call("f", {"city": "Köln", "days": 2})]}]
    for name in TEMPLATES:
        with pytest.raises(jinja2.exceptions.UndefinedError, match="has no attribute 'items'"):
            hf_render(name, as_text)
        assert render_prompt(as_text, template=name) == hf_render(name, as_dict)
    empty = [{"role": "assistant", "tool_calls": [_call("f", "")]}]
    assert render_prompt(empty) == hf_render("MiniMax-M2", [{"role": "assistant", "tool_calls": [_call("f", {})]}])


@pytest.mark.parametrize("name", TEMPLATES)
def test_divergence_content_none_renders_empty_as_in_5_23(name: str) -> None:
    messages = [{"role": "user", "content": None}, {"role": "assistant", "content": None}]
    old = hf_render(name, messages, drop_none=False)  # transformers < 5.23 passed None to the template
    new = tiny_tokenizer(SOURCES[name]).apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if name in ("MiniMax-M2-original", "MiniMax-M2.5", "MiniMax-M2.7"):
        assert "]~b]user\nNone[e~[\n]~b]ai\nNone[e~[" in old
    else:
        assert old == new
    assert "]~b]user\n[e~[\n]~b]ai\n[e~[" in new
    assert render_prompt(messages, template=name) == new


@pytest.mark.parametrize("name", TEMPLATES)
def test_divergence_tool_result_without_call_raises_value_error(name: str) -> None:
    messages = [{"role": "user", "content": "x"}, {"role": "tool", "content": "18C"}]
    with pytest.raises(jinja2.exceptions.TemplateError, match="no previous assistant message with a tool call"):
        hf_render(name, messages)
    with pytest.raises(RenderError, match="tool result, but the last assistant message"):
        render_prompt(messages, template=name)


@pytest.mark.parametrize("name", TEMPLATES)
def test_divergence_dropped_messages_same_bytes_but_reported(name: str) -> None:
    messages = [
        {"role": "user", "content": "x"},
        {"role": "system", "content": "late system"},
        {"role": "developer", "content": "dev"},
        {"content": "no role"},
    ]
    expected = hf_render(name, messages)
    assert "late system" not in expected and "dev" not in expected
    with pytest.warns(RenderWarning):
        assert render_prompt(messages, template=name) == expected
    with pytest.raises(RenderError, match="not rendered"):
        render_prompt(messages, template=name, strict=True)


def test_divergence_several_think_closers_same_bytes_but_reported() -> None:
    messages = [{"role": "assistant", "content": "r</think>lost</think>kept"}]
    expected = hf_render("MiniMax-M2", messages)
    assert "lost" not in expected
    with pytest.warns(RenderWarning, match="drops the rest"):
        assert render_prompt(messages) == expected
    with pytest.raises(RenderError):
        render_prompt(messages, strict=True)


def test_reasoning_alias_matches_5_23_not_the_bare_template() -> None:
    messages = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "a", "reasoning": "r"}]
    bare = transformers.utils.chat_template_utils._compile_jinja_template(SOURCES["MiniMax-M2"])
    assert "<think>" not in bare.render(messages=messages, add_generation_prompt=False)  # no alias in the template
    assert "<think>\nr\n</think>\n\na" in hf_render("MiniMax-M2", messages)
    assert render_prompt(messages) == hf_render("MiniMax-M2", messages)


def test_divergence_bare_tools_are_wrapped() -> None:
    bare = [WEATHER_TOOLS[0]["function"]]
    hi = [{"role": "user", "content": "hi"}]
    with pytest.raises(TypeError, match="Undefined is not JSON serializable"):
        hf_render("MiniMax-M2", hi, bare)
    assert render_prompt(hi, bare) == hf_render("MiniMax-M2", hi, WEATHER_TOOLS)


def test_divergence_model_identity_none_is_the_default() -> None:
    hi = [{"role": "user", "content": "hi"}]
    assert hf_render("MiniMax-M2", hi, model_identity=None).startswith("]~!b[]~b]system\nNone[e~[")
    assert render_prompt(hi, model_identity=None) == hf_render("MiniMax-M2", hi)


def test_divergence_callable_tools_are_out_of_scope() -> None:
    def get_weather(city: str) -> str:
        """Get the weather.

        Args:
            city: The city.
        """
        return city

    hi = [{"role": "user", "content": "hi"}]
    assert '"name": "get_weather"' in hf_render("MiniMax-M2", hi, [get_weather])  # transformers converts it
    with pytest.raises(RenderError, match="get_json_schema"):
        render_prompt(hi, [get_weather])
    schema = transformers.utils.get_json_schema(get_weather)
    assert render_prompt(hi, [schema]) == hf_render("MiniMax-M2", hi, [get_weather])


@settings(max_examples=200, deadline=None)
@given(messages=conversations(max_turns=5))
def test_escape_hatch_equals_transformers(messages: list[dict[str, Any]]) -> None:
    for name in ("MiniMax-M2", "MiniMax-M2.5"):
        path = REFERENCE / name / "chat_template.jinja"
        assert render_prompt(messages, RICH_TOOLS, chat_template=path) == hf_render(name, messages, RICH_TOOLS)


def test_escape_hatch_features_match_transformers() -> None:
    source = (
        "{%- for m in messages %}{% if loop.index0 > 1 %}{% break %}{% endif %}"
        "{{ m | tojson }}|{% generation %}{{ m.role }}{% endgeneration %}\n{% endfor %}{{ bos_token }}"
        "{% set ns = namespace(n=0) %}{% set ns.n = 2 %}{{ ns.n }}{{ tools | tojson(indent=1) }}\n"
    )
    messages = [{"role": "user", "content": "é<&>", "b": 1}, {"role": "user"}, {"role": "user"}]
    expected, _ = render_jinja_template(
        conversations=[messages], tools=RICH_TOOLS, chat_template=source, **SPECIAL_TOKENS
    )
    assert render_prompt(messages, RICH_TOOLS, chat_template=source) == expected[0]


# ------------------------------------------------------------------------------------------- MiniMax-M3


@needs_m3
@pytest.mark.parametrize("case", list(M3_CASES))
@pytest.mark.parametrize("generation", [True, False])
def test_m3_fixed_conversations_are_byte_identical(case: str, generation: bool) -> None:
    messages, tools, kwargs = M3_CASES[case]
    expected = hf_render(M3, messages, tools, add_generation_prompt=generation, **kwargs)
    assert render_quietly(messages, tools, template=M3, add_generation_prompt=generation, **kwargs) == expected


@st.composite
def m3_tool_lists(draw: st.DrawFn) -> list[dict[str, Any]] | None:
    generated = generated_tools().map(
        lambda ts: [t if "function" in t else {"type": "function", "function": t} for t in ts]
    )
    return draw(st.one_of(st.none(), st.just([]), st.just(RICH_TOOLS), generated))


#: Generated M3 conversations compared per run, in every hypothesis profile (the count is fixed, not the profile's);
#: about 1 in 8 raises in both, so well over 1,000 render.
M3_GENERATED = 1200


@needs_m3
@settings(max_examples=M3_GENERATED, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=m3_conversations(odd=True), tools=m3_tool_lists(), kwargs=m3_kwargs(), generation=st.booleans())
def test_m3_generated_conversations_are_byte_identical(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, kwargs: dict[str, Any], generation: bool
) -> None:
    options = {"add_generation_prompt": generation, **kwargs}
    ours = outcome(render_quietly, messages, tools, template=M3, **options)
    theirs = outcome(hf_render, M3, messages, tools, **options)
    assert ours == theirs
    event("rendered" if isinstance(ours, str) else "raised in both")


@needs_m3
def test_m3_reference_renderer_equals_apply_chat_template() -> None:
    tok = tiny_tokenizer(SOURCES[M3])
    for messages, tools, kwargs in M3_CASES.values():
        via_tokenizer = tok.apply_chat_template(
            messages, tools=tools, tokenize=False, add_generation_prompt=True, **kwargs
        )
        assert via_tokenizer == hf_render(M3, messages, tools, **kwargs)


@needs_m3
def test_m3_escape_hatch_gives_the_same_bytes() -> None:
    path = REFERENCE / M3 / "chat_template.jinja"
    for messages, tools, kwargs in M3_CASES.values():
        assert render_quietly(messages, tools, chat_template=path, **kwargs) == hf_render(M3, messages, tools, **kwargs)


@needs_m3
def test_m3_divergences() -> None:
    hi = [{"role": "user", "content": "hi"}]
    # None means "not given" (transformers passes None on: no mode line, and the identity renders "None")
    assert "Current thinking mode" not in hf_render(M3, hi, thinking_mode=None)
    assert render_prompt(hi, template=M3, thinking_mode=None) == hf_render(M3, hi)
    assert "]~b]developer\nNone[e~[" in hf_render(M3, hi, model_identity=None)
    assert render_prompt(hi, template=M3, model_identity=None) == hf_render(M3, hi)
    # a tool result with no call before it: the template raises a TemplateError, we a RenderError
    orphan = [*hi, {"role": "tool", "content": "r"}]
    with pytest.raises(jinja2.exceptions.TemplateError, match="no previous assistant message with a tool call"):
        hf_render(M3, orphan)
    with pytest.raises(RenderError, match="tool result"):
        render_prompt(orphan, template=M3)
    # JSON-string arguments are decoded (the template would raise on str.items)
    as_text = [{"role": "assistant", "tool_calls": [_call("f", '{"a": [1, {"b": null}]}')]}]
    with pytest.raises(jinja2.exceptions.UndefinedError):
        hf_render(M3, as_text)
    as_dict = [{"role": "assistant", "tool_calls": [_call("f", {"a": [1, {"b": None}]})]}]
    assert render_prompt(as_text, template=M3) == hf_render(M3, as_dict)
