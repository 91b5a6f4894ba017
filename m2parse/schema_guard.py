"""Schema safety: references resolved locally only, schema limits, linear-time patterns, a work budget per call.

Tool schemas come from anyone who can call the server, and arguments come from model output, so neither may make
m2parse fetch, read a file or spend unbounded CPU. :func:`guard_schema` checks a schema once (limits, references,
patterns) and returns a :class:`GuardedSchema` whose :meth:`~GuardedSchema.errors` validates one call's arguments
within a work budget. Nothing here raises on bad input: a refused schema is a one-line reason.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import referencing
import referencing.exceptions
import referencing.jsonschema
from jsonschema import FormatChecker, ValidationError
from jsonschema import validators as _js_validators

__all__ = [
    "LIMITS",
    "GuardedSchema",
    "PatternEngine",
    "PythonSubsetEngine",
    "Re2Engine",
    "SchemaLimits",
    "default_engine",
    "guard_schema",
    "guard_schema_memo",
    "metaschema_error",
    "python_subset_reason",
]

Matcher = Callable[[str], bool]


@dataclass(frozen=True)
class SchemaLimits:
    """What one tool schema may cost. Documented in README "Schema limits"; change them there too."""

    #: Size of the schema, counted like its compact JSON text (characters).
    max_chars: int = 65_536
    #: Nesting of objects and arrays in the schema.
    max_depth: int = 64
    #: Objects in the schema: the metaschema check (in tool_schema_error) costs about 0.3 ms of CPU for each.
    max_objects: int = 2_000
    #: ``$ref``, ``$dynamicRef`` and ``$recursiveRef`` occurrences.
    max_refs: int = 1_000
    #: Subschemas and keywords visited with every reference expanded (a reference back into its own path is
    #: counted once, not followed): catches a small schema whose references fan out exponentially.
    max_expanded: int = 20_000
    #: Work units one call's validation may spend: ``base_work + work_per_char * len(arguments as JSON)``. A unit
    #: is about one keyword applied or one element it looks at (exact charges: docs/architecture.md), measured at
    #: no more than 1.2 microseconds of CPU.
    base_work: int = 20_000
    work_per_char: int = 50


LIMITS = SchemaLimits()

_REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")
#: Keywords whose subschemas apply to the same value (a loop through only these never ends).
_IN_PLACE = frozenset(
    {"allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentSchemas", "dependencies", "extends"}
)
#: Where subschemas sit, in every draft at once (a keyword a draft does not know is walked too: its references
#: are checked all the same, which only errs on the safe side).
_IN_VALUE = frozenset(
    {
        "additionalItems",
        "additionalProperties",
        "contains",
        "else",
        "if",
        "items",
        "not",
        "propertyNames",
        "then",
        "unevaluatedItems",
        "unevaluatedProperties",
    }
)
_IN_LIST = frozenset({"allOf", "anyOf", "oneOf", "prefixItems", "extends"})
_IN_VALUES = frozenset({"$defs", "definitions", "dependentSchemas", "dependencies", "patternProperties", "properties"})
#: Keywords that hold definitions: walked once for their references and patterns, never applied themselves.
_DEFINITIONS = frozenset({"$defs", "definitions"})
_UNAPPLIED = -1  # "descents" of a subschema inside a definition, reached other than through a reference
#: Dialects where ``$ref`` makes its sibling keywords ignored (jsonschema does the same).
_REF_ALONE = frozenset(
    {
        _js_validators.Draft3Validator,
        _js_validators.Draft4Validator,
        _js_validators.Draft6Validator,
        _js_validators.Draft7Validator,
    }
)


# --------------------------------------------------------------------------------------------- patterns


class PatternEngine(Protocol):
    """Compiles a schema ``pattern`` into a matcher that runs in time linear in the text, or says why it can't."""

    name: str

    def compile(self, pattern: str) -> Matcher | str: ...


