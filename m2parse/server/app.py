"""``create_app(config)``: the Starlette app. All state (the httpx client) lives on the app, made in its lifespan."""

from __future__ import annotations

import fnmatch
import hmac
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..backends import BackendError, get_protocol
from ..backends.client import BackendClient
from .access_log import Observe, record_of
from .chat import (
    OFFLOAD_BYTES,
    Prepared,
    SchemaChecks,
    cheap,
    complete,
    completion_id,
    decode_body,
    prepare,
    prepare_body,
)
from .config import ServerConfig
from .errors import APIError, from_backend, too_large
from .streaming import ChunkWriter, SSEResponse, chat_chunks

if TYPE_CHECKING:
    from .metrics import Metrics

log = logging.getLogger("m2parse.server")
T = TypeVar("T")


async def until_disconnect(request: Request, work: Awaitable[T]) -> T | None:
    """``await work``, unless the client disconnects first: then cancel it (closing the backend request, so the
    backend stops generating) and return None."""
    result: T | None = None
    error: Exception | None = None
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            group.cancel_scope.cancel()

        group.start_soon(watch)
        try:
            result = await work
        except Exception as exc:  # raised outside the group: a task group would wrap it in an ExceptionGroup
            error = exc
        group.cancel_scope.cancel()
    if error is not None:
        raise error
    return result


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 before it is buffered when it is over ``limit`` bytes: by its declared
    Content-Length, or while it streams in (chunked uploads declare none)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large(limit)
    return bytes(body)


def redact_url(url: str) -> str:
    """The URL without its userinfo (``user:pass@``), query and fragment: what ``/health`` may show anyone."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def redact_text(text: str, url: str) -> str:
    """``text`` with the URL's secret parts (userinfo, query) blanked, wherever an error message repeats them."""
    parts = urlsplit(url)
    for secret in (parts.netloc.rpartition("@")[0], parts.query):
        if secret:
            text = text.replace(secret, "***")
    return text


_LOOPBACK_ORIGIN = re.compile(r"https?://(?:localhost|127\.0\.0\.1|\[::1\])(?::\d{1,5})?", re.IGNORECASE)


def origin_allowed(origin: str, allowed: tuple[str, ...]) -> bool:
    """Loopback origins on any port always; then the configured ones (exact, ``*`` patterns, or ``*``)."""
    if _LOOPBACK_ORIGIN.fullmatch(origin):
        return True
    lowered = origin.lower()
    return any(pattern == "*" or fnmatch.fnmatchcase(lowered, pattern.lower()) for pattern in allowed)


