"""Print a :class:`~m2parse.grammar.model.Grammar` as llama.cpp GBNF or as xgrammar's EBNF.

The two dialects share their syntax for everything the model holds (``::=``, quoted literals, ``[...]``/``[^...]``
classes, ``( | )``, ``*``/``+``/``?``/``{m,n}``), so one printer serves both; ``dialect`` only picks the escapes
each parser is known to accept. Characters outside printable ASCII are written as code-point escapes, which both
match against code points (never raw bytes), so a grammar file is plain ASCII whatever the schemas hold.
"""

from __future__ import annotations

from .model import Alt, Chars, Expr, Grammar, Lit, Ref, Repeat, Seq

DIALECTS = ("gbnf", "xgrammar")

_LIT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_CLASS_ESCAPES = {"]": "\\]", "[": "\\[", "\\": "\\\\", "^": "\\^", "-": "\\-", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def write(grammar: Grammar, dialect: str = "gbnf") -> str:
    """The grammar text, the root rule first, one rule per line."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown grammar dialect {dialect!r}; choose gbnf or xgrammar")
    order = [grammar.root, *(name for name in grammar.rules if name != grammar.root)]
    return "".join(f"{name} ::= {_expr(grammar.rules[name], top=True)}\n" for name in order)


def _code(code: int, escapes: dict[str, str]) -> str:
    ch = chr(code)
    if ch in escapes:
        return escapes[ch]
    if 0x20 <= code < 0x7F:
        return ch
    if code < 0x80:
        return f"\\x{code:02X}"
    if code < 0x10000:
        return f"\\u{code:04X}"
    return f"\\U{code:08X}"


def _literal(text: str) -> str:
    return '"' + "".join(_code(ord(ch), _LIT_ESCAPES) for ch in text) + '"'


def _class(expr: Chars) -> str:
    parts = []
    for low, high in expr.ranges:
        if low == high:
            parts.append(_code(low, _CLASS_ESCAPES))
        elif high == low + 1:
            parts.append(_code(low, _CLASS_ESCAPES) + _code(high, _CLASS_ESCAPES))
        else:
            parts.append(_code(low, _CLASS_ESCAPES) + "-" + _code(high, _CLASS_ESCAPES))
    return ("[^" if expr.negated else "[") + "".join(parts) + "]"


def _expr(expr: Expr, *, top: bool = False) -> str:
    if isinstance(expr, Lit):
        return _literal(expr.text)
    if isinstance(expr, Chars):
        return _class(expr)
    if isinstance(expr, Ref):
        return expr.name
    if isinstance(expr, Seq):
        text = " ".join(_expr(item) for item in expr.items)
        return text if top else f"({text})"
    if isinstance(expr, Alt):
        text = " | ".join(_expr(item, top=True) for item in expr.items)
        return text if top else f"({text})"
    if isinstance(expr, Repeat):
        inner = _expr(expr.item)
        if isinstance(expr.item, (Seq, Alt)) and not inner.startswith("("):
            inner = f"({inner})"
        return inner + _suffix(expr.low, expr.high)
    raise TypeError(f"not a grammar expression: {expr!r}")


def _suffix(low: int, high: int | None) -> str:
    if (low, high) == (0, None):
        return "*"
    if (low, high) == (1, None):
        return "+"
    if (low, high) == (0, 1):
        return "?"
    if high is None:
        return f"{{{low},}}"
    if low == high:
        return f"{{{low}}}"
    return f"{{{low},{high}}}"
