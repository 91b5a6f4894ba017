"""Where the reasoning ends, for SGLang's two-stage pipeline (reasoning detector first, tool detector after).

The stream split itself is shared with the vLLM integration (:mod:`m2parse.integrations.reasoning_split`). M2's
generation prompt ends with ``<think>\\n``, so there the output always starts inside the reasoning (a leading
``<think>`` the model writes anyway is dropped). M3's start follows the request's ``thinking_mode``.

What follows the reasoning is handed on raw. When SGLang's tool parser consumes that text
(``tool_call_parser_active``), the hand-off starts with the think close (``</think>``, ``</mm:think>``): it tells
m2parse's tool detector that it is reading content after a closed reasoning, so the two stages together give
what one ``parse()`` gives.
"""

from __future__ import annotations

from ...parser import StreamParser
from ..reasoning_split import ReasoningSplit, format_options, spellings

__all__ = ["ReasoningSplit", "split_whole"]


def split_whole(
    text: str, *, mark_close: bool, model_format: str = "m2", thinking_mode: str | None = None
) -> tuple[str, str]:
    """(reasoning_content, the rest) of a finished output, the non-streaming form of :class:`ReasoningSplit`.

    With ``mark_close``, a rest that holds no markup at all comes back as ``parse()``'s content instead of
    the think close + raw text: SGLang's non-streaming path only runs the tool detector on text it says holds a
    call, and hands any other text to the client as is.
    """
    split = ReasoningSplit(
        mark_close=mark_close, pass_through=True, model_format=model_format, thinking_mode=thinking_mode
    )
    _, rest = split.feed(text)
    split.finish()
    reasoning = split.parser.result.reasoning_content or ""
    if rest is None:
        return reasoning, ""
    if mark_close:
        tags = spellings(model_format)
        raw = rest[len(tags.think_close) :]
        if not any(tag in raw for tag in (tags.think_open, tags.think_close, tags.tool_call_open, *tags.turn_markers)):
            # content after a closed reasoning: the machine that starts in reasoning, fed the close first
            content = StreamParser(**format_options(model_format, "enabled"))
            content.feed(rest)
            content.finish()
            return reasoning, content.result.content
    return reasoning, rest
