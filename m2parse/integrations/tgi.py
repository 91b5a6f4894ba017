"""m2parse events from Text Generation Inference's token stream (``/generate_stream``).

TGI sends one token per SSE event. Its ``generated_text`` (on the last event) is decoded with special tokens
skipped, so M2's markers are missing from it; the output has to be rebuilt from every ``token.text``, special
tokens included. That is what these helpers feed the parser; the end-of-sequence token that ends an
``eos_token`` finish is the turn's end and is dropped (the decoding is :mod:`m2parse.backends.tgi`, shared with
the server).

Sources: ``huggingface_hub.InferenceClient(...).text_generation(prompt, stream=True, details=True)`` (or the
``AsyncInferenceClient`` one) with :func:`iter_events` / :func:`aiter_events`, or the raw SSE lines of a
``POST /generate_stream`` read with any HTTP client, with :func:`iter_sse_events` / :func:`aiter_sse_events`.
With ``details=False`` huggingface_hub yields bare token texts, which are accepted too, but then the final
end-of-sequence token cannot be told apart and is reported by the parser as a turn marker.

TGI leaves a matched stop sequence in its output: pass the ``stop`` list you sent to have it cut off.
In-band errors raise :class:`m2parse.backends.BackendError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..backends.base import SSEParser, StopTrimmer
from ..backends.tgi import decode_stream_data, decode_stream_event
from ..events import Event
from ..parser import StreamParser

__all__ = ["aiter_events", "aiter_sse_events", "iter_events", "iter_sse_events"]


@dataclass
class _Feed:
    """Stream pieces -> parser events, with the optional stop-sequence cut in between."""

    parser: StreamParser
    stop: tuple[str, ...] = ()
    _trimmer: StopTrimmer | None = field(default=None, init=False)
    _sse: SSEParser = field(default_factory=SSEParser, init=False)

    def __post_init__(self) -> None:
        if self.stop:
            self._trimmer = StopTrimmer(self.stop)

    def text(self, text: str) -> list[Event]:
        if self._trimmer is not None:
            text = self._trimmer.feed(text)
        return self.parser.feed(text) if text else []

    def event(self, event: Any) -> list[Event]:
        if isinstance(event, str):  # huggingface_hub with details=False: the token text itself
            return self.text(event)
        return self.text(decode_stream_event(event).text)

    def line(self, line: str | bytes) -> list[Event]:
        if isinstance(line, bytes):
            line = line.decode("utf-8")
        sse = self._sse.feed_line(line)
        if sse is None:
            return []
        piece = decode_stream_data(sse.data)
        return self.text(piece.text) if piece is not None else []

    def finish(self) -> list[Event]:
        events: list[Event] = []
        if (sse := self._sse.close()) is not None and (piece := decode_stream_data(sse.data)) is not None:
            events += self.text(piece.text)
        if self._trimmer is not None:
            events += self.parser.feed(self._trimmer.flush())
        return events + self.parser.finish()


def iter_events(stream: Iterable[Any], parser: StreamParser, *, stop: Iterable[str] = ()) -> Iterator[Event]:
    """Events from TGI stream outputs (huggingface_hub objects, or the events' JSON as dicts).

    ``parser`` carries the options and tools; read ``parser.result`` when the iterator is exhausted.
    """
    feed = _Feed(parser, tuple(stop))
    for event in stream:
        yield from feed.event(event)
    yield from feed.finish()


async def aiter_events(
    stream: AsyncIterable[Any], parser: StreamParser, *, stop: Iterable[str] = ()
) -> AsyncIterator[Event]:
    """:func:`iter_events` for ``AsyncInferenceClient.text_generation(..., stream=True, details=True)``."""
    feed = _Feed(parser, tuple(stop))
    async for event in stream:
        for out in feed.event(event):
            yield out
    for out in feed.finish():
        yield out


def iter_sse_events(lines: Iterable[str | bytes], parser: StreamParser, *, stop: Iterable[str] = ()) -> Iterator[Event]:
    """Events from the raw SSE lines of ``POST /generate_stream`` (e.g. ``httpx`` ``response.iter_lines()``)."""
    feed = _Feed(parser, tuple(stop))
    for line in lines:
        yield from feed.line(line)
    yield from feed.finish()


async def aiter_sse_events(
    lines: AsyncIterable[str | bytes], parser: StreamParser, *, stop: Iterable[str] = ()
) -> AsyncIterator[Event]:
    """:func:`iter_sse_events` for an async line source (e.g. ``httpx.AsyncClient`` ``aiter_lines()``)."""
    feed = _Feed(parser, tuple(stop))
    async for line in lines:
        for out in feed.line(line):
            yield out
    for out in feed.finish():
        yield out