class OriginCheck:
    """Refuses browser requests from origins that are not allowed (403), as local model servers do (Ollama's
    ``OLLAMA_ORIGINS``): without it any web page could use a key-less local server. Requests without an
    ``Origin`` header (SDKs, curl) pass. Allowed origins get CORS headers and preflight answers.

    The origin is never compared with the ``Host`` header: a DNS-rebinding page has the same host as its origin.
    """

    def __init__(self, app: Any, allowed: tuple[str, ...]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        raw = headers.get(b"origin")
        if raw is None:
            return await self.app(scope, receive, send)
        origin = raw.decode("latin-1")
        if not origin_allowed(origin, self.allowed):
            error = APIError(
                403, f"origin {origin!r} is not allowed (see --allowed-origins)", code="origin_not_allowed"
            )
            return await error.response()(scope, receive, send)
        cors = [(b"access-control-allow-origin", raw), (b"vary", b"Origin")]
        if scope["method"] == "OPTIONS" and b"access-control-request-method" in headers:
            asked = headers.get(b"access-control-request-headers", b"authorization, content-type")
            preflight = [
                *cors,
                (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
                (b"access-control-allow-headers", asked),
                (b"access-control-max-age", b"600"),
            ]
            await send({"type": "http.response.start", "status": 204, "headers": preflight})
            return await send({"type": "http.response.body", "body": b""})

        async def send_with_cors(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *cors]}
            await send(message)

        return await self.app(scope, receive, send_with_cors)


def create_app(config: ServerConfig) -> Starlette:
    """An app serving ``config``'s backend; run it with any ASGI server (``m2parse serve`` uses uvicorn)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        timeout = httpx.Timeout(config.timeout, connect=config.connect_timeout, pool=None)
        limits = httpx.Limits(
            max_connections=config.max_backend_connections,
            max_keepalive_connections=min(64, config.max_backend_connections),
        )
        async with httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False) as http:
            app.state.backend = BackendClient(
                get_protocol(config.backend_type),
                config.backend_url,
                http,
                model=config.backend_model,
                api_key=config.backend_api_key,
                max_line_bytes=config.max_backend_line_bytes,
            )
            yield

    def check_key(request: Request, key: str | None = config.api_key) -> None:
        if key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise APIError(401, "missing API key: send 'Authorization: Bearer <key>'", code="missing_api_key")
        # bytes against bytes: the header arrives as latin-1 (its raw bytes), the key is ASCII (ServerConfig checks)
        sent = token.strip().encode("latin-1")
        if scheme.lower() != "bearer" or not hmac.compare_digest(sent, key.encode()):
            raise APIError(401, "incorrect API key", code="invalid_api_key")

    async def chat_completions(request: Request) -> Any:
        record = record_of(request.scope)
        try:
            check_key(request)
            raw = await read_body(request, config.max_request_bytes)
            prepared = await prepare_off_loop(raw)
            chat = prepared.request
            backend: BackendClient = request.app.state.backend
            if record is not None:
                record.stream, record.model = chat.stream, config.model_name
                record.backend_started = time.perf_counter()
            if not chat.stream:
                reply = await until_disconnect(request, complete(backend, prepared, config, record))
                if reply is None:
                    return Response(status_code=499)
                return Response(reply, media_type="application/json")
            stream = await backend.open_stream(prepared.prompt, chat.sampling, extra=chat.backend_extra)
        except APIError as exc:
            return exc.response()
        except BackendError as exc:
            log.warning("backend failed: %s", exc.message)
            if record is not None:
                record.backend_failed(exc.kind, exc.message)
            return from_backend(exc).response()
        writer = ChunkWriter(completion_id(), config.model_name, include_usage=chat.include_usage)
        if record is not None:
            record.completion_id = writer.completion_id
        return SSEResponse(chat_chunks(stream, prepared, writer, config, record), on_close=stream.aclose)

    async def prepare_off_loop(raw: bytes) -> Prepared:
        """Small requests without tools are cheap: prepared on the loop. Others (tool schemas to check, long
        conversations to render) in a worker thread, so no request can hold up the others."""
        if len(raw) > OFFLOAD_BYTES:
            return await anyio.to_thread.run_sync(prepare, raw, config, schema_checks)
        body = decode_body(raw)
        if cheap(body):
            return prepare_body(body, config, schema_checks)
        return await anyio.to_thread.run_sync(prepare_body, body, config, schema_checks)

    async def models(request: Request) -> Response:
        try:
            check_key(request)
        except APIError as exc:
            return exc.response()
        entry = {"id": config.model_name, "object": "model", "created": created, "owned_by": "m2parse"}
        return JSONResponse({"object": "list", "data": [entry]})

    async def health(request: Request) -> Response:
        backend: BackendClient = request.app.state.backend
        status = await backend.health(timeout=min(5.0, config.timeout))
        if isinstance(status.get("error"), str):
            status = {**status, "error": redact_text(status["error"], config.backend_url)}
        body = {
            "status": "ok" if status["ready"] else "unavailable",
            "backend": {"url": redact_url(config.backend_url), "type": config.backend_type, **status},
        }
        return JSONResponse(body, status_code=200 if status["ready"] else 503)

    async def metrics(request: Request) -> Response:
        """Prometheus text format; the scraper's own key (``metrics_key``) when set, else the API key."""
        try:
            check_key(request, config.metrics_key or config.api_key)
        except APIError as exc:
            return exc.response()
        assert observed is not None
        return Response(observed.exposition(), media_type=observed.content_type)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        error_type = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return APIError(exc.status_code, str(exc.detail), type=error_type).response()

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("internal error", exc_info=exc)
        return APIError(500, "internal server error", type="server_error", code="internal_error").response()

    created = int(time.time())
    schema_checks = SchemaChecks()
    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
    ]
    observed = _metrics()
    if observed is not None:
        routes.append(Route("/metrics", metrics, methods=["GET"]))
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    app.add_middleware(OriginCheck, allowed=config.allowed_origins)
    app.add_middleware(Observe, metrics=observed)  # outermost: counts and logs every answer, a 403 too
    return app


def _metrics() -> Metrics | None:
    """The app's metrics, or None (no ``/metrics``, a warning) when prometheus_client is missing: it came into
    the ``[server]`` extra later than the rest, and an older install should still serve."""
    try:
        from .metrics import Metrics
    except ImportError as exc:
        if (exc.name or "").split(".")[0] != "prometheus_client":
            raise
        log.warning("no /metrics: prometheus_client is not installed (pip install '.[server]')")
        return None
    return Metrics.from_environment()
