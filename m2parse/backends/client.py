"""The async HTTP side: send a prompt to a backend, get Pieces back. Needs httpx (the ``[server]`` extra).

Every failure comes out as a :class:`BackendError` whose ``kind`` the server maps to a status; nothing else
escapes. Closing a :class:`BackendStream` closes its connection, which is how a backend learns that the client
went away.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from dataclasses import replace
from typing import Any

import httpx

from . import PromptCounter, Protocol
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
    one_line,
    protocol_error,
    replace_surrogates,
    stop_strings,
)

#: the default cap on one backend stream line (one SSE event) and on a non-streaming body: generous, since a
#: llama.cpp final event repeats the prompt and TGI's repeats the whole output
MAX_LINE_BYTES = 64 * 1024 * 1024
#: how much of an error body is read for its message
_ERROR_BODY_BYTES = 64 * 1024
_EOL = re.compile(rb"\r\n?|\n")
#: request-body keys ``backend_extra`` may not override: the prompt and the streaming switch are m2parse's
RESERVED_EXTRA_KEYS = frozenset({"prompt", "stream", "inputs"})


def _join(base: str, path: str) -> str:
    base = base.rstrip("/")
    if base.endswith("/v1") and path.startswith("/v1/"):
        path = path[3:]
    return base + path


#: bytes read of an engine-identification answer: SGLang's /server_info lists every server argument and
#: llama.cpp's /props carries the chat template, tens of KiB each; a backend sending more is not one of them
IDENTIFY_MAX_BYTES = 1024 * 1024
#: engine -> whether a probe's JSON answer is that engine's (keys only it sends, see identify_engine)
_ENGINE_SIGNS = {
    "sglang": lambda info: isinstance(info, dict) and "model_path" in info and "tp_size" in info,
    "llama.cpp": lambda info: isinstance(info, dict) and isinstance(info.get("default_generation_settings"), dict),
    "vllm": lambda info: isinstance(info, dict) and isinstance(info.get("version"), str),
}


def _root(base: str) -> str:
    """The server's root URL: the base without a trailing ``/v1`` (engines serve their own routes beside it)."""
    base = base.rstrip("/")
    return base[:-3] if base.endswith("/v1") else base


