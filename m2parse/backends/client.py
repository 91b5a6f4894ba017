"""The async HTTP side: send a prompt to a backend, get Pieces back. Needs httpx (the ``[server]`` extra).

Every failure comes out as a :class:`BackendError` whose ``kind`` the server maps to a status; nothing else
escapes. Closing a :class:`BackendStream` closes its connection, which is how a backend learns that the client
went away.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any

import httpx

from . import Protocol
from .base import (
    BackendError,
    Piece,
    SamplingParams,
    SSEEvent,
    SSEParser,
    StopTrimmer,
    Usage,
    in_band_error,
    load_json,
    protocol_error,
    stop_strings,
)


def _join(base: str, path: str) -> str:
    base = base.rstrip("/")
    if base.endswith("/v1") and path.startswith("/v1/"):
        path = path[3:]
    return base + path


def _transport_error(exc: httpx.HTTPError, what: str) -> BackendError:
    if isinstance(exc, httpx.TimeoutException):
        return BackendError("timeout", f"backend timed out {what} ({type(exc).__name__})")
    if isinstance(exc, (httpx.ConnectError, httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return BackendError("unreachable", f"cannot connect to the backend: {exc or type(exc).__name__}")
    return BackendError("protocol", f"backend connection failed {what}: {exc or type(exc).__name__}")


def _error_message(body: bytes) -> str:
    try:
        obj = load_json(body)
    except BackendError:
        return body[:200].decode("utf-8", "replace").strip() or "(empty body)"
    if (error := in_band_error(obj)) is not None:
        return error.message
    if isinstance(obj, Mapping) and "detail" in obj:
        return str(obj["detail"])[:500]
    return str(obj)[:200]


async def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code < 300:
        return
    try:
        body = await response.aread()
    except httpx.HTTPError:
        body = b""
    finally:
        await response.aclose()
    status = response.status_code
    raise BackendError("http", f"backend returned HTTP {status}: {_error_message(body)}", status=status)


class BackendStream:
    """An open streaming response. Iterate :meth:`pieces` once; always :meth:`aclose` (idempotent)."""

    def __init__(self, response: httpx.Response, protocol: Protocol, stops: tuple[str, ...]) -> None:
        self._response = response
        self._protocol = protocol
        self._trimmer = StopTrimmer(stops) if protocol.includes_stop_strings else None

    async def aclose(self) -> None:
        await self._response.aclose()

    async def _events(self) -> AsyncIterator[SSEEvent]:
        parser = SSEParser()
        async with aclosing(self._response.aiter_lines()) as lines:  # type: ignore[type-var]
            async for line in lines:
                if (event := parser.feed_line(line)) is not None:
                    yield event
        if (event := parser.close()) is not None:
            yield event

    def _decode(self, event: SSEEvent) -> Piece | None:
        if event.event == "error":
            try:
                obj = load_json(event.data)
            except BackendError:
                obj = event.data
            message = obj.get("message") or obj.get("content") if isinstance(obj, Mapping) else None
            raise BackendError("backend", f"backend error: {message or str(obj)[:200]}")
        return self._protocol.decode_stream_data(event.data)

    def _trim(self, piece: Piece) -> Piece:
        if self._trimmer is None:
            return piece
        text = self._trimmer.feed(piece.text)
        if piece.finish_reason or self._trimmer.stopped:
            text += self._trimmer.flush()
            return Piece(text, piece.finish_reason or "stop", piece.usage)
        return Piece(text, None, piece.usage)

    async def pieces(self) -> AsyncIterator[Piece]:
        """Text pieces as they arrive; the last one has ``finish_reason`` (usage merged in when it came later)."""
        pending: Piece | None = None  # the finish piece, held back for a usage chunk that may follow
        try:
            async with aclosing(self._events()) as events:
                async for event in events:
                    piece = self._decode(event)
                    if piece is None:  # [DONE]
                        break
                    piece = self._trim(piece)
                    if pending is not None:
                        pending = Piece(pending.text + piece.text, pending.finish_reason, piece.usage or pending.usage)
                    elif piece.finish_reason is None:
                        if piece.text:
                            yield piece
                        continue
                    else:
                        pending = piece
                    if pending.usage is not None:
                        break  # TGI and llama.cpp end here; an OpenAI-style server only has [DONE] left
        except httpx.HTTPError as exc:
            raise _transport_error(exc, "mid-stream") from None
        if pending is None:
            raise protocol_error("the backend stream ended before it reported a finish reason")
        yield pending


class BackendClient:
    """One backend (protocol + base URL) over a shared ``httpx.AsyncClient`` that the caller owns."""

    def __init__(
        self,
        protocol: Protocol,
        base_url: str,
        http: httpx.AsyncClient,
        *,
        model: str | None = None,
        api_key: str | None = None,
    ) -> None:
        self.protocol = protocol
        self.base_url = base_url
        self._http = http
        self._model = model
        self._model_known = model is not None or protocol.models_path is None
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def model(self) -> str | None:
        """The model name to send; for OpenAI-style servers asked once from ``/v1/models`` when not configured."""
        if self._model_known or self.protocol.models_path is None:
            return self._model
        try:
            response = await self._http.get(_join(self.base_url, self.protocol.models_path), headers=self._headers)
            data = response.json().get("data") if response.status_code == 200 else None
            if isinstance(data, list) and data and isinstance(data[0], Mapping) and data[0].get("id"):
                self._model = str(data[0]["id"])
                self._model_known = True
        except (httpx.HTTPError, ValueError, AttributeError):
            pass  # send no model; servers that need one will say so in their error
        return self._model

    async def _body(self, prompt: str, params: SamplingParams, *, stream: bool) -> dict[str, Any]:
        return self.protocol.request_body(prompt, params, stream=stream, model=await self.model())

    async def complete(self, prompt: str, params: SamplingParams) -> Piece:
        """The whole output from the non-streaming endpoint."""
        body = await self._body(prompt, params, stream=False)
        url = _join(self.base_url, self.protocol.path)
        try:
            response = await self._http.post(url, json=body, headers=self._headers)
        except httpx.HTTPError as exc:
            raise _transport_error(exc, "waiting for the completion") from None
        await _raise_for_status(response)
        piece = self.protocol.decode_response(load_json(response.content))
        if self.protocol.includes_stop_strings:
            trimmer = StopTrimmer(tuple(stop_strings(params.stop)))
            text = trimmer.feed(piece.text) + trimmer.flush()
            piece = Piece(text, piece.finish_reason, piece.usage)
        return piece

    async def open_stream(self, prompt: str, params: SamplingParams) -> BackendStream:
        """Send the streaming request and check its status, so failures surface before any byte is sent on."""
        body = await self._body(prompt, params, stream=True)
        url = _join(self.base_url, self.protocol.stream_path)
        request = self._http.build_request("POST", url, json=body, headers=self._headers)
        try:
            response = await self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise _transport_error(exc, "before the stream started") from None
        await _raise_for_status(response)
        return BackendStream(response, self.protocol, tuple(stop_strings(params.stop)))

    async def health(self, timeout: float = 5.0) -> dict[str, Any]:
        """``reachable``: the backend answered at all; ``ready``: its health endpoint said 2xx."""
        try:
            response = await self._http.get(
                _join(self.base_url, self.protocol.health_path), headers=self._headers, timeout=timeout
            )
        except httpx.HTTPError as exc:
            return {"reachable": False, "ready": False, "error": _transport_error(exc, "on /health").message}
        return {"reachable": True, "ready": response.status_code < 300, "status_code": response.status_code}


__all__ = ["BackendClient", "BackendError", "BackendStream", "Piece", "SamplingParams", "Usage"]
