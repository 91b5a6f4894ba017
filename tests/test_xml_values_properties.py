"""Properties of m2parse.formats.xml_values: template round trip, chunk invariance, totality under any calls.

Schemas and values are drawn together; values are rendered with the official template's ``to_xml`` rules
(tests/m3_value_support.py) and must come back equal, in JSON, whatever the split of the text.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from m2parse.formats.xml_values import MAX_DEPTH, XmlValueBuilder
from m2parse.problems import ALL_CODES

from .m3_value_support import NS, Event, build, drive, events, held_back, split_text, to_xml

_KEYS = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True)
#: Text a model may write in a string value: anything but the namespace token (which starts a tag).
_TEXT = st.text(st.characters(codec="utf-8"), max_size=12).filter(lambda s: NS not in s)

_LEAF_SCHEMAS = st.sampled_from(
    [
        {"type": "string"},
        {"type": "integer"},
        {"type": "number"},
        {"type": "boolean"},
        {"type": ["integer", "null"]},
        {"enum": ["a", "b c", "<x>"]},
    ]
)


def _containers(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    objects = st.dictionaries(_KEYS, children, max_size=4).map(lambda p: {"type": "object", "properties": p})
    arrays = children.map(lambda s: {"type": "array", "items": s})
    return objects | arrays


SCHEMAS = st.recursive(_LEAF_SCHEMAS, _containers, max_leaves=10)


def values_for(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values the schema accepts that the template renders unambiguously (no None: it is omitted)."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema["type"]
    if kind == "string":
        return _TEXT
    if kind in ("integer", ["integer", "null"]):
        return st.integers(-(10**20), 10**20)
    if kind == "number":
        return st.integers(-1000, 1000) | st.floats(allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        return st.lists(values_for(schema["items"]), max_size=3)
    properties = schema["properties"]
    return st.fixed_dictionaries({}, optional={key: values_for(sub) for key, sub in properties.items()})


@st.composite
def typed_samples(draw: st.DrawFn) -> tuple[dict[str, Any], Any]:
    schema = draw(SCHEMAS)
    return schema, draw(values_for(schema))


@given(typed_samples(), st.lists(st.integers(0, 50), max_size=6))
def test_template_rendering_reads_back_in_any_split(sample: tuple[dict[str, Any], Any], cuts: list[int]) -> None:
    schema, value = sample
    text = to_xml(value)
    built = drive(XmlValueBuilder(schema), split_text(events(text), cuts))
    assert built.joined == json.dumps(value, ensure_ascii=False)
    assert built.codes == []


@given(typed_samples(), st.integers(0, 10_000))
def test_truncated_anywhere_still_concatenates_to_the_value(sample: tuple[dict[str, Any], Any], cut: int) -> None:
    schema, value = sample
    text = to_xml(value)
    prefix = held_back(text[: cut % (len(text) + 1)])
    built = build(schema, prefix, truncated=True)
    assert built.codes[0] == "truncated_value"


# ----------------------------------------------------------------------------- any calls at all

_NAMES = st.sampled_from(["item", "a", "b", "name", "tags", "k"])
_HOSTILE_TEXT = st.sampled_from(["", " ", "\n", "1", "-0.5", "true", "null", "x<y", '{"a": 1}', "[1]", "01", "\x00"])
_CALLS = st.lists(
    st.one_of(
        st.tuples(st.just("text"), _HOSTILE_TEXT | st.text(max_size=5)),
        st.tuples(st.just("open"), _NAMES),
        st.tuples(st.just("close"), _NAMES),
    ),
    max_size=40,
)
_ANY_SCHEMA = st.sampled_from(
    [
        None,
        {},
        True,
        {"type": "string"},
        {"type": "integer"},
        {"type": ["boolean", "null"]},
        {"type": "object", "properties": {"a": {"type": "integer"}, "name": {"type": "string"}}},
        {"type": "array", "items": {"type": "object", "properties": {"k": {"type": "number"}}}},
        {"anyOf": [{"type": "object"}, {"type": "array"}, {"type": "string"}]},
        {"anyOf": [{"type": "integer"}, {"type": "array", "items": {"$ref": "#"}}]},
        {"$ref": "#/nowhere"},
    ]
)


@given(_ANY_SCHEMA, _CALLS, st.booleans(), st.booleans())
def test_any_call_sequence_is_total_and_consistent(
    schema: Any, calls: list[Event], truncated: bool, infer_types: bool
) -> None:
    builder = XmlValueBuilder(schema, infer_types=infer_types)
    built = drive(builder, calls, truncated=truncated)
    assert built.joined == json.dumps(built.value, ensure_ascii=False)
    assert set(built.codes) <= ALL_CODES
    assert builder.depth == 0


@given(_ANY_SCHEMA, _CALLS, st.lists(st.integers(0, 20), max_size=4), st.booleans(), st.booleans())
def test_chunk_invariance_for_any_calls(
    schema: Any, calls: list[Event], cuts: list[int], truncated: bool, infer_types: bool
) -> None:
    whole = drive(XmlValueBuilder(schema, infer_types=infer_types), calls, truncated=truncated)
    split = drive(XmlValueBuilder(schema, infer_types=infer_types), split_text(calls, cuts), truncated=truncated)
    assert split.joined == whole.joined
    assert json.dumps(split.value) == json.dumps(whole.value)
    assert split.messages == whole.messages


@given(st.integers(MAX_DEPTH - 2, MAX_DEPTH + 5), st.lists(_NAMES, max_size=8), _ANY_SCHEMA)
def test_deep_nesting_stays_bounded(depth: int, tail: list[str], schema: Any) -> None:
    calls: list[Event] = [("open", "k")] * depth + [("text", "v")] + [("close", name) for name in tail]
    builder = XmlValueBuilder(schema)
    for kind, payload in calls:
        getattr(builder, kind)(payload)
        assert len(builder._stack) <= MAX_DEPTH + 1
    builder.finish(truncated=False)
