"""m2parse.grammar: golden grammars, the grammar model against the parser (every text a grammar admits parses
with no problem and validates), the renderer's history against the grammar, the CLI, and (where xgrammar is
installed: the integration venv) xgrammar compiling every generated grammar and agreeing with the recognizer.

The real engines are asked in tests/engines/*/test_grammar_*.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from m2parse import parse
from m2parse.grammar import (
    CONTENT_WORDS,
    REASONING_WORDS,
    VALUE_WORDS,
    GrammarError,
    GrammarOptions,
    build_grammar,
    structural_tag,
    write,
)
from m2parse.render import render_assistant_turn
from m2parse.schema import normalize_tools, validate_arguments

from .grammar_strategies import accepts, sample, tool_lists

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "fixtures" / "grammars"
UPDATE = os.environ.get("M2PARSE_UPDATE_GOLDEN") == "1"

WEATHER = json.loads((ROOT / "fixtures" / "tools" / "weather.json").read_text())
NESTED = [
    {
        "type": "function",
        "function": {
            "name": "create_event",
            "parameters": {
                "type": "object",
                "properties": {
                    "title": {"type": "string", "maxLength": 40},
                    "attendees": {
                        "type": "array",
                        "maxItems": 5,
                        "items": {
                            "type": "object",
                            "properties": {"email": {"type": "string"}, "role": {"enum": ["host", "guest"]}},
                            "required": ["email"],
                            "additionalProperties": False,
                        },
                    },
                    "priority": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                    "all_day": {"type": "boolean"},
                    "location": {"$ref": "#/$defs/place"},
                },
                "required": ["title", "attendees"],
                "$defs": {"place": {"type": "object", "properties": {"name": {"type": "string"}}}},
            },
        },
    }
]
RECURSIVE = [
    {
        "type": "function",
        "function": {
            "name": "tree",
            "parameters": {
                "type": "object",
                "properties": {"root": {"$ref": "#/$defs/node"}},
                "required": ["root"],
                "$defs": {
                    "node": {
                        "type": "object",
                        "properties": {
                            "label": {"type": "string"},
                            "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                        },
                        "required": ["label"],
                    }
                },
            },
        },
    }
]

#: name -> (tools, tool_choice, lazy, options, dialect)
GOLDEN_CASES: dict[str, tuple[Any, Any, bool, GrammarOptions, str]] = {
    "weather_required.gbnf": (WEATHER, "required", False, GrammarOptions(), "gbnf"),
    "weather_named_bounded.xgrammar.ebnf": (
        WEATHER,
        {"type": "function", "function": {"name": "get_weather"}},
        False,
        GrammarOptions(max_free_text=32, max_calls=1),
        "xgrammar",
    ),
    "weather_lazy.gbnf": (WEATHER, "auto", True, GrammarOptions(), "gbnf"),
    "nested_required_bounded.gbnf": (NESTED, "required", False, GrammarOptions(max_free_text=16), "gbnf"),
    "recursive_required_bounded.xgrammar.ebnf": (
        RECURSIVE,
        "required",
        False,
        GrammarOptions(max_free_text=8, max_items=2, max_ref_depth=3),
        "xgrammar",
    ),
}


def golden_grammar(name: str) -> str:
    tools, choice, lazy, options, dialect = GOLDEN_CASES[name]
    return write(build_grammar(tools, choice, lazy=lazy, options=options), dialect)


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden_grammars(name: str) -> None:
    text = golden_grammar(name)
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; review and rerun with M2PARSE_UPDATE_GOLDEN=1"


# ------------------------------------------------------------------------------------------- parser agreement


def check_output(text: str, tools: list[dict[str, Any]], allowed: set[str], grammar_notes: list[str]) -> Any:
    """The constrained-output guarantee: no problem, every call an allowed tool, arguments valid (unless the
    grammar said it could not enforce part of the schema)."""
    message = parse(text, tools)
    codes = [p.code for p in message.problems]
    assert [c for c in codes if not (grammar_notes and c == "schema_violation")] == [], (text, message.problems)
    assert message.tool_calls, text
    specs = normalize_tools(tools)
    for call in message.tool_calls:
        assert call.name in allowed
        if not grammar_notes:
            assert validate_arguments(specs[call.name], call.arguments) == [], (text, call.arguments)
    return message


@pytest.mark.parametrize("tools", [WEATHER, NESTED, RECURSIVE], ids=["weather", "nested", "recursive"])
@pytest.mark.parametrize("bound", [None, 6])
@given(data=st.data())
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_sampled_outputs_parse_cleanly(tools: list[dict[str, Any]], bound: int | None, data: Any) -> None:
    grammar = build_grammar(tools, "required", options=GrammarOptions(max_free_text=bound, max_items=3))
    text = sample(grammar, data)
    assert accepts(grammar, text)
    check_output(text, tools, {t["function"]["name"] for t in tools}, grammar.notes)


@given(tools=tool_lists(), data=st.data())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_generated_schemas_sampled_outputs_parse_cleanly(tools: list[dict[str, Any]], data: Any) -> None:
    """The unit-level twin of the engine property test: hypothesis schemas, random texts of their grammar."""
    names = [t["function"]["name"] for t in tools]
    choice = data.draw(st.sampled_from(["required", *names]))
    bound = data.draw(st.sampled_from([None, 4]))
    try:
        grammar = build_grammar(tools, choice, options=GrammarOptions(max_free_text=bound, max_items=2))
    except GrammarError:
        return  # e.g. every tool needs a required enum whose strings all hold markup
    text = sample(grammar, data)
    allowed = set(names) if choice == "required" else {choice}
    check_output(text, tools, allowed, grammar.notes)


@given(tools=tool_lists(), data=st.data())
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_renderer_history_is_admitted(tools: list[dict[str, Any]], data: Any) -> None:
    """What the renderer writes for a call (arguments in declared order, strings raw, JSON for the rest) is a text
    of the grammar: history and constrained output agree on parameter order and value spelling."""
    grammar = build_grammar(tools, "required", options=GrammarOptions(max_items=2))
    message = parse(sample(grammar, data), tools)
    turn = render_assistant_turn(
        {"reasoning_content": "think", "content": None, "tool_calls": [c.to_openai() for c in message.tool_calls]}
    )
    assert turn.startswith("<think>\n")
    assert accepts(grammar, turn[len("<think>\n") :]), turn


def test_auto_whole_output_admits_plain_answers_and_calls() -> None:
    grammar = build_grammar(WEATHER, "auto")
    call = (
        '<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="location">Paris</parameter>\n'
        "</invoke>\n</minimax:tool_call>"
    )
    assert accepts(grammar, "r</think>\n\nJust text.")
    assert accepts(grammar, "r</think>\n\nLet me check.\n" + call)
    assert not accepts(grammar, "r</think>\n\nx<minimax:tool_call>y")
    assert not accepts(grammar, "r</think>\n\nJust text ending in a partial tag </thi")


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ('<parameter name="location">a</invoke>b</parameter>', False),
        ('<parameter name="location">a<parameter name="x">b</parameter>', False),
        ('<parameter name="location">a]~b]b</parameter>', False),
        ('<parameter name="location">a<b\n</parameter', True),
        ('<parameter name="location">x</parameter>\n<parameter name="unit">kelvin</parameter>', False),
        ('<parameter name="location">x</parameter>\n<parameter name="days">3.5</parameter>', False),
        ('<parameter name="location">x</parameter>\n<parameter name="days">12</parameter>', True),
        ('<parameter name="days">12</parameter>\n<parameter name="location">x</parameter>', False),  # order
        ('<parameter name="unit">celsius</parameter>', False),  # location is required
        ('<parameter name="location">x</parameter>\n<parameter name="other">1</parameter>', False),
    ],
)
def test_weather_values(text: str, ok: bool) -> None:
    grammar = build_grammar(WEATHER, "required")
    if text.endswith("</parameter"):
        text += ">"
    full = f'r</think>\n\n<minimax:tool_call>\n<invoke name="get_weather">\n{text}\n</invoke>\n</minimax:tool_call>'
    assert accepts(grammar, full) is ok


def test_named_tool_allows_only_that_tool() -> None:
    tools = [*WEATHER, {"type": "function", "function": {"name": "other", "parameters": {"type": "object"}}}]
    grammar = build_grammar(tools, {"type": "function", "function": {"name": "other"}})
    assert accepts(grammar, 'r</think>\n\n<minimax:tool_call>\n<invoke name="other">\n</invoke>\n</minimax:tool_call>')
    assert not accepts(
        grammar,
        'r</think>\n\n<minimax:tool_call>\n<invoke name="get_weather">\n'
        '<parameter name="location">x</parameter>\n</invoke>\n</minimax:tool_call>',
    )


def test_max_calls_and_lazy_root() -> None:
    one = '<invoke name="get_weather">\n<parameter name="location">x</parameter>\n</invoke>\n'
    grammar = build_grammar(WEATHER, "required", options=GrammarOptions(max_calls=1))
    assert accepts(grammar, f"</think>\n\n<minimax:tool_call>\n{one}</minimax:tool_call>")
    assert not accepts(grammar, f"</think>\n\n<minimax:tool_call>\n{one}{one}</minimax:tool_call>")
    lazy = build_grammar(WEATHER, "auto", lazy=True)
    assert accepts(lazy, f"<minimax:tool_call>\n{one}{one}</minimax:tool_call>")


def test_words_and_errors() -> None:
    assert "</think>" in REASONING_WORDS and "<minimax:tool_call>" in CONTENT_WORDS and "</parameter>" in VALUE_WORDS
    with pytest.raises(GrammarError, match="not in the tools"):
        build_grammar(WEATHER, "nope")
    with pytest.raises(GrammarError, match="needs no grammar"):
        build_grammar(WEATHER, "none")
    required_recursion = [
        {
            "name": "loop",
            "parameters": {
                "type": "object",
                "properties": {"a": {"$ref": "#/$defs/n"}},
                "required": ["a"],
                "$defs": {"n": {"type": "object", "properties": {"n": {"$ref": "#/$defs/n"}}, "required": ["n"]}},
            },
        }
    ]
    with pytest.raises(GrammarError, match="cannot be generated"):
        build_grammar(required_recursion, "required")


def test_unenforced_keywords_are_noted() -> None:
    tools = [
        {
            "name": "f",
            "parameters": {
                "type": "object",
                "properties": {
                    "code": {"type": "string", "pattern": "^[A-Z]+$"},
                    "n": {"type": "integer", "maximum": 3},
                    "choice": {"oneOf": [{"type": "integer"}, {"type": "number"}]},
                },
            },
        }
    ]
    notes = " | ".join(build_grammar(tools).notes)
    assert "pattern" in notes and "ranges" in notes and "oneOf" in notes
    union = {"anyOf": [{"type": "string"}, {"type": "integer", "enum": [5]}]}  # "42" would read as a bad integer
    assert build_grammar([{"name": "f", "parameters": {"properties": {"u": union}}}]).notes
    plain = {"anyOf": [{"type": "string"}, {"type": "integer"}]}
    assert build_grammar([{"name": "f", "parameters": {"properties": {"u": plain}}}]).notes == []


def test_cli_prints_grammar_and_notes(tmp_path: Path) -> None:
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps(WEATHER))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "m2parse",
            "grammar",
            "--tools",
            str(tools),
            "--dialect",
            "xgrammar",
            "--tool-choice",
            "get_weather",
            "--max-calls",
            "1",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("root ::= ")
    assert 'invoke name=\\"get_weather\\"' in run.stdout
    assert "note: not enforced: number ranges" in run.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "m2parse", "grammar", "--tools", str(tools), "--tool-choice", "x"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "not in the tools" in bad.stderr


# ------------------------------------------------------------------------------------------- xgrammar compiles


@pytest.mark.vllm
@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_xgrammar_compiles_golden(name: str) -> None:
    xgrammar = pytest.importorskip("xgrammar")
    tools, choice, lazy, options, _ = GOLDEN_CASES[name]
    for dialect in ("xgrammar", "gbnf"):  # the two printers differ in nothing xgrammar reads differently
        xgrammar.Grammar.from_ebnf(write(build_grammar(tools, choice, lazy=lazy, options=options), dialect))


@pytest.mark.vllm
@given(tools=tool_lists(), data=st.data())
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_xgrammar_compiles_and_agrees(tools: list[dict[str, Any]], data: Any) -> None:
    """xgrammar compiles every generated grammar and admits the texts the recognizer admits."""
    xgrammar = pytest.importorskip("xgrammar")
    from xgrammar.testing import _is_grammar_accept_string

    bound = data.draw(st.sampled_from([None, 4]))
    grammar = build_grammar(tools, "required", options=GrammarOptions(max_free_text=bound, max_items=2))
    compiled = xgrammar.Grammar.from_ebnf(write(grammar, "xgrammar"))
    text = sample(grammar, data)
    assert _is_grammar_accept_string(compiled, text), text
    assert not _is_grammar_accept_string(compiled, text + "]~b]")


@pytest.mark.vllm
def test_xgrammar_structural_tag_is_lazy() -> None:
    """The xgrammar lazy form: any text until the opener, then only a valid block, then the end."""
    xgrammar = pytest.importorskip("xgrammar")
    from xgrammar.testing import _is_grammar_accept_string

    compiled = xgrammar.Grammar.from_structural_tag(json.dumps(structural_tag(WEATHER)))
    call = (
        '<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="location">Paris</parameter>\n'
        "</invoke>\n</minimax:tool_call>"
    )
    assert _is_grammar_accept_string(compiled, "free </think> text <think> " + call)
    assert _is_grammar_accept_string(compiled, "only text")
    assert not _is_grammar_accept_string(compiled, "x" + call.replace('"location"', '"place"'))
    assert not _is_grammar_accept_string(compiled, "x" + call + "more")
