"""Tools normalisation, parameter schema lookup, raw parameter text -> typed value, and validation.

The model writes every parameter value as bare text; the tool's JSON schema is the only thing that says
whether ``42`` means the number or the string. Everything here is total: a bad value or a garbage schema gives
an error string (the parser reports it as ``coercion_failed`` / ``schema_violation``), never an exception.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from m2parse.pyliteral import MAX_DEPTH, LiteralError, max_nesting, read_literal
from m2parse.schema_guard import GuardedSchema, guard_schema_memo, metaschema_error

__all__ = [
    "Conversion",
    "ToolSpec",
    "ToolsError",
    "allowed_types",
    "convert_value",
    "normalize_tools",
    "parameter_schema",
    "resolve_schema",
    "streams_as_string",
    "tool_schema_error",
    "validate_arguments",
]

_ALL_TYPES = frozenset({"string", "integer", "number", "boolean", "null", "object", "array"})
_STRING_ONLY = frozenset({"string"})
#: Order used in messages; "number" stands for both numeric types when it is allowed.
_TYPE_ORDER = ("null", "boolean", "integer", "number", "object", "array", "string")
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_MAX_REF_HOPS = 32  # a longer $ref chain is treated as a cycle
_MAX_SCHEMA_DEPTH = 32  # nesting of anyOf/oneOf/allOf followed when working out the allowed types
_MAX_SCHEMA_NODES = 512  # total subschemas visited per question, so shared $refs cannot fan out exponentially
_PREVIEW = 60
_MAX_INT_DIGITS = 4300  # CPython's default int/str conversion limit
_NUMBER_PARTS = re.compile(r"-?([0-9]+)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?")
_MAX_EXPONENT_DIGITS = 5  # an integer written with a longer exponent is refused, not computed


class ToolsError(ValueError):
    """The ``tools`` argument has the wrong shape; the message names the offending index and field."""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One callable tool. ``function`` is the function object as given, for adapters that echo it back."""

    name: str
    parameters: Mapping[str, Any]
    function: Mapping[str, Any]
    # Per-spec memo of the guarded schema (or why it was refused), filled on first use: the limits, reference
    # and pattern checks run once per spec, not once per call.
    _cache: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Conversion:
    """A converted value; on ``error`` the value is the (stripped) text, kept as a string."""

    value: Any
    error: str | None = None


# --------------------------------------------------------------------------------------------- tools


def normalize_tools(tools: Any) -> dict[str, ToolSpec]:
    """Accept OpenAI-style or bare tool dicts; reject wrong shapes early, with a message a client can fix."""
    if tools is None:
        return {}
    if not isinstance(tools, (list, tuple)):
        raise ToolsError(f"tools must be a list, not {type(tools).__name__}")
    specs: dict[str, ToolSpec] = {}
    for index, item in enumerate(tools):
        where = f"tools[{index}]"
        if not isinstance(item, Mapping):
            raise ToolsError(f"{where} must be an object, not {type(item).__name__}")
        kind = item.get("type", "function")
        if kind != "function":
            raise ToolsError(f"{where}.type must be 'function', not {kind!r}")
        if "function" in item:
            function = item["function"]
            where += ".function"
            if not isinstance(function, Mapping):
                raise ToolsError(f"{where} must be an object, not {type(function).__name__}")
        else:
            function = item
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise ToolsError(f"{where}.name must be a non-empty string")
        parameters = function.get("parameters")
        if parameters is None:
            parameters = {}
        elif not isinstance(parameters, Mapping):
            raise ToolsError(f"{where}.parameters must be an object, not {type(parameters).__name__}")
        specs[name] = ToolSpec(name=name, parameters=parameters, function=function)  # last duplicate wins
    return specs


