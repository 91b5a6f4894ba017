"""Schemas over the limits are refused with one line; allowed schemas validate within a work budget linear in
the arguments. Each case would hang (exponential) or crawl (quadratic) without its bound, so a pass is the proof."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from m2parse import parse
from m2parse.schema import normalize_tools, tool_schema_error, validate_arguments
from m2parse.schema_guard import LIMITS, GuardedSchema, SchemaLimits, guard_schema


def spec_of(parameters: dict[str, Any]) -> Any:
    return normalize_tools([{"name": "f", "parameters": parameters}])["f"]


def guarded(schema: dict[str, Any], limits: SchemaLimits = LIMITS) -> GuardedSchema:
    result = guard_schema(schema, limits=limits)
    assert isinstance(result, GuardedSchema), result
    return result


def fan_out(levels: int) -> dict[str, Any]:
    """Each level refers to the next twice: 2**levels subschemas once expanded, in a schema of ~70 B a level."""
    defs: dict[str, Any] = {f"a{i}": {"anyOf": [{"$ref": f"#/$defs/a{i + 1}"}] * 2} for i in range(levels)}
    defs[f"a{levels}"] = {"type": "string"}
    return {"type": "object", "properties": {"x": {"$ref": "#/$defs/a0"}}, "$defs": defs}


def nested(depth: int, leaf: Any = None) -> Any:
    value: Any = {} if leaf is None else leaf
    for _ in range(depth):
        value = {"p": value}
    return value


# ---------------------------------------------------------------------------------------------- refused once


@pytest.mark.parametrize("levels", [22, 60, 400])
def test_exponential_fan_out_is_refused(levels: int) -> None:
    schema = fan_out(levels)
    assert len(json.dumps(schema)) < 40_000
    error = tool_schema_error(spec_of(schema))
    assert error is not None and "expand" in error and "\n" not in error
    messages = validate_arguments(spec_of(schema), {"x": "a"})
    assert len(messages) == 1 and "expand" in messages[0]


def test_fan_out_under_the_limit_is_accepted() -> None:
    assert tool_schema_error(spec_of(fan_out(6))) is None
    assert validate_arguments(spec_of(fan_out(6)), {"x": "a"}) == []


@pytest.mark.parametrize(
    ("schema", "words"),
    [
        ({"type": "object", "description": "x" * (LIMITS.max_chars + 1)}, "larger than"),
        ({"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(5000)}}, "larger than"),
        ({"type": "object", "not": nested(LIMITS.max_depth)}, "deeper than"),
        ({"type": "object", "properties": {str(i): {} for i in range(LIMITS.max_objects)}}, "objects"),
        ({"type": "object", "properties": {"x": {"$ref": "https://json-schema.org/draft/2020-12/schema"}}}, "nothing"),
        (
            {"type": "object", "allOf": [{"$ref": "#/$defs/a"}] * (LIMITS.max_refs + 1), "$defs": {"a": {}}},
            "references",
        ),
        (
            {
                "type": "object",
                "properties": {"x": {"$ref": "#/$defs/a"}},
                "$defs": {"a": {"not": {"$ref": "#/$defs/a"}}},
            },
            "loops",
        ),
        (
            {
                "type": "object",
                "$defs": {"a": {"anyOf": [{"type": "string"}, {"$ref": "#"}]}},
                "allOf": [{"$ref": "#/$defs/a"}],
            },
            "loops",
        ),
        ({"type": "object", "properties": {"x": {"$schema": "http://json-schema.org/draft-07/schema#"}}}, "$schema"),
        ({"type": "object", "properties": {"x": {"$ref": "#/$defs/missing"}}}, "points nowhere"),
    ],
)
def test_over_the_limits_is_one_line(schema: dict[str, Any], words: str) -> None:
    error = tool_schema_error(spec_of(schema))
    assert error is not None and words in error and "\n" not in error and len(error) < 400


def test_recursive_schemas_that_descend_are_allowed() -> None:
    tree = {
        "type": "object",
        "properties": {"t": {"$ref": "#/$defs/T"}},
        "$defs": {"T": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/T"}}}}},
    }
    assert tool_schema_error(spec_of(tree)) is None
    errors = validate_arguments(spec_of(tree), {"t": {"kids": [{"kids": []}, {"kids": 5}]}})
    assert errors == ["$.t.kids[1].kids: 5 is not of type 'array'"]


def test_the_check_runs_once_per_spec() -> None:
    spec = spec_of(fan_out(6))
    validate_arguments(spec, {"x": "a"})
    first = spec._cache["validator"]
    assert tool_schema_error(spec) is None
    validate_arguments(spec, {"x": "b"})
    assert spec._cache["validator"] is first


# ---------------------------------------------------------------------------------------------- budget per call


MULTIPLYING = {
    "$defs": {
        "a": {
            "type": "object",
            "properties": {"p": {"$ref": "#/$defs/a"}},
            "patternProperties": {"^p$": {"$ref": "#/$defs/a"}},
        }
    },
    "$ref": "#/$defs/a",
}


@pytest.mark.parametrize("depth", [40, 400])
def test_a_schema_that_doubles_per_level_stops_at_the_budget(depth: int) -> None:
    """Every level applies the next one twice: 2**depth keyword checks without the budget."""
    assert tool_schema_error(spec_of(MULTIPLYING)) is None
    messages = validate_arguments(spec_of(MULTIPLYING), nested(depth))
    # Deep enough, jsonschema's recursion gives out first: also one bounded message.
    stopped = "validation stopped after" in messages[-1] and "not checked" in messages[-1]
    assert stopped or (depth > 100 and messages == ["tool 'f': arguments nested too deeply to validate"])


def test_budget_grows_with_the_arguments() -> None:
    """The bound is base + per-character: a schema that costs a fixed amount per element never hits it."""
    schema = {
        "type": "object",
        "properties": {
            "xs": {"type": "array", "items": {"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]}}
        },
    }
    for n in (10, 1000, 5000):
        assert validate_arguments(spec_of(schema), {"xs": [1, "a", None] * n}) == []
    assert validate_arguments(spec_of(schema), {"xs": [1.5] * 3}) != []


def test_a_small_budget_stops_and_keeps_the_messages_so_far() -> None:
    schema = {"type": "object", "additionalProperties": {"type": "integer"}}
    tight = guarded(schema, SchemaLimits(base_work=400, work_per_char=0))
    messages = tight.errors({f"k{i}": "s" for i in range(50)})
    assert messages[0].endswith("'s' is not of type 'integer'")
    assert "validation stopped after 400 work units" in messages[-1]
    assert all(
        "validation stopped" in m for m in guarded(schema, SchemaLimits(base_work=0, work_per_char=0)).errors({})
    )


def test_unique_items_is_linear_and_json_equal() -> None:
    schema = {"type": "object", "properties": {"xs": {"type": "array", "uniqueItems": True}}}
    many = [{"a": [i, {"b": str(i)}]} for i in range(30_000)]
    assert validate_arguments(spec_of(schema), {"xs": many}) == []
    for same in ([1, 1.0], [{"a": 1, "b": 2}, {"b": 2, "a": 1}], [[1, [2]], [1, [2.0]]], [None, None]):
        assert len(validate_arguments(spec_of(schema), {"xs": same})) == 1, same
    for different in ([1, True], [0, False], [[1, 2], [2, 1]], ["1", 1], [{"a": 1}, {"a": 1, "b": 1}]):
        assert validate_arguments(spec_of(schema), {"xs": different}) == [], different


@given(
    st.lists(
        st.recursive(
            st.none() | st.booleans() | st.integers(-3, 3) | st.text("ab", max_size=2),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text("ab", max_size=2), inner, max_size=3),
            max_leaves=6,
        ),
        max_size=6,
    )
)
def test_unique_items_agrees_with_jsonschema(items: list[Any]) -> None:
    from jsonschema import Draft202012Validator

    schema = {"type": "object", "properties": {"xs": {"uniqueItems": True}}}
    expected = Draft202012Validator(schema).is_valid({"xs": items})
    assert (validate_arguments(spec_of(schema), {"xs": items}) == []) == expected


def test_parse_reports_the_budget_as_a_schema_violation() -> None:
    text = (
        '<minimax:tool_call>\n<invoke name="f">\n<parameter name="p">'
        + json.dumps(nested(60))
        + "</parameter>\n</invoke>\n</minimax:tool_call>"
    )
    result = parse(text, tools=[{"name": "f", "parameters": MULTIPLYING}], starts_in_reasoning=False)
    assert result.tool_calls and result.tool_calls[0].arguments == {"p": nested(60)}
    assert [p.code for p in result.problems] == ["schema_violation"]
    assert "validation stopped" in result.problems[0].message


def test_messages_do_not_repeat_a_huge_value() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}, "s": {"pattern": "^a+$"}}}
    messages = validate_arguments(spec_of(schema), {"n": "x" * 100_000, "s": "b" * 100_000})
    assert len(messages) == 2 and all(len(m) < 1_200 for m in messages)
    cut = f"... ({len(repr('x' * 100_000) + ' is not of type ' + repr('integer'))} characters)"
    assert any(m.startswith("$.n: 'xxx") and m.endswith(cut) for m in messages)
    assert any(m.startswith("$.s: 'bbb") and "... (100000 characters) does not match '^a+$'" in m for m in messages)
