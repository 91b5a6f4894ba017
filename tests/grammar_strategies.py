"""Hypothesis strategies for tool schemas the grammar property tests use, and two grammar tools that need no
engine: a recognizer (does the grammar admit this text?) and a sampler (a random text the grammar admits).

Both walk :class:`m2parse.grammar.model.Grammar` directly, so the unit tests check the grammar model itself, and
the compile tests check that each engine reads its printed form.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from hypothesis import strategies as st

from m2parse.grammar.model import Alt, Chars, Expr, Grammar, Lit, Ref, Repeat, Seq

#: Characters the sampler picks from for a character class (filtered by the class): the words' letters, markup
#: and JSON punctuation, whitespace, non-ASCII.
SAMPLE_CHARS = '<>/[]~!beparmtinkvo:_l "\\{}(),x01279dDE+-.\n\té中😀'
NAME_CHARS = "abcdefghijklmnopqrstuvwxyz_"
#: Enum/const strings with markup characters, newlines and things that read as other types.
TRICKY_STRINGS = ["a<b", "line\nbreak", "<", "x]~y", "[e", "é", "  spaced ", "<invoke", "1", "true", "null", "{}"]


# --------------------------------------------------------------------------------------------------- schemas


def _leaf(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["string", "integer", "number", "boolean", "enum", "const", "nullable", "union"]))
    if kind == "string":
        schema: dict[str, Any] = {"type": "string"}
        if draw(st.booleans()):  # unbounded strings: the engine tests bound them with max_free_text
            schema["maxLength"] = draw(st.integers(0, 12))
            if draw(st.booleans()):
                schema["minLength"] = draw(st.integers(0, schema["maxLength"]))
        return schema
    if kind in ("integer", "number", "boolean"):
        return {"type": kind}
    if kind == "enum":
        values = draw(
            st.lists(
                st.sampled_from(TRICKY_STRINGS) | st.integers(-5, 5),
                min_size=1,
                max_size=4,
                unique_by=lambda v: (type(v), v),
            )
        )
        return {"enum": values}
    if kind == "const":
        return {"const": draw(st.sampled_from(TRICKY_STRINGS) | st.booleans())}
    if kind == "nullable":
        return {"type": [draw(st.sampled_from(["string", "integer"])), "null"]}
    return {"anyOf": [{"type": "integer"}, {"type": "boolean"}, {"type": "null"}][: draw(st.integers(2, 3))]}


@st.composite
def json_schemas(draw: st.DrawFn, depth: int = 2, bounded: bool = False) -> dict[str, Any]:
    """A sub-schema: leaves, objects with nested properties/required/additionalProperties false, arrays."""
    if depth <= 0 or draw(st.integers(0, 2)) > 0:
        return _leaf(draw)
    if draw(st.booleans()):
        items = draw(json_schemas(depth - 1, bounded))
        schema: dict[str, Any] = {"type": "array", "items": items}
        if bounded or draw(st.booleans()):
            schema["maxItems"] = draw(st.integers(0, 3))
        return schema
    return draw(object_schemas(depth - 1, bounded))


@st.composite
def object_schemas(draw: st.DrawFn, depth: int = 2, bounded: bool = False, max_props: int = 3) -> dict[str, Any]:
    names = draw(st.lists(st.text(NAME_CHARS, min_size=1, max_size=6), min_size=0, max_size=max_props, unique=True))
    properties = {name: draw(json_schemas(depth, bounded)) for name in names}
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    required = [name for name in names if draw(st.booleans())]
    if required:
        schema["required"] = required
    if draw(st.booleans()):
        schema["additionalProperties"] = False
    return schema


@st.composite
def tool_lists(draw: st.DrawFn, bounded: bool = False, max_tools: int = 3) -> list[dict[str, Any]]:
    names = draw(st.lists(st.text(NAME_CHARS, min_size=1, max_size=8), min_size=1, max_size=max_tools, unique=True))
    return [
        {"type": "function", "function": {"name": name, "parameters": draw(object_schemas(2, bounded, 4))}}
        for name in names
    ]


# --------------------------------------------------------------------------------------------------- recognizer


def accepts(grammar: Grammar, text: str) -> bool:
    """Whether the grammar derives exactly ``text`` (end sets memoised per rule and position; no left recursion
    in m2parse's grammars, so this terminates, in time polynomial in the text)."""
    memo: dict[tuple[str, int], frozenset[int]] = {}

    def ends(expr: Expr, pos: int) -> frozenset[int]:
        if isinstance(expr, Lit):
            return frozenset({pos + len(expr.text)}) if text.startswith(expr.text, pos) else frozenset()
        if isinstance(expr, Chars):
            return frozenset({pos + 1}) if pos < len(text) and in_class(expr, text[pos]) else frozenset()
        if isinstance(expr, Ref):
            key = (expr.name, pos)
            if key not in memo:
                memo[key] = frozenset()  # a rule re-entered at the same position derives nothing new
                memo[key] = ends(grammar.rules[expr.name], pos)
            return memo[key]
        if isinstance(expr, Seq):
            current = frozenset({pos})
            for item in expr.items:
                current = frozenset(e for p in current for e in ends(item, p))
                if not current:
                    break
            return current
        if isinstance(expr, Alt):
            return frozenset(e for item in expr.items for e in ends(item, pos))
        if isinstance(expr, Repeat):
            current = {pos}
            for _ in range(expr.low):
                current = {e for p in current for e in ends(expr.item, p)}
            result = set(current)
            if expr.high is None:  # closure: a position reached once need not be expanded again
                while current:
                    current = {e for p in current for e in ends(expr.item, p)} - result
                    result |= current
            else:
                for _ in range(expr.high - expr.low):
                    current = {e for p in current for e in ends(expr.item, p)}
                    result |= current
            return frozenset(result)
        raise TypeError(expr)

    return len(text) in ends(Ref(grammar.root), 0)


def in_class(expr: Chars, ch: str) -> bool:
    code = ord(ch)
    inside = any(low <= code <= high for low, high in expr.ranges)
    return inside != expr.negated


# --------------------------------------------------------------------------------------------------- sampler


@lru_cache(maxsize=64)
def _class_members(expr: Chars) -> tuple[str, ...]:
    return tuple(ch for ch in SAMPLE_CHARS if in_class(expr, ch))


def sample(grammar: Grammar, data: Any, *, max_repeat: int = 3, max_depth: int = 400) -> str:
    """A random text of the grammar, choices drawn from hypothesis ``data``; repetition past its minimum is
    at most ``max_repeat``; alternations prefer ending (first options) as nesting grows."""
    out: list[str] = []

    def walk(expr: Expr, depth: int) -> None:
        if depth > max_depth:
            raise RecursionError("sample nested too deeply")
        if isinstance(expr, Lit):
            out.append(expr.text)
        elif isinstance(expr, Chars):
            out.append(data.draw(st.sampled_from(_class_members(expr))))
        elif isinstance(expr, Ref):
            walk(grammar.rules[expr.name], depth + 1)
        elif isinstance(expr, Seq):
            for item in expr.items:
                walk(item, depth + 1)
        elif isinstance(expr, Alt):
            last = len(expr.items) - 1 if depth < 40 else 0
            walk(expr.items[data.draw(st.integers(0, last))], depth + 1)
        elif isinstance(expr, Repeat):
            high = expr.low + max_repeat if expr.high is None else min(expr.high, expr.low + max_repeat)
            for _ in range(data.draw(st.integers(expr.low, high))):
                walk(expr.item, depth + 1)

    walk(Ref(grammar.root), 0)
    return "".join(out)
