"""A bounded, eval-free reader for Python-literal style values.

Models sometimes write object/array parameters the way Python prints them (``{'a': True, 'b': None}``,
trailing commas, tuples). ``ast.literal_eval`` would read those, but it recurses (deep input crashes the
interpreter's stack) and compiles arbitrary source first, so this module reads the small literal grammar
with an explicit stack and a nesting bound instead. It is :mod:`m2parse.schema`'s fallback after
``json.loads``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_DEPTH", "LiteralError", "max_nesting", "read_literal"]

#: Deeper than this is refused: the decoded value must survive recursive consumers (json.dumps, jsonschema).
MAX_DEPTH = 512

_WS = " \t\r\n\f\v"
_CLOSERS = {"[": "]", "(": ")", "{": "}"}
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_WORDS: dict[str, Any] = {
    "True": True,
    "False": False,
    "None": None,
    "true": True,
    "false": False,
    "null": None,
}
_WORD = re.compile(r"[A-Za-z_]+")
_SIMPLE_ESCAPES = {
    "\\": "\\",
    "'": "'",
    '"': '"',
    "/": "/",  # JSON's escape; Python would keep the backslash, but JSON with a trailing comma ends up here
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\n": "",  # backslash-newline is a line continuation inside a Python string
}
_HEX_LENGTHS = {"x": 2, "u": 4, "U": 8}
_STRUCTURE = re.compile(r"[\[\](){}\"'\\]")


class LiteralError(ValueError):
    """The text is not a literal this reader accepts; the message says where and why."""


def max_nesting(text: str, limit: int = MAX_DEPTH) -> int:
    """Bracket nesting depth of ``text``, ignoring quoted strings; stops counting once past ``limit``.

    Linear and cheap, so callers can refuse input before a recursive decoder (``json.loads``) sees it.
    """
    depth = deepest = 0
    quote = ""
    skip_to = -1
    for match in _STRUCTURE.finditer(text):
        pos = match.start()
        if pos < skip_to:
            continue
        ch = match.group()
        if quote:
            if ch == "\\":
                skip_to = pos + 2
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "[({":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif ch in "])}":
            depth = max(depth - 1, 0)
    return deepest


@dataclass(slots=True)
class _Frame:
    opener: str
    items: list[Any] = field(default_factory=list)
    mapping: dict[str, Any] = field(default_factory=dict)
    key: str = ""
    expecting_key: bool = True
    saw_comma: bool = False

    def finish(self) -> Any:
        if self.opener == "{":
            return self.mapping
        if self.opener == "(" and len(self.items) == 1 and not self.saw_comma:
            return self.items[0]  # ``(x)`` is a parenthesised value, not a tuple
        return self.items


def read_literal(text: str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Read one literal: dicts (string keys), lists, tuples (as lists), strings, numbers, True/False/None.

    JSON's ``true``/``false``/``null`` are accepted too, and trailing commas are allowed, because the input
    is usually JSON that failed to decode for one such small reason. Raises :class:`LiteralError`.
    """
    return _Reader(text, max_depth).read()


