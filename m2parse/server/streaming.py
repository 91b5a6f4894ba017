"""``chat.completion.chunk`` SSE for the official SDK's accumulator, and a response that notices disconnects.

The stream is: a role chunk, delta chunks (each backend piece's events, runs of same-field text joined; a tool
call whole once complete, or fragment by fragment with ``keep_truncated_tool_calls``), a finish chunk carrying
``finish_reason`` and the ``m2parse`` extension, a usage chunk with empty ``choices`` when asked, ``[DONE]``.
A backend failure after the first byte becomes one ``data: {"error": ...}`` event and the stream ends.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

import anyio

from ..backends import BackendError, Usage
from ..backends.client import BackendStream
from ..events import ContentDelta, Event, ReasoningDelta, ToolCallArgumentsDelta, ToolCallEnd, ToolCallStart
from ..openai_deltas import event_to_delta
from .access_log import RequestRecord
from .chat import OFFLOAD_BYTES, OutputCheck, Prepared, heavy_piece, log_problems, settle
from .config import ServerConfig
from .errors import APIError, from_backend

log = logging.getLogger("m2parse.server")

DONE = b"data: [DONE]\n\n"
_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class ChunkWriter:
    """Serialises chunks that share one ``id``/``created``/``model``."""

    def __init__(self, completion_id: str, model: str, *, include_usage: bool) -> None:
        self.completion_id = completion_id
        head = {"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
        self._head = json.dumps(head, ensure_ascii=False)[:-1]  # '{"id": ..., "model": ...' without the brace
        self._usage_null = ', "usage": null' if include_usage else ""

    def _line(self, rest: str) -> bytes:
        return f"data: {self._head}, {rest}}}\n\n".encode()

    def chunk(self, delta: dict[str, Any], finish: str | None = None, extension: str | None = None) -> bytes:
        """One chunk; ``extension`` is the ``m2parse`` field's JSON text (see ``Outcome.extension_json``)."""
        choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        text = json.dumps(choice, ensure_ascii=False)
        if extension is not None:
            text = text[:-1] + ', "m2parse": ' + extension + "}"
        return self._line('"choices": [' + text + "]" + self._usage_null)

    def usage(self, usage: Usage) -> bytes:
        return self._line('"choices": [], "usage": ' + json.dumps(usage.to_openai()))


async def chat_chunks(
    stream: BackendStream,
    prepared: Prepared,
    writer: ChunkWriter,
    config: ServerConfig,
    record: RequestRecord | None = None,
) -> AsyncIterator[bytes]:
    """The whole SSE body. Always closes the backend stream, also when the client goes away (cancellation).
    ``record`` (``/metrics``, the JSON access log) learns the latencies, the outcome and any backend failure.

    A piece that may be costly to parse (long, or closing a call whose arguments are validated) is parsed in a
    worker thread, so one stream's work never holds up the others'.
    """
    request, parser = prepared.request, prepared.parser
    deltas = DeltaWriter(writer, config.reasoning_field, hold_calls=not request.keep_truncated)
    include_usage = request.include_usage
    check = OutputCheck()

    def step(text: str) -> bytes:
        return deltas.render(parser.feed(text))

    def finish(backend_finish: str | None, usage: Usage | None, received: int) -> bytes:
        """The tail: flushed events, the finish chunk with the extension (its problems list grows with the
        output), the usage chunk."""
        tail = deltas.render(parser.finish())
        outcome = settle(parser.result, backend_finish, request, check)
        log_problems(writer.completion_id, outcome.message)
        if record is not None:
            record.settled(writer.completion_id, outcome, parser.result)
        tail += writer.chunk({}, outcome.finish_reason, outcome.extension_json())
        if include_usage:
            tail += writer.usage(usage or Usage(completion_tokens=received))
        return tail + DONE

    try:
        yield writer.chunk({"role": "assistant", "content": None})
        backend_finish: str | None = None
        usage: Usage | None = None
        received = 0  # pieces seen: the completion-token estimate when the backend's own count never comes
        async with aclosing(stream.pieces()) as pieces:
            async for piece in pieces:
                received += 1
                check.see(piece)
                if piece.text:
                    arrived = time.perf_counter()
                    if record is not None:
                        record.backend_answered()
                    if heavy_piece(request, piece.text, config):
                        out = await anyio.to_thread.run_sync(step, piece.text)
                    else:
                        out = step(piece.text)
                    if record is not None:
                        record.chunk(arrived, bool(out))
                    if out:
                        yield out
                if piece.finish_reason:
                    backend_finish, usage = piece.finish_reason, piece.usage
                if parser.done:
                    break  # a turn marker: everything after it is discarded, so stop the backend early
        if check.seen > OFFLOAD_BYTES or (request.tools is not None and config.validate):
            yield await anyio.to_thread.run_sync(finish, backend_finish, usage, received)
        else:
            yield finish(backend_finish, usage, received)
    except BackendError as exc:
        log.warning("%s: backend failed mid-stream: %s", writer.completion_id, exc.message)
        if record is not None:
            record.backend_failed(exc.kind, exc.message)
        yield from_backend(exc).sse()
    except Exception:  # a bug must still end the stream in the documented way
        log.exception("%s: internal error mid-stream", writer.completion_id)
        yield APIError(500, "internal server error", type="server_error", code="internal_error").sse()
    finally:
        with anyio.CancelScope(shield=True):
            await stream.aclose()


