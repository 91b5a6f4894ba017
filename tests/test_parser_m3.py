"""The parser on MiniMax-M3 output: choosing the format, where the output starts, and the XML value rules.

Spellings are written out from the official template (../shared/reference/MiniMax-M3/chat_template.jinja), not
imported from m2parse, so that these tests check the parser against the format.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from m2parse import M2ParseError, StreamParser, parse, sequential_ids
from m2parse.events import ContentDelta, ToolCallArgumentsDelta, ToolCallEnd
from m2parse.formats import M2, M3, OutputFormat, get_format

from .fixture_loader import all_m3_fixtures
from .test_parser_properties import assert_chunk_invariant

NS = "]<]minimax[>["
BLOCK_OPEN, BLOCK_CLOSE = NS + "<tool_call>\n", NS + "</tool_call>"
INVOKE_CLOSE = NS + "</invoke>\n"

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "t",
            "parameters": {
                "type": "object",
                "properties": {
                    "q": {"type": "string"},
                    "n": {"type": "integer"},
                    "o": {"type": "object", "properties": {"a": {"type": "integer"}, "l": {"type": "array"}}},
                },
            },
        },
    }
]


def el(name: str, inner: str) -> str:
    return f"{NS}<{name}>{inner}{NS}</{name}>"


def call_text(*args: str, name: str = "t") -> str:
    return BLOCK_OPEN + f'{NS}<invoke name="{name}">' + "".join(args) + INVOKE_CLOSE + BLOCK_CLOSE


def m3(text: str, tools: Any = TOOLS, **options: Any) -> Any:
    return parse(text, tools, format="m3", id_factory=sequential_ids(), **options)


def codes(result: Any) -> list[str]:
    return [p.code for p in result.problems]


# ------------------------------------------------------------------------------------------ choosing the format


def test_get_format_by_name_any_case_or_object() -> None:
    assert get_format("m2") is M2 and get_format("M3") is M3 and get_format(" m3 ") is M3
    assert get_format(M3) is M3
    with pytest.raises(ValueError, match="m2, m3"):
        get_format("m4")


def test_format_object_is_accepted_and_compiled_per_description() -> None:
    custom = OutputFormat(
        name="m3-copy",
        markup=M3.markup,
        values="xml",
        item_tag="item",
        thinking_modes=M3.thinking_modes,
        generation_prompts=M3.generation_prompts,
    )
    text = "R</mm:think>" + call_text(el("q", "x"))
    options: dict[str, Any] = {"thinking_mode": "enabled"}
    assert parse(text, TOOLS, format=custom, id_factory=sequential_ids(), **options) == m3(text, **options)


def test_thinking_mode_is_checked_for_m3_and_ignored_for_m2() -> None:
    with pytest.raises(ValueError, match="thinking_mode"):
        StreamParser(format="m3", thinking_mode="sometimes")
    text = "R\n</think>\n\nC"
    assert parse(text, thinking_mode="disabled") == parse(text) == parse(text, format="M2", thinking_mode="enabled")


def test_m2_default_is_unchanged_by_m3_markup() -> None:
    text = "R</mm:think>" + call_text(el("q", "x"))
    result = parse(text, TOOLS)
    assert result.tool_calls == () and result.reasoning_content == text


# ------------------------------------------------------------------------------------------ where the output starts


@pytest.mark.parametrize(
    ("text", "mode", "reasoning", "content", "problems"),
    [
        ("R</mm:think>C", "enabled", "R", "C", []),
        ("<mm:think>R</mm:think>C", "enabled", "R", "C", []),  # a repeated open tag is dropped, as M2's <think>
        ("C", "disabled", None, "C", []),
        ("<mm:think>R</mm:think>C", "disabled", "R", "C", []),  # a leading open tag still opens reasoning
        ("</mm:think>C", "disabled", None, "</mm:think>C", ["unexpected_tag"]),
        ("</mm:think>C", None, None, "C", []),
        ("  \n</mm:think>C", "adaptive", None, "C", []),  # whitespace before the bare close is layout
        ("\n<mm:think>R</mm:think>\nC", "adaptive", "R", "C", []),
        ("  C", "adaptive", None, "  C", []),  # neither tag: content, spaces kept, newlines trimmed as content
        ("R</mm:think>C", "adaptive", None, "R</mm:think>C", ["unexpected_tag"]),  # no open tag: not reasoning
        ("R", "enabled", "R", "", ["missing_think_end"]),
    ],
)
def test_reasoning_start_by_thinking_mode(
    text: str, mode: str | None, reasoning: str | None, content: str, problems: list[str]
) -> None:
    result = m3(text, thinking_mode=mode)
    assert (result.reasoning_content, result.content, codes(result)) == (reasoning, content, problems)


def test_explicit_starts_in_reasoning_overrides_thinking_mode() -> None:
    assert m3("R</mm:think>C", thinking_mode="disabled", starts_in_reasoning=True).reasoning_content == "R"
    result = m3("</mm:think>C", thinking_mode="adaptive", starts_in_reasoning=False)
    assert result.content == "C" and result.reasoning_content is None  # adaptive still reads the bare close
    result = m3("R</mm:think>C", thinking_mode="enabled", starts_in_reasoning=False)
    assert result.reasoning_content is None and codes(result) == ["unexpected_tag"]


def test_inline_mode_adds_the_open_tag_without_a_newline() -> None:
    assert m3("R</mm:think>C", thinking_mode="enabled", reasoning="inline").content == "<mm:think>R</mm:think>C"


# ------------------------------------------------------------------------------------------ tool calls and values


def test_no_newline_before_the_block_is_markup() -> None:
    result = m3("</mm:think>Sure.\n" + call_text(el("q", "x")) + "\nMore.")
    assert result.content == "Sure.\n\nMore."


def test_string_value_is_verbatim_and_streams_before_its_close() -> None:
    value = 'if a < b and <foo> or </q> "x"\n'
    text = "</mm:think>" + call_text(el("q", value))
    assert m3(text).tool_calls[0].arguments == {"q": value}
    parser = StreamParser(TOOLS, format="m3")
    head = text.index(value) + 5
    fragments = [e.fragment for e in parser.feed(text[:head]) if isinstance(e, ToolCallArgumentsDelta)]
    assert "".join(fragments) == '{"q": "if a '  # sent before the value's close tag arrived


def test_namespaced_tags_inside_a_string_value_are_text() -> None:
    result = m3("</mm:think>" + call_text(el("q", "a" + el("b", "c"))))
    assert result.tool_calls[0].arguments == {"q": f"a{NS}<b>c{NS}</b>"} and codes(result) == []


def test_keys_named_like_markup_are_elements() -> None:
    inner = el("invoke", "1") + el("tool_call", "2")
    result = m3("</mm:think>" + call_text(el("o", inner)), tools=None)
    assert result.tool_calls[0].arguments == {"o": {"invoke": "1", "tool_call": "2"}}
    result = m3("</mm:think>" + call_text(el("invoke", "5")), tools=None)
    assert result.tool_calls[0].arguments == {"invoke": "5"}


def test_argument_close_ends_the_value_at_any_depth() -> None:
    text = "</mm:think>" + call_text(el("o", f"{NS}<a>1"), el("n", "2"))
    result = m3(text)
    assert result.tool_calls[0].arguments == {"o": {"a": 1}, "n": 2}
    assert codes(result) == ["unbalanced_tag"]


def test_new_invoke_cuts_an_open_value() -> None:
    text = "</mm:think>" + BLOCK_OPEN + f'{NS}<invoke name="t">{NS}<q>a' + f'{NS}<invoke name="t">' + INVOKE_CLOSE
    result = m3(text + BLOCK_CLOSE)
    assert [c.arguments for c in result.tool_calls] == [{"q": "a"}, {}]
    assert codes(result) == ["unbalanced_tag", "unbalanced_tag"]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (f"x{NS}y", "malformed_tag"),  # a namespace token that opens no tag
        (f"{NS}<>x", "malformed_tag"),  # an empty tag
        (f"x{NS}<a{NS}<b>", "malformed_tag"),  # another namespace token before the '>'
    ],
)
def test_malformed_namespaced_tags_are_text(value: str, problem: str) -> None:
    result = m3("</mm:think>" + call_text(el("q", value)))
    assert codes(result)[0] == problem
    assert NS in result.tool_calls[0].arguments["q"]


def test_unclosed_element_tag_is_bounded() -> None:
    text = "</mm:think>" + BLOCK_OPEN + f'{NS}<invoke name="t">{NS}<q' + "x" * 5000 + INVOKE_CLOSE + BLOCK_CLOSE
    result = m3(text)
    assert codes(result) == ["malformed_tag"] and f"{NS}<q" + "x" * 5000 in result.content  # the rest is stray text


def test_truncated_partial_tag_in_value_is_reported_not_kept() -> None:
    result = m3("</mm:think>" + BLOCK_OPEN + f'{NS}<invoke name="t">{NS}<n>4{NS}</n')
    assert result.tool_calls[0].arguments == {"n": 4} and result.tool_calls[0].truncated
    assert codes(result) == ["truncated_tag", "truncated_value", "truncated_tool_call"]
    assert f"{NS}</n" in result.problems[0].message


def test_tool_calls_off_keeps_the_block_as_content() -> None:
    block = call_text(el("q", "x"))
    result = m3("</mm:think>A" + block + "B", tool_calls=False)
    assert result.content == "A" + block + "B" and codes(result) == ["tool_call_not_allowed"]


def test_policies_and_strict() -> None:
    text = "</mm:think>" + call_text(el("zz", el("a", "1")), el("q", "x"))
    result = m3(text, unknown_parameter="drop")
    assert result.tool_calls[0].arguments == {"q": "x"} and codes(result) == ["unknown_parameter"]
    with pytest.raises(M2ParseError) as caught:
        m3(text, unknown_parameter="error")
    assert caught.value.code == "unknown_parameter"
    with pytest.raises(M2ParseError):
        m3("</mm:think>" + call_text(el("n", "x")), strict=True)
    result = m3("</mm:think>" + call_text(el("q", "x"), name="nope"), unknown_tool="drop")
    assert result.tool_calls == () and codes(result) == ["unknown_tool"]


def test_deep_nesting_is_linear_and_never_recursive() -> None:
    def text(depth: int) -> str:
        opens = "".join(f"{NS}<k{i}>" for i in range(depth))
        closes = "".join(f"{NS}</k{i}>" for i in reversed(range(depth)))
        return "</mm:think>" + call_text(el("o", opens + "v" + closes), name="u")

    timings = []
    for depth in (2_000, 20_000):
        start = time.perf_counter()
        result = m3(text(depth), tools=None)
        timings.append((time.perf_counter() - start) / depth)
        assert result.tool_calls[0].arguments_json == json.dumps(result.tool_calls[0].arguments, ensure_ascii=False)
        assert "unexpected_tag" in codes(result)  # past the builder's depth limit tags are text
    assert timings[1] < timings[0] * 5


def test_events_concatenate_for_nested_values() -> None:
    text = "</mm:think>Hi." + call_text(el("o", el("a", "1") + el("l", el("item", "x") + el("item", "y"))))
    parser = StreamParser(TOOLS, format="m3")
    events = [e for ch in text for e in parser.feed(ch)] + parser.finish()
    fragments = "".join(e.fragment for e in events if isinstance(e, ToolCallArgumentsDelta))
    end = next(e for e in events if isinstance(e, ToolCallEnd))
    assert fragments == end.arguments_json == '{"o": {"a": 1, "l": ["x", "y"]}}'
    assert "".join(e.text for e in events if isinstance(e, ContentDelta)) == "Hi."


@pytest.mark.parametrize("fixture", all_m3_fixtures(), ids=lambda f: f.name)
@pytest.mark.parametrize("step", [1, 2, 5, 13])
def test_fixtures_are_chunk_invariant(fixture: Any, step: int) -> None:
    text = fixture.text
    chunks = [text[i : i + step] for i in range(0, len(text), step)]
    assert_chunk_invariant(text, chunks, tools=fixture.tools, **fixture.options)


def test_m2_tables_are_the_former_m2_constants() -> None:
    """The engine compiled from the M2 description searches for exactly what the M2-only parser did."""
    from m2parse.formats import tables

    t = tables.tables_for(M2)
    assert t is tables.tables_for(get_format("m2"))  # compiled once per description
    assert t.needles[:3:2] == ("think>", t.mark_hint) and t.needles[1] == "minimax:tool_call>" and t.needles[4] == ">"
    assert t.needles[3].pattern == "<(?:/(?:parameter>|invoke>|minimax:tool_call>)|parameter[ \\t\\r\\n])"  # type: ignore[union-attr]
    assert (
        t.param_open_re is not None and t.param_open_re.pattern == "<parameter[ \\t\\r\\n]{1,8}name[ \\t\\r\\n]{0,8}="
    )
    full = "<parameter \t name \n="
    partial = t.param_open_partial
    assert partial is not None
    assert all(partial.fullmatch(full[:k]) for k in range(1, len(full)))
    assert not partial.fullmatch("<parameterx") and not partial.fullmatch("<parameter name=")
    assert t.close_followers == ("<parameter", "</invoke>", "<invoke", "</minimax:tool_call>", "]~!b[", "]~b]", "[e~[")
    assert (t.invoke_open, t.param_open, t.param_close, t.longest_markup) == (
        "<invoke",
        "<parameter",
        "</parameter>",
        20,
    )
    m3 = tables.tables_for(M3)
    assert m3.needles[:2] == ("mm:think>", "tool_call>") and m3.needles[3] == NS


def test_gt_inside_a_cut_namespace_token_does_not_close_a_tag() -> None:
    """The namespace token holds a '>': a tag whose '>' is still missing must not take the one of a token cut by
    the end of a delta (every split gives the whole text's result)."""
    text = "</mm:think>" + call_text(f"{NS}<abc", el("q", "1"))
    whole = m3(text)
    assert whole.tool_calls[0].arguments == {"q": "1"} and codes(whole) == ["malformed_tag"]
    cut = text.index("abc") + 3 + NS.index(">") + 1
    parser = StreamParser(TOOLS, format="m3", id_factory=sequential_ids())
    parser.feed(text[:cut])
    parser.feed(text[cut:])
    parser.finish()
    assert parser.result == whole


def test_a_description_the_engine_cannot_read_is_refused() -> None:
    from dataclasses import replace

    with pytest.raises(ValueError, match="namespace"):
        replace(M3, markup=replace(M3.markup, namespace="{ns}", tool_call_open="{ns}<tool_call>"))
    with pytest.raises(ValueError, match="xml"):
        replace(M3, values="xml", markup=replace(M3.markup, parameter_tag="parameter"))
    with pytest.raises(ValueError, match="flat"):
        replace(M2, values="flat", markup=replace(M2.markup, parameter_tag=None))
    other = replace(
        M3,
        markup=replace(
            M3.markup,
            namespace="]<]other[>[",
            tool_call_open="]<]other[>[<tool_call>",
            tool_call_close="]<]other[>[</tool_call>",
        ),
    )
    text = "R</mm:think>" + call_text(el("q", "x")).replace(NS, "]<]other[>[")
    result = parse(text, TOOLS, format=other, thinking_mode="enabled")
    assert [c.arguments for c in result.tool_calls] == [{"q": "x"}] and result.problems == ()