class _Reader:
    __slots__ = ("max_depth", "n", "pos", "text")

    def __init__(self, text: str, max_depth: int) -> None:
        self.text = text
        self.n = len(text)
        self.pos = 0
        self.max_depth = max_depth

    def fail(self, why: str) -> LiteralError:
        return LiteralError(f"{why} at offset {self.pos}")

    def skip_ws(self) -> str:
        text, n, pos = self.text, self.n, self.pos
        while pos < n and text[pos] in _WS:
            pos += 1
        self.pos = pos
        return text[pos] if pos < n else ""

    def read(self) -> Any:
        stack: list[_Frame] = []
        while True:
            ch = self.skip_ws()
            if ch in _CLOSERS:
                if len(stack) >= self.max_depth:
                    raise self.fail("nested too deeply")
                stack.append(_Frame(ch))
                self.pos += 1
                if self.skip_ws() != _CLOSERS[ch]:
                    continue  # read the first element
                self.pos += 1
                value = stack.pop().finish()
            else:
                value = self.scalar(ch)
            # Attach the finished value to its container; close as many containers as end here.
            while True:
                if not stack:
                    if self.skip_ws():
                        raise self.fail("unexpected text after the value")
                    return value
                frame = stack[-1]
                if frame.opener == "{" and frame.expecting_key:
                    if not isinstance(value, str):
                        raise self.fail("object keys must be strings")
                    frame.key = value
                    frame.expecting_key = False
                    if self.skip_ws() != ":":
                        raise self.fail("expected ':'")
                    self.pos += 1
                    break  # read the entry's value
                if frame.opener == "{":
                    frame.mapping[frame.key] = value
                    frame.expecting_key = True
                else:
                    frame.items.append(value)
                ch = self.skip_ws()
                closer = _CLOSERS[frame.opener]
                if ch == ",":
                    frame.saw_comma = True
                    self.pos += 1
                    if self.skip_ws() != closer:
                        break  # read the next element
                    ch = closer
                if ch != closer:
                    raise self.fail(f"expected ',' or {closer!r}")
                self.pos += 1
                value = stack.pop().finish()

    def scalar(self, ch: str) -> Any:
        if ch in "\"'":
            return self.string(ch)
        text, pos = self.text, self.pos
        match = _NUMBER.match(text, pos)
        if match:
            self.pos = match.end()
            token = match.group()
            if "." in token or "e" in token or "E" in token:
                value = float(token)
                if value in (float("inf"), float("-inf")):
                    raise self.fail("number out of range")
                return value
            try:
                return int(token)
            except ValueError:  # more digits than int() agrees to read
                raise self.fail("number too long") from None
        match = _WORD.match(text, pos)
        if match and match.group() in _WORDS:
            self.pos = match.end()
            return _WORDS[match.group()]
        raise self.fail("expected a value" if ch else "unexpected end of text")

    def string(self, quote: str) -> str:
        text, n = self.text, self.n
        pos = self.pos + 1
        parts: list[str] = []
        while True:
            end = pos
            while end < n and text[end] != quote and text[end] != "\\":
                end += 1
            parts.append(text[pos:end])
            if end >= n:
                self.pos = end
                raise self.fail("unterminated string")
            if text[end] == quote:
                self.pos = end + 1
                return _join_surrogates("".join(parts))
            pos = self.escape(end + 1, parts)

    def escape(self, pos: int, parts: list[str]) -> int:
        """Decode the escape after a backslash at ``pos - 1``; returns the position after it."""
        text = self.text
        if pos >= self.n:
            self.pos = pos
            raise self.fail("unterminated string")
        ch = text[pos]
        if ch in _SIMPLE_ESCAPES:
            parts.append(_SIMPLE_ESCAPES[ch])
            return pos + 1
        if ch in _HEX_LENGTHS:
            digits = text[pos + 1 : pos + 1 + _HEX_LENGTHS[ch]]
            if len(digits) != _HEX_LENGTHS[ch] or not all(c in "0123456789abcdefABCDEF" for c in digits):
                self.pos = pos
                raise self.fail(f"bad \\{ch} escape")
            code = int(digits, 16)
            if code > 0x10FFFF:
                self.pos = pos
                raise self.fail("escape beyond Unicode")
            parts.append(chr(code))
            return pos + 1 + len(digits)
        if ch in "01234567":
            end = pos
            while end < pos + 3 and end < self.n and text[end] in "01234567":
                end += 1
            parts.append(chr(int(text[pos:end], 8)))
            return end
        if ch == "N" and text.startswith("{", pos + 1):
            close = text.find("}", pos + 2)
            try:
                parts.append(unicodedata.lookup(text[pos + 2 : close]) if close > 0 else "")
            except KeyError:
                close = -1
            if close < 0:
                self.pos = pos
                raise self.fail("bad \\N{...} escape")
            return close + 1
        parts.append("\\" + ch)  # Python keeps unknown escapes verbatim
        return pos + 1


def _join_surrogates(text: str) -> str:
    """Combine escaped UTF-16 surrogate pairs the way JSON does; lone surrogates stay as they are."""
    if not any("\ud800" <= c <= "\udbff" for c in text):
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if "\ud800" <= c <= "\udbff" and i + 1 < n and "\udc00" <= text[i + 1] <= "\udfff":
            out.append(chr(0x10000 + ((ord(c) - 0xD800) << 10) + (ord(text[i + 1]) - 0xDC00)))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)
