"""The two-stage split the vLLM and SGLang integrations share, for MiniMax-M3, without either engine.

Reasoning stage (``ReasoningSplit``) then content stage (a machine that starts inside reasoning, closed at once)
must give exactly ``parse(..., format="m3", thinking_mode=…)``, whatever the chunking: that is what makes the
``m2parse_m3`` / ``m2parse-m3`` plugins equal to ``parse()`` inside the engines.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from m2parse import StreamParser, parse
from m2parse.formats import m3
from m2parse.integrations.reasoning_split import ReasoningSplit
from m2parse.integrations.sglang.split import split_whole

from .m3_cases import Case, m3_cases

CASES = [c for c in m3_cases() if dict(c.options).get("reasoning") != "inline"]
MODES = ["enabled", "disabled", "adaptive", None]


def two_stages(case: Case, pieces: list[str], *, mark_close: bool) -> tuple[str | None, str, list[tuple[str, str]]]:
    """(reasoning, content, calls) as an engine assembles them: deltas go to the reasoning stage until it hands
    off, then straight to the content stage (as vLLM and SGLang route them)."""
    split = ReasoningSplit(model_format="m3", thinking_mode=case.thinking_mode, mark_close=mark_close)
    content = StreamParser(case.tools, format="m3", thinking_mode="enabled", **dict(case.options))
    if not mark_close:
        content.feed(m3.THINK_CLOSE)  # what the vLLM tool parser does; SGLang's hand-off carries the close
    reasoning: list[str] = []
    for piece in pieces:
        if split.handed_off:
            content.feed(piece)
            continue
        text, handoff = split.feed(piece)
        reasoning.append(text)
        if handoff:
            content.feed(handoff)
    text, rest = split.finish()
    reasoning.append(text)
    content.finish()
    result = split.parser.result.reasoning_content
    assert "".join(reasoning) == (result or "")
    calls = [(c.name, c.arguments_json) for c in content.result.tool_calls]
    return result, (content.result.content or "") + rest, calls


def reference(case: Case) -> tuple[str | None, str, list[tuple[str, str]]]:
    ref = parse(case.text, case.tools, format="m3", thinking_mode=case.thinking_mode, **dict(case.options))
    return ref.reasoning_content, ref.content or "", [(c.name, c.arguments_json) for c in ref.tool_calls]


def chunked(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(len(text), max(0, c)) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points)] or [""]


@given(st.sampled_from(CASES), st.lists(st.integers(0, 400), max_size=30), st.booleans())
def test_two_stages_equal_parse_for_any_chunking(case: Case, cuts: list[int], mark_close: bool) -> None:
    got = two_stages(case, chunked(case.text, cuts), mark_close=mark_close)
    want = reference(case)
    assert got[1:] == want[1:]
    assert (got[0] or None) == (want[0] or None)


PIECES = ["a", " ", "\n", "<", ">", "/", m3.THINK_OPEN, m3.THINK_CLOSE, m3.TOOL_CALL_OPEN, "[e~["]


@given(
    st.sampled_from(MODES),
    st.lists(st.sampled_from(PIECES), max_size=12).map("".join),
    st.lists(st.integers(0, 200), max_size=10),
)
def test_generated_reasoning_markup(mode: str | None, text: str, cuts: list[int]) -> None:
    """Think tags, blanks and turn markers in any order and any mode: the split still equals parse()."""
    case = Case("generated", text, None, mode)
    got = two_stages(case, chunked(text, cuts), mark_close=False)
    want = reference(case)
    assert got[1:] == want[1:] and (got[0] or None) == (want[0] or None)


def test_split_whole_equals_parse() -> None:
    for case in CASES:
        reasoning, rest = split_whole(case.text, mark_close=True, model_format="m3", thinking_mode=case.thinking_mode)
        content = StreamParser(case.tools, format="m3", thinking_mode="enabled", **dict(case.options))
        if rest.startswith(m3.THINK_CLOSE):
            content.feed(rest)
            content.finish()
            answer: Any = content.result.content or ""
        else:
            answer = rest
        want = reference(case)
        assert (reasoning or None, answer) == (want[0] or None, want[1]), case.name
