"""Tests for m2parse.schema and m2parse.pyliteral: tools shapes, schema lookup, text -> value rules."""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from m2parse.pyliteral import MAX_DEPTH, LiteralError, max_nesting, read_literal
from m2parse.schema import (
    Conversion,
    ToolsError,
    ToolSpec,
    convert_value,
    normalize_tools,
    parameter_schema,
    streams_as_string,
    tool_schema_error,
    validate_arguments,
)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}


def spec_of(parameters: dict[str, Any]) -> ToolSpec:
    return ToolSpec(name="f", parameters=parameters, function={"name": "f", "parameters": parameters})


def convert(raw: str, schema: Any, root: Any = None, **kwargs: Any) -> Conversion:
    return convert_value(raw, schema, root if root is not None else {}, **kwargs)


def same(a: Any, b: Any) -> bool:
    """Equal including int/float/bool distinctions and the sign of zero."""
    return json.dumps(a) == json.dumps(b)


# --------------------------------------------------------------------------------------------- normalize_tools


def test_normalize_empty() -> None:
    assert normalize_tools(None) == {}
    assert normalize_tools([]) == {}


def test_normalize_openai_and_bare() -> None:
    bare = {"name": "lookup", "parameters": {"type": "object"}, "description": "d"}
    specs = normalize_tools([WEATHER, bare])
    assert list(specs) == ["get_weather", "lookup"]
    assert specs["get_weather"].function is WEATHER["function"]
    assert specs["get_weather"].parameters["required"] == ["city"]
    assert specs["lookup"].function is bare
    assert specs["lookup"].parameters == {"type": "object"}


def test_normalize_missing_parameters_is_empty_schema() -> None:
    specs = normalize_tools([{"type": "function", "function": {"name": "ping"}}, {"name": "pong"}])
    assert specs["ping"].parameters == {}
    assert specs["pong"].parameters == {}


def test_normalize_duplicate_last_wins() -> None:
    first = {"name": "f", "parameters": {"type": "object", "x-first": True}}
    second = {"name": "f", "parameters": {"type": "object"}}
    assert normalize_tools([first, second])["f"].function is second


@pytest.mark.parametrize(
    ("tools", "needle"),
    [
        ({"name": "f"}, "list"),
        ("f", "list"),
        ([WEATHER, "f"], "tools[1]"),
        ([{"type": "function", "function": "f"}], "tools[0].function"),
        ([{"type": "function", "function": {"parameters": {}}}], "tools[0].function.name"),
        ([{"name": 3}], "tools[0].name"),
        ([{"name": ""}], "tools[0].name"),
        ([{"name": "f", "parameters": []}], "tools[0].parameters"),
        ([WEATHER, {"type": "function", "function": {"name": "g", "parameters": "x"}}], "tools[1].function.parameters"),
        ([{"type": "retrieval", "name": "f"}], "tools[0].type"),
    ],
)
def test_normalize_errors_name_index_and_field(tools: Any, needle: str) -> None:
    with pytest.raises(ToolsError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        normalize_tools(tools)
    assert issubclass(ToolsError, ValueError)


def test_toolspec_is_frozen_and_cache_not_compared() -> None:
    a, b = spec_of({"type": "object"}), spec_of({"type": "object"})
    validate_arguments(a, {})  # fills a's cache only
    assert a == b
    assert "_cache" not in repr(a)
    with pytest.raises(AttributeError):
        a.name = "g"  # type: ignore[misc]


# --------------------------------------------------------------------------------------------- tool_schema_error


def test_tool_schema_error() -> None:
    assert tool_schema_error(normalize_tools([WEATHER])["get_weather"]) is None
    assert tool_schema_error(spec_of({})) is None
    bad_type = tool_schema_error(spec_of({"type": "array"}))
    assert bad_type is not None and "object" in bad_type
    invalid = tool_schema_error(spec_of({"type": "object", "properties": {"x": {"type": "strng"}}}))
    assert invalid is not None and "invalid parameters schema" in invalid
    draft4 = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "object", "exclusiveMinimum": 3}
    assert tool_schema_error(spec_of(draft4)) is not None  # a number is not a boolean in draft 4
    draft7 = {**draft4, "$schema": "http://json-schema.org/draft-07/schema#"}
    assert tool_schema_error(spec_of(draft7)) is None
    assert tool_schema_error(spec_of({"$schema": ["odd"], "type": "object"})) is not None