def _transport_error(exc: httpx.HTTPError, what: str) -> BackendError:
    if isinstance(exc, httpx.TimeoutException):
        return BackendError("timeout", f"backend timed out {what} ({type(exc).__name__})")
    if isinstance(exc, (httpx.ConnectError, httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return BackendError("unreachable", f"cannot connect to the backend: {exc or type(exc).__name__}")
    return BackendError("protocol", f"backend connection failed {what}: {exc or type(exc).__name__}")


def _too_long(limit: int) -> BackendError:
    return protocol_error(f"the backend sent a line over {limit} bytes without a newline")


async def capped_lines(chunks: AsyncIterator[bytes], limit: int) -> AsyncIterator[list[str]]:
    """The lines (ended by CRLF, LF or CR, as SSE allows) of a byte stream, a list per network chunk, each
    decoded as UTF-8 with replacement.

    A line longer than ``limit`` bytes is a protocol error, raised before more than ``limit`` plus one network
    chunk is held. Each chunk is split once, in C, so the cost is linear however the lines are cut.
    """
    pending = bytearray()  # the unfinished line: appended to in place, so a long line costs linear time
    after_cr = False
    async for chunk in chunks:
        if not chunk:
            continue
        if after_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]  # the LF of a CRLF split across two chunks
        after_cr = chunk.endswith(b"\r")
        parts = _EOL.split(chunk) if b"\r" in chunk else chunk.split(b"\n")
        if len(parts) == 1:
            pending += chunk
            if len(pending) > limit:
                raise _too_long(limit)
            continue
        if pending:
            parts[0] = bytes(pending) + parts[0]
        pending = bytearray(parts.pop())
        if len(pending) > limit or max(map(len, parts)) > limit:
            raise _too_long(limit)
        yield [part.decode("utf-8", "replace") for part in parts]
    if pending:
        yield [pending.decode("utf-8", "replace")]


async def read_capped(response: httpx.Response, limit: int) -> bytes:
    """The whole body, or a protocol error as soon as it passes ``limit`` bytes (Content-Length checked first)."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise protocol_error(f"the backend's response is {declared} bytes, over the {limit}-byte cap")
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise protocol_error(f"the backend's response is over the {limit}-byte cap")
    return bytes(body)


def merge_extra(body: dict[str, Any], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """The request's ``backend_extra`` merged over the protocol's body at top level (its keys win), except the
    reserved ones, which the server refuses before this point and which are never overridden here."""
    if not extra:
        return body
    return {**body, **{k: v for k, v in extra.items() if k not in RESERVED_EXTRA_KEYS}}


def clean_piece(piece: Piece) -> Piece:
    """Lone surrogates (a backend's ``"\\ud800"`` JSON escape) become U+FFFD, counted, so the output stays
    encodable; the server reports them as a problem."""
    text, count, first = replace_surrogates(piece.text)
    if not count:
        return piece
    return Piece(text, piece.finish_reason, piece.usage, piece.replaced + count, first)


def _error_message(body: bytes) -> str:
    try:
        obj = load_json(body)
    except BackendError:
        return body[:200].decode("utf-8", "replace").strip() or "(empty body)"
    if (error := in_band_error(obj)) is not None:
        return error.message
    if isinstance(obj, Mapping) and "detail" in obj:
        return one_line(str(obj["detail"]), 500)
    return one_line(str(obj), 200)


async def _raise_for_status(response: httpx.Response) -> None:
    """A backend error status as a BackendError with a bounded, one-line message (only the start of the body
    is read: an error page can be any size)."""
    if response.status_code < 300:
        return
    body = bytearray()
    try:
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) >= _ERROR_BODY_BYTES:
                break
    except httpx.HTTPError:
        pass
    finally:
        await response.aclose()
    status = response.status_code
    raise BackendError("http", f"backend returned HTTP {status}: {_error_message(bytes(body))}", status=status)


class BackendStream:
    """An open streaming response. Iterate :meth:`pieces` once; always :meth:`aclose` (idempotent)."""

    def __init__(
        self,
        response: httpx.Response,
        protocol: Protocol,
        stops: tuple[str, ...],
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        self._response = response
        self._protocol = protocol
        self._trimmer = StopTrimmer(stops) if protocol.includes_stop_strings else None
        self._max_line_bytes = max_line_bytes

    async def aclose(self) -> None:
        await self._response.aclose()

    async def _events(self) -> AsyncIterator[SSEEvent]:
        parser = SSEParser(max_chars=self._max_line_bytes)
        batches = capped_lines(self._response.aiter_bytes(), self._max_line_bytes)
        async with aclosing(batches):  # type: ignore[type-var]
            async for lines in batches:
                for line in lines:
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
        later: list[str] = []  # text after the finish piece (joined once: no quadratic concatenation)
        try:
            async with aclosing(self._events()) as events:
                async for event in events:
                    piece = self._decode(event)
                    if piece is None:  # [DONE]
                        break
                    piece = self._trim(piece)
                    if pending is not None:
                        later.append(piece.text)
                        pending = Piece(pending.text, pending.finish_reason, piece.usage or pending.usage)
                    elif piece.finish_reason is None:
                        if piece.text:
                            yield clean_piece(piece)
                        continue
                    else:
                        pending = piece
                    if pending.usage is not None:
                        break  # TGI and llama.cpp end here; an OpenAI-style server only has [DONE] left
        except httpx.HTTPError as exc:
            raise _transport_error(exc, "mid-stream") from None
        if pending is None:
            raise protocol_error("the backend stream ended before it reported a finish reason")
        if later:
            pending = Piece(pending.text + "".join(later), pending.finish_reason, pending.usage)
        yield clean_piece(pending)


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
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        self.max_line_bytes = max_line_bytes
        self.protocol = protocol
        self.base_url = base_url
        self._http = http
        self._model = model
        self._model_known = model is not None or protocol.models_path is None
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._models_listed = False  # /v1/models answered once: model and context length are known
        self._context_length: int | None = None
        self._tokenize_path: str | None = None  # the counting path that worked
        self._tokenize_missing: set[str] = set()  # counting paths the backend does not have

    async def model(self) -> str | None:
        """The model name to send; for OpenAI-style servers asked once from ``/v1/models`` when not configured."""
        if not self._model_known:
            await self._list_models()
        return self._model

    async def _list_models(self) -> None:
        """Read ``/v1/models`` once it answers: the first model's id (unless configured) and ``max_model_len``."""
        if self._models_listed or self.protocol.models_path is None:
            return
        info = await self._get_json(self.protocol.models_path)
        if info is None:
            return  # send no model; servers that need one will say so in their error (asked again next time)
        self._models_listed = True
        name = self.protocol.served_model(info)
        if not self._model_known and name is not None:
            self._model, self._model_known = name, True
        if self.protocol.prompt_counter is not None:
            self._context_length = self.protocol.prompt_counter.context_length(info)

    async def _get_json(self, path: str, timeout: float | None = None) -> Any:
        """The JSON of a 200 answer to ``GET path``, or None for any failure (these probes are best effort)."""
        try:
            kwargs: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
            response = await self._http.get(_join(self.base_url, path), headers=self._headers, **kwargs)
            return response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    async def served_model(self, timeout: float | None = None) -> str | None:
        """The model the backend says it serves (vLLM/SGLang ``/v1/models``, llama.cpp ``/props``, TGI ``/info``),
        or None when it does not answer or does not say."""
        for path in self.protocol.info_paths:
            info = await self._get_json(path, timeout)
            if info is not None and (name := self.protocol.served_model(info)) is not None:
                return name
        return None

    async def identify_engine(self, timeout: float = 5.0) -> tuple[str, str] | None:
        """``(engine, path)`` for the engine serving this OpenAI-style backend, told by a route only it answers
        that way: SGLang ``/server_info`` (``/get_server_info`` before it) listing its server arguments, llama.cpp
        ``/props`` with its generation settings, vLLM ``/version``; None when none does. The probes run at once
        and each is cut off after ``timeout`` seconds and IDENTIFY_MAX_BYTES, so a hostile backend costs startup
        at most ``timeout`` seconds and bounded memory. SGLang and llama.cpp are checked before vLLM because a
        ``{"version": ...}`` answer alone is the least distinctive."""
        root = _root(self.base_url)

        async def probe(engine: str, paths: tuple[str, ...]) -> tuple[str, str] | None:
            for path in paths:
                info = await self._get_json_capped(root + path, timeout)
                if info is not None and _ENGINE_SIGNS[engine](info):
                    return engine, path
            return None

        found = await asyncio.gather(
            probe("sglang", ("/server_info", "/get_server_info")), probe("llama.cpp", ("/props",)),
            probe("vllm", ("/version",)),
        )  # fmt: skip
        return next((hit for hit in found if hit is not None), None)

    async def _get_json_capped(self, url: str, timeout: float) -> Any:
        """The JSON of a 200 answer read within ``timeout`` seconds in all and IDENTIFY_MAX_BYTES, else None."""

        async def read() -> Any:
            async with self._http.stream("GET", url, headers=self._headers, timeout=timeout) as response:
                if response.status_code != 200:
                    return None
                return json.loads(await read_capped(response, IDENTIFY_MAX_BYTES))

        try:
            return await asyncio.wait_for(read(), timeout)  # the whole answer: a trickle resets httpx's read timeout
        except (httpx.HTTPError, BackendError, ValueError, RecursionError, asyncio.TimeoutError):
            return None

    async def output_budget(self, prompt: str) -> int | None:
        """Tokens left in the backend's context after ``prompt``, for a request that sets no max_tokens.

        OpenAI-style servers stop after 16 tokens without ``max_tokens``, and current vLLM and SGLang refuse
        ``null`` and any value above the room left, so "until the model stops or the context is full" has to be
        sent as that room: ``max_model_len`` (``/v1/models``) minus the prompt's tokens (``/tokenize``), minus 1
        because SGLang refuses prompt + max_tokens equal to its context. None when the backend cannot tell
        (llama.cpp, llama-cpp-python): then ``null`` is sent, which means the same there.
        """
        counter = self.protocol.prompt_counter
        if counter is None:
            return None
        await self._list_models()
        if self._context_length is None:
            return None
        count = await self._count_tokens(prompt, counter)
        return None if count is None else max(1, self._context_length - count - 1)

    async def _count_tokens(self, prompt: str, counter: PromptCounter) -> int | None:
        """The prompt's token count from the first counting path the backend has (remembered)."""
        paths = [self._tokenize_path] if self._tokenize_path else counter.paths
        body = counter.request_body(prompt, await self.model())
        for path in paths:
            if path in self._tokenize_missing:
                continue
            try:
                response = await self._http.post(_join(self.base_url, path), json=body, headers=self._headers)
            except httpx.HTTPError:
                return None
            if response.status_code in (404, 405):
                self._tokenize_missing.add(path)
                continue
            try:
                count = counter.count(response.json()) if response.status_code == 200 else None
            except ValueError:
                count = None
            if count is not None:
                self._tokenize_path = path
            return count
        return None

    async def _body(self, prompt: str, params: SamplingParams, *, stream: bool) -> dict[str, Any]:
        if params.max_tokens is None and (budget := await self.output_budget(prompt)) is not None:
            params = replace(params, max_tokens=budget)
        return self.protocol.request_body(prompt, params, stream=stream, model=await self.model())

    async def complete(self, prompt: str, params: SamplingParams, *, extra: Mapping[str, Any] | None = None) -> Piece:
        """The whole output from the non-streaming endpoint; ``extra`` is merged into the request body."""
        body = merge_extra(await self._body(prompt, params, stream=False), extra)
        url = _join(self.base_url, self.protocol.path)
        request = self._http.build_request("POST", url, json=body, headers=self._headers)
        try:
            response = await self._http.send(request, stream=True)
            await _raise_for_status(response)
            try:
                content = await read_capped(response, self.max_line_bytes)
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            raise _transport_error(exc, "waiting for the completion") from None
        piece = self.protocol.decode_response(load_json(content))
        if self.protocol.includes_stop_strings:
            trimmer = StopTrimmer(tuple(stop_strings(params.stop)))
            text = trimmer.feed(piece.text) + trimmer.flush()
            piece = Piece(text, piece.finish_reason, piece.usage)
        return clean_piece(piece)

    async def open_stream(
        self, prompt: str, params: SamplingParams, *, extra: Mapping[str, Any] | None = None
    ) -> BackendStream:
        """Send the streaming request and check its status, so failures surface before any byte is sent on."""
        body = merge_extra(await self._body(prompt, params, stream=True), extra)
        url = _join(self.base_url, self.protocol.stream_path)
        request = self._http.build_request("POST", url, json=body, headers=self._headers)
        try:
            response = await self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise _transport_error(exc, "before the stream started") from None
        await _raise_for_status(response)
        return BackendStream(response, self.protocol, tuple(stop_strings(params.stop)), self.max_line_bytes)

    async def health(self, timeout: float = 5.0) -> dict[str, Any]:
        """``reachable``: the backend answered at all; ``ready``: its health endpoint said 2xx. A backend without
        a health route (404/405, e.g. llama-cpp-python's server) is asked its fallback path instead (``probe``)."""
        probe = self.protocol.health_path
        try:
            response = await self._http.get(_join(self.base_url, probe), headers=self._headers, timeout=timeout)
            fallback = self.protocol.health_fallback_path
            if response.status_code in (404, 405) and fallback is not None:
                probe = fallback
                response = await self._http.get(_join(self.base_url, probe), headers=self._headers, timeout=timeout)
        except httpx.HTTPError as exc:
            error = _transport_error(exc, f"on {probe}").message
            return {"reachable": probe != self.protocol.health_path, "ready": False, "probe": probe, "error": error}
        status = response.status_code
        return {"reachable": True, "ready": status < 300, "status_code": status, "probe": probe}


__all__ = ["BackendClient", "BackendError", "BackendStream", "Piece", "SamplingParams", "Usage"]