class DeltaWriter:
    """Parser events as SSE chunks, as few as possible: each run of same-field text becomes one chunk, joined
    once (linear however many events one piece yields).

    With ``hold_calls`` a tool call is sent only once it is complete (its start, then its whole arguments), so
    a call cut off by the token limit is never streamed: the client gets it in ``m2parse.truncated_tool_calls``
    instead. Without it, arguments stream as they are parsed.
    """

    def __init__(self, writer: ChunkWriter, reasoning_field: str, *, hold_calls: bool) -> None:
        self._writer = writer
        self._reasoning_field = reasoning_field
        self._hold_calls = hold_calls
        self._held: tuple[ToolCallStart, list[str]] | None = None

    def render(self, events: list[Event]) -> bytes:
        chunks: list[bytes] = []
        kind: str | int | None = None  # "content", "reasoning" or a call index: the field the run goes to
        parts: list[str] = []

        def flush() -> None:
            if parts:
                chunks.append(self._writer.chunk(self._text_delta(kind, "".join(parts))))
                parts.clear()

        for event in events:
            if isinstance(event, ContentDelta):
                here: str | int = "content"
                text = event.text
            elif isinstance(event, ReasoningDelta):
                here, text = "reasoning", event.text
            elif isinstance(event, ToolCallArgumentsDelta):
                if self._held is not None:
                    self._held[1].append(event.fragment)
                    continue
                here, text = event.index, event.fragment
            elif isinstance(event, ToolCallStart):
                if self._hold_calls:
                    self._held = (event, [])
                    continue
                flush()
                kind = None
                chunks.append(self._writer.chunk(_start_delta(event)))
                continue
            elif isinstance(event, ToolCallEnd) and self._held is not None:
                start, fragments = self._held
                self._held = None
                if not event.truncated:
                    flush()
                    kind = None
                    chunks.append(self._writer.chunk(_start_delta(start)))
                    if arguments := "".join(fragments):
                        chunks.append(self._writer.chunk(self._text_delta(start.index, arguments)))
                continue
            else:
                continue
            if not text:
                continue
            if here != kind:
                flush()
                kind = here
            parts.append(text)
        flush()
        return b"".join(chunks)

    def _text_delta(self, kind: str | int | None, text: str) -> dict[str, Any]:
        if kind == "content":
            return {"content": text}
        if kind == "reasoning":
            if self._reasoning_field == "both":
                return {"reasoning_content": text, "reasoning": text}
            return {self._reasoning_field: text}
        return {"tool_calls": [{"index": kind, "function": {"arguments": text}}]}


def _start_delta(event: ToolCallStart) -> dict[str, Any]:
    delta = event_to_delta(event)
    assert delta is not None
    return delta


class SSEResponse:
    """Streams an async byte iterator; a client disconnect cancels it at once (not at the next write).

    The cancellation reaches the iterator wherever it waits (usually on the backend), and its ``finally``
    closes the backend connection, which is how the backend learns to stop generating.
    """

    def __init__(self, body: AsyncIterator[bytes], on_close: Callable[[], Awaitable[None]] | None = None) -> None:
        self.body = body
        self.on_close = on_close  # runs even if the body never started

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(watch)
            try:
                async for data in self.body:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:
                pass  # the client went away between two writes
            finally:
                group.cancel_scope.cancel()
                with anyio.CancelScope(shield=True):
                    await self.body.aclose()  # type: ignore[attr-defined]
                    if self.on_close is not None:
                        await self.on_close()
