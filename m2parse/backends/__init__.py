"""Raw-completion backend protocols: request bodies and response decoding, no I/O.

Each protocol module (``openai_completions``, ``tgi``, ``llamacpp``) exposes ``request_body(prompt, params, *,
stream, model=None)``, ``decode_stream_data(data) -> Piece | None``, ``decode_response(body) -> Piece`` and
``served_model(info) -> str | None`` (the model named in an answer from one of its ``INFO_PATHS``);
``openai_completions`` also says how to count a prompt's tokens (:class:`PromptCounter`). :func:`get_protocol`
bundles one of them; the async HTTP client lives in :mod:`m2parse.backends.client` (it needs the ``[server]``
extra, these modules do not).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType, ModuleType
from typing import Any
from urllib.parse import urlsplit

from . import llamacpp, openai_completions, tgi
from .base import BackendError, Piece, SamplingParams, SSEEvent, SSEParser, StopTrimmer, Usage, stop_strings


@dataclass(frozen=True, slots=True)
class PromptCounter:
    """How a backend tells the room left after a prompt: its context length (from the ``/v1/models`` answer) and
    a prompt's token count (from one of ``paths``). Only OpenAI-style servers need it: they stop after 16 tokens
    when ``max_tokens`` is missing, and current vLLM and SGLang refuse ``null`` or more than the room left."""

    paths: tuple[str, ...]
    context_length: Callable[[Any], int | None]
    request_body: Callable[[str, str | None], dict[str, Any]]
    count: Callable[[Any], int | None]


@dataclass(frozen=True, slots=True)
class Protocol:
    name: str
    stream_path: str
    path: str
    health_path: str
    #: probed when ``health_path`` answers 404/405 (llama-cpp-python's server has no /health)
    health_fallback_path: str | None
    models_path: str | None
    #: where the backend names the model it serves, asked in order; ``served_model`` reads a JSON answer
    info_paths: tuple[str, ...]
    served_model: Callable[[Any], str | None]
    prompt_counter: PromptCounter | None
    #: True when the backend leaves a matched stop string in its output (TGI), so the client trims it.
    includes_stop_strings: bool
    request_body: Callable[..., dict[str, Any]]
    decode_stream_data: Callable[[str], Piece | None]
    decode_response: Callable[[Any], Piece]


def _protocol(module: ModuleType) -> Protocol:
    counter = None
    if hasattr(module, "TOKENIZE_PATHS"):
        counter = PromptCounter(module.TOKENIZE_PATHS, module.context_length, module.tokenize_body, module.token_count)
    return Protocol(
        name=module.NAME,
        stream_path=module.STREAM_PATH,
        path=module.PATH,
        health_path=module.HEALTH_PATH,
        health_fallback_path=module.HEALTH_FALLBACK_PATH,
        models_path=module.MODELS_PATH,
        info_paths=module.INFO_PATHS,
        served_model=module.served_model,
        prompt_counter=counter,
        includes_stop_strings=module.INCLUDES_STOP_STRINGS,
        request_body=module.request_body,
        decode_stream_data=module.decode_stream_data,
        decode_response=module.decode_response,
    )


PROTOCOLS: Mapping[str, Protocol] = MappingProxyType(
    {m.NAME: _protocol(m) for m in (openai_completions, tgi, llamacpp)}
)
#: Names users know the servers by -> the protocol they speak.
ALIASES: Mapping[str, str] = MappingProxyType({"vllm": "openai", "sglang": "openai", "llama.cpp": "llamacpp"})
BACKEND_TYPES = (*PROTOCOLS, *ALIASES)


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[ALIASES.get(name, name)]
    except KeyError:
        raise ValueError(f"unknown backend type {name!r}; choose one of {', '.join(BACKEND_TYPES)}") from None


def check_base_url(url: str) -> str:
    """``url`` if it can be a backend's base URL (http or https, a host, a valid port, no query or fragment), else
    ValueError saying what is wrong, in one line."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError("the backend URL is empty")
    if url != url.strip() or any(c.isspace() or ord(c) < 32 for c in url):
        raise ValueError(f"backend URL {url!r} contains whitespace or control characters")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise ValueError(f"backend URL {url!r} cannot be read: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        hint = f" (did you mean 'http://{url}'?)" if "://" not in url else ""
        raise ValueError(f"backend URL {url!r} must start with http:// or https://{hint}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"backend URL {url!r} has an invalid port") from None
    if not parts.hostname:
        raise ValueError(f"backend URL {url!r} has no host")
    if port == 0:
        raise ValueError(f"backend URL {url!r} has port 0")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise ValueError(f"backend URL {url!r} must be a base URL, without '?' or '#'")
    return url


__all__ = [
    "ALIASES",
    "BACKEND_TYPES",
    "PROTOCOLS",
    "BackendError",
    "Piece",
    "PromptCounter",
    "Protocol",
    "SSEEvent",
    "SSEParser",
    "SamplingParams",
    "StopTrimmer",
    "Usage",
    "check_base_url",
    "get_protocol",
    "stop_strings",
]
