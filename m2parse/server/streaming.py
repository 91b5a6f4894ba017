"""``chat.completion.chunk`` SSE for the official SDK's accumulator, and a response that notices disconnects.

The stream is: a role chunk, delta chunks (parser events through ``event_to_delta``; a call's arguments are
complete before the next call starts because the parser emits them that way), a finish chunk carrying
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
from ..openai_deltas import event_to_delta, merge_deltas
from ..parser import StreamParser
from .chat import extension, finish_reason, log_problems
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

    def chunk(self, delta: dict[str, Any], finish: str | None = None, extra: dict[str, Any] | None = None) -> bytes:
        choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        if extra:
            choice.update(extra)
        return self._line('"choices": [' + json.dumps(choice, ensure_ascii=False) + "]" + self._usage_null)

    def usage(self, usage: Usage) -> bytes:
        return self._line('"choices": [], "usage": ' + json.dumps(usage.to_openai()))


async def chat_chunks(
    stream: BackendStream,
    parser: StreamParser,
    writer: ChunkWriter,
    *,
    reasoning_field: str,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    """The whole SSE body. Always closes the backend stream, also when the client goes away (cancellation)."""
    try:
        yield writer.chunk({"role": "assistant", "content": None})
        backend_finish: str | None = None
        usage: Usage | None = None
        received = 0  # pieces seen: the completion-token estimate when the backend's own count never comes
        async with aclosing(stream.pieces()) as pieces:
            async for piece in pieces:
                received += 1
                if piece.text:
                    out = _deltas(parser.feed(piece.text), writer, reasoning_field)
                    if out:
                        yield out
                if piece.finish_reason:
                    backend_finish, usage = piece.finish_reason, piece.usage
                if parser.done:
                    break  # a turn marker: everything after it is discarded, so stop the backend early
        tail = _deltas(parser.finish(), writer, reasoning_field)
        result = parser.result
        log_problems(writer.completion_id, result)
        tail += writer.chunk({}, finish_reason(backend_finish, result), {"m2parse": extension(result)})
        if include_usage:
            tail += writer.usage(usage or Usage(completion_tokens=received))
        yield tail + DONE
    except BackendError as exc:
        log.warning("%s: backend failed mid-stream: %s", writer.completion_id, exc.message)
        yield from_backend(exc).sse()
    except Exception:  # a bug must still end the stream in the documented way
        log.exception("%s: internal error mid-stream", writer.completion_id)
        yield APIError(500, "internal server error", type="server_error", code="internal_error").sse()
    finally:
        with anyio.CancelScope(shield=True):
            await stream.aclose()


def _deltas(events: list[Any], writer: ChunkWriter, reasoning_field: str) -> bytes:
    deltas = []
    for event in events:
        delta = event_to_delta(event, reasoning_field)  # type: ignore[arg-type]
        if delta is not None and delta != {"content": ""}:
            deltas.append(delta)
    return b"".join(writer.chunk(delta) for delta in merge_deltas(deltas))


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
