"""The OpenAI-compatible chat server in front of a raw-completion backend (needs the ``[server]`` extra)."""

from __future__ import annotations

from .app import create_app
from .config import ServerConfig

__all__ = ["ServerConfig", "create_app"]
