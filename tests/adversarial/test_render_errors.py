"""Hostile input to render_prompt: every bad value is a RenderError that names the message and field, raised
before any recursive code runs deep; the escape hatch turns any failure of the template into a RenderError too.
"""

from __future__ import annotations

import json
import re
import sys
import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m2parse import render_prompt
from m2parse.render import MAX_DEPTH, RenderError, RenderWarning

from ..test_render import conversations, examples, render_quietly

HUGE = 10**5000  # over Python's int-to-str limit (4300 digits)


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def with_call(arguments: Any) -> list[dict[str, Any]]:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
    return [{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_calls": [call]}]


def cyclic() -> dict[str, Any]:
    loop: dict[str, Any] = {"a": 1}
    loop["self"] = [loop]
    return loop


CALL = re.escape("messages[1].tool_calls[0]")
CASES: dict[str, tuple[list[dict[str, Any]], Any, dict[str, Any], str]] = {
    "5000-digit integer argument": (with_call({"n": HUGE}), None, {}, rf"{CALL}\.arguments\['n'\].*4300 digits"),
    "5000-digit integer in JSON-string arguments": (
        with_call('{"n": ' + "7" * 5000 + "}"), None, {}, rf"{CALL}: .*4300 digits"
    ),
    "arguments nested 100,000 deep": (with_call({"x": nested(100_000)}), None, {}, rf"{CALL}\.arguments\['x'\].*512"),
    "JSON-string arguments nested 100,000 deep": (
        with_call('{"x": ' + "[" * 100_000 + "]" * 100_000 + "}"), None, {}, rf"{CALL}: .*nested deeper"
    ),
    "arguments that contain themselves": (with_call({"x": cyclic()}), None, {}, r"contains itself"),
    "a key that is not a string": (with_call({("t",): 1}), None, {}, rf"{CALL}: argument names must be strings"),
    "a nested key that is not JSON": (with_call({"x": {("t",): 1}}), None, {}, rf"{CALL}\.arguments\['x'\]"),
    "5000-digit integer as content": ([{"role": "user", "content": HUGE}], None, {}, r"messages\[0\]\.content"),
    "5000-digit integer as a text part": (
        [{"role": "user", "content": [{"type": "text", "text": HUGE}]}], None, {}, r"messages\[0\]\.content\[0\]\.text"
    ),
    "tool output nested 100,000 deep": (
        [*with_call({}), {"role": "tool", "content": [{"output": nested(100_000)}]}],
        None,
        {},
        r"messages\[2\]\.content\[0\]: nested deeper than 512",
    ),
    "content dict nested 100,000 deep": (
        [{"role": "user", "content": {"k": nested(100_000)}}], None, {}, r"messages\[0\]\.content: nested deeper"
    ),
    "tool schema nested 100,000 deep": (
        [{"role": "user", "content": "q"}],
        [{"type": "function", "function": {"name": "f", "parameters": nested(100_000)}}],
        {},
        r"tools\[0\]\.function: nested deeper",
    ),
    "5000-digit model_identity": ([{"role": "user", "content": "q"}], None, {"model_identity": HUGE}, "model_identity"),
    "lone surrogate in content": ([{"role": "user", "content": "x \ud800"}], None, {}, r"messages\[0\]\.content:"),
    "lone surrogate in an argument name": (
        with_call({"k\udc00": 1}), None, {}, CALL + re.escape(".function.arguments['k\\udc00']: lone surrogate")
    ),
    "lone surrogate in a tool description": (
        [{"role": "user", "content": "q"}],
        [{"type": "function", "function": {"name": "f", "description": "\udfff"}}],
        {},
        r"tools\[0\]\.function\.description: lone surrogate",
    ),
    "lone surrogate in model_identity": (
        [{"role": "user", "content": "q"}], None, {"model_identity": "\ud800"}, "^model_identity"
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_a_render_error_naming_the_field(case: str) -> None:
    messages, tools, kwargs, where = CASES[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RenderWarning)
        with pytest.raises(RenderError, match=where) as caught:
            render_prompt(messages, tools, **kwargs)
    assert isinstance(caught.value, ValueError)  # documented: RenderError is a ValueError


def test_the_depth_bound_is_exact() -> None:
    deepest = render_prompt(with_call({"x": nested(MAX_DEPTH)}))
    assert json.dumps(nested(MAX_DEPTH)) in deepest
    as_json = render_prompt(with_call(json.dumps({"x": nested(MAX_DEPTH)})))
    assert as_json == deepest
    with pytest.raises(RenderError, match="nested deeper than 512"):
        render_prompt(with_call({"x": nested(MAX_DEPTH + 1)}))
    with pytest.raises(RenderError, match="nested deeper than 512"):
        render_prompt(with_call(json.dumps({"x": nested(MAX_DEPTH + 1)})))


def test_the_depth_check_does_not_use_the_stack() -> None:
    """Raised as a RenderError even when little stack is left, because the check is a loop, not recursion."""

    def at_depth(n: int) -> Any:
        if n:
            return at_depth(n - 1)
        return render_prompt(with_call({"x": nested(100_000)}))

    with pytest.raises(RenderError, match="nested deeper"):
        at_depth(sys.getrecursionlimit() - 60)


def test_non_finite_floats_render_as_transformers_does() -> None:
    prompt = render_prompt(with_call({"a": float("nan"), "b": float("inf"), "c": [float("-inf")]}))
    assert '<parameter name="a">NaN</parameter>' in prompt
    assert '<parameter name="b">Infinity</parameter>' in prompt
    assert '<parameter name="c">[-Infinity]</parameter>' in prompt


def test_non_string_nested_keys_render_as_json_dumps_does() -> None:
    prompt = render_prompt(with_call({"x": {1: True, None: 2}}))
    assert '<parameter name="x">{"1": true, "null": 2}</parameter>' in prompt


def test_large_inputs_render_exactly() -> None:
    text = "line\n" * 200_000
    prompt = render_prompt([{"role": "user", "content": text}], add_generation_prompt=False)
    assert prompt.endswith("]~b]user\n" + text + "[e~[\n")


# ------------------------------------------------------------------------------------------- escape hatch

TEMPLATE_CASES = {
    "{% for i in range(10**9) %}{% endfor %}": "OverflowError: Range too big",
    "{{ 'a' * 10**10 }}": r"SecurityError: '\*' would build more than 10,000,000",
    "{{ [1, 2] * 10**9 }}": r"SecurityError: '\*' would build",
    "{{ 2 ** 1000000 }}": r"SecurityError: '\*\*' would build an integer",
    "{{ 10 ** 5000 }}": "ValueError: Exceeds the limit",
    "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}": "recursed too deep",
    "\n\n{{ 1 / 0 }}": r"ZeroDivisionError: division by zero \(template line 3\)",
    "{{ messages[5] }}": "",  # an undefined item renders as nothing, as in transformers
    "{{ messages.x.y }}": "UndefinedError",
}


@pytest.mark.parametrize("source", list(TEMPLATE_CASES))
def test_a_failing_template_is_a_render_error(source: str) -> None:
    pytest.importorskip("jinja2", reason="the escape hatch needs the [jinja] extra")
    error = TEMPLATE_CASES[source]
    if not error:
        assert render_prompt([{"role": "user", "content": "q"}], chat_template=source) == ""
        return
    with pytest.raises(RenderError, match=error):
        render_prompt([{"role": "user", "content": "q"}], chat_template=source)


def test_bounded_operators_still_work_below_the_bounds() -> None:
    pytest.importorskip("jinja2", reason="the escape hatch needs the [jinja] extra")
    source = "{{ '-' * 3 }}{{ 2 ** 10 }}{{ [0] * 2 }}{{ 3 * 'ab' }}{{ 2.5 ** 2 }}{{ 7 * 6 }}"
    assert render_prompt([{"role": "user"}], chat_template=source) == "---1024[0, 0]ababab6.2542"


def test_a_surrogate_through_the_escape_hatch_names_the_field() -> None:
    pytest.importorskip("jinja2", reason="the escape hatch needs the [jinja] extra")
    with pytest.raises(RenderError, match=r"messages\[1\]\.content: lone surrogate"):
        messages = [{"role": "user", "content": "a"}, {"role": "user", "content": "\udc80"}]
        render_prompt(messages, chat_template="{% for m in messages %}{{ m.content }}{% endfor %}")


# ------------------------------------------------------------------------------------------- generated

HOSTILE_VALUES = st.sampled_from(
    [HUGE, nested(MAX_DEPTH + 1), nested(MAX_DEPTH), "\ud800", float("nan"), float("-inf"), {("k",): 1}, -(10**4000)]
)


@st.composite
def spoiled(draw: st.DrawFn) -> tuple[list[dict[str, Any]], str]:
    """A generated conversation with one hostile value put in one place."""
    messages = draw(conversations(max_turns=4))
    value = draw(HOSTILE_VALUES)
    i = draw(st.integers(0, len(messages) - 1))
    place = draw(st.sampled_from(["content", "arguments", "tool output", "reasoning_content"]))
    message = dict(messages[i])
    if place == "arguments":
        message = {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {"v": value}}}]}
    elif place == "tool output" and i > 0 and messages[i - 1].get("tool_calls"):
        message = {"role": "tool", "content": [{"output": value}]}
    else:
        message[place if place != "tool output" else "content"] = value
    messages[i] = message
    return messages, place


@settings(max_examples=examples(300), deadline=None)
@given(spoiled())
def test_hostile_values_render_or_raise_a_render_error(case: tuple[list[dict[str, Any]], str]) -> None:
    messages, _ = case
    try:
        prompt = render_quietly(messages)
    except RenderError as exc:
        assert str(exc).startswith(("messages[", "model_identity", "tools[")), str(exc)
        return
    prompt.encode("utf-8")  # whatever renders can be sent