_QUANTIFIER = re.compile(r"\*|\+|\?|\{(\d*)(,?)(\d*)\}")
_FORBIDDEN = (("(?=", "lookahead"), ("(?!", "lookahead"), ("(?<=", "lookbehind"), ("(?<!", "lookbehind"))
_FORBIDDEN += (("(?P=", "backreference"), ("(?(", "conditional"))
_MAX_COUNT = 1_000


def python_subset_reason(pattern: str) -> str | None:
    """Why Python's backtracking ``re`` might not match ``pattern`` in linear time, or None when it surely does.

    The subset is deliberately small: no lookaround, backreferences or conditionals; counted repetitions up to
    1000; and either no variable quantifier (``*``, ``+``, ``?``, ``{m,n}``) at all, or exactly one, in a
    pattern anchored by a leading ``^`` with no top-level ``|`` and not applied to a group holding a ``|``.
    """
    for token, what in _FORBIDDEN:
        if token in pattern:
            return f"uses a {what}"
    variable = 0
    depth = 0
    groups: list[bool] = []  # per open group: does it hold a "|"?
    top_level_bar = False
    last_group_had_bar = False
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\":
            if i + 1 < n and pattern[i + 1] in "123456789":
                return "uses a backreference"
            if i + 1 < n and pattern[i + 1] == "k":
                return "uses a backreference"
            i += 2
            last_group_had_bar = False
            continue
        if char == "[":
            j = i + 1
            if j < n and pattern[j] == "^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            i = j + 1
            last_group_had_bar = False
            continue
        if char == "(":
            groups.append(False)
            depth += 1
            i += 1
            if i < n and pattern[i] == "?":  # (?:  (?P<name>  (?i)  : skip the "?" so it is not a quantifier
                i += 1
            continue
        if char == ")":
            last_group_had_bar = groups.pop() if groups else False
            depth = max(depth - 1, 0)
            i += 1
            continue
        if char == "|":
            if groups:
                groups[-1] = True
            else:
                top_level_bar = True
            i += 1
            continue
        quantifier = _QUANTIFIER.match(pattern, i)
        if quantifier is not None and (char != "{" or quantifier.group(1) or quantifier.group(3)):
            low, comma, high = quantifier.group(1, 2, 3) if char == "{" else ("", "", "")
            if char == "{" and max(int(low or 0), int(high or 0)) > _MAX_COUNT:
                return f"repeats more than {_MAX_COUNT} times"
            if char != "{" or (comma and low != high):
                variable += 1
                if last_group_had_bar:
                    return "repeats an alternation"
            i = quantifier.end()
            if i < n and pattern[i] in "?+":  # lazy or possessive modifier of the same quantifier
                i += 1
            last_group_had_bar = False
            continue
        last_group_had_bar = False
        i += 1
    if variable == 0:
        return None
    if variable > 1:
        return "has more than one variable quantifier"
    if not (pattern.startswith("^") or pattern.startswith("\\A")) or top_level_bar:
        return "has a quantifier and is not anchored by a leading ^ (without a top-level |)"
    return None


@dataclass(frozen=True)
class PythonSubsetEngine:
    """The fallback: Python's ``re``, only for patterns in :func:`python_subset_reason`'s linear subset."""

    name: str = "python-subset"

    def compile(self, pattern: str) -> Matcher | str:
        reason = python_subset_reason(pattern)
        if reason is not None:
            return f"it {reason}, which Python's regex engine may run in exponential time; install m2parse[re2]"
        try:
            compiled = re.compile(pattern)
        except (re.error, RecursionError, OverflowError, ValueError) as exc:
            return f"it is not a valid regular expression: {exc}"
        return lambda text: compiled.search(text) is not None


