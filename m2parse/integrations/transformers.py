"""m2parse on transformers' ``generate()``: a streamer that yields parser events, and decode-and-parse.

Two settings lose M2's markup before a parser can see it:

- ``skip_special_tokens=True``: M2's turn markers are special tokens, and so are ``<think>``, ``</think>`` and
  ``<minimax:tool_call>`` in some tokenizer files; decoding drops them. Everything here decodes with
  ``skip_special_tokens=False`` (and ``clean_up_tokenization_spaces=False``, which would edit the text) and warns
  with :class:`MarkersStrippedWarning` when a streamer you built would lose markers.
- ``skip_prompt=False``: the streamer echoes the prompt, whose trailing ``<think>\\n`` (and turn markers) then
  read as output. :class:`PromptEchoWarning`.

The end-of-sequence token that ends a generation is the turn's end, not output: it is dropped. An end-of-sequence
token in the middle of the ids is kept, so the parser reports it as a turn marker.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping
from queue import Queue
from typing import Any

from transformers import TextIteratorStreamer
from transformers.generation.streamers import BaseStreamer

from ..events import Event
from ..format import THINK_CLOSE, THINK_OPEN, TOOL_CALL_CLOSE, TOOL_CALL_OPEN, TURN_MARKERS
from ..message import ParsedMessage
from ..parser import StreamParser, parse

__all__ = [
    "DECODE_KWARGS",
    "M2ParseWarning",
    "M2Streamer",
    "MarkersStrippedWarning",
    "PromptEchoWarning",
    "iter_events",
    "parse_generated",
    "stripped_markers",
]

#: How M2 output must be decoded for parsing.
DECODE_KWARGS: Mapping[str, Any] = {"skip_special_tokens": False, "clean_up_tokenization_spaces": False}

_MARKERS = (THINK_OPEN, THINK_CLOSE, TOOL_CALL_OPEN, TOOL_CALL_CLOSE, *TURN_MARKERS)
_STOP = object()


class M2ParseWarning(UserWarning):
    """A transformers setting that makes M2 output unparseable or wrong."""


class MarkersStrippedWarning(M2ParseWarning):
    """Decoding would drop M2 markers (``skip_special_tokens=True`` with markers that are special tokens)."""


class PromptEchoWarning(M2ParseWarning):
    """The text would include the prompt (``skip_prompt=False``, or ids that start with the prompt)."""


def stripped_markers(tokenizer: Any, **decode_kwargs: Any) -> list[str]:
    """The M2 markers that are single tokens of ``tokenizer`` and that decoding with these kwargs loses."""
    lost = []
    for marker in _MARKERS:
        token = tokenizer.convert_tokens_to_ids(marker)  # seven look-ups, not the 200k-entry vocab
        if not isinstance(token, int) or tokenizer.convert_ids_to_tokens(token) != marker:
            continue  # not a token of its own here: it is plain text, which nothing strips
        if tokenizer.decode([token], **decode_kwargs) != marker:
            lost.append(marker)
    return lost


def _warn_stripped(tokenizer: Any, decode_kwargs: Mapping[str, Any], stacklevel: int) -> None:
    lost = stripped_markers(tokenizer, **decode_kwargs)
    if lost:
        warnings.warn(
            f"decoding with {dict(decode_kwargs)} removes the M2 markers {', '.join(lost)}: reasoning, tool calls "
            "and turn ends cannot be found in the text. Decode with skip_special_tokens=False "
            "(m2parse.integrations.transformers.DECODE_KWARGS).",
            MarkersStrippedWarning,
            stacklevel=stacklevel + 1,
        )


def _warn_prompt(what: str, stacklevel: int) -> None:
    warnings.warn(
        f"{what}: the prompt's trailing <think>\\n and its turn markers would be parsed as model output. "
        "Use skip_prompt=True, or pass only the generated ids.",
        PromptEchoWarning,
        stacklevel=stacklevel + 1,
    )


def _row(value: Any) -> list[int]:
    """Token ids from a 1-D or batch-of-one tensor, array or list."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    value = list(value)
    if value and isinstance(value[0], (list, tuple)):
        if len(value) != 1:
            raise ValueError(f"M2 output is parsed one sequence at a time; got a batch of {len(value)}")
        value = list(value[0])
    return [int(token) for token in value]


def _stop_ids(tokenizer: Any, stop_token_ids: Iterable[int] | None) -> frozenset[int]:
    if stop_token_ids is not None:
        return frozenset(stop_token_ids)
    eos = getattr(tokenizer, "eos_token_id", None)
    return frozenset(eos if isinstance(eos, (list, tuple)) else [] if eos is None else [eos])


