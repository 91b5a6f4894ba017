"""Where M2's reasoning ends in a stream, for engines that parse in two stages (reasoning first, tools after).

vLLM and SGLang both run a reasoning parser over the output and hand what follows the reasoning to a tool
parser. This is m2parse's rule 1 applied to that stream, with no engine import, so both integrations share it:
the reasoning goes through m2parse's own machine; it ends at the first ``</think>`` or ``<minimax:tool_call>``
(kept at the start of the hand-off); a turn marker ends the whole output. A stop split across deltas is found
by searching a short tail of the previous text again, so the cost stays linear.
"""

from __future__ import annotations

import re

from ..events import ContentDelta, Event, ReasoningDelta
from ..format import THINK_CLOSE, THINK_OPEN, TOOL_CALL_OPEN, TURN_MARKERS
from ..parser import StreamParser

__all__ = ["REASONING_STOPS", "ReasoningSplit"]

#: What ends the reasoning in the raw text, and the turn markers, which end everything.
REASONING_STOPS = (THINK_CLOSE, TOOL_CALL_OPEN, *TURN_MARKERS)
_TAIL = max(len(stop) for stop in REASONING_STOPS) - 1
_NOT_SPACE = re.compile(r"\S")


class ReasoningSplit:
    """The reasoning of one output (through m2parse's machine), then the raw rest as one hand-off.

    - ``starts_in_reasoning``: m2parse's option. When False (the prompt opened no reasoning) only a leading
      ``<think>`` opens one, and an output that does not start with it is handed on whole.
    - ``mark_close``: start the hand-off with ``</think>``, which tells an m2parse tool stage that it reads
      content after a closed reasoning (SGLang's tool detector cannot be told otherwise).
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
    ) -> None:
        self.parser = StreamParser(starts_in_reasoning=starts_in_reasoning)
        self.mark_close = mark_close
        self.stream_reasoning = stream_reasoning
        self.pass_through = pass_through
        self.handed_off = False
        self.turn_ended = False
        self._tail = ""
        self._held: list[str] = []
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
            if m is None or (len(rest) < len(THINK_OPEN) and THINK_OPEN.startswith(rest)):
                self._lead = lead
                return "", None
            self._lead = None
            if not rest.startswith(THINK_OPEN):
                self.handed_off = True
                return "", lead
            text = lead
        window = self._tail + text
        hit = min(((i, stop) for stop in REASONING_STOPS if (i := window.find(stop)) >= 0), default=None)
        if hit is None:
            self._tail = window[-_TAIL:]
            return self._emit(self.parser.feed(text), ended=False), None
        at, stop = hit
        cut = at + len(stop) - len(self._tail)
        reasoning = self._emit(self.parser.feed(text[:cut]), ended=True)
        if stop in TURN_MARKERS:
            self.turn_ended = True
            return reasoning, None
        self.handed_off = True
        head = (THINK_CLOSE if self.mark_close else "") + (TOOL_CALL_OPEN if stop == TOOL_CALL_OPEN else "")
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
