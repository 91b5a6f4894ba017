"""What every raw-completion backend shares: sampling parameters, decoded pieces, errors and SSE framing.

Nothing here does I/O, so the TGI integration can reuse the decoders on lines it reads itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..format import STOP_STRINGS


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """OpenAI-named sampling parameters; each backend module renames them. None means "backend default"."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as the backend reported them (None when it did not)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    def to_openai(self) -> dict[str, int]:
        prompt = self.prompt_tokens or 0
        completion = self.completion_tokens or 0
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


@dataclass(frozen=True, slots=True)
class Piece:
    """One decoded backend message: raw output text, and on the last one the finish reason and usage.

    ``finish_reason`` uses the OpenAI completion vocabulary: ``"stop"`` or ``"length"``.
    """

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    #: lone surrogates (invalid Unicode) the client replaced with U+FFFD in ``text``, and where the first was
    replaced: int = 0
    replaced_at: int = 0


class BackendError(Exception):
    """The backend failed. ``kind`` says how, so the server can pick 502/504/400.

    kinds: ``unreachable`` (connect failed), ``http`` (error status; ``status`` set), ``protocol`` (garbage, or a
    stream that ended early), ``backend`` (the backend reported an error in-band), ``timeout``.
    """

    def __init__(self, kind: str, message: str, *, status: int | None = None) -> None:
        message = one_line(message)
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status


def protocol_error(message: str) -> BackendError:
    return BackendError("protocol", message)


def stop_strings(user_stop: Iterable[str] = ()) -> list[str]:
    """The turn markers first (so the backend never runs past the turn), then the caller's stops, deduplicated
    in linear time (a dict keeps first-seen order)."""
    return [stop for stop in dict.fromkeys((*STOP_STRINGS, *user_stop)) if stop]


_SURROGATE = re.compile("[\ud800-\udfff]")
#: characters that would break a log line or a terminal: C0/C1 controls, DEL, line and paragraph separators
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
MESSAGE_LIMIT = 1000


def find_surrogate(text: str) -> int:
    """Index of the first lone surrogate in ``text`` (which UTF-8 cannot encode), or -1. ASCII is checked in C."""
    if text.isascii():
        return -1
    found = _SURROGATE.search(text)
    return found.start() if found else -1


def replace_surrogates(text: str) -> tuple[str, int, int]:
    """(text with each lone surrogate replaced by U+FFFD, how many, index of the first or 0)."""
    first = find_surrogate(text)
    if first < 0:
        return text, 0, 0
    fixed, count = _SURROGATE.subn("\ufffd", text)
    return fixed, count, first


def one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """A message safe to pass on and to log: at most ``limit`` characters (the rest counted), control
    characters and line breaks escaped (``\\n``), lone surrogates replaced, so it can never forge a log line."""
    extra = len(text) - limit
    if extra > 0:
        text = text[:limit]
    if not text.isascii() or _UNSAFE.search(text):
        text = _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), replace_surrogates(text)[0])
    return text + f"... ({extra} more characters)" if extra > 0 else text


def load_json(data: str | bytes) -> Any:
    """json.loads that reports garbage as a protocol error, quoting a bounded prefix of it."""
    try:
        return json.loads(data)
    except (ValueError, TypeError):
        shown = data[:80] if isinstance(data, str) else data[:80].decode("utf-8", "replace")
        raise protocol_error(f"backend sent something that is not JSON: {shown!r}") from None
    except RecursionError:
        raise protocol_error("backend sent JSON nested too deeply to read") from None


def get(obj: Any, key: str, default: Any = None) -> Any:
    """Field access that works on dicts and on attribute objects (huggingface_hub dataclasses)."""
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def in_band_error(obj: Any) -> BackendError | None:
    """The error a backend put inside a 200 response or stream, in any of the shapes the three servers use.

    vLLM/SGLang/llama.cpp: ``{"error": {"message": ...}}``; older vLLM: ``{"object": "error", "message": ...}``;
    TGI: ``{"error": "...", "error_type": "..."}``.
    """
    if not isinstance(obj, Mapping):
        return None
    error = obj.get("error")
    if isinstance(error, Mapping):
        return BackendError("backend", _text(error.get("message") or error.get("content") or error))
    if isinstance(error, str) and error:
        kind = obj.get("error_type")
        return BackendError("backend", f"{error} ({_text(kind)})" if kind else error)
    if obj.get("object") == "error":
        return BackendError("backend", _text(obj.get("message") or obj))
    return None


def _text(value: Any) -> str:
    """A bounded string for any JSON value (the repr of a huge or deeply nested object is never built whole)."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)[: 2 * MESSAGE_LIMIT]
    except (ValueError, TypeError, RecursionError):
        return type(value).__name__


def int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str
    data: str


@dataclass
class SSEParser:
    """Incremental Server-Sent Events framing over text lines.

    Accepts ``data:`` with or without the space (TGI writes none), multi-line data, comments and CRLF.
    llama.cpp's older servers write errors as an ``error:`` field, which the spec would drop; it is kept as an
    event named ``error``.
    """

    #: cap on one event's data (its lines together), so a peer that never sends the blank line cannot grow it
    max_chars: int | None = None
    _event: str = ""
    _data: list[str] = field(default_factory=list)
    _size: int = 0

    def feed_line(self, line: str) -> SSEEvent | None:
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._add(value)
        elif name == "event":
            self._event = value
        elif name == "error":
            self._event = "error"
            self._add(value)
        return None

    def _add(self, value: str) -> None:
        self._size += len(value) + 1
        if self.max_chars is not None and self._size > self.max_chars:
            raise protocol_error(f"the backend sent an event over {self.max_chars} characters")
        self._data.append(value)

    def close(self) -> SSEEvent | None:
        """Flush an event the peer did not terminate with a blank line."""
        return self._dispatch()

    def _dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._event, self._size = "", 0
            return None
        event = SSEEvent(self._event or "message", "\n".join(self._data))
        self._event, self._data, self._size = "", [], 0
        return event


def sse_events(lines: Iterable[str]) -> list[SSEEvent]:
    """All events of a complete SSE body given as lines (a convenience for tests and non-async callers)."""
    parser = SSEParser()
    out = [event for line in lines if (event := parser.feed_line(line)) is not None]
    if (last := parser.close()) is not None:
        out.append(last)
    return out


@dataclass
class StopTrimmer:
    """Cuts output at the first stop string, holding back a tail that could still become one.

    ``feed`` returns the text that is safe to pass on; ``stopped`` turns true at a full match (drop the rest);
    ``flush`` returns the held tail when the output ends without a match.
    """

    stops: tuple[str, ...]
    stopped: bool = False
    _held: str = field(default="", repr=False)

    def feed(self, text: str) -> str:
        if self.stopped or not text:
            return ""
        buf = self._held + text
        cut = min((i for i in (buf.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._held = ""
            return buf[:cut]
        keep = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(buf)), keep, -1):
                if buf.endswith(stop[:n]):
                    keep = n
                    break
        self._held = buf[len(buf) - keep :] if keep else ""
        return buf[: len(buf) - keep]

    def flush(self) -> str:
        held, self._held = self._held, ""
        return "" if self.stopped else held
