"""``m2parse stats``: how often a model's outputs parse clean, and what goes wrong when they do not.

Inputs are streamed one output at a time (a ``.txt`` file is one output, a JSONL line is one output), and the
totals kept are bounded whatever the number of outputs: counters keyed by problem code, tool name (at most
``MAX_TOOL_NAMES`` distinct names; a model inventing names cannot grow them further) and finish state, fixed size
buckets, and the ``SLOWEST`` slowest parses in a heap. So a multi-GB JSONL costs the memory of its longest line.
"""

from __future__ import annotations

import heapq
import json
import re
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .message import ParsedMessage
from .parser import StreamParser
from .problems import MISSING_THINK_END, TURN_MARKER

#: finish states, in the order they are shown
STATES = ("complete", "truncated", "turn_marker")
STATE_LABELS = {"complete": "complete", "truncated": "truncated", "turn_marker": "ended by a turn marker"}
#: output size buckets (characters): each is [low, next low)
SIZE_BUCKETS = (0, 256, 1024, 4096, 16384, 65536, 262144)
SLOWEST = 10
MAX_TOOL_NAMES = 1000
OTHER_TOOLS = "(other names)"


def finish_state(result: ParsedMessage, finish_reason: str | None = None) -> str:
    """``turn_marker`` when the output ran into a turn marker; ``truncated`` when it was cut off (a ``truncated_*``
    problem, reasoning never closed, or the backend said ``length``); else ``complete``."""
    if result.ended_by_turn_marker or any(p.code == TURN_MARKER for p in result.problems):
        return "turn_marker"
    if finish_reason == "length" or any(
        p.code.startswith("truncated") or p.code == MISSING_THINK_END for p in result.problems
    ):
        return "truncated"
    return "complete"


@dataclass(frozen=True, slots=True)
class Output:
    """One raw output and where it came from (``file`` or ``file:line``)."""

    source: str
    text: str
    finish_reason: str | None = None


@dataclass
class Stats:
    """The running totals; ``add`` one parse at a time, ``to_dict`` at the end."""

    outputs: int = 0
    clean: int = 0
    unreadable: int = 0
    unreadable_examples: list[str] = field(default_factory=list)
    states: Counter[str] = field(default_factory=Counter)
    code_outputs: Counter[str] = field(default_factory=Counter)
    code_occurrences: Counter[str] = field(default_factory=Counter)
    tool_calls: Counter[str] = field(default_factory=Counter)
    tool_outputs: Counter[str] = field(default_factory=Counter)
    sizes: list[int] = field(default_factory=lambda: [0] * len(SIZE_BUCKETS))
    size_min: int | None = None
    size_max: int = 0
    size_total: int = 0
    parse_seconds: float = 0.0
    slowest: list[tuple[float, str, int]] = field(default_factory=list)  # a min-heap of (seconds, source, size)

    def add(self, output: Output, result: ParsedMessage, seconds: float) -> None:
        self.outputs += 1
        if not result.problems:
            self.clean += 1
        self.states[finish_state(result, output.finish_reason)] += 1
        codes = [problem.code for problem in result.problems]
        self.code_occurrences.update(codes)
        self.code_outputs.update(set(codes))
        names = [self._tool_name(call.name) for call in result.tool_calls]
        self.tool_calls.update(names)
        self.tool_outputs.update(set(names))
        size = len(output.text)
        self.sizes[_bucket(size)] += 1
        self.size_min = size if self.size_min is None else min(self.size_min, size)
        self.size_max = max(self.size_max, size)
        self.size_total += size
        self.parse_seconds += seconds
        entry = (seconds, output.source, size)
        if len(self.slowest) < SLOWEST:
            heapq.heappush(self.slowest, entry)
        elif entry > self.slowest[0]:
            heapq.heapreplace(self.slowest, entry)

    def _tool_name(self, name: str) -> str:
        if name in self.tool_calls or len(self.tool_calls) < MAX_TOOL_NAMES:
            return name
        return OTHER_TOOLS

    def skip(self, where: str, reason: str) -> None:
        """An input that holds no output to parse (bad JSON, a missing field): counted, a few kept as examples."""
        self.unreadable += 1
        if len(self.unreadable_examples) < 5:
            self.unreadable_examples.append(f"{where}: {reason}")

    def to_dict(self) -> dict[str, Any]:
        n = self.outputs

        def pct(count: int) -> float:
            return round(100 * count / n, 2) if n else 0.0

        sizes = []
        for i, low in enumerate(SIZE_BUCKETS):
            high = SIZE_BUCKETS[i + 1] if i + 1 < len(SIZE_BUCKETS) else None
            sizes.append({"from": low, "below": high, "outputs": self.sizes[i], "percent": pct(self.sizes[i])})
        return {
            "outputs": n,
            "clean": self.clean,
            "clean_percent": pct(self.clean),
            "unreadable": self.unreadable,
            "unreadable_examples": self.unreadable_examples,
            "finish_states": {s: {"outputs": self.states[s], "percent": pct(self.states[s])} for s in STATES},
            "problems": {
                code: {"outputs": count, "percent": pct(count), "occurrences": self.code_occurrences[code]}
                for code, count in sorted(self.code_outputs.items(), key=lambda kv: (-kv[1], kv[0]))
            },
            "tools": {
                name: {"calls": calls, "outputs": self.tool_outputs[name], "percent": pct(self.tool_outputs[name])}
                for name, calls in sorted(self.tool_calls.items(), key=lambda kv: (-kv[1], kv[0]))
            },
            "sizes": {
                "min": self.size_min or 0,
                "mean": round(self.size_total / n, 1) if n else 0.0,
                "max": self.size_max,
                "buckets": sizes,
            },
            "parse_seconds": round(self.parse_seconds, 6),
            "slowest": [
                {"source": source, "seconds": round(seconds, 6), "characters": size}
                for seconds, source, size in sorted(self.slowest, reverse=True)
            ],
        }