class M2Streamer(BaseStreamer):
    """Pass as ``generate(..., streamer=streamer)``; iterate it (in another thread) for m2parse events.

    It decodes incrementally (a few tokens of context, never the whole output again), so each token costs the
    same however long the output grows. ``result`` is the parsed message once iteration has ended. One streamer
    serves one generation of batch size one.
    """

    def __init__(
        self,
        tokenizer: Any,
        tools: Iterable[Mapping[str, Any]] | None = None,
        *,
        skip_prompt: bool = True,
        timeout: float | None = None,
        stop_token_ids: Iterable[int] | None = None,
        **parser_options: Any,
    ) -> None:
        if not skip_prompt:
            _warn_prompt("M2Streamer(skip_prompt=False)", stacklevel=2)
        _warn_stripped(tokenizer, DECODE_KWARGS, stacklevel=2)
        self.tokenizer = tokenizer
        self.skip_prompt = skip_prompt
        self.timeout = timeout
        self.parser = StreamParser(tools, **parser_options)
        self._stop_ids = _stop_ids(tokenizer, stop_token_ids)
        self._queue: Queue[Any] = Queue()
        self._ids: list[int] = []
        self._prefix = 0  # self._ids[:self._read] is decoded; [self._prefix:self._read] gives the next one context
        self._read = 0
        self._held_stop: int | None = None
        self._seen_prompt = False

    def _decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, **DECODE_KWARGS))

    def put(self, value: Any) -> None:
        ids = _row(value)
        if not self._seen_prompt:
            self._seen_prompt = True
            if self.skip_prompt:
                return
        for token in ids:
            if self._held_stop is not None:
                self._ids.append(self._held_stop)  # an end-of-sequence token in the middle is output
                self._held_stop = None
            if token in self._stop_ids:
                self._held_stop = token
            else:
                self._ids.append(token)
        self._emit(self._next_text(final=False))

    def end(self) -> None:
        self._held_stop = None
        self._emit(self._next_text(final=True))
        self._emit_events(self.parser.finish())
        self._queue.put(_STOP, timeout=self.timeout)

    def _next_text(self, final: bool) -> str:
        """The text the new ids add; an incomplete UTF-8 sequence waits for its next bytes unless ``final``."""
        if self._read == len(self._ids):
            return ""
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        if len(after) <= len(before) or (after.endswith("\ufffd") and not final):
            return ""
        self._prefix, self._read = self._read, len(self._ids)
        if self._prefix > 64:  # keep only the ids the next decode needs as context
            del self._ids[: self._prefix]
            self._read -= self._prefix
            self._prefix = 0
        return after[len(before) :]

    def _emit(self, text: str) -> None:
        if text:
            self._emit_events(self.parser.feed(text))

    def _emit_events(self, events: list[Event]) -> None:
        for event in events:
            self._queue.put(event, timeout=self.timeout)

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        item = self._queue.get(timeout=self.timeout)
        if item is _STOP:
            raise StopIteration
        return item  # type: ignore[no-any-return]

    @property
    def result(self) -> ParsedMessage:
        return self.parser.result


def iter_events(streamer: TextIteratorStreamer, parser: StreamParser) -> Iterator[Event]:
    """Events from the text of a ``TextIteratorStreamer`` you already use; read ``parser.result`` afterwards.

    Warns at once when the streamer's settings lose markers or echo the prompt. A final end-of-sequence token
    (which the streamer decodes like any other) is dropped.
    """
    if not streamer.skip_prompt:
        _warn_prompt("TextIteratorStreamer(skip_prompt=False)", stacklevel=2)
    _warn_stripped(streamer.tokenizer, streamer.decode_kwargs, stacklevel=2)
    eos = getattr(streamer.tokenizer, "eos_token", None)
    return _iter_text_events(streamer, parser, eos if isinstance(eos, str) else "")


def _iter_text_events(chunks: Iterable[str], parser: StreamParser, eos: str) -> Iterator[Event]:
    # The streamer keeps the last token's text for its final chunk, so the end-of-sequence token (when the
    # generation ended on it) is at the end of the last chunk: hold one chunk back to see which is last.
    held: str | None = None
    for chunk in chunks:
        if held:
            yield from parser.feed(held)
        held = chunk
    if held:
        yield from parser.feed(held[: -len(eos)] if eos and held.endswith(eos) else held)
    yield from parser.finish()


def parse_generated(
    tokenizer: Any,
    sequences: Any,
    tools: Iterable[Mapping[str, Any]] | None = None,
    *,
    prompt_length: int = 0,
    stop_token_ids: Iterable[int] | None = None,
    **parser_options: Any,
) -> ParsedMessage:
    """Decode one ``generate()`` output correctly and parse it.

    ``sequences`` is the output of ``generate`` for one prompt (1-D, or a batch of one); pass
    ``prompt_length=inputs["input_ids"].shape[-1]`` for a decoder-only model, whose output starts with the prompt.
    Trailing end-of-sequence tokens (``stop_token_ids``, default the tokenizer's ``eos_token_id``) are dropped.
    """
    ids = _row(sequences)[prompt_length:]
    stops = _stop_ids(tokenizer, stop_token_ids)
    while ids and ids[-1] in stops:
        ids.pop()
    _warn_stripped(tokenizer, DECODE_KWARGS, stacklevel=2)
    text = str(tokenizer.decode(ids, **DECODE_KWARGS))
    if text.lstrip().startswith(TURN_MARKERS):
        _warn_prompt("the ids start with a turn marker, so they include the prompt", stacklevel=2)
    return parse(text, tools, **parser_options)