def tool_schema_error(spec: ToolSpec) -> str | None:
    """Why ``spec.parameters`` cannot be an arguments schema, or None; the server answers 400 with it.

    Refused: a schema over m2parse's limits or with a reference outside itself (see schema_guard), then one that
    fails its metaschema. The metaschema check costs milliseconds, so it is done here, once per request that
    asks, and not when a parser validates arguments (there a broken schema shows up as a problem anyway).
    """
    guarded = _guarded(spec)
    if isinstance(guarded, str):
        return f"tool {spec.name!r}: {guarded}"
    error = metaschema_error(spec.parameters)
    if error is not None:
        return f"tool {spec.name!r}: invalid parameters schema: {error}"
    kind = spec.parameters.get("type")
    if kind is not None and kind != "object":
        return f"tool {spec.name!r}: parameters.type must be 'object', not {kind!r}"
    return None


def validate_arguments(spec: ToolSpec, arguments: Mapping[str, Any]) -> list[str]:
    """jsonschema messages (``path: message``) for the typed arguments, within a work budget linear in their
    size; a refused or broken schema is one message."""
    guarded = _guarded(spec)
    if isinstance(guarded, str):
        return [f"tool {spec.name!r}: schema could not be applied: {guarded}"]
    return [
        message if message.startswith("$") else f"tool {spec.name!r}: {message}"
        for message in guarded.errors(dict(arguments))
    ]


def _guarded(spec: ToolSpec) -> GuardedSchema | str:
    """The guarded schema of ``spec`` (not checked against the metaschema: see tool_schema_error), or why it
    was refused; memoised on the spec."""
    try:
        return spec._cache["validator"]  # type: ignore[no-any-return]
    except KeyError:
        pass
    guarded = guard_schema_memo(spec.parameters)
    spec._cache["validator"] = guarded
    return guarded


def parameter_schema(spec: ToolSpec, name: str) -> tuple[bool, Mapping[str, Any] | None]:
    """Whether the tool accepts parameter ``name`` and the schema its value follows (None: plain text)."""
    root = spec.parameters
    params = _resolve(root, root)
    if params is None:
        return True, None
    properties = params.get("properties")
    declared = isinstance(properties, Mapping)
    if isinstance(properties, Mapping) and name in properties:
        return True, _resolve(properties[name], root)
    patterns = params.get("patternProperties")
    if isinstance(patterns, Mapping):
        guarded = _guarded(spec)
        for pattern, sub in patterns.items():
            # The schema's own linear-time engine: a parameter name is model output. A refused schema, or a
            # pattern that cannot be checked safely, matches nothing.
            if isinstance(pattern, str) and not isinstance(guarded, str) and guarded.search(pattern, name):
                return True, _resolve(sub, root)
    extra = params.get("additionalProperties")
    if extra is False:
        return False, None
    if extra is True:  # said explicitly, so extra names are expected, unlike the JSON Schema default
        return True, None
    if isinstance(extra, Mapping):
        return True, _resolve(extra, root)
    return not declared, None


# --------------------------------------------------------------------------------------------- schemas


def _resolve(schema: Any, root: Any) -> Mapping[str, Any] | None:
    """Follow local ``$ref``s; None for a non-schema, a remote/broken ref or a cycle ("no schema")."""
    seen: set[str] = set()
    while True:
        if schema is True:
            return {}
        if not isinstance(schema, Mapping):
            return None
        ref = schema.get("$ref")
        if not isinstance(ref, str):
            return schema  # siblings of a followed $ref are ignored (draft-7 style); validation sees them
        if ref in seen or len(seen) >= _MAX_REF_HOPS:
            return None
        seen.add(ref)
        schema = _pointer(root, ref)


def _pointer(root: Any, ref: str) -> Any:
    """The target of a local JSON-pointer ``$ref`` (``#/$defs/X``, ``~0``/``~1``, %-escapes), or None."""
    if not ref.startswith("#"):
        return None
    fragment = unquote(ref[1:])
    if not fragment:
        return root
    if not fragment.startswith("/"):
        return None  # "#anchor" references are not followed
    node = root
    for token in fragment[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping):
            if token not in node:
                return None
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and token.isascii() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node


def _type_of(value: Any) -> str | None:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return None


