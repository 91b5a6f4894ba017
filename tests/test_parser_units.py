"""Parser behaviours that the fixtures and properties do not pin down on their own."""

from __future__ import annotations

import json

import pytest

from m2parse import (
    ContentDelta,
    M2ParseError,
    ProblemFound,
    StreamParser,
    ToolCallArgumentsDelta,
    ToolCallStart,
    normalize_tools,
    parse,
    sequential_ids,
)

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "f",
            "parameters": {"type": "object", "properties": {"n": {"type": "integer"}, "s": {"type": "string"}}},
        },
    }
]


def block(*invokes: str) -> str:
    return "r\n</think>\n\n<minimax:tool_call>\n" + "".join(invokes) + "</minimax:tool_call>"


def invoke(name: str, **params: str) -> str:
    body = "".join(f'<parameter name="{k}">{v}</parameter>\n' for k, v in params.items())
    return f'<invoke name="{name}">\n{body}</invoke>\n'


def test_unknown_tool_drop_keeps_indices_dense() -> None:
    text = block(invoke("nope", a="1"), invoke("f", n="2"))
    result = parse(text, TOOLS, unknown_tool="drop", id_factory=sequential_ids())
    assert [(c.index, c.id, c.name, c.arguments) for c in result.tool_calls] == [(0, "call_0", "f", {"n": 2})]
    assert [p.code for p in result.problems] == ["unknown_tool"]


def test_unknown_tool_keep_is_reported_and_kept_as_strings() -> None:
    result = parse(block(invoke("nope", a="1")), TOOLS)
    assert result.tool_calls[0].arguments == {"a": "1"}
    assert result.problems[0].code == "unknown_tool" and result.problems[0].tool_call_index == 0


def test_unknown_tool_error_policy_raises() -> None:
    with pytest.raises(M2ParseError) as info:
        parse(block(invoke("nope")), TOOLS, unknown_tool="error")
    assert info.value.code == "unknown_tool"


def test_unknown_parameter_policies() -> None:
    text = block(invoke("f", n="1", extra="x"))
    assert parse(text, TOOLS).tool_calls[0].arguments == {"n": 1, "extra": "x"}
    dropped = parse(text, TOOLS, unknown_parameter="drop")
    assert dropped.tool_calls[0].arguments == {"n": 1}
    assert dropped.tool_calls[0].arguments_json == '{"n": 1}'
    assert [p.code for p in dropped.problems] == ["unknown_parameter"]
    with pytest.raises(M2ParseError):
        parse(text, TOOLS, unknown_parameter="error")


def test_no_tools_means_no_unknown_tool_reports() -> None:
    result = parse(block(invoke("anything", x="1")))
    assert result.problems == ()
    assert result.tool_calls[0].arguments == {"x": "1"}


def test_infer_types_reads_unschema_values_as_json() -> None:
    text = block(invoke("g", a="1", b="true", c='{"k": [1]}', d="plain"))
    assert parse(text, infer_types=True).tool_calls[0].arguments == {"a": 1, "b": True, "c": {"k": [1]}, "d": "plain"}
    assert parse(text).tool_calls[0].arguments == {"a": "1", "b": "true", "c": '{"k": [1]}', "d": "plain"}


def test_strict_raises_on_first_problem_with_its_fields() -> None:
    text = "reasoning only"
    with pytest.raises(M2ParseError) as info:
        parse(text, strict=True)
    assert info.value.code == "missing_think_end"
    assert info.value.offset == len(text)
    assert info.value.problem == parse(text).problems[0]


def test_feed_after_finish_and_after_turn_marker_is_ignored() -> None:
    parser = StreamParser()
    parser.feed("r</think>answer[e~[\n]~b]user\nhi")
    assert parser.done
    assert parser.feed("more text") == []
    parser.finish()
    assert parser.finish() == []
    assert parser.feed("x") == []
    assert parser.result.content == "answer"
    assert parser.result.ended_by_turn_marker


def test_bad_options_are_rejected_up_front() -> None:
    with pytest.raises(ValueError, match="reasoning"):
        StreamParser(reasoning="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown_tool"):
        StreamParser(unknown_tool="ignore")  # type: ignore[arg-type]


def test_normalised_tools_are_accepted_as_is() -> None:
    specs = normalize_tools(TOOLS)
    text = block(invoke("f", n="7"))
    assert parse(text, specs).tool_calls[0].arguments == parse(text, TOOLS).tool_calls[0].arguments == {"n": 7}


def test_string_value_streams_before_its_close_tag() -> None:
    parser = StreamParser(TOOLS)
    events = parser.feed('x</think><minimax:tool_call><invoke name="f"><parameter name="s">hello wor')
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    assert starts and starts[0].name == "f"
    sent = "".join(e.fragment for e in events if isinstance(e, ToolCallArgumentsDelta))
    assert sent == '{"s": "hello wor'


def test_non_string_value_waits_for_close_tag() -> None:
    parser = StreamParser(TOOLS)
    events = parser.feed('x</think><minimax:tool_call><invoke name="f"><parameter name="n">12')
    assert "".join(e.fragment for e in events if isinstance(e, ToolCallArgumentsDelta)) == '{"n": '
    # A </parameter> closes only once what follows it is known to be a tag of the call (issue 9's rule).
    assert not [e for e in parser.feed("3</parameter>\n") if isinstance(e, ToolCallArgumentsDelta)]
    events = parser.feed("</invoke>")
    assert "".join(e.fragment for e in events if isinstance(e, ToolCallArgumentsDelta)) == "123}"


def test_content_is_emitted_as_soon_as_it_cannot_be_a_tag() -> None:
    parser = StreamParser(starts_in_reasoning=False)
    assert [e.text for e in parser.feed("a <") if isinstance(e, ContentDelta)] == ["a "]
    assert [e.text for e in parser.feed("b") if isinstance(e, ContentDelta)] == ["<b"]


def test_problems_are_events_too() -> None:
    parser = StreamParser(TOOLS)
    events = parser.feed(block(invoke("f", n="x")))
    problems = [e.problem.code for e in events if isinstance(e, ProblemFound)]
    assert problems == ["coercion_failed", "schema_violation"]


def test_arguments_json_is_json_dumps_of_arguments_in_text_order() -> None:
    text = block(invoke("f", s='a "quoted"\\ line\n\ttab', n="5"))
    call = parse(text, TOOLS).tool_calls[0]
    assert list(call.arguments) == ["s", "n"]
    assert call.arguments_json == json.dumps(call.arguments, ensure_ascii=False)
