"""Where the reasoning ends in a stream, for engines that parse in two stages (reasoning first, tools after).

vLLM and SGLang both run a reasoning parser over the output and hand what follows the reasoning to a tool
parser. This is m2parse's rule 1 applied to that stream, with no engine import, so both integrations share it:
the reasoning goes through m2parse's own machine; it ends at the first think close (``</think>``, M3's
``</mm:think>``) or tool-call block (kept at the start of the hand-off); a turn marker ends the whole output. A
stop split across deltas is found by searching a short tail of the previous text again, so the cost stays
linear. Both formats share the mechanism; :class:`Spellings` holds the tags that differ.

Where the output starts. M2: inside the reasoning (its prompt ends with ``<think>\\n``), or, with
``starts_in_reasoning=False``, in content unless it opens with ``<think>``. M3 says it with the template's
``thinking_mode``: ``enabled`` starts inside the reasoning; ``disabled`` starts in content, where only a leading
``<mm:think>`` opens reasoning (as ``parse()`` reads it; M2's ``starts_in_reasoning=False``); ``adaptive`` (and
unset) also takes a leading bare ``</mm:think>`` as markup. Until the first non-blank characters decide, nothing
is emitted; an output that opens with neither tag is content, handed on whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .. import format as m2
from ..events import ContentDelta, Event, ReasoningDelta
from ..formats import m3
from ..parser import StreamParser

__all__ = ["M2_SPELLINGS", "M3_SPELLINGS", "REASONING_STOPS", "ReasoningSplit", "Spellings", "spellings"]


@dataclass(frozen=True, slots=True)
class Spellings:
    """The tags a two-stage split looks for, in one format."""

    think_open: str
    think_close: str
    tool_call_open: str
    tool_call_close: str
    turn_markers: tuple[str, ...]

    @property
    def stops(self) -> tuple[str, ...]:
        """What ends the reasoning in the raw text, and the turn markers, which end everything."""
        return (self.think_close, self.tool_call_open, *self.turn_markers)


M2_SPELLINGS = Spellings(m2.THINK_OPEN, m2.THINK_CLOSE, m2.TOOL_CALL_OPEN, m2.TOOL_CALL_CLOSE, m2.TURN_MARKERS)
M3_SPELLINGS = Spellings(m3.THINK_OPEN, m3.THINK_CLOSE, m3.TOOL_CALL_OPEN, m3.TOOL_CALL_CLOSE, m3.TURN_MARKERS)
#: M2's stops (kept under their old name).
REASONING_STOPS = M2_SPELLINGS.stops
_NOT_SPACE = re.compile(r"\S")


def spellings(model_format: str) -> Spellings:
    return M3_SPELLINGS if model_format == "m3" else M2_SPELLINGS


def format_options(model_format: str, thinking_mode: str | None, *, starts_in_reasoning: bool = True) -> dict[str, Any]:
    """StreamParser keywords for where an output of this format starts (M2 passes only what it always did)."""
    if model_format == "m3":
        return {"format": "m3", "thinking_mode": thinking_mode or "adaptive"}
    return {"starts_in_reasoning": starts_in_reasoning}


class ReasoningSplit:
    """The reasoning of one output (through m2parse's machine), then the raw rest as one hand-off.

    - ``model_format``: ``"m2"`` or ``"m3"``; ``thinking_mode``: M3's (see the module docstring).
    - ``starts_in_reasoning``: m2parse's M2 option. When False (the prompt opened no reasoning) only a leading
      ``<think>`` opens one, and an output that does not start with it is handed on whole.
    - ``mark_close``: start the hand-off with the think close (``</think>``, ``</mm:think>``), which tells an
      m2parse tool stage that it reads content after a closed reasoning (SGLang's tool detector cannot be told
      otherwise).
    - ``stream_reasoning=False`` holds the reasoning back until it ends.
    - ``pass_through``: after the hand-off, later deltas come back as they are (SGLang keeps calling the
      reasoning stage); otherwise they come back as None (vLLM stops calling it).
    """

    def __init__(
        self,
        *,
        starts_in_reasoning: bool = True,
        mark_close: bool = False,
        stream_reasoning: bool = True,
        pass_through: bool = False,
        model_format: str = "m2",
        thinking_mode: str | None = None,
    ) -> None:
        self.tags = spellings(model_format)
        self.parser = StreamParser(
            **format_options(model_format, thinking_mode, starts_in_reasoning=starts_in_reasoning)
        )
        self.mark_close = mark_close
        self.stream_reasoning = stream_reasoning
        self.pass_through = pass_through
        self.handed_off = False
        self.turn_ended = False
        self._tail = ""
        self._held: list[str] = []
        self._tail_length = max(len(stop) for stop in self.tags.stops) - 1
        #: The tags that, first in the output, mean it opens with reasoning markup (else: content, handed on).
        self._openers: tuple[str, ...] = (self.tags.think_open,)
        if model_format == "m3":
            mode = thinking_mode or "adaptive"
            self._openers = (m3.THINK_OPEN,) if mode == "disabled" else (m3.THINK_OPEN, m3.THINK_CLOSE)
            starts_in_reasoning = mode == "enabled"
        self._lead: str | None = None if starts_in_reasoning else ""

    def feed(self, text: str) -> tuple[str, str | None]:
        """(reasoning to emit now, and the raw text to hand on once the reasoning has ended, else None)."""
        if self.handed_off:
            return "", text if self.pass_through else None
        if self.turn_ended or not text:
            return "", None
        if self._lead is not None:
            lead = self._lead + text
            m = _NOT_SPACE.search(lead)
            rest = lead[m.start() :] if m else ""
            if m is None or any(len(rest) < len(tag) and tag.startswith(rest) for tag in self._openers):
                self._lead = lead
                return "", None
            self._lead = None
            if not rest.startswith(self._openers):  # no reasoning at all: content, as after a closed one
                self.handed_off = True
                return "", (self.tags.think_close if self.mark_close else "") + lead
            text = lead
        tags = self.tags
        window = self._tail + text
        hit = min(((i, stop) for stop in tags.stops if (i := window.find(stop)) >= 0), default=None)
        if hit is None:
            self._tail = window[-self._tail_length :]
            return self._emit(self.parser.feed(text), ended=False), None
        at, stop = hit
        cut = at + len(stop) - len(self._tail)
        reasoning = self._emit(self.parser.feed(text[:cut]), ended=True)
        if stop in tags.turn_markers:
            self.turn_ended = True
            return reasoning, None
        self.handed_off = True
        opens_block = stop == tags.tool_call_open
        head = (tags.think_close if self.mark_close else "") + (tags.tool_call_open if opens_block else "")
        return reasoning, head + text[cut:]

    def finish(self) -> tuple[str, str]:
        """At the end of an output whose reasoning never ended (cut off, or a turn marker): (the rest of the
        reasoning, content). Content comes only from an output of nothing but whitespace, which the machine
        decides about."""
        if self.handed_off:
            return "", ""
        if self._lead is not None:
            events = self.parser.feed(self._lead) + self.parser.finish()
            self._lead = None
            return "", "".join(e.text for e in events if isinstance(e, ContentDelta))
        return self._emit(self.parser.finish(), ended=True), ""

    def _emit(self, events: list[Event], *, ended: bool) -> str:
        self._held += [e.text for e in events if isinstance(e, ReasoningDelta)]
        if not (self.stream_reasoning or ended):
            return ""
        out, self._held = "".join(self._held), []
        return out