def _widen(types: set[str] | frozenset[str]) -> frozenset[str]:
    """Numbers include integers, so intersections keep "integer" wherever "number" is allowed."""
    return frozenset(types | {"integer"}) if "number" in types else frozenset(types)


def _allowed_types(schema: Any, root: Any) -> frozenset[str] | None:
    """The JSON types a value may take; None when there is no (usable) schema at all."""
    resolved = _resolve(schema, root)
    if resolved is None:
        return None
    return _types(resolved, root, [_MAX_SCHEMA_NODES], 0)


def _types(schema: Mapping[str, Any], root: Any, budget: list[int], depth: int) -> frozenset[str]:
    """Intersect what ``type``, ``enum``/``const``, ``anyOf``/``oneOf`` and ``allOf`` each allow.

    Unknown or contradictory constraints give every type: the value is then read by the union rule and
    jsonschema validation reports the problem, rather than conversion guessing.
    """
    budget[0] -= 1
    if budget[0] < 0 or depth > _MAX_SCHEMA_DEPTH:
        return _ALL_TYPES
    allowed = _ALL_TYPES
    declared = schema.get("type")
    names = [declared] if isinstance(declared, str) else declared if isinstance(declared, list) else []
    named = {t for t in names if isinstance(t, str)} & _ALL_TYPES
    if named:
        allowed &= _widen(named)
    values: list[Any] = []
    if "const" in schema:
        values.append(schema["const"])
    enum = schema.get("enum")
    if isinstance(enum, list):
        values.extend(enum)
    found = {t for t in map(_type_of, values) if t is not None}
    if found:
        allowed &= _widen(found)
    for key in ("anyOf", "oneOf"):
        alternatives = schema.get(key)
        if isinstance(alternatives, list):
            union: set[str] = set()
            for alternative in alternatives:
                sub = _resolve(alternative, root)
                if sub is not None:
                    union |= _types(sub, root, budget, depth + 1)
            if union:
                allowed &= _widen(union)
    members = schema.get("allOf")
    if isinstance(members, list):
        for member in members:
            sub = _resolve(member, root)
            if sub is not None:
                allowed &= _types(sub, root, budget, depth + 1)
    return allowed or _ALL_TYPES


def streams_as_string(schema: Mapping[str, Any] | None, root: Mapping[str, Any], *, infer_types: bool = False) -> bool:
    """True when the value can only be a string, so the parser may stream it verbatim as it arrives."""
    allowed = _allowed_types(schema, root)
    if allowed is None:
        return not infer_types
    return allowed == _STRING_ONLY


def resolve_schema(schema: Any, root: Any) -> Mapping[str, Any] | None:
    """``schema`` with its local ``$ref``s followed, or None (no usable schema); for callers that walk into
    subschemas (M3's nested values) with the same reference rules as conversion."""
    return _resolve(schema, root)


def allowed_types(schema: Any, root: Any) -> frozenset[str] | None:
    """The JSON types a value of ``schema`` may take ("integer" included wherever "number" is), or None when
    there is no usable schema: what conversion itself decides by, for callers that must choose a shape first."""
    return _allowed_types(schema, root)


# --------------------------------------------------------------------------------------------- values


def convert_value(
    raw: str, schema: Mapping[str, Any] | None, root: Mapping[str, Any], *, infer_types: bool = False
) -> Conversion:
    """Read parameter text as the schema's type; never raises (a failure is ``Conversion(text, error)``)."""
    try:
        return _convert(raw, schema, root, infer_types)
    except Exception as exc:  # a safety net only: every known path returns normally
        return Conversion(raw, f"internal error converting value: {exc!r}")