def _bucket(size: int) -> int:
    i = len(SIZE_BUCKETS) - 1
    while SIZE_BUCKETS[i] > size:
        i -= 1
    return i


def parse_output(output: Output, tools: Any, options: Mapping[str, Any]) -> tuple[ParsedMessage, float]:
    """The parse of one output and how long it took (seconds of this process's clock)."""
    start = time.perf_counter()
    parser = StreamParser(tools, **options)
    parser.feed(output.text)
    parser.finish()
    return parser.result, time.perf_counter() - start


# ---------------------------------------------------------------------------------------------- JSONL fields

_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def split_path(path: str) -> list[str | int]:
    """``response.choices[0].text`` -> ``["response", "choices", 0, "text"]``."""
    parts: list[str | int] = []
    pos = 0
    for match in _PATH_PART.finditer(path):
        if match.start() != pos and path[pos : match.start()] != ".":
            raise ValueError(f"cannot read the field path {path!r} at {pos}")
        parts.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        pos = match.end()
    if not parts or pos != len(path):
        raise ValueError(f"cannot read the field path {path!r}")
    return parts


def field_text(record: Any, path: list[str | int]) -> tuple[str, str | None]:
    """The raw text at ``path`` in one JSONL record, and the finish reason when the record says one.

    The value may be the text itself, or an OpenAI completions response (or its ``choices`` entry): then the text
    is ``choices[0].text`` and its ``finish_reason`` is kept (``length`` means cut off).
    """
    value = record
    for part in path:
        if isinstance(part, int):
            if not isinstance(value, list) or part >= len(value):
                raise LookupError(f"no item [{part}]")
            value = value[part]
        else:
            if not isinstance(value, Mapping) or part not in value:
                raise LookupError(f"no field {part!r}")
            value = value[part]
    if isinstance(value, str):
        return value, None
    if isinstance(value, Mapping) and isinstance(value.get("choices"), list) and value["choices"]:
        value = value["choices"][0]
    if isinstance(value, Mapping) and isinstance(value.get("text"), str):
        reason = value.get("finish_reason")
        return value["text"], reason if isinstance(reason, str) else None
    raise LookupError("the field is neither a string nor an OpenAI completion (choices[0].text)")


def jsonl_outputs(lines: Iterator[str], name: str, path: list[str | int], stats: Stats) -> Iterator[Output]:
    """Each line's output; lines that hold none are counted in ``stats`` as unreadable, blank lines skipped."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            text, reason = field_text(json.loads(line), path)
        except (ValueError, RecursionError) as exc:
            stats.skip(where, f"not JSON ({exc})")
            continue
        except LookupError as exc:
            stats.skip(where, str(exc.args[0]) if exc.args else "no such field")
            continue
        yield Output(where, text, reason)
