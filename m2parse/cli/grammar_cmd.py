"""``m2parse grammar --tools TOOLS.json``: print the grammar of M2 output for these tools, for your own engine.

GBNF goes to llama.cpp's ``grammar`` field; the xgrammar dialect to vLLM's ``structured_outputs.grammar`` or
SGLang's ``ebnf``. What the grammar does not enforce, and where it admits less than the schema allows, is
printed to stderr, one note per line (docs/grammar.md).
"""

from __future__ import annotations

import argparse
import json
import sys

from ..grammar import DIALECTS, GrammarError, GrammarOptions, build_grammar, structural_tag, write
from ..schema import ToolsError, normalize_tools, tool_schema_error
from . import UsageError
from .common import read_tools

EPILOG = """examples:
  m2parse grammar --tools tools.json > m2.gbnf                 # llama.cpp: {"grammar": <file text>}
  m2parse grammar --tools tools.json --dialect xgrammar        # vLLM structured_outputs.grammar, SGLang ebnf
  m2parse grammar --tools tools.json --tool-choice get_weather # calls of that tool only
  m2parse grammar --tools tools.json --tool-choice auto --lazy # llama.cpp grammar_lazy, trigger <minimax:tool_call>
  m2parse grammar --tools tools.json --lazy --dialect xgrammar # a structural tag (JSON) for xgrammar engines
notes on what the grammar does not enforce go to stderr; see docs/grammar.md."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tools", required=True, metavar="TOOLS.json", help="OpenAI tools list (or {'tools': …})")
    parser.add_argument(
        "--tool-choice",
        default="required",
        metavar="required|auto|NAME",
        help="required: one or more calls, no content; NAME: calls of that function only; auto: content, then "
        "optionally calls",
    )
    parser.add_argument(
        "--dialect", choices=DIALECTS, default="gbnf", help="gbnf (llama.cpp) or xgrammar (vLLM, SGLang)"
    )
    parser.add_argument(
        "--no-reasoning",
        action="store_true",
        help="the prompt does not end with '<think>\\n': the output starts with content, not reasoning",
    )
    parser.add_argument(
        "--lazy",
        action="store_true",
        help="only the call block, from <minimax:tool_call> on: a GBNF trigger grammar, or with --dialect xgrammar "
        "a structural tag (JSON)",
    )
    parser.add_argument("--max-calls", type=int, metavar="N", help="at most N invokes (1: no parallel calls)")
    parser.add_argument(
        "--max-free-text",
        type=int,
        metavar="N",
        help="bound reasoning, content and strings to N units (for models that would never stop; see docs)",
    )
    parser.add_argument("--max-items", type=int, metavar="N", help="bound arrays without maxItems to N items")


def run(args: argparse.Namespace) -> int:
    tools = read_tools(args.tools)
    if not tools:
        raise UsageError(f"{args.tools}: no tools")
    try:
        specs = normalize_tools(tools)
    except ToolsError as exc:
        raise UsageError(f"{args.tools}: {exc}") from None
    for spec in specs.values():
        if (error := tool_schema_error(spec)) is not None:
            raise UsageError(f"{args.tools}: {error}")
    for flag in ("max_calls", "max_free_text", "max_items"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be at least 1")
    options = GrammarOptions(max_free_text=args.max_free_text, max_calls=args.max_calls, max_items=args.max_items)
    try:
        grammar = build_grammar(
            tools, args.tool_choice, starts_in_reasoning=not args.no_reasoning, lazy=args.lazy, options=options
        )
    except GrammarError as exc:
        raise UsageError(str(exc)) from None
    if args.lazy and args.dialect == "xgrammar":  # xgrammar's trigger mechanism is a structural tag
        tag = structural_tag(tools, args.tool_choice, options=options)
        sys.stdout.write(json.dumps(tag, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(write(grammar, args.dialect))
    for note in grammar.notes:
        print(f"m2parse: note: not enforced: {note}", file=sys.stderr)
    for note in grammar.narrowed:
        print(f"m2parse: note: narrowed: {note}", file=sys.stderr)
    return 0