# --------------------------------------------------------------------------------------------- parameter_schema


def test_parameter_schema_known_and_unknown() -> None:
    spec = normalize_tools([WEATHER])["get_weather"]
    assert parameter_schema(spec, "days") == (True, {"type": "integer"})
    assert parameter_schema(spec, "nope") == (False, None)


def test_parameter_schema_no_properties() -> None:
    assert parameter_schema(spec_of({}), "x") == (True, None)
    assert parameter_schema(spec_of({"type": "object"}), "x") == (True, None)
    assert parameter_schema(spec_of({"type": "object", "additionalProperties": False}), "x") == (False, None)
    assert parameter_schema(spec_of({"type": "object", "properties": {}}), "x") == (False, None)


def test_parameter_schema_additional_properties_schema() -> None:
    params = {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "number"}}
    assert parameter_schema(spec_of(params), "a") == (True, {"type": "string"})
    assert parameter_schema(spec_of(params), "zzz") == (True, {"type": "number"})
    with_true = {"type": "object", "properties": {"a": {}}, "additionalProperties": True}
    assert parameter_schema(spec_of(with_true), "b") == (True, None)


def test_parameter_schema_pattern_properties() -> None:
    params = {"type": "object", "properties": {}, "patternProperties": {"^n_": {"type": "integer"}, "([": {}}}
    assert parameter_schema(spec_of(params), "n_1") == (True, {"type": "integer"})
    assert parameter_schema(spec_of(params), "m") == (False, None)


def test_parameter_schema_refs() -> None:
    params = {
        "$ref": "#/$defs/Args",
        "$defs": {
            "Args": {"type": "object", "properties": {"unit": {"$ref": "#/$defs/Unit"}, "loop": {"$ref": "#/$defs/A"}}},
            "Unit": {"enum": ["c", "f"]},
            "A": {"$ref": "#/$defs/B"},
            "B": {"$ref": "#/$defs/A"},
        },
    }
    spec = spec_of(params)
    assert parameter_schema(spec, "unit") == (True, {"enum": ["c", "f"]})
    assert parameter_schema(spec, "loop") == (True, None)  # cycle: no schema
    assert parameter_schema(spec, "other") == (False, None)


def test_parameter_schema_json_pointer_escapes() -> None:
    params = {
        "type": "object",
        "properties": {"p": {"$ref": "#/definitions/a~1b~0c"}, "q": {"$ref": "#/definitions/sp%20ace"}},
        "definitions": {"a/b~c": {"type": "boolean"}, "sp ace": {"type": "null"}},
    }
    assert parameter_schema(spec_of(params), "p") == (True, {"type": "boolean"})
    assert parameter_schema(spec_of(params), "q") == (True, {"type": "null"})


# --------------------------------------------------------------------------------------------- streams_as_string


@pytest.mark.parametrize(
    ("schema", "infer", "expected"),
    [
        (None, False, True),
        (None, True, False),
        ({"type": "string"}, False, True),
        ({"type": "string"}, True, True),
        ({"type": ["string"]}, False, True),
        ({"enum": ["a", "b"]}, False, True),
        ({"const": "a"}, False, True),
        ({"anyOf": [{"type": "string"}, {"enum": ["x"]}]}, False, True),
        ({"allOf": [{"type": ["string", "null"]}, {"type": "string"}]}, False, True),
        ({"type": ["string", "null"]}, False, False),
        ({"anyOf": [{"type": "string"}, {"type": "null"}]}, False, False),
        ({"enum": ["a", 1]}, False, False),
        ({}, False, False),
        ({"description": "anything"}, False, False),
        ({"type": "integer"}, False, False),
        ({"$ref": "#/$defs/S"}, False, True),
        ({"$ref": "#/$defs/missing"}, False, True),  # unresolvable: no schema
        ({"$ref": "#/$defs/missing"}, True, False),
        ({"type": "str"}, False, False),  # unknown type names constrain nothing
    ],
)
def test_streams_as_string(schema: Any, infer: bool, expected: bool) -> None:
    root = {"$defs": {"S": {"type": "string"}}}
    assert streams_as_string(schema, root, infer_types=infer) is expected


# --------------------------------------------------------------------------------------------- convert_value

