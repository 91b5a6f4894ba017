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


def merge_deltas(deltas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Join runs of same-field text deltas so one backend chunk becomes as few SSE chunks as possible.

    Tool-call deltas are never merged across calls, so a call's arguments stay complete before the next starts.
    """
    merged: list[dict[str, Any]] = []
    for delta in deltas:
        last = merged[-1] if merged else None
        if last is not None and "tool_calls" not in delta and "tool_calls" not in last and last.keys() == delta.keys():
            merged[-1] = {k: last[k] + delta[k] for k in last}
            continue
        if (
            last is not None
            and "tool_calls" in delta
            and "tool_calls" in last
            and len(last) == len(delta) == 1
            and set(delta["tool_calls"][0]) == {"index", "function"}
            and last["tool_calls"][0]["index"] == delta["tool_calls"][0]["index"]
        ):
            prev = last["tool_calls"][0]
            merged[-1] = {
                "tool_calls": [
                    {
                        **prev,
                        "function": {
                            **prev["function"],
                            "arguments": prev["function"]["arguments"]
                            + delta["tool_calls"][0]["function"]["arguments"],
                        },
                    }
                ]
            }
            continue
        merged.append(delta)
    return merged
