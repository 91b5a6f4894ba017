"""m2parse inside SGLang: a tool-call detector and reasoning detectors for ``sglang serve``.

SGLang has no parser-plugin flag; its ``--tool-call-parser`` / ``--reasoning-parser`` choices are read from
``FunctionCallParser.ToolCallParserEnum`` and ``ReasoningParser.DetectorMap`` when the argument parser is
built. :func:`register` adds m2parse's entries there; the launcher (``m2parse sglang -- ARGS`` or
``python -m m2parse.integrations.sglang ARGS``) registers them and then runs ``sglang serve ARGS`` unchanged.

Names: ``m2parse`` (tool calls); ``m2parse`` (reasoning separated, exactly ``parse()``) and
``m2parse-append-think`` (reasoning kept in content, ``parse(..., reasoning="inline")``).

Importing this package imports nothing from SGLang; :func:`register` does.
"""

from __future__ import annotations

__all__ = ["REASONING_PARSER_NAMES", "TOOL_CALL_PARSER_NAME", "register"]

TOOL_CALL_PARSER_NAME = "m2parse"
REASONING_PARSER_NAMES = ("m2parse", "m2parse-append-think")


def register() -> None:
    """Add m2parse's detectors to SGLang's registries (idempotent). Needs ``sglang`` installed."""
    from sglang.srt.function_call.function_call_parser import FunctionCallParser
    from sglang.srt.parser.reasoning_parser import ReasoningParser

    from .detectors import REASONING_DETECTORS, TOOL_DETECTORS

    FunctionCallParser.ToolCallParserEnum.update(TOOL_DETECTORS)
    ReasoningParser.DetectorMap.update(REASONING_DETECTORS)
