"""The whole M2 output as a grammar, from a request's tools, ``tool_choice`` and reasoning mode.

Output shape (docs/architecture.md, "Output grammar"): ``REASONING</think>\\n\\nCONTENT\\n<minimax:tool_call>\\n
<invoke name="f">\\n<parameter name="k">V</parameter>\\n</invoke>\\n</minimax:tool_call>``. The grammar writes
exactly the renderer's spelling (double-quoted names, one ``\\n`` after each tag, parameters in declared order), so
a constrained output reads like history the renderer wrote, and the parser reads it with no problem.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..format import (
    INVOKE_CLOSE,
    INVOKE_TAG,
    PARAMETER_CLOSE,
    PARAMETER_TAG,
    THINK_CLOSE,
    THINK_OPEN,
    TOOL_CALL_CLOSE,
    TOOL_CALL_OPEN,
    TURN_MARKERS,
)
from ..schema import ToolSpec, normalize_tools
from .model import Expr, Grammar, Lit, Ref, Repeat, alt, opt, seq
from .text import free_text
from .values import ValueOptions, Values

#: Words reasoning must not hold: its end, a tool-call opener (which would end it with a problem), a nested
#: ``<think>`` (reported as unexpected) and the turn markers.
REASONING_WORDS = (THINK_CLOSE, THINK_OPEN, TOOL_CALL_OPEN, *TURN_MARKERS)
#: Words content must not hold: the think tags (unexpected there), both block tags and the turn markers.
CONTENT_WORDS = (THINK_OPEN, THINK_CLOSE, TOOL_CALL_OPEN, TOOL_CALL_CLOSE, *TURN_MARKERS)


class GrammarError(ValueError):
    """No grammar can be made: a tool_choice that names no tool, or a schema whose required parts cannot be
    generated (e.g. a required recursion deeper than the limit)."""


@dataclass(frozen=True)
class GrammarOptions:
    """Bounds that make the grammar finite where the request is not. All None by default: unbounded.

    - ``max_free_text``: reasoning, content and string values are at most this many units (a unit is one
      character, or ``<``/``[``/``]`` with the character after it); such text then never holds ``<`` followed by
      ``/`` or a letter that would start a word. For models that would otherwise never stop (and for tests).
    - ``max_calls``: at most this many invokes (1 for ``parallel_tool_calls: false``).
    - ``max_items``: at most this many array items / members of a free-form object, where the schema sets none.
    - ``max_ref_depth``: local ``$ref`` expansions along one path (recursive schemas); past it the branch is not
      generated, and a *required* branch past it makes the grammar refuse the schema.
    - ``max_json_depth``: nesting of free-form JSON values (schema ``{}`` inside objects and arrays).
    """

    max_free_text: int | None = None
    max_calls: int | None = None
    max_items: int | None = None
    max_ref_depth: int = 4
    max_json_depth: int = 3


def chosen_tool(tool_choice: Any) -> str | None:
    """The function name a ``tool_choice`` forces (``{"type": "function", "function": {"name": …}}`` or a bare
    name), or None for ``"auto"``/``"required"``."""
    if isinstance(tool_choice, Mapping):
        function = tool_choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else tool_choice.get("name")
        if not isinstance(name, str):
            raise GrammarError("tool_choice must name a function: {type: function, function: {name}}")
        return name
    if tool_choice in (None, "auto", "required"):
        return None
    if isinstance(tool_choice, str):
        return tool_choice
    raise GrammarError(f"unusable tool_choice {tool_choice!r}")


def build_grammar(
    tools: Any,
    tool_choice: Any = "required",
    *,
    starts_in_reasoning: bool = True,
    lazy: bool = False,
    options: GrammarOptions | None = None,
) -> Grammar:
    """The grammar of a whole M2 output for this request.

    ``tool_choice``: ``"required"`` (one or more calls, no content), a function (calls of that tool only, no
    content), or ``"auto"`` (content, then optionally the call block; content cannot hold the opener).
    ``starts_in_reasoning``: the prompt ended with ``<think>\\n`` (M2's generation prompt), so the output starts
    with free reasoning up to ``</think>``. ``lazy``: only the call block, from ``<minimax:tool_call>`` on, for
    engines that start a grammar at a trigger word (llama.cpp's ``grammar_lazy``).
    """
    if tool_choice == "none":
        raise GrammarError("tool_choice 'none' needs no grammar")
    options = options or GrammarOptions()
    specs = normalize_tools(tools)
    if not specs:
        raise GrammarError("a grammar needs at least one tool")
    name = chosen_tool(tool_choice)
    if name is not None:
        if name not in specs:
            raise GrammarError(f"tool_choice names {name!r}, which is not in the tools")
        specs = {name: specs[name]}
    grammar = Grammar()
    value_options = ValueOptions(
        options.max_free_text, options.max_items, options.max_ref_depth, options.max_json_depth
    )
    invokes: list[Expr] = []
    for index, spec in enumerate(specs.values()):
        invoke = _invoke(grammar, spec, Values(grammar, spec.parameters, value_options, f"t{index}"), index)
        if invoke is not None:
            invokes.append(invoke)
    if not invokes:
        reasons = grammar.narrowed or ["no tools"]
        raise GrammarError("no tool's parameters can be generated: " + "; ".join(reasons))
    calls = grammar.add("invoke", alt(*invokes))
    block = grammar.add(
        "block", seq(Lit(TOOL_CALL_OPEN + "\n"), Repeat(calls, 1, options.max_calls), Lit(TOOL_CALL_CLOSE))
    )
    if lazy:
        grammar.rules = {"root": block, **grammar.rules}
        return grammar
    bound = options.max_free_text
    if tool_choice == "auto":
        content = free_text(grammar, "content", CONTENT_WORDS, bound=bound)
        final = free_text(grammar, "content-final", CONTENT_WORDS, final=True, bound=bound)
        after: Expr = alt(final, seq(content, Lit("\n"), block))
    else:
        after = seq(opt(Lit("\n")), block)  # the template writes "\n" + the opener after (empty) content
    if starts_in_reasoning:
        reasoning = free_text(grammar, "reasoning", REASONING_WORDS, bound=bound)
        body = seq(reasoning, Lit(THINK_CLOSE + "\n\n"), after)
    else:
        body = after
    grammar.rules = {"root": body, **grammar.rules}
    return grammar


def _invoke(grammar: Grammar, spec: ToolSpec, values: Values, index: int) -> Ref | None:
    if '"' in spec.name:
        grammar.narrow(f"tool {spec.name!r}: a name holding '\"' cannot be written in M2's markup; left out")
        return None
    parameters = _parameters(grammar, spec, values)
    if parameters is None:
        return None
    head = Lit(f'<{INVOKE_TAG} name="{spec.name}">\n')
    return grammar.add(f"call{index}", seq(head, parameters, Lit(INVOKE_CLOSE + "\n")))


def _parameters(grammar: Grammar, spec: ToolSpec, values: Values) -> Expr | None:
    """``<parameter>`` elements in declared order; required ones present, others optional, no other names."""
    schema, _ = values.resolve(spec.parameters, 0)
    if schema is None:
        return None
    properties = schema.get("properties")
    properties = dict(properties) if isinstance(properties, Mapping) else {}
    required = [k for k in schema.get("required", []) if isinstance(k, str)]
    for key in required:
        properties.setdefault(key, {})
    parts: list[Expr] = []
    for key, sub in properties.items():
        needed = key in required
        if '"' in key:
            grammar.narrow(f"tool {spec.name!r}: parameter {key!r} holds '\"', which M2's markup cannot write")
            if needed:
                return None
            continue
        value = values.raw(sub)
        if value is None:
            if needed:
                grammar.narrow(f"tool {spec.name!r}: required parameter {key!r} cannot be generated; tool left out")
                return None
            continue
        element = seq(Lit(f'<{PARAMETER_TAG} name="{key}">'), value, Lit(PARAMETER_CLOSE + "\n"))
        parts.append(element if needed else opt(element))
    return seq(*parts) if parts else Lit("")


def grammar_words() -> Sequence[str]:
    """Every word some free-text rule excludes (for documentation and tests)."""
    from .values import VALUE_WORDS

    return tuple(dict.fromkeys((*REASONING_WORDS, *CONTENT_WORDS, *VALUE_WORDS)))
