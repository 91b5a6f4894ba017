"""m2parse inside SGLang: a tool-call detector and reasoning detectors for ``sglang serve``.

SGLang has no parser-plugin flag; its ``--tool-call-parser`` / ``--reasoning-parser`` choices are read from
``FunctionCallParser.ToolCallParserEnum`` and ``ReasoningParser.DetectorMap`` when the argument parser is
built. :func:`register` adds m2parse's entries there; the launcher (``m2parse sglang -- ARGS`` or
``python -m m2parse.integrations.sglang ARGS``) registers them and then runs ``sglang serve ARGS`` unchanged.

Names: ``m2parse`` (tool calls); ``m2parse`` (reasoning separated, exactly ``parse()``) and
``m2parse-append-think`` (reasoning kept in content, ``parse(..., reasoning="inline")``). MiniMax-M3:
``m2parse-m3`` for both (SGLang's own are ``minimax-m3``).

Importing this package imports nothing from SGLang; :func:`register` does.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["M3_PARSER_NAME", "REASONING_PARSER_NAMES", "TOOL_CALL_PARSER_NAME", "TOOL_CALL_PARSER_NAMES", "register"]

TOOL_CALL_PARSER_NAME = "m2parse"
M3_PARSER_NAME = "m2parse-m3"
TOOL_CALL_PARSER_NAMES = (TOOL_CALL_PARSER_NAME, M3_PARSER_NAME)
REASONING_PARSER_NAMES = ("m2parse", "m2parse-append-think", M3_PARSER_NAME)


def register() -> None:
    """Add m2parse's detectors to SGLang's registries (idempotent). Needs ``sglang`` installed."""
    from sglang.srt.function_call.function_call_parser import FunctionCallParser
    from sglang.srt.parser.reasoning_parser import ReasoningParser

    from .detectors import REASONING_DETECTORS, TOOL_DETECTORS

    FunctionCallParser.ToolCallParserEnum.update(TOOL_DETECTORS)
    ReasoningParser.DetectorMap.update(REASONING_DETECTORS)
    _pass_chat_template_kwargs(ReasoningParser)


def _pass_chat_template_kwargs(reasoning_parser: Any) -> None:
    """Make ``ReasoningParser`` hand the request's ``chat_template_kwargs`` to a detector that asks for them.

    SGLang builds a reasoning detector with a ``force_reasoning`` flag only; its own ``minimax-m3`` learns the
    request's ``thinking_mode`` through a name check inside ``ReasoningParser.__init__``. M3's start has three
    values (enabled, disabled, adaptive) that one flag cannot carry, so the constructor is wrapped once: after
    SGLang's own work, a detector with ``take_chat_template_kwargs`` gets the request's kwargs. Detectors
    without that method, SGLang's included, are untouched.
    """
    original = reasoning_parser.__init__
    if getattr(original, "_m2parse_passes_kwargs", False):
        return

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        take = getattr(self.detector, "take_chat_template_kwargs", None)
        if take is not None:
            request = kwargs["request"] if "request" in kwargs else args[3] if len(args) > 3 else None
            take(getattr(request, "chat_template_kwargs", None) or {})

    __init__._m2parse_passes_kwargs = True  # type: ignore[attr-defined]
    reasoning_parser.__init__ = __init__
