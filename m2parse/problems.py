"""Problems are data: every recovery the parser makes is reported with a stable code and an offset."""

from __future__ import annotations

from dataclasses import dataclass

# Stable problem codes. Tests, the CLI and the server's extension field all key on these strings.
TRUNCATED_TOOL_CALL = "truncated_tool_call"  # output ended before </invoke>
TRUNCATED_VALUE = "truncated_value"  # output ended inside a parameter value (value kept)
TRUNCATED_TAG = "truncated_tag"  # output ended inside a tag
MISSING_THINK_END = "missing_think_end"  # reasoning never closed with </think>
REASONING_ENDED_BY_TOOL_CALL = "reasoning_ended_by_tool_call"  # <minimax:tool_call> while in reasoning
UNKNOWN_TOOL = "unknown_tool"
UNKNOWN_PARAMETER = "unknown_parameter"
DUPLICATE_PARAMETER = "duplicate_parameter"
COERCION_FAILED = "coercion_failed"  # value could not be read as the schema's type; kept as a string
SCHEMA_VIOLATION = "schema_violation"  # jsonschema rejected the typed arguments
UNBALANCED_TAG = "unbalanced_tag"  # a closing tag missing or out of place
MALFORMED_TAG = "malformed_tag"  # e.g. <invoke> with no name
STRAY_TEXT = "stray_text"  # text inside a tool-call block that is not markup; returned as content
UNEXPECTED_TAG = "unexpected_tag"  # a known tag where it means nothing (kept as text)
TURN_MARKER = "turn_marker"  # ]~b] / [e~[ / ]~!b[ in the output: the turn ends there
TOOL_CALL_NOT_ALLOWED = "tool_call_not_allowed"  # tool-call markup while tool calls are off; kept as content
INVALID_UNICODE = "invalid_unicode"  # lone surrogates in a backend's output (server): replaced with U+FFFD

ALL_CODES = frozenset(
    {
        TRUNCATED_TOOL_CALL,
        TRUNCATED_VALUE,
        TRUNCATED_TAG,
        MISSING_THINK_END,
        REASONING_ENDED_BY_TOOL_CALL,
        UNKNOWN_TOOL,
        UNKNOWN_PARAMETER,
        DUPLICATE_PARAMETER,
        COERCION_FAILED,
        SCHEMA_VIOLATION,
        UNBALANCED_TAG,
        MALFORMED_TAG,
        STRAY_TEXT,
        UNEXPECTED_TAG,
        TURN_MARKER,
        INVALID_UNICODE,
        TOOL_CALL_NOT_ALLOWED,
    }
)


@dataclass(frozen=True, slots=True)
class Problem:
    """One oddity found in model output. ``offset`` is a character offset into the whole output."""

    code: str
    message: str
    offset: int
    tool_call_index: int | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"code": self.code, "message": self.message, "offset": self.offset}
        if self.tool_call_index is not None:
            out["tool_call_index"] = self.tool_call_index
        return out


class M2ParseError(ValueError):
    """Raised in strict mode (and by the ``error`` policies); carries the same fields as a Problem."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(f"{problem.code} at offset {problem.offset}: {problem.message}")
        self.problem = problem
        self.code = problem.code
        self.offset = problem.offset
        self.tool_call_index = problem.tool_call_index