@dataclass(frozen=True)
class Re2Engine:
    """google-re2 (``pip install m2parse[re2]``): linear time for every pattern it accepts. Patterns it rejects
    (lookaround, backreferences) fall back to the Python subset."""

    module: Any
    name: str = "re2"

    def compile(self, pattern: str) -> Matcher | str:
        try:
            options = self.module.Options()
            options.log_errors = False  # RE2 would print each rejected pattern on stderr
            options.never_capture = True
            compiled = self.module.compile(pattern, options)
        except Exception:  # re2.error, or a pattern over its memory budget
            return PythonSubsetEngine().compile(pattern)

        def search(text: str) -> bool:
            try:
                return compiled.search(text) is not None
            except UnicodeError:  # a lone surrogate: RE2 reads UTF-8 only
                return compiled.search(text.encode("utf-8", "replace").decode("utf-8")) is not None

        return search


def default_engine() -> PatternEngine:
    """google-re2 when installed, else the Python subset."""
    try:
        import re2  # type: ignore[import-not-found]
    except ImportError:
        return PythonSubsetEngine()
    return Re2Engine(re2)


@dataclass
class _Patterns:
    """Compiled patterns of one schema (compiled on first sight; a race compiles twice, harmlessly)."""

    engine: PatternEngine
    compiled: dict[str, Matcher | str] = field(default_factory=dict)

    def get(self, pattern: str) -> Matcher | str:
        found = self.compiled.get(pattern)
        if found is None:
            found = self.compiled[pattern] = self.engine.compile(pattern)
        return found

    def search(self, pattern: str, text: str) -> bool | None:
        """Whether ``pattern`` matches somewhere in ``text``; None when it cannot be checked safely."""
        matcher = self.get(pattern)
        return None if isinstance(matcher, str) else matcher(text)


# --------------------------------------------------------------------------------------------- references


class _Refused(Exception):
    pass


def _refuse(uri: str) -> referencing.Resource[Any]:
    """The registry's retrieve: every reference outside the tool's own schema ends here, and nothing is fetched."""
    raise _Refused(uri)


def _refused_uri(exc: BaseException) -> str | None:
    """The absolute URI a failed lookup was refused (referencing chains it as ``Unretrievable(ref=uri)``)."""
    cause = exc.__cause__
    return cause.ref if isinstance(cause, referencing.exceptions.Unretrievable) else None


def _local_registry() -> referencing.Registry[Any]:
    return referencing.Registry(retrieve=_refuse)  # type: ignore[call-arg]


