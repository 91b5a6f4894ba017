"""Which grammar a chat request sends to its backend, in the backend's own field (docs/grammar.md).

A request gets a grammar when it forces a call (``tool_choice`` ``"required"`` or a named function) or has a
``strict: true`` tool. The field and dialect depend on the backend type given to ``m2parse serve``:

- ``vllm``: ``structured_outputs: {"grammar": EBNF}`` (xgrammar), a whole-output grammar also for ``auto``;
- ``sglang``: ``ebnf: EBNF`` (xgrammar), likewise;
- ``llamacpp`` / ``llama.cpp``: ``grammar: GBNF``; for ``auto`` a lazy grammar (``grammar_lazy``, triggered by
  the word ``<minimax:tool_call>``, which is also sent as a preserved token);
- ``openai``: the field of the engine ``m2parse serve`` identified behind it at startup (vLLM, SGLang, or
  llama.cpp with a whole-output GBNF ``grammar``: see :func:`grammar_backend`);
- ``openai`` with no engine identified (or a config built for ``create_app`` without one), ``tgi``, and any
  MiniMax-M3 template (``m3``): none. Such a request is a 400 unless the server runs with
  ``--unconstrained-fallback``, which sends it without a grammar (the parser still reports what goes wrong).

The client's own ``m2parse.backend_extra`` keys win over these: a caller who sends a grammar keeps it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from ..format import TOOL_CALL_OPEN
from ..grammar import GrammarError, GrammarOptions, build_grammar, write
from .errors import bad_request

#: backend type -> (dialect, body field builder, lazy for auto)
_TARGETS: dict[str, tuple[str, str, bool]] = {
    "vllm": ("xgrammar", "structured_outputs", False),
    "sglang": ("xgrammar", "ebnf", False),
    "llamacpp": ("gbnf", "grammar", True),
    "llama.cpp": ("gbnf", "grammar", True),
    # llama.cpp behind the generic openai type (/v1/completions): the whole-output grammar only, since lazy
    # grammars are checked on its native /completion alone
    "llama.cpp/v1": ("gbnf", "grammar", False),
}
#: engine identified behind the openai type (ServerConfig.grammar_engine) -> its _TARGETS key
_ENGINE_TARGETS = {"vllm": "vllm", "sglang": "sglang", "llama.cpp": "llama.cpp/v1"}
#: llama.cpp's trigger type for a word (common_grammar_trigger_type: TOKEN 0, WORD 1, PATTERN 2, PATTERN_FULL 3)
LLAMACPP_WORD_TRIGGER = 1
#: per-request grammar bounds a client may set in ``m2parse.grammar`` (GrammarOptions fields)
OPTION_NAMES = ("max_free_text", "max_items", "max_calls")


def grammar_backend(backend_type: str, engine: str | None) -> str:
    """The key grammar_body looks the field up by: the backend type, or for the generic ``openai`` type the engine
    ``m2parse serve`` identified behind it at startup (ServerConfig.grammar_engine)."""
    if backend_type == "openai" and engine is not None:
        return _ENGINE_TARGETS.get(engine, backend_type)
    return backend_type


def needs_grammar(tools: Any, tool_choice: Any) -> bool:
    """A forced call, or a ``strict`` tool while calls are allowed."""
    if not tools or tool_choice == "none":
        return False
    if tool_choice == "required" or isinstance(tool_choice, Mapping):
        return True
    return any(_is_strict(tool) for tool in tools)


def _is_strict(tool: Any) -> bool:
    function = tool.get("function", tool) if isinstance(tool, Mapping) else None
    return isinstance(function, Mapping) and function.get("strict") is True


def grammar_options(value: Any, parallel_tool_calls: Any) -> GrammarOptions:
    """``m2parse.grammar`` (bounds; see GrammarOptions) and ``parallel_tool_calls: false`` (one call)."""
    values: dict[str, int] = {}
    if value is not None:
        if not isinstance(value, Mapping):
            raise bad_request("'m2parse.grammar' must be an object of grammar bounds", "m2parse.grammar")
        for key, bound in value.items():
            param = f"m2parse.grammar.{key}"
            if key not in OPTION_NAMES:
                raise bad_request(f"'{param}' is not a grammar bound ({', '.join(OPTION_NAMES)})", param)
            if not isinstance(bound, int) or isinstance(bound, bool) or not 1 <= bound <= 1_000_000:
                raise bad_request(f"'{param}' must be an integer from 1 to 1000000", param)
            values[key] = bound
    if parallel_tool_calls is False:
        values["max_calls"] = 1
    return GrammarOptions(**values)


def grammar_body(
    backend_type: str,
    tools: Any,
    tool_choice: Any,
    *,
    starts_in_reasoning: bool,
    options: GrammarOptions,
    fallback: bool,
) -> dict[str, Any]:
    """The backend body fields that carry the grammar; ``{}`` when the request needs none, or when the backend
    cannot take one and ``fallback`` allows sending it unconstrained. Otherwise a 400 that says why."""
    if not needs_grammar(tools, tool_choice):
        return {}
    target = _TARGETS.get(backend_type)
    if target is None:
        if fallback:
            return {}
        if backend_type == "m3":
            raise bad_request(
                "this request needs a tool-call grammar, and m2parse writes grammars for the M2 format only (not "
                "MiniMax-M3 yet); start m2parse serve with --unconstrained-fallback to send it without one",
                "tool_choice",
                code="grammar_unsupported",
            )
        raise bad_request(
            f"this request needs a tool-call grammar ({_describe(tool_choice)}), and backend type "
            f"{backend_type!r} has no grammar field m2parse knows; start m2parse serve with --backend-type vllm, "
            "sglang or llama.cpp, or with --unconstrained-fallback to send it without one",
            "tool_choice",
            code="grammar_unsupported",
        )
    dialect, field, lazy_auto = target
    choice = "auto" if tool_choice in (None, "auto") else tool_choice
    lazy = lazy_auto and choice == "auto"
    try:
        try:
            key = _request_key(tools, choice, starts_in_reasoning, lazy, dialect)
        except (TypeError, ValueError, RecursionError):  # not JSON (a caller's own objects): no memo
            grammar = build_grammar(tools, choice, starts_in_reasoning=starts_in_reasoning, lazy=lazy, options=options)
            text = write(grammar, dialect)
        else:
            text = _grammar_text(key, options)
    except GrammarError as exc:
        raise bad_request(
            f"cannot build a grammar for this request: {exc}", "tools", code="grammar_unsupported"
        ) from None
    if field == "structured_outputs":
        return {"structured_outputs": {"grammar": text}}
    if lazy:
        trigger = {"type": LLAMACPP_WORD_TRIGGER, "value": TOOL_CALL_OPEN}
        return {field: text, "grammar_lazy": True, "grammar_triggers": [trigger], "preserved_tokens": [TOOL_CALL_OPEN]}
    return {field: text}


def _request_key(tools: Any, choice: Any, starts_in_reasoning: bool, lazy: bool, dialect: str) -> str:
    """The request's grammar inputs as JSON text (the tools were decoded from JSON, so they encode)."""
    return json.dumps([tools, choice, starts_in_reasoning, lazy, dialect], sort_keys=True, ensure_ascii=False)


@functools.lru_cache(maxsize=64)
def _grammar_text(key: str, options: GrammarOptions) -> str:
    """The printed grammar, memoised by the request's JSON: agents send the same tools every turn, and building
    and printing the grammar of a few dozen tools costs tens of milliseconds. Bounded; a pure function."""
    tools, choice, starts_in_reasoning, lazy, dialect = json.loads(key)
    grammar = build_grammar(tools, choice, starts_in_reasoning=starts_in_reasoning, lazy=lazy, options=options)
    return write(grammar, dialect)


def _describe(tool_choice: Any) -> str:
    """Why the request needs a grammar, for the 400's message."""
    if isinstance(tool_choice, Mapping):
        return "tool_choice names a function"
    if tool_choice == "required":
        return "tool_choice is 'required'"
    return "a tool has strict: true"
