"""One record per request, filled in as it is served, then counted (``/metrics``) and logged (``--log-format json``).

The record travels in the ASGI scope (``scope["m2parse.record"]``), so the handlers and the stream generator add
what only they know (the completion id, the finish reason, the problems) without any shared state, and the
middleware finishes it once the last byte is sent, whatever path the request took.

JSON log lines are written with ``ensure_ascii``: every line break, quote, control character and non-ASCII
character a client or a model put in a string (a model name, a tool name, an error message) is escaped, so no
string can end a line early and forge the next one.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..message import ParsedMessage
    from .chat import Outcome
    from .metrics import Metrics

ACCESS = logging.getLogger("m2parse.access")
SCOPE_KEY = "m2parse.record"


@dataclass
class RequestRecord:
    """What one request did. Times are ``time.perf_counter()`` values; durations are seconds."""

    method: str
    path: str
    started: float = field(default_factory=time.perf_counter)
    metrics: Metrics | None = None
    status: int = 0
    stream: bool = False
    completion_id: str | None = None
    model: str | None = None
    #: when the request was sent to the backend
    backend_started: float | None = None
    backend_latency: float | None = None
    first_chunk: float | None = None
    finish_reason: str | None = None
    problem_codes: tuple[str, ...] = ()
    tool_names: tuple[str, ...] = ()
    backend_error: str | None = None
    error_message: str | None = None

    def backend_answered(self) -> None:
        """The backend's first output (a stream's first piece, or a whole non-streamed reply) has arrived."""
        if self.backend_latency is None and self.backend_started is not None:
            self.backend_latency = time.perf_counter() - self.backend_started

    def chunk(self, since: float, carries_output: bool) -> None:
        """Chunks for one backend piece are ready; ``since`` is when the piece arrived."""
        now = time.perf_counter()
        if self.metrics is not None:
            self.metrics.chunk_latency.observe(now - since)
        if carries_output and self.first_chunk is None:
            self.first_chunk = now - self.started

    def settled(self, completion_id: str, outcome: Outcome, result: ParsedMessage) -> None:
        """The response's end: its finish reason, every problem code, the name of every call parsed (``result``
        is the parser's, cut-off calls included; ``outcome`` what the client gets)."""
        self.completion_id = completion_id
        self.finish_reason = finish_reason = outcome.finish_reason
        self.problem_codes = problem_codes = tuple(problem.code for problem in outcome.message.problems)
        self.tool_names = tool_names = tuple(call.name for call in result.tool_calls)
        if self.stream and self.first_chunk is None:  # no output at all: the finish chunk is the first
            self.first_chunk = time.perf_counter() - self.started
        if self.metrics is not None:
            self.metrics.outcome(finish_reason, problem_codes, len(tool_names))

    def backend_failed(self, kind: str, message: str) -> None:
        self.backend_error = kind
        self.error_message = message
        if self.metrics is not None:
            self.metrics.backend_errors.labels(kind).inc()

    def finish(self) -> None:
        """Count and log the request (the middleware calls it once the response is over)."""
        total = time.perf_counter() - self.started
        metrics = self.metrics
        if metrics is not None:
            metrics.request(self.path, self.status, self.stream)
            if self.path == "/v1/chat/completions" and self.status == 200:
                metrics.request_duration.labels("true" if self.stream else "false").observe(total)
                if self.stream and self.first_chunk is not None:
                    metrics.time_to_first_chunk.observe(self.first_chunk)
        if ACCESS.isEnabledFor(logging.INFO):
            ACCESS.info("%s %s %s", self.method, self.path, self.status, extra={"access": self.fields(total)})

    def fields(self, total: float) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "stream": self.stream,
            "completion_id": self.completion_id,
            "model": self.model,
            "backend_latency_ms": _ms(self.backend_latency),
            "time_to_first_chunk_ms": _ms(self.first_chunk),
            "total_ms": _ms(total),
            "finish_reason": self.finish_reason,
            "problems": list(self.problem_codes),
            "tool_calls": list(self.tool_names),
            "backend_error": self.backend_error,
            "error": self.error_message,
        }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def record_of(scope: Any) -> RequestRecord | None:
    """The request's record (None when the app runs without the middleware, e.g. in a bare test harness)."""
    return scope.get(SCOPE_KEY)


class Observe:
    """ASGI middleware: makes each HTTP request's record, notes its status, finishes it after the last byte."""

    def __init__(self, app: Any, metrics: Metrics | None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        record = RequestRecord(scope["method"], scope["path"], metrics=self.metrics)
        scope[SCOPE_KEY] = record

        finished = False

        async def noting_status(message: Any) -> None:
            nonlocal finished
            if message["type"] == "http.response.start":
                record.status = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body", False) and not finished:
                # counted before the last byte leaves: a client that reads the answer and scrapes at once (on any
                # worker) already sees it
                finished = True
                record.finish()
            await send(message)

        try:
            await self.app(scope, receive, noting_status)
        except BaseException:
            record.status = record.status or 500
            raise
        finally:
            if not finished:
                record.finish()


class JSONFormatter(logging.Formatter):
    """Every log record as one JSON object on one line; an access record's fields are merged in."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            out.update(access)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=True, default=str)


JSONFormatter.converter = time.gmtime  # type: ignore[assignment]


def configure_logging(level: str, log_format: str) -> None:
    """The server's logging: ``text`` as before (no per-request line); ``json``: every line JSON, and one access
    line per request whatever the level (it is what the format is asked for)."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    ACCESS.setLevel(logging.INFO if log_format == "json" else logging.CRITICAL + 1)
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))  # not one line per backend request
