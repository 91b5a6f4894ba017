"""Parser events as OpenAI ``chat.completion.chunk`` deltas: the adapter the server and vLLM plugin share."""

from __future__ import annotations

from typing import Any, Literal

from .events import ContentDelta, Event, ReasoningDelta, ToolCallArgumentsDelta, ToolCallStart

ReasoningField = Literal["reasoning_content", "reasoning", "both"]


def event_to_delta(event: Event, reasoning_field: ReasoningField = "reasoning_content") -> dict[str, Any] | None:
    """The ``delta`` for one event, or None for events a chat client has no field for (ends, problems)."""
    if isinstance(event, ContentDelta):
        return {"content": event.text}
    if isinstance(event, ReasoningDelta):
        if reasoning_field == "both":
            return {"reasoning_content": event.text, "reasoning": event.text}
        return {reasoning_field: event.text}
    if isinstance(event, ToolCallStart):
        return {
            "tool_calls": [
                {
                    "index": event.index,
                    "id": event.id,
                    "type": "function",
                    "function": {"name": event.name, "arguments": ""},
                }
            ]
        }
    if isinstance(event, ToolCallArgumentsDelta):
        return {"tool_calls": [{"index": event.index, "function": {"arguments": event.fragment}}]}
    return None

