"""Unit tests for m2parse.formats.xml_values: one MiniMax-M3 argument value -> typed JSON, streamed.

Each input is written as the official template renders it (``]<]minimax[>[`` before every tag) and split into
the engine's calls by a small stand-in (tests/m3_value_support.py). Every build also checks that the fragments
concatenate to ``json.dumps(value)``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from m2parse.formats.xml_values import MAX_DEPTH, XmlValueBuilder

from .m3_value_support import NS, build, drive, events, held_back, to_xml


def tag(name: str, inner: str = "") -> str:
    return f"{NS}<{name}>{inner}{NS}</{name}>"


PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "score": {"type": "number"},
        "admin": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "address": {"type": "object", "properties": {"zip": {"type": "string"}, "floor": {"type": "integer"}}},
    },
}


# ----------------------------------------------------------------------------- objects and arrays


def test_object_with_every_scalar_and_nested_containers() -> None:
    value = {
        "name": "Ada <Lovelace>",
        "age": 36,
        "score": 9.5,
        "admin": True,
        "tags": ["a", "b < c"],
        "address": {"zip": "01234", "floor": 3},
    }
    built = build(PERSON, to_xml(value))
    assert built.value == value
    assert built.codes == []
    assert built.joined == json.dumps(value, ensure_ascii=False)


def test_keys_keep_the_written_order() -> None:
    built = build(PERSON, tag("age", "1") + tag("name", "x"))
    assert list(built.value) == ["age", "name"]


def test_array_of_objects() -> None:
    schema = {"type": "array", "items": PERSON}
    value = [{"name": "a", "age": 1}, {"name": "b", "admin": False}]
    assert build(schema, to_xml(value)).value == value


def test_nested_arrays() -> None:
    schema = {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}}
    assert build(schema, to_xml([[1, 2], [], [3]])).value == [[1, 2], [], [3]]


def test_empty_elements_follow_the_schema() -> None:
    assert build({"type": "object"}, "").value == {}
    assert build({"type": "array"}, "").value == []
    assert build({"type": "string"}, "").value == ""
    assert build({"type": ["object", "null"]}, "").value == {}
    assert build({"type": ["array", "null"]}, " \n").value == []
    assert build({"type": ["string", "object"]}, "").value == ""


def test_whitespace_between_tags_is_layout() -> None:
    text = "\n  " + tag("age", "7") + "\n" + tag("tags", "\n" + tag("item", "x") + "\n  ") + "\n"
    built = build(PERSON, text)
    assert built.value == {"age": 7, "tags": ["x"]}
    assert built.codes == []


def test_stray_text_between_keys_is_reported_with_its_text() -> None:
    built = build(PERSON, tag("age", "7") + "oops " + tag("name", "x") + " tail")
    assert built.value == {"age": 7, "name": "x"}
    assert built.codes == ["stray_text", "stray_text"]
    assert "'oops '" in built.messages[0] and "' tail'" in built.messages[1]


def test_unknown_keys_are_kept_for_validation_to_judge() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False}
    built = build(schema, tag("a", "1") + tag("b", "2") + tag("c", tag("item", "x")))
    assert built.value == {"a": 1, "b": "2", "c": ["x"]}
    assert built.codes == []


def test_duplicate_key_first_wins() -> None:
    built = build(PERSON, tag("age", "1") + tag("age", "2") + tag("name", "n"))
    assert built.value == {"age": 1, "name": "n"}
    assert built.codes == ["duplicate_parameter"]
    assert "'age'" in built.messages[0] and "2" in built.messages[0]


def test_duplicate_container_key_is_dropped_whole() -> None:
    built = build(PERSON, tag("tags", tag("item", "a")) + tag("tags", tag("item", "b") + tag("item", "c")))
    assert built.value == {"tags": ["a"]}
    assert built.codes == ["duplicate_parameter"]


def test_array_child_not_named_item_is_kept_as_an_entry() -> None:
    schema = {"type": "array", "items": {"type": "integer"}}
    built = build(schema, tag("item", "1") + tag("entry", "2"))
    assert built.value == [1, 2]
    assert built.codes == ["unexpected_tag"]
    assert "<entry>" in built.messages[0]


def test_array_stray_text_is_reported() -> None:
    built = build({"type": "array"}, tag("item", "a") + ",")
    assert built.value == ["a"]
    assert built.codes == ["stray_text"]


# ----------------------------------------------------------------------------- strings


@pytest.mark.parametrize(
    "text",
    ["a < b && c > d", "<div>html</div>", "  padded\n", "", 'quote " and \\ back\tslash\x01', "ünïcödé ✓ 🎉"],
)
def test_string_is_verbatim(text: str) -> None:
    built = build({"type": "string"}, text)
    assert built.value == text
    assert built.codes == []


def test_string_streams_before_its_close() -> None:
    builder = XmlValueBuilder({"type": "object", "properties": {"s": {"type": "string"}}})
    assert builder.open("s") == '{"s": "'
    assert builder.text('a"b') == 'a\\"b'
    assert builder.text("\n") == "\\n"
    assert builder.close("s") == '"'
    assert builder.finish(truncated=False) == "}"
    assert builder.value == {"s": 'a"b\n'}


def test_numbers_are_emitted_at_their_close() -> None:
    builder = XmlValueBuilder({"type": "object", "properties": {"n": {"type": "integer"}}})
    assert builder.open("n") == '{"n": '
    assert builder.text("4") == ""
    assert builder.text("2") == ""
    assert builder.close("n") == "42"


def test_tags_inside_a_string_are_written_back_with_the_namespace() -> None:
    built = build({"type": "string"}, "x " + tag("b", "bold") + " y")
    assert built.value == f"x {NS}<b>bold{NS}</b> y"
    assert built.codes == ["unexpected_tag"]


def test_verbatim_tells_the_engine_when_tags_can_only_be_text() -> None:
    builder = XmlValueBuilder(PERSON)
    assert not builder.verbatim
    builder.open("name")
    assert builder.verbatim
    builder.close("name")
    builder.open("age")
    assert builder.verbatim  # integer-only: a tag cannot make it a container
    builder.close("age")
    builder.open("tags")
    assert not builder.verbatim


def test_an_engine_passing_verbatim_content_raw_gets_the_text_exactly() -> None:
    inner = f"a {NS}<b x='1'>{NS}<code>{NS}</b> c"
    builder = XmlValueBuilder(PERSON)
    fragments = [builder.open("name")]
    assert builder.verbatim
    assert builder.element == "name"
    fragments += [builder.text(inner), builder.close("name"), builder.finish(truncated=False)]
    assert builder.value == {"name": inner}
    assert "".join(fragments) == json.dumps(builder.value, ensure_ascii=False)
    assert builder.problems == []


def test_untyped_string_key_holding_a_tag_keeps_it_as_text() -> None:
    built = build(None, "see " + tag("b", "x"))
    assert built.value == f"see {NS}<b>x{NS}</b>"
    assert built.codes == ["unexpected_tag"]


# ----------------------------------------------------------------------------- scalars as M2


@pytest.mark.parametrize(
    ("schema", "text", "expected"),
    [
        ({"type": "integer"}, "42", 42),
        ({"type": "integer"}, " -7\n", -7),
        ({"type": "integer"}, "1.0", 1),
        ({"type": "number"}, "-0.5e3", -500.0),
        ({"type": "number"}, "3", 3),
        ({"type": "boolean"}, "true", True),
        ({"type": "boolean"}, "false", False),
        ({"type": "boolean"}, "True", True),
        ({"type": ["integer", "null"]}, "null", None),
        ({"anyOf": [{"type": "integer"}, {"type": "string"}]}, "42", 42),
        ({"anyOf": [{"type": "integer"}, {"type": "string"}]}, "4 2", "4 2"),
        ({"type": ["string", "null"]}, "None", "None"),
        ({"type": ["object", "null"]}, '{"a": 1}', {"a": 1}),
    ],
)
def test_scalars_convert_as_in_m2(schema: dict[str, Any], text: str, expected: Any) -> None:
    built = build(schema, text)
    assert built.value == expected
    assert type(built.value) is type(expected)
    assert built.codes == []


@pytest.mark.parametrize(
    ("schema", "text"),
    [
        ({"type": "integer"}, "01"),
        ({"type": "number"}, "1."),
        ({"type": "number"}, "inf"),
        ({"type": "number"}, "NaN"),
        ({"type": "integer"}, "+1"),
        ({"type": "integer"}, "1_000"),
        ({"type": "integer"}, "1.5"),
        ({"type": "integer"}, "null"),
        ({"type": "boolean"}, "yes"),
        ({"type": "integer"}, ""),
    ],
)
def test_scalar_failures_keep_the_text(schema: dict[str, Any], text: str) -> None:
    built = build(schema, text)
    assert built.value == text.strip()
    assert built.codes == ["coercion_failed"]


def test_tag_inside_a_number_is_text_and_fails_conversion() -> None:
    built = build({"type": "integer"}, "4" + tag("b", "2"))
    assert built.value == f"4{NS}<b>2{NS}</b>"
    assert built.codes == ["unexpected_tag", "coercion_failed"]


# ----------------------------------------------------------------------------- unions


def test_union_object_or_string_by_what_arrives() -> None:
    schema = {"anyOf": [{"type": "object", "properties": {"n": {"type": "integer"}}}, {"type": "string"}]}
    assert build(schema, tag("n", "5")).value == {"n": 5}
    assert build(schema, "plain 5").value == "plain 5"


def test_union_object_or_array_by_first_child() -> None:
    schema = {"type": ["object", "array"]}
    assert build(schema, tag("item", "1") + tag("item", "2")).value == ["1", "2"]
    assert build(schema, tag("k", "1")).value == {"k": "1"}


def test_union_branches_give_the_key_schema() -> None:
    schema = {
        "oneOf": [
            {"type": "object", "properties": {"a": {"type": "integer"}}},
            {"type": "object", "properties": {"b": {"type": "boolean"}}},
        ]
    }
    assert build(schema, tag("a", "1") + tag("b", "true")).value == {"a": 1, "b": True}


def test_item_schemas_of_several_branches_are_tried_in_order() -> None:
    schema = {
        "anyOf": [
            {"type": "array", "items": {"type": "integer"}},
            {"type": "array", "items": {"type": "boolean"}},
        ]
    }
    assert build(schema, tag("item", "1") + tag("item", "true")).value == [1, True]


def test_only_object_allowed_first_child_item_is_a_key() -> None:
    assert build({"type": ["object", "null"]}, tag("item", "x")).value == {"item": "x"}


def test_only_array_allowed_any_child_is_an_entry() -> None:
    built = build({"type": ["array", "null"]}, tag("x", "1"))
    assert built.value == ["1"]
    assert built.codes == ["unexpected_tag"]


# ----------------------------------------------------------------------------- references and keywords


ROOT = {
    "type": "object",
    "$defs": {
        "point": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}}},
        "node": {
            "type": "object",
            "properties": {"v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
        },
    },
    "properties": {"p": {"$ref": "#/$defs/point"}, "tree": {"$ref": "#/$defs/node"}},
}


def test_ref_into_the_root() -> None:
    assert build({"$ref": "#/$defs/point"}, tag("x", "1") + tag("y", "2.5"), ROOT).value == {"x": 1, "y": 2.5}


def test_recursive_ref() -> None:
    tree = {"v": 1, "kids": [{"v": 2, "kids": []}, {"v": 3, "kids": [{"v": 4}]}]}
    built = build(ROOT["properties"]["tree"], to_xml(tree), ROOT)
    assert built.value == tree
    assert built.codes == []


def test_broken_ref_is_no_schema() -> None:
    assert build({"$ref": "#/$defs/missing"}, "42", ROOT).value == "42"


def test_pattern_properties_and_additional_properties() -> None:
    schema = {
        "type": "object",
        "patternProperties": {"^n_": {"type": "integer"}},
        "additionalProperties": {"type": "boolean"},
    }
    assert build(schema, tag("n_a", "3") + tag("flag", "false")).value == {"n_a": 3, "flag": False}


def test_prefix_items_and_tuple_items() -> None:
    schema = {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "items": {"type": "boolean"}}
    assert build(schema, to_xml([1, "1", True, False])).value == [1, "1", True, False]
    draft7 = {"type": "array", "items": [{"type": "integer"}], "additionalItems": {"type": "number"}}
    assert build(draft7, to_xml([1, 2.5])).value == [1, 2.5]


# ----------------------------------------------------------------------------- no schema


def test_unknown_schema_infers_shape() -> None:
    assert build(None, tag("item", "1") + tag("item", tag("k", "v"))).value == ["1", {"k": "v"}]
    assert build(None, tag("a", "1") + tag("b", tag("item", "2"))).value == {"a": "1", "b": ["2"]}
    assert build(None, "  text ").value == "  text "
    assert build(None, " \n ").value == " \n "


def test_unknown_schema_with_infer_types_converts_scalars_like_m2() -> None:
    text = tag("n", "42") + tag("f", "1.5") + tag("b", "true") + tag("z", "null") + tag("s", "hi")
    built = build(None, text, infer_types=True)
    assert built.value == {"n": 42, "f": 1.5, "b": True, "z": None, "s": "hi"}


# ----------------------------------------------------------------------------- broken structure


def test_close_of_an_outer_element_closes_the_inner_ones() -> None:
    built = build(PERSON, f"{NS}<address>{NS}<zip>1{NS}</address>" + tag("age", "2"))
    assert built.value == {"address": {"zip": "1"}, "age": 2}
    assert built.codes == ["unbalanced_tag"]


def test_close_matching_nothing_is_dropped_in_a_container() -> None:
    built = build(PERSON, tag("age", "2") + f"{NS}</zip>")
    assert built.value == {"age": 2}
    assert built.codes == ["unbalanced_tag"]
    assert "</zip>" in built.messages[0]


def test_close_matching_nothing_is_kept_in_a_string() -> None:
    built = build(PERSON, tag("name", f"a{NS}</b>c"))
    assert built.value == {"name": f"a{NS}</b>c"}
    assert built.codes == ["unbalanced_tag"]


def test_unclosed_inner_tag_in_a_string_ends_with_the_string() -> None:
    built = build(PERSON, tag("name", f"a{NS}<b>c") + tag("age", "1"))
    assert built.value == {"name": f"a{NS}<b>c", "age": 1}
    assert built.codes == ["unexpected_tag", "unbalanced_tag"]


def test_finish_with_open_elements_reports_them() -> None:
    built = build(PERSON, f"{NS}<address>{NS}<floor>3")
    assert built.value == {"address": {"floor": 3}}
    assert built.codes == ["unbalanced_tag"]


def test_calls_after_finish_are_ignored() -> None:
    builder = XmlValueBuilder({"type": "string"})
    assert builder.text("a") == '"a'
    assert builder.finish(truncated=False) == '"'
    assert (builder.text("b"), builder.open("x"), builder.close("x"), builder.finish(truncated=True)) == ("",) * 4
    assert builder.value == "a"
    assert builder.problems == []


def test_depth_limit_turns_deeper_tags_into_text() -> None:
    depth = MAX_DEPTH + 10
    text = "".join(f"{NS}<k{i}>" for i in range(depth)) + "v" + "".join(f"{NS}</k{i}>" for i in reversed(range(depth)))
    built = build(None, text)
    assert built.codes == ["unexpected_tag"]
    node = built.value
    for i in range(MAX_DEPTH):
        node = node[f"k{i}"]
    inner = "".join(f"{NS}<k{i}>" for i in range(MAX_DEPTH, depth))
    assert node == inner + "v" + "".join(f"{NS}</k{i}>" for i in reversed(range(MAX_DEPTH, depth)))


def test_depth_counts_open_elements() -> None:
    builder = XmlValueBuilder({"type": "string"})
    builder.open("b")
    assert builder.depth == 1
    builder.close("b")
    assert builder.depth == 0


# ----------------------------------------------------------------------------- truncation


SAMPLE_VALUE = {
    "name": "Ada <x>",
    "age": 36,
    "admin": False,
    "tags": ["a", "b"],
    "address": {"zip": "0", "floor": 2},
}


def test_truncation_at_every_point_keeps_what_arrived() -> None:
    text = "\n" + to_xml(SAMPLE_VALUE)
    for cut in range(len(text) + 1):
        built = build(PERSON, held_back(text[:cut]), truncated=True)
        assert built.codes[0] == "truncated_value"
        assert isinstance(built.value, dict)
    full = build(PERSON, text)
    assert full.value == SAMPLE_VALUE
    assert full.codes == []


def test_truncated_string_and_number_values() -> None:
    built = build(PERSON, f"{NS}<age>4", truncated=True)
    assert built.value == {"age": 4}
    built = build(PERSON, f"{NS}<name>Ad", truncated=True)
    assert built.value == {"name": "Ad"}
    assert built.codes == ["truncated_value"]


# ----------------------------------------------------------------------------- cost


def _seconds(evs: list[tuple[str, str]], schema: dict[str, Any] | None) -> float:
    best = float("inf")
    for _ in range(5):  # CPU time, best of five: other processes share the machine
        start = time.process_time()
        drive(XmlValueBuilder(schema), evs)
        best = min(best, time.process_time() - start)
    return best


@pytest.mark.parametrize(
    ("unit", "schema"),
    [
        (f"{NS}<a>", None),  # ever deeper: past the limit every tag is text
        (f"{NS}</zz>", {"type": "object"}),  # closes that match nothing
        (tag("item", tag("k", "1")), {"type": "array", "items": PERSON}),
        (f"x{NS}<b>", {"type": "string"}),  # tags kept as text in a string
    ],
)
def test_cost_is_linear(unit: str, schema: dict[str, Any] | None) -> None:
    small = events(unit * 10_000)
    large = events(unit * 80_000)
    ratio = _seconds(large, schema) / max(_seconds(small, schema), 1e-6)
    assert ratio < 20, ratio  # 8 when linear, 64 when quadratic
