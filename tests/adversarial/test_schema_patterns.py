"""Catastrophic regexes in ``pattern`` and ``patternProperties``: with google-re2 they are checked in linear
time; without it, only the linear subset runs on Python's ``re`` and the rest is reported as not checked."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from m2parse.schema import normalize_tools, parameter_schema, tool_schema_error, validate_arguments
from m2parse.schema_guard import (
    GuardedSchema,
    PatternEngine,
    PythonSubsetEngine,
    Re2Engine,
    default_engine,
    guard_schema,
    python_subset_reason,
)

re2 = pytest.importorskip("re2", reason="the [re2] extra (in [test]) is not installed")

RE2 = Re2Engine(re2)
PYTHON = PythonSubsetEngine()
ENGINES = pytest.mark.parametrize("engine", [RE2, PYTHON], ids=["re2", "python-subset"])
EVIL = ["^(a+)+$", "^(a|a)*$", "^(a|aa)+$", "(a+a+)+y", "^(\\w+\\s?)*$", "^([a-z]+)*[0-9]$"]
HOSTILE = "a" * 26 + "!"


def guarded(schema: dict[str, Any], engine: PatternEngine) -> GuardedSchema:
    result = guard_schema(schema, engine=engine)
    assert isinstance(result, GuardedSchema), result
    return result


def test_the_default_engine_is_re2_when_installed() -> None:
    assert default_engine().name == "re2"


@ENGINES
@pytest.mark.parametrize("pattern", EVIL)
def test_evil_pattern_on_a_value(engine: PatternEngine, pattern: str) -> None:
    schema = {"type": "object", "properties": {"x": {"type": "string", "pattern": pattern}}}
    messages = guarded(schema, engine).errors({"x": HOSTILE})
    assert len(messages) == 1
    if engine is RE2:
        assert messages[0] == f"$.x: {HOSTILE!r} does not match {pattern!r}"
    else:
        assert messages[0].startswith(f"$.x: pattern {pattern!r} was not checked:") and "m2parse[re2]" in messages[0]


@ENGINES
@pytest.mark.parametrize("pattern", EVIL)
def test_evil_pattern_as_a_property_name(engine: PatternEngine, pattern: str) -> None:
    schema = {"type": "object", "patternProperties": {pattern: {"type": "integer"}}, "additionalProperties": False}
    checked = guarded(schema, engine)
    messages = checked.errors({HOSTILE: 1, "aaaa": "not an integer"})
    if engine is RE2:
        assert checked.search(pattern, HOSTILE) is False
        assert any(f"{HOSTILE!r}" in m and "not match any of the regexes" in m for m in messages)
    else:
        assert checked.search(pattern, HOSTILE) is None
        assert messages == [f"$: pattern {pattern!r} was not checked: {PYTHON.compile(pattern)}"]


def test_parameter_names_use_the_engine() -> None:
    """parameter_schema reads a model-written name against patternProperties: never Python's re on an evil one."""
    schema = {"type": "object", "patternProperties": {"^(a+)+$": {"type": "integer"}}, "additionalProperties": False}
    spec = normalize_tools([{"name": "f", "parameters": schema}])["f"]
    assert parameter_schema(spec, HOSTILE) == (False, None)
    assert parameter_schema(spec, "aaaa") == (True, {"type": "integer"})
    assert tool_schema_error(spec) is None


def test_library_default_checks_evil_patterns() -> None:
    schema = {"type": "object", "properties": {"x": {"pattern": "^(a+)+$"}}, "patternProperties": {"^(a+)+$": {}}}
    spec = normalize_tools([{"name": "f", "parameters": schema}])["f"]
    assert validate_arguments(spec, {"x": HOSTILE, HOSTILE: 1}) == [f"$.x: {HOSTILE!r} does not match '^(a+)+$'"]


def test_unevaluated_properties_with_an_unsafe_pattern_is_refused() -> None:
    """jsonschema's unevaluatedProperties matches patternProperties with Python's re itself: refuse that mix."""
    bad = {"type": "object", "patternProperties": {"^(a+)+$": {}}, "unevaluatedProperties": False}
    assert "unevaluatedProperties" in str(guard_schema(bad, engine=RE2))
    fine = {"type": "object", "patternProperties": {"^a": {}}, "unevaluatedProperties": False}
    checked = guarded(fine, RE2)
    assert checked.errors({"ab": 1}) == [] and len(checked.errors({"b": 1})) == 1


def test_format_is_not_asserted() -> None:
    """No format check runs on model output (as before): format: regex would compile it with Python's re."""
    schema = {"type": "object", "properties": {"x": {"format": "regex"}, "y": {"format": "email"}}}
    assert guarded(schema, RE2).errors({"x": "(a+)+(", "y": "nope"}) == []


def test_lone_surrogate_reaches_re2_safely() -> None:
    schema = {"type": "object", "properties": {"x": {"pattern": "^a.b$"}}}
    assert guarded(schema, RE2).errors({"x": "a\ud800b"}) == []


@pytest.mark.parametrize(
    ("pattern", "safe"),
    [
        ("^[a-z]+$", True),
        ("abc", True),
        ("^\\d{3}-\\d{4}$", True),
        ("^[a-z0-9_-]{1,64}$", True),
        ("^(?:foo|bar)baz+$", True),
        ("[+*?]x", True),
        ("^a\\+b*$", True),
        ("^(a+)+$", False),
        ("(a|aa)*c", False),
        ("^a*a*$", False),
        ("a+b", False),
        ("^a+|b", False),
        ("^(a|b)+$", False),
        ("(?=a)a", False),
        ("(a)\\1", False),
        ("(?P<x>a)(?P=x)", False),
        ("a{2000}", False),
        ("^a?a?a?aaa$", False),
    ],
)
def test_python_subset(pattern: str, safe: bool) -> None:
    assert (python_subset_reason(pattern) is None) is safe


ATOMS = st.sampled_from(["a", "b", "[ab]", ".", "(?:a|b)", "(?:ab)", "\\d", "x"])
QUANTIFIERS = st.sampled_from(["", "", "*", "+", "?", "{2}", "{1,3}"])


@st.composite
def small_patterns(draw: st.DrawFn) -> str:
    anchored = draw(st.booleans())
    pieces = [draw(ATOMS) + draw(QUANTIFIERS) for _ in range(draw(st.integers(1, 4)))]
    return ("^" if anchored else "") + "".join(pieces)


@given(small_patterns(), st.lists(st.text("abx1", max_size=8), max_size=5))
def test_engines_agree_with_python_re(pattern: str, texts: list[str]) -> None:
    """Where an engine gives a matcher, it answers what Python's re answers (on this shared syntax)."""
    for engine in (RE2, PYTHON):
        matcher = engine.compile(pattern)
        if isinstance(matcher, str):
            assert engine is PYTHON and python_subset_reason(pattern) is not None
            continue
        for text in texts:
            assert matcher(text) == (re.search(pattern, text) is not None), (engine.name, pattern, text)


@given(st.text(max_size=30))
def test_subset_check_never_raises(pattern: str) -> None:
    for engine in (RE2, PYTHON):
        assert isinstance(engine.compile(pattern), str) or callable(engine.compile(pattern))


def test_a_rejected_pattern_prints_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    """RE2 logs rejected patterns to stderr by default; the CLI promises one line there."""
    assert isinstance(RE2.compile("("), str) and isinstance(RE2.compile("(?=a)"), str)
    assert capfd.readouterr().err == ""
