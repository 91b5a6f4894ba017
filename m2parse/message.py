"""The accumulated result of a parse, and its OpenAI-shaped views."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .problems import Problem


@dataclass(frozen=True, slots=True)
class ToolCall:
    index: int
    id: str
    name: str
    arguments: dict[str, Any]
    arguments_json: str
    truncated: bool = False

    def to_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments_json},
        }


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """One assistant turn. ``reasoning_content`` is None in inline mode or when the output had no reasoning."""

    content: str
    reasoning_content: str | None
    tool_calls: tuple[ToolCall, ...] = ()
    problems: tuple[Problem, ...] = field(default=())
    #: True when the output ran into a turn marker (]~b], [e~[) and the rest was discarded.
    ended_by_turn_marker: bool = False

    def to_openai(self, *, reasoning_field: str = "reasoning_content") -> dict[str, Any]:
        """The message as an OpenAI chat ``message`` dict (``content`` is None when empty)."""
        out: dict[str, Any] = {"role": "assistant", "content": self.content or None}
        if self.reasoning_content is not None:
            if reasoning_field in ("reasoning_content", "both"):
                out["reasoning_content"] = self.reasoning_content
            if reasoning_field in ("reasoning", "both"):
                out["reasoning"] = self.reasoning_content
        if self.tool_calls:
            out["tool_calls"] = [call.to_openai() for call in self.tool_calls]
        return out
