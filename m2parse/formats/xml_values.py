"""One MiniMax-M3 argument value -> a typed JSON value, streamed as JSON fragments of ``json.dumps(value)``.

M3 writes an argument as nested elements (the official template's ``to_xml``): a mapping is one element per key,
a list is one ``<item>`` per entry, a boolean is ``true``/``false``, anything else is its text. The markup alone
cannot tell ``{}`` from ``[]`` from ``""``, nor ``42`` from ``"42"``: the schema decides, and where it allows
several shapes, what arrives decides. The parser engine finds the namespace-prefixed tags and calls
:class:`XmlValueBuilder` with the text and the nested elements between the argument's own tags.

Every method returns a JSON fragment; all fragments of one value concatenate to ``json.dumps(value,
ensure_ascii=False)``, whatever the split of the text, because nothing is emitted before it is certain.

Rules (docs/architecture.md, "M3 values"):

1. The shape of an element comes from ``allowed_types`` of its schema (m2parse.schema, ``$ref`` followed):
   string-only → a string, streamed as the text arrives. Anything else waits for its first non-whitespace
   event: a child element makes it an object or an array (both allowed, or no schema: the first child decides,
   ``item`` → array, any other name → object; only one allowed: that one), non-whitespace text makes it a text
   value converted at its close by ``schema.convert_value`` exactly as M2 (strict JSON numbers, booleans, null only
   where allowed, unions in the schema's order, JSON text for a container); failure → ``coercion_failed``, the
   text kept as a string. With no schema, text is a string (streamed), or with ``infer_types`` converted as M2
   infers. An element with only whitespace is ``""`` (verbatim whitespace) if a string is allowed, else ``{}`` if
   an object is, else ``[]`` if an array is, else converted (and most likely ``coercion_failed``).
2. Object: child elements are keys, in the order written. A key's schema is its ``properties`` entry, else the
   matching ``patternProperties`` (the guarded schema's engine), else an ``additionalProperties`` schema, looked
   up through ``allOf``/``anyOf``/``oneOf`` branches (several hits → their ``anyOf``). Unknown keys are kept with
   no schema (validation decides). A repeated key → ``duplicate_parameter``: the first wins, as in M2 (it is
   already streamed), the later value is dropped and shown in the message.
3. Array: each child is one entry, schema from ``prefixItems``/``items``/``additionalItems``. A child not named
   ``item`` → ``unexpected_tag``, its value kept as an entry (the name is in the message).
4. Whitespace between the children of an object or array is ignored. Other text there → ``stray_text`` with the
   whole text in the message (an object has no place for it); it is not put into the value.
5. A tag inside a string or text value (or inside a scalar-only value) is re-serialised as
   ``]<]minimax[>[<name>`` / ``]<]minimax[>[</name>`` (``unexpected_tag``; attributes the tag had are lost): the
   engine SHOULD instead pass string-typed content to :meth:`text` raw. :attr:`verbatim` tells it when a tag
   could only become text; it then passes every tag raw except the close tag of :attr:`element` (or the
   argument's own close), which it passes to :meth:`close`.
6. ``close(name)`` closes the innermost open element of that name; the elements above it are closed first, each
   ``unbalanced_tag``. A close that matches no open element → ``unbalanced_tag``: kept as text inside a text
   value, else dropped (named in the message).
7. ``finish(truncated=True)``: every open element is closed with what arrived (a text value still converted),
   ``truncated_value``. ``finish(truncated=False)`` with elements still open: ``unbalanced_tag``, closed the same
   way.
8. More than 64 nested elements: ``unexpected_tag`` once, and from there tags are text (each close balances one
   such open), so hostile nesting costs linear time and no recursion.

Problem messages start with the path inside the argument (``$`` is the argument, ``$.key[0]``). Calls after
``finish()`` are ignored. Cost is linear in the input: pieces are kept in lists and joined once at an element's
close; schema branch lists and allowed types are memoised per builder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

from m2parse import problems as P
from m2parse.formats.m3 import ITEM_TAG, NAMESPACE
from m2parse.schema import allowed_types, convert_value, resolve_schema
from m2parse.schema_guard import GuardedSchema, guard_schema_memo

__all__ = ["MAX_DEPTH", "XmlValueBuilder"]

#: Nested elements (below the argument) read as structure; deeper tags are text.
MAX_DEPTH = 64
_MAX_BRANCHES = 64  # subschemas of allOf/anyOf/oneOf searched for a key's or an item's schema
_PREVIEW = 60
_DROPPED_PREVIEW = 200
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')

_PENDING = "pending"  # only whitespace so far: the shape is not decided
_STRING = "string"  # streamed as a JSON string
_TEXT = "text"  # raw text, converted at the close
_OBJECT = "object"
_ARRAY = "array"
_CONTAINERS = frozenset({"object", "array"})


def _escape(text: str) -> str:
    """JSON string body (no quotes); per character, so any split of a string escapes to the same text."""
    if _NEEDS_ESCAPE.search(text) is None:
        return text
    return encode_basestring(text)[1:-1]  # type: ignore[no-any-return]


def _preview(text: str, limit: int = _PREVIEW) -> str:
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


@dataclass(slots=True, eq=False)
class _Frame:
    """One open element that makes a value (the argument itself has ``name`` None)."""

    name: str | None
    label: str  # its step in a problem's path: ".key", "[2]", "" for the argument
    schema: Mapping[str, Any] | None  # resolved; None: no usable schema
    allowed: frozenset[str] | None
    kind: str
    muted: bool = False  # inside a dropped duplicate key: built, never emitted
    duplicate: bool = False
    parts: list[str] = field(default_factory=list)  # raw text (held whitespace while pending)
    container: dict[str, Any] | list[Any] | None = None
    stray: list[str] = field(default_factory=list)  # text between the children of a container
    stray_text: bool = False  # that text is not only whitespace


class XmlValueBuilder:
    """Builds one argument's value from the engine's text/open/close/finish calls; never raises.

    ``schema`` is the argument's JSON schema (None: unknown), ``root`` the tool's parameters schema that its local
    ``$ref``s point into (default: ``schema`` itself).
    """

    def __init__(
        self, schema: Mapping[str, Any] | None, root: Mapping[str, Any] | None = None, *, infer_types: bool = False
    ) -> None:
        self._root: Any = root if root is not None else schema if schema is not None else {}
        self._infer = infer_types
        self._out: list[str] = []
        self._allowed_memo: dict[int, tuple[Mapping[str, Any], frozenset[str] | None]] = {}
        self._branch_memo: dict[int, tuple[Mapping[str, Any], list[Mapping[str, Any]]]] = {}
        # A key's or an entry's schema, by (id of a frame schema, key or entry index); every frame schema is kept
        # alive by _allowed_memo, so the ids stay unique. Entries past every tuple prefix share one slot.
        self._member_memo: dict[tuple[int, str | int], Mapping[str, Any] | None] = {}
        self._guard: GuardedSchema | str | None = None
        self._overflow = 0  # open tags past MAX_DEPTH, kept as text
        self._done = False
        self.value: Any = None
        self.problems: list[tuple[str, str]] = []
        top = self._new_frame(None, "", schema, muted=False)
        self._stack: list[_Frame | str] = [top]  # a str is a tag kept as text inside a text value
        self._frame = top  # the innermost _Frame of the stack

    # ------------------------------------------------------------------ the engine's calls

    @property
    def depth(self) -> int:
        """Nested elements open now, tags kept as text included."""
        return max(len(self._stack) - 1, 0) + self._overflow

    @property
    def verbatim(self) -> bool:
        """True when a tag here could only become text (a string or text value, a scalar-only schema, or past
        the depth limit): the engine may then pass the content raw to :meth:`text`."""
        frame = self._frame
        if self._overflow or frame.kind in (_STRING, _TEXT):
            return True
        return frame.kind == _PENDING and frame.allowed is not None and not (frame.allowed & _CONTAINERS)

    @property
    def element(self) -> str | None:
        """The name of the innermost open element that makes a value (None: the argument itself): in verbatim
        content, its close tag is the one the engine still passes to :meth:`close`."""
        return self._frame.name

    def text(self, piece: str) -> str:
        if self._done or not piece:
            return ""
        self._take(self._frame, piece)
        return self._flush()

    def open(self, name: str) -> str:
        if self._done:
            return ""
        frame = self._frame
        if self._overflow or len(self._stack) > MAX_DEPTH:
            if not self._overflow:
                self._report(P.UNEXPECTED_TAG, f"nesting deeper than {MAX_DEPTH} elements: tags from here are text")
            self._overflow += 1
            self._take(frame, f"{NAMESPACE}<{name}>")
            return self._flush()
        if frame.kind == _PENDING:
            self._choose_shape(frame, name)
        if frame.kind in (_STRING, _TEXT):
            self._report(P.UNEXPECTED_TAG, f"<{_short(name)}> inside a {frame.kind} value is kept as text")
            self._take(frame, f"{NAMESPACE}<{name}>")
            self._stack.append(name)
            return self._flush()
        self._flush_stray(frame)
        container = frame.container
        duplicate = False
        if isinstance(container, dict):
            duplicate = name in container
            if not duplicate:
                self._emit(frame, (", " if container else "") + json.dumps(name, ensure_ascii=False) + ": ")
            schema = self._property_schema(frame.schema, name)
            label = "." + _short(name)
        else:
            assert container is not None
            index = len(container)
            if name != ITEM_TAG:
                self._report(P.UNEXPECTED_TAG, f"<{_short(name)}> in an array: kept as entry {index}")
            if index:
                self._emit(frame, ", ")
            schema = self._item_schema(frame.schema, index)
            label = f"[{index}]"
        child = self._new_frame(name, label, schema, muted=frame.muted or duplicate)
        child.duplicate = duplicate
        self._stack.append(child)
        self._frame = child
        return self._flush()

    def close(self, name: str) -> str:
        if self._done:
            return ""
        if self._overflow:
            self._overflow -= 1
            self._take(self._frame, f"{NAMESPACE}</{name}>")
            return self._flush()
        stack = self._stack
        index = len(stack) - 1
        while index > 0:
            entry = stack[index]
            if (entry if isinstance(entry, str) else entry.name) == name:
                break
            index -= 1
        else:
            frame = self._frame
            if frame.kind == _PENDING and frame.allowed is not None and not frame.allowed & _CONTAINERS:
                self._commit_text(frame)  # a scalar-only value: the tag can only be text, as an open one is
            as_text = frame.kind in (_STRING, _TEXT)
            self._report(
                P.UNBALANCED_TAG,
                f"</{_short(name)}> closes no open element; " + ("kept as text" if as_text else "dropped"),
            )
            if as_text:
                self._take(frame, f"{NAMESPACE}</{name}>")
            return self._flush()
        while len(stack) - 1 > index:
            self._pop(f"not closed before </{_short(name)}>")
        self._pop(None)
        return self._flush()

    def finish(self, *, truncated: bool) -> str:
        if self._done:
            return ""
        if truncated:
            self._report(P.TRUNCATED_VALUE, "output ended inside the value; what arrived is kept")
        elif len(self._stack) > 1:
            names = [_short(e if isinstance(e, str) else e.name or "") for e in self._stack[1:]]
            self._report(P.UNBALANCED_TAG, f"not closed at the end of the argument: {', '.join(names)}")
        self._overflow = 0
        while len(self._stack) > 1:
            self._pop("")
        self.value = self._end(self._frame)
        self._stack.clear()
        self._done = True
        return self._flush()

    # ------------------------------------------------------------------ frames

    def _new_frame(self, name: str | None, label: str, schema: Any, *, muted: bool) -> _Frame:
        resolved = resolve_schema(schema, self._root) if schema is not None else None
        allowed = self._allowed(resolved)
        kind = _STRING if allowed == {"string"} else _PENDING
        frame = _Frame(name, label, resolved, allowed, kind, muted)
        if kind == _STRING:
            self._emit(frame, '"')
        return frame

    def _take(self, frame: _Frame, piece: str) -> None:
        """``piece`` of raw text at the current position of ``frame``."""
        kind = frame.kind
        if kind == _STRING:
            frame.parts.append(piece)
            self._emit(frame, _escape(piece))
        elif kind == _TEXT:
            frame.parts.append(piece)
        elif kind == _PENDING:
            frame.parts.append(piece)
            if not piece.isspace():
                self._commit_text(frame)
        else:
            frame.stray.append(piece)
            if not piece.isspace():
                frame.stray_text = True

    def _commit_text(self, frame: _Frame) -> None:
        """Non-whitespace text decided the shape: a streamed string without a schema, else converted text."""
        if frame.allowed is None and not self._infer:
            frame.kind = _STRING
            held = "".join(frame.parts)
            frame.parts = [held]
            self._emit(frame, '"' + _escape(held))
        else:
            frame.kind = _TEXT

    def _choose_shape(self, frame: _Frame, child: str) -> None:
        """The first child of a pending element: object or array if the schema allows one, else text."""
        allowed = frame.allowed
        if allowed is None or allowed >= _CONTAINERS:
            is_array = child == ITEM_TAG
        elif "object" in allowed or "array" in allowed:
            is_array = "array" in allowed
        else:
            self._commit_text(frame)
            return
        frame.parts.clear()  # whitespace before the first child is layout
        frame.kind = _ARRAY if is_array else _OBJECT
        frame.container = [] if is_array else {}
        self._emit(frame, "[" if is_array else "{")

    def _pop(self, why: str | None) -> None:
        """Close the top entry: ``why`` None for its own close tag, "" at the end, else why it was closed."""
        entry = self._stack[-1]
        if isinstance(entry, str):
            if why is None:
                self._take(self._frame, f"{NAMESPACE}</{entry}>")
            elif why:
                self._report(P.UNBALANCED_TAG, f"<{_short(entry)}> (kept as text) {why}")
            self._stack.pop()
            return
        if why:
            self._report(P.UNBALANCED_TAG, f"<{_short(entry.name or '')}> {why}")
        value = self._end(entry)
        if entry.duplicate:
            dropped = json.dumps(value, ensure_ascii=False)
            self._report(
                P.DUPLICATE_PARAMETER,
                f"key {_preview(entry.name or '')} given twice; the later value is dropped: "
                + _preview(dropped, _DROPPED_PREVIEW),
            )
        self._stack.pop()
        parent = self._stack[-1]
        assert isinstance(parent, _Frame)  # elements open only inside containers, tags kept as text only in text
        self._frame = parent
        container = parent.container
        if isinstance(container, dict):
            if not entry.duplicate:
                container[entry.name or ""] = value
        elif isinstance(container, list):
            container.append(value)

    def _end(self, frame: _Frame) -> Any:
        """The value of ``frame``, its closing fragment emitted."""
        kind = frame.kind
        if kind in (_OBJECT, _ARRAY):
            self._flush_stray(frame)
            self._emit(frame, "}" if kind == _OBJECT else "]")
            return frame.container
        raw = "".join(frame.parts)
        if kind == _STRING:
            self._emit(frame, '"')
            return raw
        allowed = frame.allowed
        if kind == _PENDING and allowed is not None and "string" not in allowed and allowed & _CONTAINERS:
            value: Any = {} if "object" in allowed else []  # the template writes an empty container as nothing
            self._emit(frame, "{}" if "object" in allowed else "[]")
            return value
        conversion = convert_value(raw, frame.schema, self._root, infer_types=self._infer)
        value = conversion.value
        if conversion.error is not None:
            self._report(P.COERCION_FAILED, conversion.error)
        try:
            encoded = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):  # defensive: a converter must return JSON data
            value = raw.strip()
            encoded = json.dumps(value, ensure_ascii=False)
        self._emit(frame, encoded)
        return value

    def _flush_stray(self, frame: _Frame) -> None:
        if frame.stray:
            if frame.stray_text:
                text = "".join(frame.stray)
                self._report(P.STRAY_TEXT, f"text between elements is not part of the value: {text!r}")
            frame.stray.clear()
            frame.stray_text = False

    # ------------------------------------------------------------------ schemas

    def _allowed(self, schema: Mapping[str, Any] | None) -> frozenset[str] | None:
        if schema is None:
            return None
        memo = self._allowed_memo.get(id(schema))
        if memo is None:
            memo = self._allowed_memo[id(schema)] = (schema, allowed_types(schema, self._root))  # keeps it alive
        return memo[1]

    def _branches(self, schema: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        """``schema`` and the subschemas of its allOf/anyOf/oneOf, breadth first, at most _MAX_BRANCHES."""
        memo = self._branch_memo.get(id(schema))
        if memo is not None:
            return memo[1]
        nodes = [schema]
        seen = {id(schema)}
        i = 0
        while i < len(nodes) and len(nodes) < _MAX_BRANCHES:
            node = nodes[i]
            i += 1
            for keyword in ("allOf", "anyOf", "oneOf"):
                members = node.get(keyword)
                if not isinstance(members, list):
                    continue
                for member in members[:_MAX_BRANCHES]:
                    sub = resolve_schema(member, self._root)
                    if sub is not None and id(sub) not in seen and len(nodes) < _MAX_BRANCHES:
                        seen.add(id(sub))
                        nodes.append(sub)
        self._branch_memo[id(schema)] = (schema, nodes)
        return nodes

    def _property_schema(self, schema: Mapping[str, Any] | None, key: str) -> Mapping[str, Any] | None:
        if schema is None:
            return None
        slot = (id(schema), key)
        if slot in self._member_memo:
            return self._member_memo[slot]
        found: list[Any] = []
        for node in self._branches(schema):
            properties = node.get("properties")
            if isinstance(properties, Mapping) and key in properties:
                found.append(properties[key])
                continue
            patterns = node.get("patternProperties")
            matched = False
            if isinstance(patterns, Mapping):
                for pattern, sub in patterns.items():
                    if isinstance(pattern, str) and self._search(pattern, key):
                        found.append(sub)
                        matched = True
            extra = node.get("additionalProperties")
            if not matched and isinstance(extra, Mapping):
                found.append(extra)
        merged = self._member_memo[slot] = self._merge(found)
        return merged

    def _item_schema(self, schema: Mapping[str, Any] | None, index: int) -> Mapping[str, Any] | None:
        if schema is None:
            return None
        branches = self._branches(schema)
        tuple_length = max(
            (len(node[k]) for node in branches for k in ("prefixItems", "items") if isinstance(node.get(k), list)),
            default=0,
        )
        slot = (id(schema), min(index, tuple_length))
        if slot in self._member_memo:
            return self._member_memo[slot]
        found: list[Any] = []
        for node in branches:
            prefix = node.get("prefixItems")
            items = node.get("items")
            if isinstance(prefix, list):
                if index < len(prefix):
                    found.append(prefix[index])
                elif items is not None and not isinstance(items, list):
                    found.append(items)
            elif isinstance(items, list):
                if index < len(items):
                    found.append(items[index])
                elif "additionalItems" in node:
                    found.append(node["additionalItems"])
            elif items is not None:
                found.append(items)
        merged = self._member_memo[slot] = self._merge(found)
        return merged

    def _merge(self, found: list[Any]) -> Mapping[str, Any] | None:
        """One schema for what several branches say (an anyOf when they differ); None when none applies."""
        resolved: list[Mapping[str, Any]] = []
        seen: set[int] = set()
        for sub in found:
            if sub is False:
                continue
            schema = resolve_schema(sub, self._root)
            if schema is not None and id(schema) not in seen:
                seen.add(id(schema))
                resolved.append(schema)
        if not resolved:
            return None
        if len(resolved) == 1:
            return resolved[0]
        return {"anyOf": resolved}

    def _search(self, pattern: str, key: str) -> bool:
        """A patternProperties match with the guarded schema's engine (a key is model output); a refused schema
        or an unchecked pattern matches nothing."""
        if self._guard is None:
            self._guard = guard_schema_memo(self._root)
        if isinstance(self._guard, str):
            return False
        return bool(self._guard.search(pattern, key))

    # ------------------------------------------------------------------ output

    def _emit(self, frame: _Frame, fragment: str) -> None:
        if not frame.muted:
            self._out.append(fragment)

    def _flush(self) -> str:
        out = self._out
        if not out:
            return ""
        text = out[0] if len(out) == 1 else "".join(out)
        out.clear()
        return text

    def _report(self, code: str, message: str) -> None:
        path = "$" + "".join(entry.label for entry in self._stack if isinstance(entry, _Frame))
        self.problems.append((code, f"{path}: {message}"))


def _short(name: str) -> str:
    """An element name in a message: itself if short, else cut."""
    return name if len(name) <= _PREVIEW else f"{name[:_PREVIEW]}... ({len(name)} characters)"