INT, NUM, BOOL, NULL = {"type": "integer"}, {"type": "number"}, {"type": "boolean"}, {"type": "null"}
OBJ, ARR = {"type": "object"}, {"type": "array"}


@pytest.mark.parametrize(
    ("raw", "schema", "expected"),
    [
        ("  keep  me \n", {"type": "string"}, "  keep  me \n"),
        ("null", {"type": "string"}, "null"),
        ("42", None, "42"),
        ("true", {"enum": ["true", "false"]}, "true"),
        ("3", INT, 3),
        (" 3\n", INT, 3),
        ("-0", INT, 0),
        ("1.0", INT, 1),
        ("1e2", INT, 100),
        ("-2.50e1", INT, -25),
        ("12345678901234567890.0", INT, 12345678901234567890),
        ("123456789012345678901234567890", INT, 123456789012345678901234567890),
        ("1.0", NUM, 1.0),
        ("3", NUM, 3),
        ("-0.0", NUM, -0.0),
        ("1E5", NUM, 100000.0),
        ("2.5", {"type": ["integer", "number"]}, 2.5),
        ("true", BOOL, True),
        ("True", BOOL, True),
        ("FALSE", BOOL, False),
        ("null", NULL, None),
        ("None", NULL, None),
        ("NULL", NULL, None),
        ("None", {"type": ["integer", "null"]}, None),
        ('{"a": [1, 2.0]}', OBJ, {"a": [1, 2.0]}),
        ("[1, 2]", ARR, [1, 2]),
        ("{'a': True, 'b': None, 'c': (1, 2),}", OBJ, {"a": True, "b": None, "c": [1, 2]}),
        ("[1, 'two', [3,],]", ARR, [1, "two", [3]]),
        ("(1, 2)", ARR, [1, 2]),
        ('{"a": "5"}', {"type": "object", "properties": {"a": INT}}, {"a": "5"}),  # nested values as decoded
        ("5", {"type": ["integer", "string"]}, 5),
        ("five", {"type": ["integer", "string"]}, "five"),
        (" five ", {"type": ["integer", "string"]}, " five "),
        ("1.5", {"type": ["integer", "string"]}, "1.5"),
        ("1e999", {"type": ["number", "string"]}, "1e999"),
        ("null", {"type": ["string", "null"]}, None),
        ("None", {"type": ["string", "null"]}, "None"),
        ("True", {"type": ["boolean", "string"]}, "True"),
        ("true", {"type": ["boolean", "string"]}, True),
        ("true", {"type": ["integer", "string"]}, "true"),
        ("[1]", {"type": ["object", "string"]}, "[1]"),
        ("{'a': 1}", {"type": ["object", "string"]}, "{'a': 1}"),  # lenient reading only when text is not allowed
        ('{"a": 1}', {"anyOf": [{"type": "object"}, {"type": "string"}]}, {"a": 1}),
        ("7", {"oneOf": [{"type": "string"}, {"type": "integer"}]}, 7),
        ("7", {"enum": ["a", 7]}, 7),
        ("a", {"enum": ["a", 7]}, "a"),
        ("8", {"enum": [1, 2]}, 8),  # enum violations are for validate_arguments
        ("7", {"const": 7}, 7),
        ("7", {"allOf": [{"type": ["integer", "string"]}, {"type": ["integer", "boolean"]}]}, 7),
        ("2.0", {"allOf": [{"type": "number"}, {"type": "integer"}]}, 2),
        ("2.0", {"type": "number", "enum": [1, 2]}, 2),
        ("42", {}, 42),
        ("[1]", {}, [1]),
        ("hello", {}, "hello"),
        ("null", {"description": "x"}, None),
        ("7", {"type": "str"}, 7),
        ("7", {"type": ["string", "integer"], "anyOf": [{"type": "string"}]}, "7"),
        ("7", {"type": "string", "enum": [1]}, 7),  # contradictory: any type, validation reports it
    ],
)
def test_convert_ok(raw: str, schema: Any, expected: Any) -> None:
    result = convert(raw, schema)
    assert result.error is None
    assert same(result.value, expected)


