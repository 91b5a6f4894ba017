"""The one internal grammar model both writers print: rules of literals, character classes, sequences,
alternations and repetitions.

It is deliberately tiny: everything m2parse needs (M2's markup, JSON, "text not containing W") is regular or
context-free in these terms, and both target dialects (llama.cpp GBNF and xgrammar's EBNF) spell exactly these
constructs, so a writer is a direct print and the two dialects cannot drift apart in meaning.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Lit:
    """A literal text (may be empty: the empty sequence)."""

    text: str


@dataclass(frozen=True, slots=True)
class Chars:
    """One character from ``ranges`` (inclusive code-point pairs), or, when ``negated``, one not in them."""

    ranges: tuple[tuple[int, int], ...]
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference to a named rule."""

    name: str


@dataclass(frozen=True, slots=True)
class Seq:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Alt:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Repeat:
    """``item`` repeated ``low`` to ``high`` times (``high`` None: unbounded)."""

    item: Expr
    low: int = 0
    high: int | None = None


Expr = Lit | Chars | Ref | Seq | Alt | Repeat


def seq(*items: Expr) -> Expr:
    """A sequence with nested sequences flattened and empty literals dropped (adjacent literals merged)."""
    flat: list[Expr] = []
    for item in items:
        parts = item.items if isinstance(item, Seq) else (item,)
        for part in parts:
            if isinstance(part, Lit) and not part.text:
                continue
            if isinstance(part, Lit) and flat and isinstance(flat[-1], Lit):
                flat[-1] = Lit(flat[-1].text + part.text)
            else:
                flat.append(part)
    if not flat:
        return Lit("")
    return flat[0] if len(flat) == 1 else Seq(tuple(flat))


def alt(*items: Expr) -> Expr:
    """An alternation with duplicates removed, keeping the first occurrence's order."""
    unique = tuple(dict.fromkeys(items))
    return unique[0] if len(unique) == 1 else Alt(unique)


def opt(item: Expr) -> Expr:
    return Repeat(item, 0, 1)


def chars(text: str = "", *, negated: bool = False, ranges: tuple[tuple[int, int], ...] = ()) -> Chars:
    """A class of the characters of ``text`` plus ``ranges``, merged and sorted (a canonical form, so equal
    classes compare equal and print the same)."""
    spans = sorted({(ord(c), ord(c)) for c in text} | set(ranges))
    merged: list[tuple[int, int]] = []
    for low, high in spans:
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(high, merged[-1][1]))
        else:
            merged.append((low, high))
    return Chars(tuple(merged), negated)


@dataclass
class Grammar:
    """Named rules; ``root`` is the start rule. ``notes`` say which schema keywords the grammar does not enforce
    (empty: every output it admits validates); ``narrowed`` says where it admits less than the schema allows
    (values left out), which costs choice but no guarantee."""

    rules: dict[str, Expr] = field(default_factory=dict)
    root: str = "root"
    notes: list[str] = field(default_factory=list)
    narrowed: list[str] = field(default_factory=list)

    def add(self, name: str, expr: Expr) -> Ref:
        self.rules[name] = expr
        return Ref(name)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def narrow(self, text: str) -> None:
        if text not in self.narrowed:
            self.narrowed.append(text)
