"""Where M2's reasoning ends, for SGLang's two-stage pipeline (reasoning detector first, tool detector after).

No SGLang import here: this is m2parse's own rule 1 applied to a stream, so it can be read and tested alone.
M2's generation prompt ends with ``<think>\\n``, so the output always starts inside the reasoning (a leading
``<think>`` the model writes anyway is dropped). The reasoning ends at the first ``</think>`` or
``<minimax:tool_call>``; a turn marker ends the whole output.

What follows the reasoning is handed on raw. When SGLang's tool parser consumes that text
(``tool_call_parser_active``), the hand-off starts with ``</think>``: it tells m2parse's tool detector that it
is reading content after a closed reasoning, so the two stages together give what one ``parse()`` gives.
"""

from __future__ import annotations

from ...events import Event, ReasoningDelta
from ...format import THINK_CLOSE, THINK_OPEN, TOOL_CALL_OPEN, TURN_MARKERS
from ...parser import StreamParser

__all__ = ["ReasoningSplit", "split_whole"]

#: What ends the reasoning in the raw text, and the turn markers, which end everything.
_STOPS = (THINK_CLOSE, TOOL_CALL_OPEN, *TURN_MARKERS)
#: A stop split across deltas is found by searching this much of the previous text again.
_TAIL = max(len(stop) for stop in _STOPS) - 1


class ReasoningSplit:
    """The reasoning of one output (through m2parse's machine), then the raw rest as one hand-off.

    ``mark_close``: start the hand-off with ``</think>`` (the m2parse tool detector reads it next).
    ``stream_reasoning=False`` holds the reasoning back until it ends, as SGLang's option asks.
    """

    def __init__(self, *, mark_close: bool, stream_reasoning: bool = True) -> None:
        self.parser = StreamParser()
        self.mark_close = mark_close
        self.stream_reasoning = stream_reasoning
        self.handed_off = False
        self.turn_ended = False
        self._tail = ""
        self._held: list[str] = []

    def feed(self, text: str) -> tuple[str, str | None]:
        """(reasoning to emit now, and the raw text to hand on once the reasoning has ended, else None).

        After the hand-off every later delta is handed on as it is (SGLang keeps calling the reasoning stage).
        """
        if self.handed_off:
            return "", text
        if self.turn_ended or not text:
            return "", None
        window = self._tail + text
        hit = min(((i, stop) for stop in _STOPS if (i := window.find(stop)) >= 0), default=None)
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

    def finish(self) -> str:
        """The rest of the reasoning of an output that ended inside it (cut off, or a turn marker)."""
        if self.handed_off:
            return ""
        return self._emit(self.parser.finish(), ended=True)

    def _emit(self, events: list[Event], *, ended: bool) -> str:
        self._held += [e.text for e in events if isinstance(e, ReasoningDelta)]
        if not (self.stream_reasoning or ended):
            return ""
        out, self._held = "".join(self._held), []
        return out


def split_whole(text: str, *, mark_close: bool) -> tuple[str, str]:
    """(reasoning_content, the rest) of a finished output, the non-streaming form of :class:`ReasoningSplit`.

    With ``mark_close``, a rest that holds no markup at all comes back as ``parse()``'s content instead of
    ``</think>`` + raw text: SGLang's non-streaming path only runs the tool detector on text it says holds a
    call, and hands any other text to the client as is.
    """
    split = ReasoningSplit(mark_close=mark_close)
    _, rest = split.feed(text)
    split.finish()
    reasoning = split.parser.result.reasoning_content or ""
    if rest is None:
        return reasoning, ""
    if mark_close:
        raw = rest[len(THINK_CLOSE) :]
        if not any(tag in raw for tag in (THINK_OPEN, THINK_CLOSE, TOOL_CALL_OPEN, *TURN_MARKERS)):
            content = StreamParser()
            content.feed(rest)
            content.finish()
            return reasoning, content.result.content
    return reasoning, rest
