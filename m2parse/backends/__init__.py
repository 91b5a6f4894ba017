"""Raw-completion backend protocols: request bodies and response decoding, no I/O.

Each protocol module (``openai_completions``, ``tgi``, ``llamacpp``) exposes ``request_body(prompt, params, *,
stream, model=None)``, ``decode_stream_data(data) -> Piece | None`` and ``decode_response(body) -> Piece``.
:func:`get_protocol` bundles one of them; the async HTTP client lives in :mod:`m2parse.backends.client`
(it needs the ``[server]`` extra, these modules do not).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType, ModuleType
from typing import Any

from . import llamacpp, openai_completions, tgi
from .base import BackendError, Piece, SamplingParams, SSEEvent, SSEParser, StopTrimmer, Usage, stop_strings


@dataclass(frozen=True, slots=True)
class Protocol:
    name: str
    stream_path: str
    path: str
    health_path: str
    models_path: str | None
    #: True when the backend leaves a matched stop string in its output (TGI), so the client trims it.
    includes_stop_strings: bool
    request_body: Callable[..., dict[str, Any]]
    decode_stream_data: Callable[[str], Piece | None]
    decode_response: Callable[[Any], Piece]


def _protocol(module: ModuleType) -> Protocol:
    return Protocol(
        name=module.NAME,
        stream_path=module.STREAM_PATH,
        path=module.PATH,
        health_path=module.HEALTH_PATH,
        models_path=module.MODELS_PATH,
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


__all__ = [
    "ALIASES",
    "BACKEND_TYPES",
    "PROTOCOLS",
    "BackendError",
    "Piece",
    "Protocol",
    "SSEEvent",
    "SSEParser",
    "SamplingParams",
    "StopTrimmer",
    "Usage",
    "get_protocol",
    "stop_strings",
]