@pytest.mark.parametrize(
    ("raw", "schema", "kept"),
    [
        ("1.5", INT, "1.5"),
        ("1e999999", INT, "1e999999"),
        ("-1e999999", NUM, "-1e999999"),
        ("1e-999999", INT, "1e-999999"),
        ("1.0000000000000000001", INT, "1.0000000000000000001"),
        ("inf", NUM, "inf"),
        ("Infinity", NUM, "Infinity"),
        ("nan", NUM, "nan"),
        ("1_000", INT, "1_000"),
        ("١٢", INT, "١٢"),
        ("+1", INT, "+1"),
        ("0x10", INT, "0x10"),
        ("007", INT, "007"),
        (".5", NUM, ".5"),
        ("1.", NUM, "1."),
        (" 3 apples", INT, "3 apples"),
        ("", INT, ""),
        ("true", INT, "true"),
        ("9" * 5000, INT, "9" * 5000),
        ("yes", BOOL, "yes"),
        ("1", BOOL, "1"),
        ("nil", NULL, "nil"),
        ("[1, 2]", OBJ, "[1, 2]"),
        ('{"a": 1}', ARR, '{"a": 1}'),
        ("{'a': 1", OBJ, "{'a': 1"),
        ("{1: 2}", OBJ, "{1: 2}"),
        ("[NaN]", ARR, "[NaN]"),
        ("[1e400]", ARR, "[1e400]"),
        ("(1)", ARR, "(1)"),
        ("{'a': __import__('os')}", OBJ, "{'a': __import__('os')}"),
        ("null", INT, "null"),
        ("none", {"type": ["integer", "boolean"]}, "none"),
    ],
)
def test_convert_errors_keep_text(raw: str, schema: Any, kept: str) -> None:
    result = convert(raw, schema)
    assert result.error is not None
    assert result.value == kept


def test_convert_error_messages() -> None:
    assert "integer" in (convert("1.5", INT).error or "")
    assert "not an integer" in (convert("1.5", INT).error or "")
    assert "out of range" in (convert("1e999999", NUM).error or "")
    assert "got an array" in (convert("[1]", OBJ).error or "")
    long_error = convert("x" * 10_000, INT).error or ""
    assert len(long_error) < 200


def test_convert_refs_in_unions_and_cycles() -> None:
    root = {
        "$defs": {
            "Point": {"type": "object"},
            "Loop": {"$ref": "#/$defs/Loop2"},
            "Loop2": {"$ref": "#/$defs/Loop"},
            "Wide": {"anyOf": [{"$ref": "#/$defs/Wide"}, {"$ref": "#/$defs/Wide"}]},
        }
    }
    assert convert('{"x": 1}', {"anyOf": [{"$ref": "#/$defs/Point"}, {"type": "null"}]}, root).value == {"x": 1}
    assert convert("null", {"anyOf": [{"$ref": "#/$defs/Point"}, {"type": "null"}]}, root).value is None
    assert convert(" 5 ", {"$ref": "#/$defs/Loop"}, root) == Conversion(" 5 ", None)
    assert convert("5", {"$ref": "#/$defs/Loop"}, root, infer_types=True) == Conversion(5, None)
    assert convert("5", {"$ref": "#/$defs/Wide"}, root) == Conversion(5, None)
    assert convert("5", {"$ref": "https://example.com/s.json"}, root) == Conversion("5", None)


def test_convert_infer_types() -> None:
    for raw, expected in [
        ("42", 42),
        ("4.5", 4.5),
        ("true", True),
        ("null", None),
        ("[1]", [1]),
        ('{"a":1}', {"a": 1}),
    ]:
        assert same(convert(raw, None, infer_types=True).value, expected)
    for raw in ["True", "hello", "{'a': 1}", "1_000", "  spaced  "]:
        assert convert(raw, None, infer_types=True) == Conversion(raw, None)


@pytest.mark.parametrize(
    "schema",
    [
        "integer",
        5,
        [{"type": "integer"}],
        {"type": 5},
        {"type": [None, "integer"]},
        {"type": []},
        {"enum": "abc"},
        {"enum": [object()]},
        {"anyOf": "x"},
        {"anyOf": [5, None]},
        {"allOf": [{"type": "string"}, {"type": "integer"}]},
        {"$ref": 5},
        {"$ref": "#/x/0/y"},
        {"$ref": "#foo"},
        {"properties": 5, "items": 5},
        True,
        False,
    ],
)
def test_convert_garbage_schema_never_raises(schema: Any) -> None:
    for raw in ["5", "abc", "[1]", "", "null"]:
        result = convert_value(raw, schema, {"x": [{"y": {"type": "integer"}}]})
        assert result.error is None or "internal" not in result.error


