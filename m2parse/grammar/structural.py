"""The lazy form for xgrammar engines: a structural tag that leaves text free until ``<minimax:tool_call>`` and
then holds the call block to the grammar (vLLM's ``structured_outputs.structural_tag``, xgrammar's
``Grammar.from_structural_tag``).

``m2parse serve`` does not send it: for xgrammar engines it sends the whole-output grammar, which also keeps
reasoning and content free of markup that would confuse the parser. It is printed by ``m2parse grammar --lazy
--dialect xgrammar`` for those who want free text outside the block.
"""

from __future__ import annotations

from typing import Any

from ..format import TOOL_CALL_CLOSE, TOOL_CALL_OPEN
from .build import GrammarOptions, build_grammar
from .model import Lit, Ref, Repeat, seq
from .writers import write


def structural_tag(tools: Any, tool_choice: Any = "auto", *, options: GrammarOptions | None = None) -> dict[str, Any]:
    """A ``triggered_tags`` structural tag: free text, then (at most once) the block whose content is the
    invokes' grammar; after the block the output ends."""
    options = options or GrammarOptions()
    grammar = build_grammar(tools, tool_choice, lazy=True, options=options)
    inner = seq(Lit("\n"), Repeat(Ref("invoke"), 1, options.max_calls))
    grammar.rules = {"root": inner, **{k: v for k, v in grammar.rules.items() if k not in ("root", "block")}}
    tag = {
        "type": "tag",
        "begin": TOOL_CALL_OPEN,
        "content": {"type": "grammar", "grammar": write(grammar, "xgrammar")},
        "end": TOOL_CALL_CLOSE,
    }
    return {
        "type": "structural_tag",
        "format": {"type": "triggered_tags", "triggers": [TOOL_CALL_OPEN], "tags": [tag], "stop_after_first": True},
    }
