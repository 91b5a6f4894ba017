"""Issue 9, parser part: each input class that once broke a documented rule, checked at small sizes.

Every case is checked whole and in several chunkings (chunk invariance is the rule most of these broke), and
hypothesis keeps producing new cases of each class (``tests/strategies.adversarial_outputs``).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m2parse import ContentDelta, StreamParser, ToolCallArgumentsDelta, parse, sequential_ids
from m2parse.parser import MAX_CLOSE_WHITESPACE, MAX_TAG_LENGTH
from m2parse.schema import convert_value

from ..strategies import (
    CLOSE_FOLLOWERS,
    adversarial_outputs,
    back_to_back_blocks,
    chunkings,
    dense_markup,
    literal_closes,
    long_tags,
)
from ..test_parser_properties import assert_chunk_invariant, fold, stream

TOOLS = [
    {
        "name": "f",
        "parameters": {
            "type": "object",
            "properties": {
                "s": {"type": "string"},
                "n": {"type": "integer"},
                "x": {"type": "number"},
                "u": {"type": ["string", "null"]},
                "a": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            },
        },
    }
]
HEAD = 'r\n</think>\n\n<minimax:tool_call>\n<invoke name="f">\n'
TAIL = "</invoke>\n</minimax:tool_call>"


def value_of(body: str, key: str = "s", tail: str = "</parameter>\n" + TAIL, **options: Any) -> tuple[Any, list[str]]:
    result = parse(HEAD + f'<parameter name="{key}">' + body + tail, TOOLS, id_factory=sequential_ids(), **options)
    return result.tool_calls[0].arguments.get(key), [p.code for p in result.problems]


def every_way(text: str, **options: Any) -> None:
    """Whole, one char at a time, in 7-char chunks and split at every position near the end."""
    for step in (1, 7, 64):
        assert_chunk_invariant(text, [text[i : i + step] for i in range(0, len(text), step)], **options)
    for cut in range(max(0, len(text) - 40), len(text) + 1):
        assert_chunk_invariant(text, [text[:cut], text[cut:]], **options)


# ------------------------------------------------------------------------------------------ long open tags


@pytest.mark.parametrize("extra", [-1, 0, 1, 2])
@pytest.mark.parametrize("kind", ["invoke", "parameter"])
def test_tag_length_limit_is_the_same_whole_and_streamed(kind: str, extra: int) -> None:
    head = '<invoke name="a"' if kind == "invoke" else '<parameter name="p"'
    tag = head + " " * (MAX_TAG_LENGTH - len(head) - 1 + extra) + ">"  # len(tag) == MAX_TAG_LENGTH + extra
    prefix = "\n</think>\n\n<minimax:tool_call>\n" + ('<invoke name="a">\n' if kind == "parameter" else "")
    text = prefix + tag + "v</parameter>\n</invoke>\n</minimax:tool_call>"
    result = parse(text, id_factory=sequential_ids())
    accepted = extra <= 0
    assert ("malformed_tag" not in [p.code for p in result.problems]) is accepted
    if not accepted:  # the opener and the space after it come back as content, byte for byte
        assert result.content.startswith(f"<{kind} ")
    every_way(text)


def test_issue_reproduction_long_invoke_in_7_char_chunks() -> None:
    text = '<minimax:tool_call><invoke name="a"' + " " * 4081 + "></invoke></minimax:tool_call>"
    assert_chunk_invariant(text, [text[i : i + 7] for i in range(0, len(text), 7)], starts_in_reasoning=False)


@settings(max_examples=20)
@given(data=st.data(), text=long_tags())
def test_long_tags_are_chunk_invariant(data: st.DataObject, text: str) -> None:
    assert_chunk_invariant(text, data.draw(chunkings(text)))


# --------------------------------------------------------------------------- newline before back-to-back blocks


def test_newline_before_back_to_back_blocks() -> None:
    text = "a\n\n<minimax:tool_call></minimax:tool_call><minimax:tool_call></minimax:tool_call>b"
    assert parse(text, starts_in_reasoning=False).content == "a\nb"
    every_way(text, starts_in_reasoning=False)
    # A single block already did this; a newline written between blocks is markup before the second one.
    assert parse("a\n\n<minimax:tool_call></minimax:tool_call>b", starts_in_reasoning=False).content == "a\nb"
    two = "a\n<minimax:tool_call></minimax:tool_call>\n<minimax:tool_call></minimax:tool_call>b"
    assert parse(two, starts_in_reasoning=False).content == "ab"


@given(data=st.data(), text=back_to_back_blocks())
def test_back_to_back_blocks_are_chunk_invariant(data: st.DataObject, text: str) -> None:
    assert_chunk_invariant(text, data.draw(chunkings(text)))


# ------------------------------------------------------------------------------------ union types with string


@pytest.mark.parametrize("key", ["u", "a"])
def test_string_union_is_read_verbatim(key: str) -> None:
    raw = "\n    x = 1\nhello\n"
    assert value_of(raw, key) == (raw, [])
    assert value_of("  null \n", key) == (None, [])  # only the null check looks at a stripped copy
    assert value_of(" 5 ", key) == (" 5 ", [])
    every_way(HEAD + f'<parameter name="{key}">{raw}</parameter>\n' + TAIL, tools=TOOLS)


@given(text=st.text(max_size=30).filter(lambda t: t.strip() != "null"))
def test_string_union_conversion_keeps_any_text(text: str) -> None:
    for schema in ({"type": ["string", "null"]}, {"anyOf": [{"type": "string"}, {"type": "null"}]}):
        assert convert_value(text, schema, {}).value == text


# ---------------------------------------------------------------------------------------------- bad numbers


@pytest.mark.parametrize(
    "raw",
    ["0e99999999999999999999", "1e999", "-1e99999999", "1" * 5000, "1.5", "NaN", "Infinity", "-Infinity", "1e-99999"],
)
def test_bad_integers_are_coercion_failed_never_internal(raw: str) -> None:
    value, codes = value_of(raw, "n")
    assert codes[0] == "coercion_failed"
    result = parse(HEAD + f'<parameter name="n">{raw}</parameter>\n' + TAIL, TOOLS)
    assert "internal error" not in result.problems[0].message
    assert value == raw


@pytest.mark.parametrize(("raw", "expected"), [("1.0", 1), ("1e5", 100000), ("-0.0", 0), ("12.50e1", 125)])
def test_integral_numbers_read_exactly(raw: str, expected: int) -> None:
    value, codes = value_of(raw, "n")
    assert (value, type(value), codes) == (expected, int, [])


@given(st.from_regex(r"-?(0|[1-9][0-9]{0,40})(\.[0-9]{1,40})?([eE][+-]?[0-9]{1,25})?", fullmatch=True))
def test_no_json_number_makes_an_internal_error(raw: str) -> None:
    for schema in ({"type": "integer"}, {"type": "number"}, {"type": ["integer", "string"]}):
        result = convert_value(raw, schema, {})
        assert result.error is None or "internal error" not in result.error


# ----------------------------------------------------------------------------------- the </parameter> rule


@pytest.mark.parametrize(
    "body",
    [
        'html = "<p>a</parameter> b</p>"\nprint(html)\n',
        "</parameter>x",
        "a</parameter>\n\nthen more text",
        "a</parameter></parameter>x",
        "a</parameter>" + " " * MAX_CLOSE_WHITESPACE + "x",
        "code</parameter><p>",
        "x</parameter></para",
    ],
)
def test_literal_close_followed_by_text_stays_in_the_value(body: str) -> None:
    assert value_of(body) == (body, [])
    every_way(HEAD + f'<parameter name="s">{body}</parameter>\n' + TAIL, tools=TOOLS)


@pytest.mark.parametrize("follower", CLOSE_FOLLOWERS)
@pytest.mark.parametrize("space", ["", "\n", " \n\t", " " * MAX_CLOSE_WHITESPACE])
def test_close_followed_by_a_tag_of_the_call_closes(follower: str, space: str) -> None:
    text = HEAD + '<parameter name="s">v</parameter>' + space + follower + ' name="z">w</parameter>\n' + TAIL
    result = parse(text, TOOLS, id_factory=sequential_ids())
    assert result.tool_calls[0].arguments["s"] == "v"
    every_way(text, tools=TOOLS)


def test_close_followed_by_long_whitespace_closes_whatever_comes_next() -> None:
    body = "v</parameter>" + " " * (MAX_CLOSE_WHITESPACE + 1) + "text"
    text = HEAD + '<parameter name="s">' + body + "</parameter>\n" + TAIL
    result = parse(text, TOOLS)
    assert result.tool_calls[0].arguments["s"] == "v"
    assert "stray_text" in [p.code for p in result.problems]
    every_way(text, tools=TOOLS)


@pytest.mark.parametrize("end", ["", "\n  ", "\n</inv", "\n<"])
def test_close_at_the_end_of_output_closes(end: str) -> None:
    assert value_of("v", tail="</parameter>" + end)[0] == "v"


def test_streaming_holds_the_candidate_close_and_nothing_past_it() -> None:
    parser = StreamParser(TOOLS)
    parser.feed(HEAD + '<parameter name="s">abc')
    fragments = [e.fragment for e in parser.feed("</parameter>  \n") if isinstance(e, ToolCallArgumentsDelta)]
    assert fragments == []  # undecided: nothing from the candidate on is sent
    more = [e.fragment for e in parser.feed("then") if isinstance(e, ToolCallArgumentsDelta)]
    assert "".join(more) == "</parameter>  \\nthen"  # text followed: the close was part of the value
    assert not [e for e in parser.feed("</parameter>\n</invoke>") if isinstance(e, ContentDelta)]
    parser.finish()
    assert parser.result.tool_calls[0].arguments["s"] == "abc</parameter>  \nthen"


@settings(max_examples=100)
@given(data=st.data(), text=literal_closes())
def test_literal_closes_are_chunk_invariant(data: st.DataObject, text: str) -> None:
    assert_chunk_invariant(text, data.draw(chunkings(text)), tools=TOOLS)


# ------------------------------------------------------------------------------------- dense markup classes


@given(data=st.data(), text=dense_markup())
def test_dense_markup_is_chunk_invariant(data: st.DataObject, text: str) -> None:
    assert_chunk_invariant(text, data.draw(chunkings(text)))


@settings(max_examples=50)
@given(data=st.data(), text=adversarial_outputs())
def test_adversarial_outputs_fold_to_the_result(data: st.DataObject, text: str) -> None:
    events, result = stream(data.draw(chunkings(text)), tools=TOOLS)
    assert fold(events).content == result.content


def test_leading_whitespace_streamed_one_char_at_a_time() -> None:
    parser = StreamParser(starts_in_reasoning=False)
    for _ in range(2000):
        assert parser.feed(" ") == []
    parser.feed("hi")
    parser.finish()
    assert parser.result.content == " " * 2000 + "hi"
    assert parse(" " * 2000 + "<think>r</think>a", starts_in_reasoning=False).reasoning_content == "r"


def test_many_lt_and_open_tags_inside_a_block_come_back_as_content() -> None:
    for unit in ("a<", "<invoke ", "<parameter "):
        text = HEAD + unit * 700 + "\n" + TAIL
        result = parse(text)
        assert unit.strip() in result.content
        every_way(text)


# --------------------------------------------------------------------------------------------- API items


def test_bytes_get_a_type_error_naming_the_fix() -> None:
    with pytest.raises(TypeError, match="decode"):
        parse(b"hello")  # type: ignore[arg-type]
    parser = StreamParser()
    with pytest.raises(TypeError, match="decode"):
        parser.feed(b"hello")  # type: ignore[arg-type]
    parser.feed(HEAD + '<parameter name="s">x')  # the fast path of a string value checks too
    with pytest.raises(TypeError, match="decode"):
        parser.feed(bytearray(b"y"))  # type: ignore[arg-type]


def test_tool_calls_off_keeps_markup_in_content_and_reports_once() -> None:
    markup = (
        '<minimax:tool_call>\n<invoke name="f">\n<parameter name="s">v</parameter>\n</invoke>\n</minimax:tool_call>'
    )
    text = "r\n</think>\n\nLet me check.\n" + markup + "\n" + markup
    result = parse(text, TOOLS, tool_calls=False)
    assert result.tool_calls == ()
    assert result.content == "Let me check.\n" + markup + "\n" + markup
    assert [p.code for p in result.problems] == ["tool_call_not_allowed"]
    every_way(text, tools=TOOLS, tool_calls=False)
    # Before </think> the markup still ends the reasoning (as with tool calls on), and stays as content.
    early = parse("thinking\n" + markup, tool_calls=False)
    assert (early.reasoning_content, early.content) == ("thinking", markup)
    assert [p.code for p in early.problems] == ["reasoning_ended_by_tool_call", "tool_call_not_allowed"]