def test_convert_garbage_root_never_raises() -> None:
    result = convert_value("5", {"$ref": "#/a"}, 5)  # type: ignore[arg-type]
    assert result == Conversion("5", None)


@pytest.mark.parametrize(
    ("raw", "schema"),
    [
        ("[" * 100_000, ARR),
        ("[" * 100_000, {}),
        ("[" * 100_000 + "]" * 100_000, ARR),
        ("{'a':" * 5000, OBJ),
        ("{'a':" * 5000 + "1" + "}" * 5000, OBJ),
        ('{"a":' * 5000 + "1" + "}" * 5000, OBJ),
        ("(" * 50_000, ARR),
    ],
)
def test_deep_nesting_never_raises(raw: str, schema: Any) -> None:
    result = convert(raw, schema)
    if schema:
        assert result.error is not None and "nested too deeply" in result.error
    else:
        assert result == Conversion(raw, None)


def test_nesting_at_the_bound_is_read() -> None:
    ok = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert convert(ok, ARR).error is None
    assert convert("[" + ok + "]", ARR).error is not None
    lenient = "[" * MAX_DEPTH + "1," + "]" * MAX_DEPTH
    assert convert(lenient, ARR).error is None


# --------------------------------------------------------------------------------------------- validate_arguments


def test_validate_arguments_messages() -> None:
    spec = normalize_tools([WEATHER])["get_weather"]
    assert validate_arguments(spec, {"city": "Paris", "days": 3}) == []
    errors = validate_arguments(spec, {"days": "3"})
    assert len(errors) == 2
    assert any(e.startswith("$: ") and "'city' is a required property" in e for e in errors)
    assert any(e.startswith("$.days: ") for e in errors)


def test_validate_arguments_enum_and_nested_path() -> None:
    params = {
        "type": "object",
        "properties": {"unit": {"enum": ["c", "f"]}, "pts": {"type": "array", "items": {"type": "integer"}}},
    }
    errors = validate_arguments(spec_of(params), {"unit": "k", "pts": [1, "x"]})
    assert len(errors) == 2
    assert any("$.unit" in e and "'k'" in e for e in errors)
    assert any("$.pts[1]" in e for e in errors)


def test_validate_arguments_uses_declared_draft() -> None:
    draft4 = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "object",
        "properties": {"n": {"type": "number", "maximum": 5, "exclusiveMaximum": True}},
    }
    assert validate_arguments(spec_of(draft4), {"n": 5}) != []
    assert validate_arguments(spec_of(draft4), {"n": 4}) == []


def test_validate_arguments_broken_schema_is_one_message() -> None:
    broken = spec_of({"type": "object", "properties": {"x": {"type": "nope"}}})
    assert len(validate_arguments(broken, {"x": 1})) == 1
    unresolvable = spec_of({"type": "object", "properties": {"x": {"$ref": "#/$defs/missing"}}})
    messages = validate_arguments(unresolvable, {"x": 1})
    assert len(messages) == 1 and "could not be applied" in messages[0]
    tree = spec_of(
        {
            "type": "object",
            "properties": {"t": {"$ref": "#/$defs/T"}},
            "$defs": {"T": {"type": "array", "items": {"$ref": "#/$defs/T"}}},
        }
    )
    deep: list[Any] = []
    for _ in range(3000):
        deep = [deep]
    assert len(validate_arguments(tree, {"t": deep})) == 1


def test_validate_arguments_caches_validator() -> None:
    spec = normalize_tools([WEATHER])["get_weather"]
    validate_arguments(spec, {"city": "x"})
    first = spec._cache["validator"]
    validate_arguments(spec, {"city": "y"})
    assert spec._cache["validator"] is first


def test_remote_references_are_refused_by_name() -> None:
    """Details and the no-fetch proof: tests/adversarial/test_schema_fetch.py."""
    spec = spec_of({"type": "object", "properties": {"x": {"$ref": "https://example.invalid/s.json"}}})
    reason = "$ref 'https://example.invalid/s.json' is not inside the tool's schema (m2parse fetches nothing)"
    assert tool_schema_error(spec) == f"tool 'f': {reason}"
    assert validate_arguments(spec, {"x": 1}) == [f"tool 'f': schema could not be applied: {reason}"]
    assert parameter_schema(spec, "x") == (True, None)


