"""Where M2's reasoning ends, for SGLang's two-stage pipeline (reasoning detector first, tool detector after).

The stream split itself is shared with the vLLM integration (:mod:`m2parse.integrations.reasoning_split`). M2's
generation prompt ends with ``<think>\\n``, so here the output always starts inside the reasoning (a leading
``<think>`` the model writes anyway is dropped).

What follows the reasoning is handed on raw. When SGLang's tool parser consumes that text
(``tool_call_parser_active``), the hand-off starts with ``</think>``: it tells m2parse's tool detector that it
is reading content after a closed reasoning, so the two stages together give what one ``parse()`` gives.
"""

from __future__ import annotations

from ...format import THINK_CLOSE, THINK_OPEN, TOOL_CALL_OPEN, TURN_MARKERS
from ...parser import StreamParser
from ..reasoning_split import ReasoningSplit

__all__ = ["ReasoningSplit", "split_whole"]


def split_whole(text: str, *, mark_close: bool) -> tuple[str, str]:
    """(reasoning_content, the rest) of a finished output, the non-streaming form of :class:`ReasoningSplit`.

    With ``mark_close``, a rest that holds no markup at all comes back as ``parse()``'s content instead of
    ``</think>`` + raw text: SGLang's non-streaming path only runs the tool detector on text it says holds a
    call, and hands any other text to the client as is.
    """
    split = ReasoningSplit(mark_close=mark_close, pass_through=True)
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