def _convert(raw: str, schema: Any, root: Any, infer_types: bool) -> Conversion:
    allowed = _allowed_types(schema, root)
    if allowed is None:
        if not infer_types:
            return Conversion(raw)
        allowed = _ALL_TYPES
    if allowed == _STRING_ONLY:
        return Conversion(raw)
    stripped = raw.strip()
    string_ok = "string" in allowed
    # A union that names string is read verbatim (the template writes strings raw): only exact JSON spellings
    # convert ("True" or "None" may well be meant as text), and only the null check looks at a stripped copy.
    # Untyped values (no schema with infer_types, or no type constraint) are read from the stripped text.
    text = raw if string_ok and allowed != _ALL_TYPES else stripped
    if "null" in allowed and (stripped == "null" or (not string_ok and text.lower() in ("null", "none"))):
        return Conversion(None)
    if "boolean" in allowed:
        word = text if string_ok else text.lower()
        if word in ("true", "false"):
            return Conversion(word == "true")
    reason = ""
    if "integer" in allowed:
        is_number, number, reason = _read_number(text, integer_only="number" not in allowed)
        if is_number:
            return Conversion(number)
    if ("object" in allowed or "array" in allowed) and text and text[0] in "[{(":
        value, reason = _read_container(text, lenient=not string_ok)
        if not reason:
            got = _type_of(value)  # "(1)" reads as a plain 1
            if got in allowed:
                return Conversion(value)
            reason = f"got {'an' if got in ('object', 'array', 'integer') else 'a'} {got}"
    if string_ok:
        return Conversion(raw)
    expected = [t for t in _TYPE_ORDER if t in allowed and not (t == "integer" and "number" in allowed)]
    text = stripped
    preview = text if len(text) <= _PREVIEW else text[:_PREVIEW] + "..."
    message = f"cannot read {preview!r} as {' or '.join(expected)}"
    return Conversion(text, f"{message} ({reason})" if reason else message)


def _read_number(text: str, *, integer_only: bool) -> tuple[bool, int | float | None, str]:
    """JSON number grammar only (no ``inf``, ``+1``, ``1_000``, non-ASCII digits): ``(ok, value, reason)``."""
    if not _JSON_NUMBER.fullmatch(text):
        return False, None, ""
    if "." not in text and "e" not in text and "E" not in text:
        if len(text.lstrip("-")) > _MAX_INT_DIGITS:  # int() of huge digit strings is slow or refused
            return False, None, "too many digits"
        try:
            return True, int(text), ""
        except ValueError:  # the interpreter's int/str digit limit was set lower than the default
            return False, None, "too many digits"
    value = float(text)
    if not math.isfinite(value):
        return False, None, "out of range"
    if not integer_only:
        return True, value, ""
    return _exact_integer(text)


def _exact_integer(text: str) -> tuple[bool, int | None, str]:
    """A finite JSON number read as an exact integer (``1.0``, ``1e5``), by digits: no Decimal context to
    overflow. The exponent is bounded (``_MAX_EXPONENT_DIGITS``), so ``0e99999999999999999999`` is refused."""
    m = _NUMBER_PARTS.fullmatch(text)
    if m is None:
        return False, None, ""
    whole, fraction, exponent = m.group(1), m.group(2) or "", m.group(3) or "0"
    if len(exponent.lstrip("+-")) > _MAX_EXPONENT_DIGITS:
        return False, None, "exponent out of range"
    digits = (whole + fraction).lstrip("0")
    if not digits:
        return True, 0, ""
    trimmed = digits.rstrip("0")
    shift = int(exponent) - len(fraction) + len(digits) - len(trimmed)
    if shift < 0:
        return False, None, "not an integer"
    value = int(trimmed) * 10**shift  # the float was finite, so this has at most 309 digits
    return True, -value if text.startswith("-") else value, ""


def _read_container(text: str, *, lenient: bool) -> tuple[Any, str]:
    """``json.loads`` (depth-checked first), then the Python-literal reader when ``lenient``."""
    if max_nesting(text) > MAX_DEPTH:
        return None, "nested too deeply"
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float), ""
    except (ValueError, RecursionError) as exc:
        reason = f"invalid JSON: {exc}"
    if lenient:
        try:
            return read_literal(text), ""
        except LiteralError as exc:
            reason = f"invalid literal: {exc}"
    return None, reason


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise ValueError(f"number {token[:20]} out of range")
    return value