def test_validation_messages_stay_json_paths_with_the_guard() -> None:
    params = {
        "type": "object",
        "properties": {"s": {"type": "string", "pattern": "^[a-z]+$"}, "u": {"type": "array", "uniqueItems": True}},
        "patternProperties": {"^n_": {"type": "integer"}},
        "additionalProperties": False,
    }
    errors = validate_arguments(spec_of(params), {"s": "A", "u": [1, 1.0], "n_1": "x", "zz": 0})
    assert sorted(errors) == [
        "$.n_1: 'x' is not of type 'integer'",
        "$.s: 'A' does not match '^[a-z]+$'",
        "$.u: [1, 1.0] has non-unique elements",
        "$: 'zz' does not match any of the regexes: '^n_'",
    ]


# --------------------------------------------------------------------------------------------- pyliteral


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{'a': 1, \"b\": [True, False, None],}", {"a": 1, "b": [True, False, None]}),
        ("[true, false, null]", [True, False, None]),
        ("()", []),
        ("(1,)", [1]),
        ("(1)", 1),
        ("[ ]", []),
        ("{ }", {}),
        ("[+1, -2.5, .5, 1., 1e3]", [1, -2.5, 0.5, 1.0, 1000.0]),
        (r"'a\'b\n\t\\\x41\u00e9\U0001F600\101\N{BULLET}'", "a'b\n\t\\Aé😀A•"),
        (r"'\ud83d\ude00'", "😀"),
        (r"'\q'", "\\q"),
        (r"'http:\/\/x'", "http://x"),
        ("'it\"s'", 'it"s'),
        ("[[[]]]", [[[]]]),
        ("{'k': {'k': ()}}", {"k": {"k": []}}),
    ],
)
def test_read_literal(text: str, expected: Any) -> None:
    assert same(read_literal(text), expected)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[1, 2",
        "[1 2]",
        "{'a' 1}",
        "{1: 2}",
        "{'a': 1,,}",
        "[,]",
        "'abc",
        r"'\x4'",
        r"'\U00110000'",
        r"'\N{NOT A REAL NAME}'",
        "[1] 2",
        "[inf]",
        "[1e999]",
        "{'a'}",
        "[Truex]",
        "abc",
        "(1]",
        "{1, 2}",
        "[" + "9" * 5000 + "]",
    ],
)
def test_read_literal_rejects(text: str) -> None:
    with pytest.raises(LiteralError):
        read_literal(text)


def test_read_literal_depth_bound() -> None:
    assert read_literal("[" * 10 + "]" * 10, max_depth=10) is not None
    with pytest.raises(LiteralError, match="nested too deeply"):
        read_literal("[" * 11 + "]" * 11, max_depth=10)
    with pytest.raises(LiteralError, match="nested too deeply"):
        read_literal("{'a':" * 100_000)


def test_max_nesting_ignores_strings() -> None:
    assert max_nesting("[\"[[[\", [1], '}}}']") == 2
    assert max_nesting(r'["\"[[", [[1]]]') == 3
    assert max_nesting("[" * 100_000, limit=10) == 11


# --------------------------------------------------------------------------------------------- properties

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)

TYPE_NAMES = ["string", "integer", "number", "boolean", "null", "object", "array", "str", 7]
ref_strings = st.sampled_from(
    ["#", "#/$defs/a", "#/$defs/b", "#/$defs/loop", "#/missing", "#/$defs/a~1", "x.json", "#a"]
)


def schemas(depth: int = 3) -> st.SearchStrategy[Any]:
    leaf: st.SearchStrategy[Any] = st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(TYPE_NAMES) | st.lists(st.sampled_from(TYPE_NAMES), max_size=3),
            "enum": st.lists(json_scalars, max_size=3) | json_scalars,
            "const": json_values,
            "$ref": ref_strings | st.integers(),
            "items": st.just({"type": "integer"}),
            "properties": st.dictionaries(st.text(max_size=3), st.just({"type": "string"}), max_size=2),
            "additionalProperties": st.booleans(),
        },
    )
    garbage = st.none() | st.booleans() | st.integers() | st.text(max_size=5) | st.lists(st.integers(), max_size=2)
    return st.recursive(
        leaf | garbage,
        lambda inner: st.fixed_dictionaries(
            {},
            optional={
                "anyOf": st.lists(inner, max_size=3),
                "oneOf": st.lists(inner, max_size=3) | inner,
                "allOf": st.lists(inner, max_size=3),
                "type": st.sampled_from(TYPE_NAMES),
            },
        ),
        max_leaves=8,
    )


