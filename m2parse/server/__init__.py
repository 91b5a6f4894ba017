"""The OpenAI-compatible chat server in front of a raw-completion backend (needs the ``[server]`` extra)."""

from __future__ import annotations

try:
    from .app import create_app
    from .config import ServerConfig
except ImportError as exc:  # say which extra, not just which module is missing
    missing = (exc.name or "").split(".")[0]
    if missing not in ("starlette", "uvicorn", "httpx", "anyio", "httpx_sse"):
        raise  # a bug in m2parse, not a missing extra
    raise ImportError(
        f"m2parse.server needs the [server] extra (starlette, uvicorn, httpx), and {missing} is missing: {exc}. "
        "From a clone: pip install '.[server]'",
        name=missing,
    ) from exc

__all__ = ["ServerConfig", "create_app"]
