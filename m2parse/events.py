"""Events the incremental parser emits. Small frozen dataclasses, so consumers can match on type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .problems import Problem


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ContentDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallStart:
    index: int
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolCallArgumentsDelta:
    """A fragment of the call's arguments JSON; a call's fragments concatenate to ``ToolCallEnd.arguments_json``."""

    index: int
    fragment: str


@dataclass(frozen=True, slots=True)
class ToolCallEnd:
    index: int
    arguments: dict[str, Any]
    arguments_json: str
    truncated: bool


@dataclass(frozen=True, slots=True)
class ProblemFound:
    problem: Problem


Event = ReasoningDelta | ContentDelta | ToolCallStart | ToolCallArgumentsDelta | ToolCallEnd | ProblemFound