roots = st.fixed_dictionaries(
    {
        "$defs": st.fixed_dictionaries(
            {"a": schemas(), "b": schemas(), "loop": st.just({"anyOf": [{"$ref": "#/$defs/loop"}, {"$ref": "#"}]})}
        )
    }
)
texts = st.text() | json_values.map(lambda v: json.dumps(v, ensure_ascii=False)) | json_values.map(repr)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=texts, schema=schemas(), root=roots, infer=st.booleans())
def test_convert_never_raises(raw: str, schema: Any, root: Any, infer: bool) -> None:
    result = convert_value(raw, schema, root, infer_types=infer)
    assert isinstance(result, Conversion)
    if result.error is not None:
        assert "internal error" not in result.error
        assert result.value == raw.strip()
    else:
        json.dumps(result.value, allow_nan=False)  # whatever comes back is a JSON value
    if streams_as_string(schema, root, infer_types=infer):
        assert result == Conversion(raw, None)


def describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


@st.composite
def value_and_schema(draw: st.DrawFn) -> tuple[Any, Any, Any]:
    value = draw(json_values)
    kind = describe(value)
    # Extra alternatives cannot change how JSON text reads, except that a string could then read as JSON.
    types = ["string", "integer", "number", "boolean", "null", "object", "array"]
    extra = [] if kind == "string" else draw(st.lists(st.sampled_from(types), max_size=2))
    if kind == "integer" and draw(st.booleans()):
        kind = "number"
    form = draw(st.sampled_from(["type", "list", "anyOf", "ref", "allOf", "enum"]))
    root: dict[str, Any] = {}
    schema: Any
    if form == "type":
        schema = {"type": kind}
    elif form == "list":
        schema = {"type": [kind, *extra]}
    elif form == "anyOf":
        schema = {"anyOf": [{"type": t} for t in [*extra, kind]]}
    elif form == "ref":
        root = {"$defs": {"T": {"type": kind}}}
        schema = {"$ref": "#/$defs/T"}
    elif form == "allOf":
        schema = {"allOf": [{"type": [kind, *extra]}, {"type": [kind, "string"]}]}
    else:
        schema = {"enum": [value]}
    return value, schema, root


@settings(max_examples=1000, deadline=None)
@given(case=value_and_schema())
def test_round_trip(case: tuple[Any, Any, Any]) -> None:
    value, schema, root = case
    raw = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    result = convert_value(raw, schema, root)
    assert result.error is None
    assert same(result.value, value)
    if isinstance(value, float):
        assert math.copysign(1.0, result.value) == math.copysign(1.0, value)


@settings(max_examples=500, deadline=None)
@given(value=json_values.filter(lambda v: not isinstance(v, str)))
def test_round_trip_inferred(value: Any) -> None:
    result = convert_value(json.dumps(value, ensure_ascii=False), None, {}, infer_types=True)
    assert result.error is None and same(result.value, value)


python_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
    ),
    max_leaves=12,
)


def untuple(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [untuple(v) for v in value]
    if isinstance(value, dict):
        return {k: untuple(v) for k, v in value.items()}
    return value


@settings(max_examples=800, deadline=None)
@given(value=python_values)
def test_read_literal_reads_python_repr(value: Any) -> None:
    assert same(read_literal(repr(value)), untuple(value))


@settings(max_examples=500, deadline=None)
@given(value=st.lists(python_values, max_size=4) | st.dictionaries(st.text(max_size=8), python_values, max_size=4))
def test_convert_reads_python_repr(value: Any) -> None:
    schema = {"type": "array"} if isinstance(value, list) else {"type": "object"}
    result = convert_value(repr(value), schema, {})
    assert result.error is None and same(result.value, untuple(value))


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="[]{}()'\",:1a \\", max_size=200))
def test_read_literal_total(text: str) -> None:
    with contextlib.suppress(LiteralError):
        read_literal(text)
