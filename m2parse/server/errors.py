"""Errors in the OpenAI shape, ``{"error": {"message", "type", "param", "code"}}``, so SDKs raise the right class."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse

from ..backends import BackendError
from ..backends.base import one_line


class APIError(Exception):
    """An error the client gets as-is: HTTP status plus the OpenAI error fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        message = one_line(message)  # bounded, one line, encodable: it is echoed to the client and logged
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = one_line(param) if param is not None else None
        self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(self.body(), status_code=self.status, headers=headers)

    def sse(self) -> bytes:
        """The one ``data: {"error": ...}`` event that ends a stream which already started."""
        return b"data: " + json.dumps(self.body(), ensure_ascii=False).encode() + b"\n\n"


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def too_large(limit: int) -> APIError:
    return APIError(413, f"the request body is over the server's limit of {limit} bytes", code="request_too_large")


#: BackendError.kind -> (HTTP status, OpenAI error code)
_BACKEND_STATUS = {
    "unreachable": (502, "backend_unreachable"),
    "http": (502, "backend_error"),
    "protocol": (502, "backend_bad_response"),
    "backend": (502, "backend_error"),
    "timeout": (504, "backend_timeout"),
}


def from_backend(exc: BackendError) -> APIError:
    """502 for a backend that is unreachable, fails or talks garbage; 504 for a timeout.

    A 400/413/422 from the backend is about this request (too long a prompt, a parameter out of the backend's
    range), so it comes back as a 400 carrying the backend's message.
    """
    if exc.kind == "http" and exc.status in (400, 413, 422):
        return APIError(400, exc.message, code="backend_rejected_request")
    status, code = _BACKEND_STATUS.get(exc.kind, (502, "backend_error"))
    return APIError(status, exc.message, type="server_error", code=code)
