"""m2parse: parse, render and serve the MiniMax-M2 output and prompt format."""

from __future__ import annotations

from .events import (
    ContentDelta,
    Event,
    ProblemFound,
    ReasoningDelta,
    ToolCallArgumentsDelta,
    ToolCallEnd,
    ToolCallStart,
)
from .formats import OutputFormat, get_format
from .message import ParsedMessage, ToolCall
from .openai_deltas import event_to_delta
from .parser import StreamParser, parse, sequential_ids
from .problems import M2ParseError, Problem
from .prompt_reader import PromptReadError, ReadPrompt, read_prompt
from .render import RenderError, RenderWarning, render_prompt
from .schema import ToolsError, normalize_tools

__version__ = "0.1.0"

__all__ = [
    "ContentDelta",
    "Event",
    "M2ParseError",
    "OutputFormat",
    "ParsedMessage",
    "Problem",
    "ProblemFound",
    "PromptReadError",
    "ReadPrompt",
    "ReasoningDelta",
    "RenderError",
    "RenderWarning",
    "StreamParser",
    "ToolCall",
    "ToolCallArgumentsDelta",
    "ToolCallEnd",
    "ToolCallStart",
    "ToolsError",
    "__version__",
    "event_to_delta",
    "get_format",
    "normalize_tools",
    "parse",
    "read_prompt",
    "render_prompt",
    "sequential_ids",
]
