"""``m2parse FILE --view``: the plain rendering of fixtures against expected text, colours only when asked.

The expected files (fixtures/views/NAME.view) were read line by line against the fixtures' raw text: the caret of
each problem sits under the character its offset names.
"""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from m2parse import parse, sequential_ids
from m2parse.view import excerpt, render_view, use_color

from .fixture_loader import FIXTURES_DIR, load_fixture

VIEWS = FIXTURES_DIR / "views"
NAMES = sorted(path.stem for path in VIEWS.glob("*.view"))


def expected(name: str) -> str:
    return (VIEWS / f"{name}.view").read_text(encoding="utf-8")


def test_there_are_views_with_problems() -> None:
    assert len(NAMES) >= 5
    assert sum("== problems" in expected(name) for name in NAMES) >= 4


@pytest.mark.parametrize("name", NAMES)
def test_plain_rendering_matches_expected_text(name: str) -> None:
    fixture = load_fixture(name)
    result = parse(fixture.text, fixture.tools, id_factory=sequential_ids(), **fixture.options)
    assert render_view(result, fixture.text) == expected(name)


@pytest.mark.parametrize("name", NAMES)
def test_every_caret_points_at_its_offset(name: str) -> None:
    """Independent of the expected files: the character above each caret is the one at the problem's offset."""
    fixture = load_fixture(name)
    result = parse(fixture.text, fixture.tools, **fixture.options)
    for problem in result.problems:
        *_, line, caret = excerpt(fixture.text, problem.offset)
        column = caret.index("^")
        if problem.offset < len(fixture.text):
            ch = fixture.text[problem.offset]
            assert line[column] == ch, (problem, line, caret)
        else:
            assert caret.endswith("(end of output)") and column == len(line)


def test_cli_view_is_plain_when_not_a_terminal() -> None:
    tools = FIXTURES_DIR / "tools" / "weather.json"
    proc = subprocess.run(
        [sys.executable, "-m", "m2parse", str(FIXTURES_DIR / "unknown_tool.txt"), "--tools", str(tools), "--view",
         "--deterministic-ids"],
        capture_output=True, text=True, encoding="utf-8", check=False, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == expected("unknown_tool")
    assert "\x1b" not in proc.stdout


def test_view_and_stream_together_are_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "m2parse", str(FIXTURES_DIR / "weather_basic.txt"), "--view", "--stream"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and "--view" in proc.stderr and "Traceback" not in proc.stderr


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_tty_and_never_with_no_color() -> None:
    assert use_color(FakeTTY(), {}) is True
    assert use_color(FakeTTY(), {"NO_COLOR": "1"}) is False
    assert use_color(FakeTTY(), {"NO_COLOR": ""}) is True  # no-color.org: set *and non-empty*
    assert use_color(io.StringIO(), {}) is False


def test_colour_dims_reasoning_and_marks_codes() -> None:
    fixture = load_fixture("unknown_tool")
    result = parse(fixture.text, fixture.tools, id_factory=sequential_ids())
    coloured = render_view(result, fixture.text, color=True)
    assert "\x1b[2mThe user asked for AAPL" in coloured
    assert "\x1b[31munknown_tool\x1b[0m" in coloured
    assert "\x1b[" not in render_view(result, fixture.text)


def test_control_characters_are_shown_not_obeyed() -> None:
    text = 'r\x1b[2J\n</think>\n<minimax:tool_call>\n<invoke name="x\x07y">\n<parameter name="a">1\r2</parameter>'
    view = render_view(parse(text), text)
    assert "\x1b" not in view and "\x07" not in view and "\r" not in view
    assert "r\\u001b[2J" in view and "x\\u0007y" in view


def test_caret_under_wide_characters() -> None:
    text = "中文 text\nsecond"
    line, caret = excerpt(text, 3)
    assert line.endswith("中文 text") and caret.endswith("|      ^")  # two columns per CJK character


def test_readme_example_is_the_real_output() -> None:
    readme = (FIXTURES_DIR.parent / "README.md").read_text(encoding="utf-8")
    assert "```text\n" + expected("missing_parameter_close") + "```" in readme


@given(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126) | st.just("\n"), max_size=300),
    st.integers(min_value=0, max_value=320),
)
def test_caret_sits_under_the_offset_for_any_text(text: str, offset: int) -> None:
    """For any printable ASCII text with line breaks and any offset (past the end too): the line before (when
    there is one), the excerpt line, the caret; the caret's column holds the character at the offset."""
    lines = excerpt(text, offset)
    offset = min(offset, len(text))
    assert len(lines) == (3 if "\n" in text[:offset] else 2)
    line, caret = lines[-2:]
    column = caret.index("^")
    if offset < len(text) and text[offset] != "\n":
        assert line[column] == text[offset]
    else:
        assert column == len(line)  # at a line's end: the caret just past its last character
