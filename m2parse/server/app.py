"""``create_app(config)``: the Starlette app. All state (the httpx client) lives on the app, made in its lifespan."""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..backends import BackendError, get_protocol
from ..backends.client import BackendClient
from .chat import SchemaChecks, complete, completion_id, new_parser, parse_request, render
from .config import ServerConfig
from .errors import APIError, bad_request, from_backend
from .streaming import ChunkWriter, SSEResponse, chat_chunks

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
            )
            yield

    def check_key(request: Request) -> None:
        if config.api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise APIError(401, "missing API key: send 'Authorization: Bearer <key>'", code="missing_api_key")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), config.api_key.encode()):
            raise APIError(401, "incorrect API key", code="invalid_api_key")

    async def chat_completions(request: Request) -> Any:
        try:
            check_key(request)
            try:
                body = json.loads(await request.body())
            except (ValueError, RecursionError):
                raise bad_request("the request body is not valid JSON", code="invalid_json") from None
            chat = parse_request(body, config, schema_checks)
            backend: BackendClient = request.app.state.backend
            if not chat.stream:
                reply = await until_disconnect(request, complete(backend, chat, config))
                return JSONResponse(reply) if reply is not None else Response(status_code=499)
            prompt = render(chat, config)
            parser = new_parser(chat, prompt, config)
            stream = await backend.open_stream(prompt, chat.sampling)
        except APIError as exc:
            return exc.response()
        except BackendError as exc:
            log.warning("backend failed: %s", exc.message)
            return from_backend(exc).response()
        writer = ChunkWriter(completion_id(), config.model_name, include_usage=chat.include_usage)
        body_iter = chat_chunks(
            stream, parser, writer, reasoning_field=config.reasoning_field, include_usage=chat.include_usage
        )
        return SSEResponse(body_iter, on_close=stream.aclose)

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
        body = {
            "status": "ok" if status["ready"] else "unavailable",
            "backend": {"url": config.backend_url, "type": config.backend_type, **status},
        }
        return JSONResponse(body, status_code=200 if status["ready"] else 503)

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
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
