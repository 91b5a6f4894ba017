"""Every fixture parses to its hand-derived expectation (written from the rules, not from the parser)."""

from __future__ import annotations

import pytest

from m2parse import parse, sequential_ids

from .fixture_loader import Fixture, all_fixtures, all_m3_fixtures

FIXTURES = all_fixtures()
M3_FIXTURES = all_m3_fixtures()


def test_there_are_fixtures() -> None:
    assert len(FIXTURES) >= 30


def test_there_are_m3_fixtures() -> None:
    assert len(M3_FIXTURES) >= 15
    assert all(f.options.get("format") == "m3" for f in M3_FIXTURES)


@pytest.mark.parametrize("fixture", FIXTURES + M3_FIXTURES, ids=lambda f: f.name)
def test_fixture_matches_expectation(fixture: Fixture) -> None:
    result = parse(fixture.text, fixture.tools, id_factory=sequential_ids(), **fixture.options)
    expected = fixture.expected
    assert result.content == (expected["content"] or ""), "content"
    assert result.reasoning_content == expected["reasoning_content"], "reasoning_content"
    got_calls = [{"name": c.name, "arguments": c.arguments, "truncated": c.truncated} for c in result.tool_calls]
    assert got_calls == expected["tool_calls"], "tool_calls"
    assert [p.code for p in result.problems] == expected["problems"], [p.message for p in result.problems]
