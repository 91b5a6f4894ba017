"""Parameter values as grammar rules, from JSON schemas: what the parser will read back as a valid value.

Two spellings exist. A **raw** value is what sits between ``<parameter name="k">`` and ``</parameter>``: a string
is written verbatim, anything else as its JSON text (this is what the renderer writes into history, and what
:mod:`m2parse.schema` reads). Inside objects and arrays everything is **JSON**.

Every rule admits only texts the parser converts without a problem and that validate against the keywords this
module enforces. Keywords it cannot express are recorded as notes on the grammar (never silently claimed); see
docs/grammar.md for the list.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..format import INVOKE_CLOSE, PARAMETER_CLOSE, PARAMETER_TAG, TOOL_CALL_CLOSE, TURN_MARKERS
from ..schema import _allowed_types, _resolve
from .model import Expr, Grammar, Lit, Ref, Repeat, alt, chars, opt, seq
from .text import free_text

#: Words a value must not hold: each would end the value, the call or the turn early (docs/architecture.md,
#: rules 6 and 9). ``<parameter`` is excluded whole, though only ``<parameter`` + whitespace opens a tag.
VALUE_WORDS = (PARAMETER_CLOSE, INVOKE_CLOSE, TOOL_CALL_CLOSE, "<" + PARAMETER_TAG, *TURN_MARKERS)
#: JSON numbers the grammar writes: plain ``-?int(.frac)?`` with an integer part of at most 18 digits (fits int64)
#: and a fraction of at most 20, or scientific ``-?d(.ddd)?e±N`` with one leading digit, a fraction of at most 16
#: and an exponent of at most 307. Every such number is a finite float, and its ``json.dumps`` spelling (what the
#: renderer writes back into history: at most 17 significant digits, exponent form outside 1e-4..1e16) is again
#: one of them.
INT_DIGITS = 18
FRACTION_DIGITS = 20
MANTISSA_FRACTION_DIGITS = 16
MAX_EXPONENT = 307
#: Characters left out of length-bounded strings (``maxLength`` honoured exactly as a bounded repetition): the
#: first characters of the excluded words, so no word can form.
_LENGTH_BOUNDED_EXCLUDED = "<[]"
_ANNOTATIONS = frozenset({"type", "description", "title", "default", "examples", "$comment", "deprecated"})
_NUMBER_RANGE = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_UNENFORCED_STRING = ("pattern", "format", "contentEncoding", "contentMediaType")
_UNENFORCED_OBJECT = (
    "minProperties",
    "maxProperties",
    "patternProperties",
    "dependencies",
    "dependentRequired",
    "dependentSchemas",
    "propertyNames",
    "unevaluatedProperties",
    "if",
    "not",
)
_UNENFORCED_ARRAY = ("uniqueItems", "contains", "minContains", "maxContains", "unevaluatedItems")


@dataclass(frozen=True)
class ValueOptions:
    """Bounds that make a grammar finite where the schema is not (see GrammarOptions)."""

    max_free_text: int | None = None
    max_items: int | None = None
    max_ref_depth: int = 4
    max_json_depth: int = 3


class Values:
    """Builds value rules into one grammar, memoised by schema text, so a schema used twice costs one rule."""

    def __init__(self, grammar: Grammar, root: Mapping[str, Any], options: ValueOptions, prefix: str) -> None:
        self.g = grammar
        self.root = root
        self.options = options
        self.prefix = prefix
        self._memo: dict[str, Ref | None] = {}
        self._plain_union = True  # the parameter being built is a union of bare types (see _plain_union)

    # ------------------------------------------------------------------------------------------ helpers

    def note(self, text: str) -> None:
        self.g.note(text)

    def _name(self, hint: str) -> str:
        base = f"{self.prefix}-{hint}"
        name, n = base, 1
        while name in self.g.rules:
            n += 1
            name = f"{base}{n}"
        return name

    def _memoised(self, kind: str, schema: Any, depth: int, build: Any) -> Ref | None:
        try:
            key = kind + "\0" + str(depth) + "\0" + json.dumps(schema, sort_keys=True)
        except (TypeError, ValueError):
            key = kind + "\0" + str(depth) + "\0" + repr(id(schema))
        if key in self._memo:
            return self._memo[key]
        name = self._name(kind)
        self.g.rules[name] = Lit("")  # placeholder: recursive schemas refer back to it
        self._memo[key] = Ref(name)
        expr = build()
        if expr is None:
            del self.g.rules[name]
            self._memo[key] = None
            return None
        self.g.rules[name] = expr
        return Ref(name)

    def resolve(self, schema: Any, depth: int) -> tuple[Mapping[str, Any] | None, int]:
        """Follow local refs; each followed ref costs one level of ``max_ref_depth``. None: impossible."""
        if isinstance(schema, Mapping) and "$ref" in schema:
            if depth >= self.options.max_ref_depth:
                self.g.narrow(f"$ref nested deeper than {self.options.max_ref_depth} levels is not generated")
                return None, depth
            depth += 1
            if len(schema) > 1 and set(schema) - _ANNOTATIONS - {"$ref"}:
                self.note("keywords beside a $ref are not enforced by the grammar (draft-7 reading)")
        resolved = _resolve(schema, self.root)
        if resolved is None:
            if schema is False:
                return None, depth
            self.note("a schema that is not a local, resolvable object is generated as any JSON value")
            return {}, depth
        return resolved, depth

    # ------------------------------------------------------------------------------------------ raw values

    def raw(self, schema: Any) -> Ref | None:
        """A parameter value (between the parameter tags); None if the schema admits nothing expressible."""
        resolved, depth = self.resolve(schema, 0)
        if resolved is None:
            return None
        allowed = _allowed_types(resolved, self.root)
        if allowed is None or (allowed == frozenset(_ALL) and not (set(resolved) - _ANNOTATIONS)):
            return self._raw_text()
        self._plain_union = _plain_union(resolved, self.root)
        return self._memoised("raw", resolved, depth, lambda: self._raw_branches(resolved, depth, allowed, allowed))

    def _raw_text(self, *, no_container_start: bool = False) -> Ref:
        name = f"{self.prefix}-text" + ("-plain" if no_container_start else "")
        text = free_text(
            self.g, f"text{'-plain' if no_container_start else ''}", VALUE_WORDS, bound=self.options.max_free_text
        )
        if not no_container_start:
            return text
        if name not in self.g.rules:
            # A union with object/array reads a value starting with [ { ( as a container: keep strings off them.
            self.g.rules[name] = alt(Lit(""), seq(chars("[{(", negated=True), text))
        return Ref(name)

    def _raw_branches(
        self, schema: Mapping[str, Any], depth: int, allowed: frozenset[str], reading: frozenset[str]
    ) -> Expr | None:
        """``allowed``: the types this branch may take; ``reading``: the types of the whole parameter, which
        decide how the parser reads its text (a union naming string is read verbatim, JSON spellings convert)."""
        options: list[Expr] = []
        string_union = "string" in reading and reading != frozenset({"string"})
        if "const" in schema or "enum" in schema:
            values = [schema["const"]] if "const" in schema else list(schema.get("enum") or [])
            for value in values:
                if isinstance(value, str):
                    if string_union and _reads_as_other(value, reading):
                        self.g.narrow(f"enum string {value!r} reads as another type of its union; left out")
                        continue
                    if _holds_word(value):
                        self.g.narrow("an enum/const string holding M2 markup is left out")
                        continue
                    options.append(Lit(value))
                else:
                    options.append(self._json_literal(value))
            self._check_other(schema, ("const", "enum"))
            return alt(*options) if options else None
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list):
                self._note_union(schema, key)
                for branch in schema[key]:
                    resolved, sub_depth = self.resolve(branch, depth)
                    if resolved is None:
                        continue
                    sub_allowed = _allowed_types(resolved, self.root) or frozenset(_ALL)
                    expr = self._raw_branches(resolved, sub_depth, sub_allowed & allowed or sub_allowed, reading)
                    if expr is not None:
                        options.append(expr)
                return alt(*options) if options else None
        if "allOf" in schema:
            self.note("allOf is not enforced: the value is generated from its type alone")
        for kind in _types_of(schema, allowed):
            single = {**schema, "type": kind}
            if kind == "string":
                expr = self._raw_string(single, reading)
            else:
                expr = self.json(single, depth)
                if string_union and not _unconstrained(single):
                    self.note(f"a string in a union with a constrained {kind} may read as that {kind}")
            if expr is not None:
                options.append(expr)
        return alt(*options) if options else None

    def _raw_string(self, schema: Mapping[str, Any], allowed: frozenset[str]) -> Expr:
        self._check_other(schema, _UNENFORCED_STRING)
        if len(allowed) > 1 and not self._plain_union:
            self.note("a free string in a union may read as another of its types, whose constraints it may break")
        low, high = _lengths(schema)
        containers = bool(allowed & {"object", "array"}) and "string" in allowed and len(allowed) > 1
        bounded = chars(_LENGTH_BOUNDED_EXCLUDED + ("{(" if containers else ""), negated=True)
        if high is not None:
            return Repeat(bounded, low, high)
        text = self._raw_text(no_container_start=containers)
        return seq(Repeat(bounded, low, low), text) if low else text

    def _check_other(self, schema: Mapping[str, Any], keys: tuple[str, ...]) -> None:
        for key in keys:
            if key in schema and key not in ("const", "enum"):
                self.note(f"{key} is not enforced by the grammar")

    # ------------------------------------------------------------------------------------------ JSON values

    def json(self, schema: Any, depth: int = 0) -> Ref | None:
        resolved, depth = self.resolve(schema, depth)
        if resolved is None:
            return None
        return self._memoised("json", resolved, depth, lambda: self._json_expr(resolved, depth))

    def _json_literal(self, value: Any) -> Expr:
        return Lit(json.dumps(value, ensure_ascii=False))

    def _note_union(self, schema: Mapping[str, Any], key: str) -> None:
        """What a union generated as plain alternatives leaves unenforced (parameter values and JSON alike)."""
        if key == "oneOf":
            self.note("oneOf is generated as anyOf: exclusivity is not enforced")
        if set(schema) - _ANNOTATIONS - {key, "$defs", "definitions"}:
            self.note(f"keywords beside {key} are not enforced by the grammar")

    def _json_expr(self, schema: Mapping[str, Any], depth: int) -> Expr | None:
        if "const" in schema or "enum" in schema:
            values = [schema["const"]] if "const" in schema else list(schema.get("enum") or [])
            kept = [v for v in values if not _holds_word(json.dumps(v, ensure_ascii=False))]
            if len(kept) < len(values):
                self.g.narrow("an enum/const value holding M2 markup is left out")
            return alt(*(self._json_literal(v) for v in kept)) if kept else None
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list):
                self._note_union(schema, key)
                options = [r for r in (self.json(b, depth) for b in schema[key]) if r is not None]
                return alt(*options) if options else None
        if "allOf" in schema:
            self.note("allOf is not enforced: the value is generated from its type alone")
        allowed = _allowed_types(schema, self.root) or frozenset(_ALL)
        options = []
        for kind in _types_of(schema, allowed):
            expr = self._json_typed(kind, schema, depth)
            if expr is not None:
                options.append(expr)
        return alt(*options) if options else None

    def _json_typed(self, kind: str, schema: Mapping[str, Any], depth: int) -> Expr | None:
        if kind == "null":
            return Lit("null")
        if kind == "boolean":
            return alt(Lit("true"), Lit("false"))
        if kind in ("integer", "number"):
            return self._number(schema, integer=kind == "integer")
        if kind == "string":
            return self._json_string(schema)
        if kind == "array":
            return self._array(schema, depth)
        return self._object(schema, depth)

    def _number(self, schema: Mapping[str, Any], *, integer: bool) -> Expr:
        if any(key in schema for key in _NUMBER_RANGE):
            self.note(
                "number ranges (minimum, maximum, multipleOf) are not enforced, except that minimum >= 0 "
                "drops the sign and an integer minimum >= 1 drops zero"
            )
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        unsigned = isinstance(low, (int, float)) and not isinstance(low, bool) and low >= 0
        digit = chars(ranges=((48, 57),))
        nonzero = chars(ranges=((49, 57),))
        digits = Repeat(digit, 0, INT_DIGITS - 1)
        whole = alt(Lit("0"), seq(nonzero, digits))
        sign = Lit("") if unsigned else opt(Lit("-"))
        if integer:
            positive = unsigned and low >= 1  # type: ignore[operator]
            return seq(nonzero, digits) if positive else seq(sign, whole)
        plain = seq(whole, opt(seq(Lit("."), Repeat(digit, 1, FRACTION_DIGITS))))
        hundreds, tens, units = str(MAX_EXPONENT)  # 3, 0, 7: exponents 0-99, 100-299, 300-307
        exponent = alt(
            Repeat(digit, 1, 2),
            seq(chars(ranges=((49, ord(hundreds) - 1),)), digit, digit),
            seq(Lit(hundreds + tens), chars(ranges=((48, ord(units)),))),
        )
        mantissa = seq(nonzero, opt(seq(Lit("."), Repeat(digit, 1, MANTISSA_FRACTION_DIGITS))))
        scientific = seq(mantissa, chars("eE"), opt(chars("+-")), exponent)
        return seq(sign, alt(plain, scientific))

    def _json_string(self, schema: Mapping[str, Any]) -> Expr:
        self._check_other(schema, _UNENFORCED_STRING)
        hex_digit = chars(ranges=((48, 57), (65, 70), (97, 102)))
        not_surrogate = alt(
            seq(chars(ranges=((48, 57), (65, 67), (69, 70), (97, 99), (101, 102))), hex_digit, hex_digit, hex_digit),
            seq(chars("dD"), chars(ranges=((48, 55),)), hex_digit, hex_digit),
        )
        if "json-escape" not in self.g.rules:
            self.g.rules["json-escape"] = seq(Lit("\\"), alt(chars('"\\/bfnrt'), seq(Lit("u"), not_surrogate)))
        escape = Ref("json-escape")
        control = ((0, 0x1F),)
        low, high = _lengths(schema)
        if high is not None:
            unit = alt(chars('"\\' + _LENGTH_BOUNDED_EXCLUDED, negated=True, ranges=control), escape)
            return seq(Lit('"'), Repeat(unit, low, high), Lit('"'))
        body = free_text(
            self.g,
            "json-chars",
            VALUE_WORDS,
            excluded='"\\',
            excluded_ranges=control,
            units=(escape,),
            bound=self.options.max_free_text,
        )
        if low:
            unit = alt(chars('"\\' + _LENGTH_BOUNDED_EXCLUDED, negated=True, ranges=control), escape)
            return seq(Lit('"'), Repeat(unit, low, low), body, Lit('"'))
        return seq(Lit('"'), body, Lit('"'))

    def _array(self, schema: Mapping[str, Any], depth: int) -> Expr | None:
        self._check_other(schema, _UNENFORCED_ARRAY)
        if depth > self.options.max_json_depth + self.options.max_ref_depth:
            return Lit("[]")
        prefix = schema.get("prefixItems")
        items = schema.get("items", {})
        if isinstance(items, list):  # draft-4..7 tuple form
            prefix, items = items, schema.get("additionalItems", {})
        head: list[Ref] = []
        for sub in prefix or []:
            ref = self.json(sub, depth + 1)
            if ref is None:
                break
            head.append(ref)
        if prefix:
            self.g.narrow("prefixItems/tuple items are generated as a fixed prefix of at most their length")
        low, high = _counts(schema, "minItems", "maxItems")
        if self.options.max_items is not None:
            high = self.options.max_items if high is None else min(high, self.options.max_items)
        if high is not None and low > high:
            return None
        element = self.json(items, depth + 1) if items is not False else None
        sep = seq(Lit(","), opt(Lit(" ")))
        if head:
            body = seq(head[0], *(opt(seq(sep, ref)) for ref in head[1:]))  # positional, each may end the array
            self.note("an array's minItems is not enforced with prefixItems")
            return seq(Lit("["), opt(body), Lit("]"))
        if element is None:
            return Lit("[]") if low == 0 else None
        if high == 0:
            return Lit("[]")
        rest_low = max(low - 1, 0)
        rest = Repeat(seq(sep, element), rest_low, None if high is None else high - 1)
        inner = seq(element, rest)
        return seq(Lit("["), inner if low > 0 else opt(inner), Lit("]"))

    def _object(self, schema: Mapping[str, Any], depth: int) -> Expr | None:
        self._check_other(schema, _UNENFORCED_OBJECT)
        properties = schema.get("properties")
        properties = dict(properties) if isinstance(properties, Mapping) else {}
        required = [k for k in schema.get("required", []) if isinstance(k, str)]
        for key in required:
            properties.setdefault(key, {})
        extra = schema.get("additionalProperties", True)
        if not properties:
            if extra is False:
                return Lit("{}")
            if depth > self.options.max_json_depth + self.options.max_ref_depth:
                return Lit("{}")
            value = self.json(extra if isinstance(extra, Mapping) else {}, depth + 1)
            key = self._json_string({})
            if value is None:
                return Lit("{}")
            member = seq(key, Lit(":"), opt(Lit(" ")), value)
            high = self.options.max_items
            rest = Repeat(seq(Lit(","), opt(Lit(" ")), member), 0, None if high is None else max(high - 1, 0))
            return seq(Lit("{"), opt(seq(member, rest)), Lit("}"))
        members: list[tuple[Expr, bool]] = []
        for key, sub in properties.items():
            value = self.json(sub, depth + 1)
            if value is None:
                if key in required:
                    return None
                continue
            members.append((seq(Lit(json.dumps(key, ensure_ascii=False) + ":"), opt(Lit(" ")), value), key in required))
        return seq(Lit("{"), self._members(members), Lit("}"))

    def _members(self, members: list[tuple[Expr, bool]]) -> Expr:
        """Members in declared order, required ones present, commas only between written members. Linear in
        size: ``after[i]`` (something already written) is a plain sequence of optional ``, member`` parts, and
        ``first[i]`` (nothing written yet) chooses the first member written."""
        sep = seq(Lit(","), opt(Lit(" ")))
        after: list[Expr] = [Lit("")] * (len(members) + 1)
        for i in range(len(members) - 1, -1, -1):
            member, needed = members[i]
            part = seq(sep, member)
            after[i] = seq(part if needed else opt(part), after[i + 1])
        first: Expr = Lit("")
        for i in range(len(members) - 1, -1, -1):
            member, needed = members[i]
            here = seq(member, after[i + 1])
            if needed:
                first = here
            else:
                name = self._name("members")
                first = self.g.add(name, alt(here, first))
        return first


_ALL = ("null", "boolean", "integer", "number", "object", "array", "string")


def _types_of(schema: Mapping[str, Any], allowed: frozenset[str]) -> list[str]:
    kinds = [t for t in _ALL if t in allowed]
    if "number" in kinds and "integer" in kinds:
        kinds.remove("integer")  # a JSON number covers integers
    if "type" not in schema and kinds == [t for t in _ALL if t != "integer"]:
        if "properties" in schema or "required" in schema:
            return ["object"]
        if "items" in schema or "prefixItems" in schema:
            return ["array"]
    return kinds


def _lengths(schema: Mapping[str, Any]) -> tuple[int, int | None]:
    return _counts(schema, "minLength", "maxLength")


def _counts(schema: Mapping[str, Any], low_key: str, high_key: str) -> tuple[int, int | None]:
    low, high = schema.get(low_key, 0), schema.get(high_key)
    low = low if isinstance(low, int) and not isinstance(low, bool) and low > 0 else 0
    high = high if isinstance(high, int) and not isinstance(high, bool) and high >= 0 else None
    return low, high


def _plain_union(schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    """A ``type`` list, or an ``anyOf`` of bare ``{"type": …}`` schemas: every text the parser reads as one of
    its types is valid, so a free string branch cannot produce an invalid value by being read as another type."""
    if "anyOf" not in schema:
        return _unconstrained(schema)
    branches = schema["anyOf"]
    if set(schema) - _ANNOTATIONS - {"anyOf"} or not isinstance(branches, list):
        return False
    return all(isinstance(b := _resolve(branch, root), Mapping) and _unconstrained(b) for branch in branches)


def _unconstrained(schema: Mapping[str, Any]) -> bool:
    return not (set(schema) - _ANNOTATIONS)


def _reads_as_other(text: str, allowed: frozenset[str]) -> bool:
    """Whether the parser would read this verbatim string as a non-string type of its union."""
    stripped = text.strip()
    if "null" in allowed and stripped == "null":
        return True
    if "boolean" in allowed and text in ("true", "false"):
        return True
    if allowed & {"integer", "number", "object", "array"}:
        try:
            value = json.loads(text)
        except ValueError:
            return bool(allowed & {"object", "array"}) and text[:1] in "[{("
        return not isinstance(value, str)
    return False


def _holds_word(text: str) -> bool:
    return any(word in text for word in VALUE_WORDS)