def _size_and_refs(schema: Any, limits: SchemaLimits) -> str | None:
    """Size, depth and reference count, by an iterative walk that stops as soon as a limit is passed."""
    size = 0
    refs = 0
    objects = 0
    stack: list[tuple[Any, int]] = [(schema, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Mapping):
            if depth > limits.max_depth:
                return f"schema nested deeper than {limits.max_depth} levels"
            size += 2 + len(node)
            objects += 1
            if objects > limits.max_objects:
                return f"schema has more than {limits.max_objects} objects"
            for key, value in node.items():
                size += len(key) + 3 if isinstance(key, str) else 8
                if key in _REF_KEYWORDS and isinstance(value, str):
                    refs += 1
                stack.append((value, depth + 1))
        elif isinstance(node, (list, tuple)):
            if depth > limits.max_depth:
                return f"schema nested deeper than {limits.max_depth} levels"
            size += 2 + len(node)
            stack.extend((item, depth + 1) for item in node)
        elif isinstance(node, str):
            size += len(node) + 2
        else:
            size += 8
        if size > limits.max_chars:
            return f"schema larger than {limits.max_chars} characters of JSON"
        if refs > limits.max_refs:
            return f"schema has more than {limits.max_refs} references"
    return None


@dataclass
class _Survey:
    patterns: set[str] = field(default_factory=set)
    property_patterns: set[str] = field(default_factory=set)
    unevaluated: bool = False


def _survey(root: Mapping[str, Any], cls: Any, limits: SchemaLimits) -> _Survey | str:
    """Walk the schema as jsonschema applies it, every reference expanded: each reference must resolve inside
    the schema (the registry fetches nothing), the expansion must stay under ``max_expanded``, no loop of
    references may come back to a subschema without descending into the value, and no nested ``$schema``."""
    spec = _specification(cls)
    survey = _Survey()
    try:
        resolver = _local_registry().resolver_with_root(spec.create_resource(root))
    except Exception as exc:  # a non-string $id, ...
        return f"the schema's $id cannot be used: {exc}"
    ref_alone = cls in _REF_ALONE
    lookups: dict[tuple[int, str], Any] = {}
    active: dict[int, int] = {}  # id(target of a reference being expanded on this path) -> descents at entry
    work = 0
    exit_marker = object()
    stack: list[tuple[Any, Any, Any, int, int | None]] = [(None, root, resolver, 0, None)]
    while stack:
        marker, node, resolver, descents, key = stack.pop()
        if marker is exit_marker:
            active.pop(key, None)  # type: ignore[arg-type]
            continue
        if key is not None:
            active[key] = descents
            stack.append((exit_marker, None, None, 0, key))
        work += 1 + (len(node) if isinstance(node, Mapping) else 0)
        if work > limits.max_expanded:
            return f"references expand the schema past {limits.max_expanded} subschemas and keywords"
        if not isinstance(node, Mapping):
            continue
        if node is not root and "$schema" in node:
            return "$schema is allowed only at the top of the schema"
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            survey.patterns.add(pattern)
        properties = node.get("patternProperties")
        if isinstance(properties, Mapping):
            survey.property_patterns.update(p for p in properties if isinstance(p, str))
        if "unevaluatedProperties" in node:
            survey.unevaluated = True
        for keyword in _REF_KEYWORDS:
            ref = node.get(keyword)
            if not isinstance(ref, str):
                continue
            memo = (id(resolver), ref)
            if memo not in lookups:
                try:
                    lookups[memo] = (resolver, resolver.lookup("#" if keyword == "$recursiveRef" else ref))
                except referencing.exceptions.Unresolvable as exc:
                    uri = _refused_uri(exc)
                    where = f" ({uri[:200]})" if uri is not None and uri != ref else ""
                    if uri is None:
                        return f"{keyword} {ref[:200]!r} points nowhere in the tool's schema"
                    return f"{keyword} {ref[:200]!r}{where} is not inside the tool's schema (m2parse fetches nothing)"
                except Exception as exc:
                    return f"{keyword} {ref[:200]!r} cannot be resolved: {exc}"
            target = lookups[memo][1]
            if descents == _UNAPPLIED:
                continue  # resolvable is all a definition needs; where it is used, it is expanded there
            target_key = id(target.contents)
            if target_key in active:
                if active[target_key] == descents:
                    return f"{keyword} {ref[:200]!r} loops back without descending into the value"
                continue
            stack.append((None, target.contents, target.resolver, descents, target_key))
        if ref_alone and "$ref" in node:
            continue
        for keyword, value in node.items():
            if keyword in _IN_LIST or (keyword == "items" and isinstance(value, list)):
                subs: Any = value if isinstance(value, list) else (value,)  # draft 3: extends may be one schema
            elif keyword in _IN_VALUE:
                subs = (value,)
            elif keyword in _IN_VALUES:
                subs = value.values() if isinstance(value, Mapping) else ()
            else:
                continue
            if descents == _UNAPPLIED or keyword in _DEFINITIONS:
                below = _UNAPPLIED
            else:
                below = descents if keyword in _IN_PLACE else descents + 1
            for sub in subs:
                if not isinstance(sub, Mapping):
                    continue  # true/false/garbage: nothing to follow (the metaschema check names garbage)
                sub_resolver = resolver
                if "$id" in sub or "id" in sub:
                    with contextlib.suppress(Exception):  # a malformed $id: the metaschema check names it
                        sub_resolver = resolver.in_subresource(spec.create_resource(sub))
                stack.append((None, sub, sub_resolver, below, None))
    return survey


def _specification(cls: Any) -> Any:
    dialect = cls.ID_OF(cls.META_SCHEMA) or "urn:unknown-dialect"
    return referencing.jsonschema.specification_with(dialect, default=referencing.jsonschema.DRAFT202012)


# --------------------------------------------------------------------------------------------- validation


class _OverBudget(Exception):
    pass


class _Budget(FormatChecker):
    """One call's work budget. jsonschema copies a validator's ``format_checker`` into every validator it
    derives while descending, so this is the one per-call object every keyword sees; it checks no format
    (m2parse never asserted ``format``), and carries the schema's compiled patterns."""

    def __init__(self, limit: int, patterns: _Patterns) -> None:
        super().__init__(formats=())
        self.left = limit
        self.patterns = patterns

    def spend(self, units: int) -> None:
        self.left -= units
        if self.left < 0:
            raise _OverBudget


def _budget(validator: Any) -> _Budget | None:
    checker = validator.format_checker
    return checker if isinstance(checker, _Budget) else None


def _size(value: Any) -> int:
    """Elements of a container, or 64-character pieces of a string (not recursive: descending is charged
    where it happens)."""
    if isinstance(value, str):
        return len(value) // 64
    return len(value) if isinstance(value, (list, tuple, Mapping)) else 0


def _charged(keyword: Callable[..., Any], cost: int, scale: int) -> Callable[..., Iterator[ValidationError]]:
    """Charge a keyword for its own work: ``cost``, plus ``scale`` per element of the value it applies to and of
    its argument (a string counts one per 64 characters: its scans run at C speed), plus, for each error it builds,
    ``_ERROR_COST`` and one per 64 characters of the message (a message holds the value's repr)."""

    def charged(validator: Any, value: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
        budget = _budget(validator)
        if budget is not None:
            budget.spend(cost + scale * (_size(instance) + _size(value)))
        for error in keyword(validator, value, instance, schema) or ():
            if budget is not None:
                budget.spend(_ERROR_COST + len(error.message) // 64)
            yield error

    return charged


def _search(validator: Any, pattern: str, text: str) -> bool | None:
    budget = _budget(validator)
    if budget is None:  # a validator built without guard_schema's budget: use the safe fallback
        matcher = PythonSubsetEngine().compile(pattern)
        return None if isinstance(matcher, str) else matcher(text)
    budget.spend(1 + len(text) // 16 + len(pattern))
    return budget.patterns.search(pattern, text)


def _unchecked(validator: Any, pattern: str) -> ValidationError:
    budget = _budget(validator)
    matcher = budget.patterns.get(pattern) if budget is not None else PythonSubsetEngine().compile(pattern)
    return ValidationError(f"pattern {pattern!r} was not checked: {matcher}")


def _pattern(validator: Any, pattern: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not isinstance(instance, str) or not isinstance(pattern, str):
        return
    found = _search(validator, pattern, instance)
    if found is None:
        yield _unchecked(validator, pattern)
    elif not found:
        yield ValidationError(f"{_preview(instance)} does not match {pattern!r}")


def _pattern_properties(validator: Any, patterns: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object") or not isinstance(patterns, Mapping):
        return
    for pattern, subschema in patterns.items():
        reported = False
        for key, value in instance.items():
            found = _search(validator, pattern, key)
            if found is None and not reported:
                reported = True
                yield _unchecked(validator, pattern)
            elif found:
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(validator: Any, extra: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    """Like jsonschema's, with patterns matched by the schema's engine; a key that only an unchecked pattern
    could claim is not counted as extra (the unchecked pattern is reported by ``patternProperties``)."""
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    if not isinstance(properties, Mapping):
        properties = {}
    if not isinstance(patterns, Mapping):
        patterns = {}
    extras = [
        key
        for key in instance
        if key not in properties and not any(_search(validator, p, key) is not False for p in patterns)
    ]
    if isinstance(extra, Mapping):
        for key in extras:
            yield from validator.descend(instance[key], extra, path=key)
    elif extra is False and extras:
        names = ", ".join(repr(key) for key in extras)
        if patterns:
            listed = ", ".join(repr(p) for p in sorted(patterns))
            verb = "does" if len(extras) == 1 else "do"
            yield ValidationError(f"{names} {verb} not match any of the regexes: {listed}")
        else:
            verb = "was" if len(extras) == 1 else "were"
            yield ValidationError(f"Additional properties are not allowed ({names} {verb} unexpected)")


def _unique_items(validator: Any, unique: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    """Linear in the array (jsonschema's own check falls back to comparing every pair)."""
    if not unique or not validator.is_type(instance, "array"):
        return
    budget = _budget(validator)
    seen: set[Any] = set()
    for item in instance:
        key = _json_key(item, budget)
        if key in seen:
            yield ValidationError(f"{instance!r} has non-unique elements")
            return
        seen.add(key)


def _json_key(value: Any, budget: _Budget | None) -> Any:
    """A hashable key equal for JSON-equal values (1 == 1.0, true != 1, objects unordered)."""
    if budget is not None:
        budget.spend(2 + _size(value))
    if value is None:
        return ("null",)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, (list, tuple)):
        return ("array", tuple(_json_key(item, budget) for item in value))
    if isinstance(value, Mapping):
        return ("object", frozenset((key, _json_key(item, budget)) for key, item in value.items()))
    return ("other", repr(value))


#: Each subschema a keyword descends into costs a new jsonschema validator, about four plain keyword checks;
#: a reference adds a registry lookup.
_DESCEND_COST = 4
_REF_COST = 16
#: Building a ValidationError (kept as context by anyOf/oneOf) costs about three descents.
_ERROR_COST = 12


def _cost(keyword: str) -> tuple[int, int]:
    """(fixed cost, cost per element) of applying ``keyword`` once, in work units."""
    if keyword in _REF_KEYWORDS:
        return _REF_COST, 1
    if keyword in _IN_PLACE or keyword in _IN_VALUE or keyword in _IN_LIST or keyword in _IN_VALUES:
        return _DESCEND_COST, _DESCEND_COST
    return 1, 1


_OVERRIDES: dict[str, Callable[..., Iterator[ValidationError]]] = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "uniqueItems": _unique_items,
}


@functools.lru_cache(maxsize=16)
def _guarded_class(base: Any) -> Any:
    """``base`` with every keyword charged to the call's budget and the regex keywords on our engine. One class
    per dialect, memoised because building one costs a millisecond; it holds no per-schema or per-call state."""
    keywords = {name: _OVERRIDES.get(name, keyword) for name, keyword in base.VALIDATORS.items()}
    return _js_validators.extend(base, {name: _charged(keyword, *_cost(name)) for name, keyword in keywords.items()})


@dataclass(frozen=True)
class GuardedSchema:
    """A schema that passed :func:`guard_schema`: its validator, compiled patterns and limits."""

    validator: Any
    patterns: _Patterns
    limits: SchemaLimits

    def search(self, pattern: str, text: str) -> bool | None:
        """``pattern`` searched in ``text`` with this schema's engine; None when it cannot be checked safely."""
        return self.patterns.search(pattern, text)

    def errors(self, arguments: Any) -> list[str]:
        """``path: message`` for each violation; if the work budget runs out, the messages so far and one
        saying the rest was not checked."""
        try:
            size = len(json.dumps(arguments, ensure_ascii=False, default=repr))
        except (TypeError, ValueError, RecursionError):
            size = 0
        limit = self.limits.base_work + self.limits.work_per_char * size
        validator = self.validator.evolve(format_checker=_Budget(limit, self.patterns))
        messages: list[str] = []
        try:
            for error in validator.iter_errors(arguments):
                messages.append(f"{error.json_path}: {_cut(error.message)}")
        except _OverBudget:
            messages.append(
                f"validation stopped after {limit} work units (m2parse's bound for this call); the rest of the"
                " arguments was not checked"
            )
        except RecursionError:
            messages.append("arguments nested too deeply to validate")
        except Exception as exc:  # an unresolvable $ref, an unknown type, ...: the schema's fault, not ours
            messages.append(f"schema could not be applied: {_one_line(exc)}")
        return messages


_PREVIEW = 200
_MAX_MESSAGE = 1_000


def _preview(text: str) -> str:
    """A long value's repr, cut: a message names the value, it need not repeat a megabyte of it."""
    return repr(text) if len(text) <= _PREVIEW else f"{text[:_PREVIEW]!r}... ({len(text)} characters)"


def _cut(message: str) -> str:
    """jsonschema's messages hold the whole value's repr; a problem message keeps the first 1000 characters."""
    return message if len(message) <= _MAX_MESSAGE else f"{message[:_MAX_MESSAGE]}... ({len(message)} characters)"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:300] + "..."


def guard_schema(
    schema: Any, *, limits: SchemaLimits = LIMITS, engine: PatternEngine | None = None
) -> GuardedSchema | str:
    """Check ``schema`` once (limits, local-only references, patterns) and build its validator; on refusal,
    the one-line reason. Costs at most about ``max_chars + max_expanded`` steps, whatever the schema."""
    if not isinstance(schema, Mapping):
        return f"schema must be an object, not {type(schema).__name__}"
    reason = _size_and_refs(schema, limits)
    if reason is not None:
        return reason
    try:
        # A default stops jsonschema warning about unknown $schema URIs: those fall back to the latest draft.
        base = _js_validators.validator_for(schema, default=_js_validators.Draft202012Validator)
    except Exception as exc:  # e.g. an unhashable $schema value
        return f"invalid $schema: {_one_line(exc)}"
    # Without its $schema the root keeps the class chosen here when a reference leads back to it (jsonschema
    # would otherwise swap in its own validator class there, with Python regexes and no budget).
    root = {key: value for key, value in schema.items() if key != "$schema"}
    survey = _survey(root, base, limits)
    if isinstance(survey, str):
        return survey
    patterns = _Patterns(engine if engine is not None else default_engine())
    if survey.unevaluated:
        # jsonschema's unevaluatedProperties matches patternProperties with Python's re, not with our engine.
        for pattern in sorted(survey.property_patterns):
            why = python_subset_reason(pattern)
            if why is not None:
                return f"patternProperties {pattern[:200]!r} {why}; it cannot be combined with unevaluatedProperties"
    for pattern in survey.patterns | survey.property_patterns:
        patterns.get(pattern)
    try:
        validator = _guarded_class(base)(root, registry=_local_registry())
    except Exception as exc:
        return f"invalid parameters schema: {_one_line(exc)}"
    return GuardedSchema(validator, patterns, limits)


def guard_schema_memo(schema: Any) -> GuardedSchema | str:
    """:func:`guard_schema` with the defaults, memoised by the schema's JSON text: a parser made per request
    (the server, agent loops) sees the same tools every turn, and the check costs up to tens of milliseconds.
    A schema that is not JSON text is checked every time."""
    try:
        text = json.dumps(schema, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return guard_schema(schema)
    if len(text) > LIMITS.max_chars:
        return guard_schema(schema)  # refused cheaply by size; not worth a memo slot
    return _guard_text(text)


@functools.lru_cache(maxsize=256)
def _guard_text(text: str) -> GuardedSchema | str:
    """Bounded memo of a pure function (the same text always gives an equal result)."""
    return guard_schema(json.loads(text))


def metaschema_error(schema: Mapping[str, Any]) -> str | None:
    """The first metaschema violation (``at path: message``), checked with a registry that fetches nothing.
    Call it only on a schema :func:`guard_schema` accepted: that bounds its size and so this check's cost."""
    try:
        cls = _js_validators.validator_for(schema, default=_js_validators.Draft202012Validator)
        meta = _js_validators.validator_for(cls.META_SCHEMA, default=cls)
        checker = meta(cls.META_SCHEMA, format_checker=meta.FORMAT_CHECKER, registry=_local_registry())
        error = next(checker.iter_errors(schema), None)
    except RecursionError:
        return "nested too deeply"
    except Exception as exc:
        return _one_line(exc)
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path)
    return f"at {where}: {error.message}" if where else error.message
