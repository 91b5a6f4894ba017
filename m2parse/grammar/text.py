"""Rules for "any text that does not contain these words", built from the words' automaton.

A free-text region of M2 output (reasoning, content, a string value) ends at one closing tag and must not hold any
other word the parser would act on. The set of such texts is regular: its automaton is the Aho-Corasick automaton
of the words with the word-completing states removed. It is written here as rules so that both engines' compilers
take it and run it fast:

- the start state loops on one character class (``[^<\\[\\]]`` and the like) with ``*``, so ordinary text costs
  one class test per character and no rule nesting;
- each other state ``i`` is a rule ``x-i`` that reads one character and either goes back to the loop (the rule
  ends) or moves to another state (a tail reference), so nesting grows only while a word is partly matched;
- a text may end in the middle of a partial word (``p-i`` rules), unless it is the last thing in the output,
  where the parser would report the partial tag.

The grammar is unambiguous (every text has one derivation), which keeps Earley-style compilers (xgrammar) and
llama.cpp's stack-based matcher linear in the text.

Bounded variant (``bound`` N): a repetition of at most N units, each one ordinary character or a word's first
character followed by a character that sends the automaton straight back to the start. That is a subset of the
unbounded language (a word of two or more characters cannot be completed), so everything it admits is still safe;
it exists because a model that never chooses to stop would otherwise run to its token limit.
"""

from __future__ import annotations

from collections.abc import Sequence

from .model import Chars, Expr, Grammar, Lit, Ref, Repeat, alt, chars, seq


class _Automaton:
    """Aho-Corasick over ``words``: ``step(state, ch)``; ``accepting`` states complete some word."""

    def __init__(self, words: Sequence[str]) -> None:
        self.children: list[dict[str, int]] = [{}]
        self.accepting: set[int] = set()
        for word in words:
            if not word:
                raise ValueError("an excluded word must not be empty")
            node = 0
            for ch in word:
                nxt = self.children[node].get(ch)
                if nxt is None:
                    nxt = len(self.children)
                    self.children[node][ch] = nxt
                    self.children.append({})
                node = nxt
            self.accepting.add(node)
        self.fail = [0] * len(self.children)
        queue = list(self.children[0].values())
        while queue:
            node = queue.pop(0)
            for ch, child in self.children[node].items():
                self.fail[child] = self.step(self.fail[node], ch) if node else 0
                if self.fail[child] in self.accepting:
                    self.accepting.add(child)
                queue.append(child)
        self.alphabet = sorted({ch for word in words for ch in word})

    def step(self, state: int, ch: str) -> int:
        while True:
            nxt = self.children[state].get(ch)
            if nxt is not None:
                return nxt
            if state == 0:
                return 0
            state = self.fail[state]


def free_text(
    grammar: Grammar,
    name: str,
    words: Sequence[str],
    *,
    excluded: str = "",
    excluded_ranges: tuple[tuple[int, int], ...] = (),
    units: Sequence[Expr] = (),
    final: bool = False,
    bound: int | None = None,
) -> Ref:
    """A rule ``name`` for texts holding none of ``words``, over the characters not in ``excluded``/
    ``excluded_ranges``, plus ``units`` (whole sequences, e.g. JSON escapes, that start with an excluded
    character and contain no word character). ``final``: the text may not end inside a partial word."""
    if name in grammar.rules:
        return Ref(name)
    auto = _Automaton(words)

    def others(extra: str) -> Chars:
        """Any character except ``excluded`` and ``extra``."""
        return chars(excluded + extra, negated=True, ranges=excluded_ranges)

    starters = "".join(ch for ch in auto.alphabet if auto.step(0, ch) != 0)
    if bound is not None:
        items: list[Expr] = [others(starters), *units]
        for ch in starters:
            state = auto.step(0, ch)
            if state in auto.accepting:
                continue
            moving = "".join(c for c in auto.alphabet if auto.step(state, c) != 0)
            items.append(seq(Lit(ch), others(moving)))
        return grammar.add(name, Repeat(alt(*items), 0, bound))

    def state_rule(state: int, partial: bool) -> Ref:
        rule = f"{name}-{'p' if partial else 'x'}{state}"
        if rule in grammar.rules:
            return Ref(rule)
        grammar.rules[rule] = Lit("")  # placeholder: the rule may refer to itself
        moving = "".join(c for c in auto.alphabet if auto.step(state, c) != 0)
        options: list[Expr] = [] if partial else [others(moving), *units]
        if partial:
            options.append(Lit(""))
        for ch in moving:
            nxt = auto.step(state, ch)
            if nxt not in auto.accepting:
                options.append(seq(Lit(ch), state_rule(nxt, partial)))
        grammar.rules[rule] = alt(*options)
        return Ref(rule)

    loop: list[Expr] = [others(starters), *units]
    tails: list[Expr] = []
    for ch in starters:
        state = auto.step(0, ch)
        if state in auto.accepting:
            continue
        loop.append(seq(Lit(ch), state_rule(state, False)))
        if not final:
            tails.append(seq(Lit(ch), state_rule(state, True)))
    body = Repeat(alt(*loop), 0, None)
    if tails:
        return grammar.add(name, seq(body, Repeat(alt(*tails), 0, 1)))
    return grammar.add(name, body)
