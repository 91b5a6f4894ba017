"""Grammars for M2's own tool-call syntax, so that a constrained decoder can only write calls the parser reads
with no problem and whose arguments validate (docs/grammar.md).

``build_grammar(tools, tool_choice, starts_in_reasoning=…, lazy=…, options=GrammarOptions(…))`` gives one
internal :class:`Grammar`; ``write(grammar, "gbnf" | "xgrammar")`` prints it for llama.cpp or for xgrammar
(vLLM's ``structured_outputs.grammar``, SGLang's ``ebnf``). ``grammar.notes`` lists the schema keywords it does not
enforce, ``grammar.narrowed`` where it admits less than the schema allows.
"""

from __future__ import annotations

from .build import CONTENT_WORDS, REASONING_WORDS, GrammarError, GrammarOptions, build_grammar, chosen_tool
from .model import Grammar
from .structural import structural_tag
from .values import VALUE_WORDS
from .writers import DIALECTS, write

__all__ = [
    "CONTENT_WORDS",
    "DIALECTS",
    "REASONING_WORDS",
    "VALUE_WORDS",
    "Grammar",
    "GrammarError",
    "GrammarOptions",
    "build_grammar",
    "chosen_tool",
    "structural_tag",
    "write",
]
