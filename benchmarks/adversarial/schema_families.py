"""Validation cost against hostile-but-allowed schemas: each family grows the arguments (or a pattern's input)
and must stay linear. Schemas over the limits never get this far (tests/adversarial/test_schema_limits.py)."""

from __future__ import annotations

from typing import Any

from m2parse.schema_guard import GuardedSchema, PythonSubsetEngine, SchemaLimits, default_engine, guard_schema

from .common import Family


def _guarded(schema: dict[str, Any], **options: Any) -> GuardedSchema:
    result = guard_schema(schema, **options)
    if not isinstance(result, GuardedSchema):
        raise SystemExit(f"schema_families: a family's schema was refused: {result}")
    return result


#: Allowed, and as costly per element as the limits let it be: unions, a pattern, uniqueness, refs.
_UNIONS = _guarded(
    {
        "type": "object",
        "properties": {"xs": {"type": "array", "uniqueItems": True, "items": {"$ref": "#/$defs/item"}}},
        "$defs": {
            "item": {
                "anyOf": [
                    {"type": "integer", "minimum": 0},
                    {"type": "string", "pattern": "^(a+)+$"},
                    {"type": "object", "properties": {"k": {"$ref": "#/$defs/item"}}, "additionalProperties": False},
                    {"type": "null"},
                ]
            }
        },
    }
)
_EVIL = {"type": "string", "pattern": "^(a+)+$"}
_EVIL_PATTERN = _guarded({"type": "object", "properties": {"x": _EVIL, "xs": {"items": _EVIL}}})
_SUBSET = {"type": "string", "pattern": "^[a-z]+$"}
_SUBSET_PATTERN = _guarded(
    {"type": "object", "properties": {"x": _SUBSET, "xs": {"items": _SUBSET}}}, engine=PythonSubsetEngine()
)
_HOSTILE = "a" * 26 + "!"  # 2**26 steps for a backtracking engine against ^(a+)+$
_KEYS = _guarded(
    {
        "type": "object",
        "patternProperties": {"^(a+)+$": {"type": "integer"}, "^k[0-9]+$": {"type": "string"}},
        "additionalProperties": False,
    }
)
#: Applies itself twice per level: the budget (linear in the arguments) is what stops it.
_DOUBLING = _guarded(
    {
        "$defs": {
            "a": {
                "type": "object",
                "properties": {"p": {"$ref": "#/$defs/a"}},
                "patternProperties": {"^p$": {"$ref": "#/$defs/a"}},
            }
        },
        "$ref": "#/$defs/a",
    },
    limits=SchemaLimits(base_work=0),
)


def _union_items(n: int) -> dict[str, Any]:
    """Distinct items, a quarter of each kind; the strings fail the pattern and the negatives fail every branch."""
    return {"xs": [[i, "a" * (i % 7 + 1) + str(i), {"k": {"k": i}}, -i - 1][i % 4] for i in range(n)]}


def _doubling(n: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(min(n, 60)):
        value = {"p": value}
    return {"p": value, "pad": "x" * n}


_ENGINE = default_engine().name

FAMILIES = [
    Family(
        f"schema: unions, n items ({_ENGINE})",
        _union_items,
        _UNIONS.errors,
        n=2_000,
        quick_n=100,
    ),
    Family(
        f"schema: ^(a+)+$ on n 27-char values ({_ENGINE})",
        lambda n: {"xs": [_HOSTILE] * n},
        _EVIL_PATTERN.errors,
        n=5_000,
        quick_n=500,
    ),
    Family(
        f"schema: ^(a+)+$ on n chars ({_ENGINE})",
        lambda n: {"x": "a" * n + "!"},
        _EVIL_PATTERN.errors,
        n=3_000_000,
        quick_n=3_000_000,
    ),
    Family(
        "schema: ^[a-z]+$ on n chars (py subset)",
        lambda n: {"x": "a" * n + "!"},
        _SUBSET_PATTERN.errors,
        n=3_000_000,
        quick_n=3_000_000,
    ),
    Family(
        "schema: patternProperties, n keys",
        lambda n: {"a" * (i % 30 + 1) + "!" + str(i): 1 for i in range(n)},
        _KEYS.errors,
        n=10_000,
        quick_n=1_000,
    ),
    Family(
        "schema: self-doubling, n chars",
        _doubling,
        _DOUBLING.errors,
        n=2_000,
        quick_n=100,
    ),
]
