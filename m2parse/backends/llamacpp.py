"""llama.cpp's native ``/completion`` endpoint.

Stream: ``data: {"index": 0, "content": "<token>", "tokens": [...], "stop": false, "tokens_predicted": n, ...}``
per token, then a final ``{"content": "", "stop": true, "stop_type": "eos" | "limit" | "word",
"stopping_word", "tokens_predicted", "tokens_evaluated", "timings", ...}``; no ``[DONE]``. Non-streaming returns
the final object with the whole ``content``. Older servers report ``stopped_eos``/``stopped_limit``/
``stopped_word`` booleans instead of ``stop_type``, and write in-stream errors as an ``error:`` SSE field.

llama.cpp has no per-request switch for special tokens: if the GGUF marks ``<think>``/``<minimax:tool_call>`` as
control tokens, start ``llama-server`` with ``--special``.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from .base import (
    Piece,
    SamplingParams,
    Usage,
    in_band_error,
    int_or_none,
    load_json,
    protocol_error,
    stop_strings,
)

NAME = "llamacpp"
STREAM_PATH = "/completion"
PATH = "/completion"
HEALTH_PATH = "/health"
HEALTH_FALLBACK_PATH = "/v1/models"
MODELS_PATH = None
#: ``/props``: ``{"model_alias", "model_path", "default_generation_settings": {"n_ctx", ...}, ...}``; servers
#: without it list the model on ``/v1/models`` (``data[0].id``: the alias, or the GGUF path)
INFO_PATHS = ("/props", "/v1/models")
INCLUDES_STOP_STRINGS = False


def request_body(prompt: str, params: SamplingParams, *, stream: bool, model: str | None = None) -> dict[str, Any]:
    """llama.cpp names: ``n_predict`` for max_tokens; the rest keep their OpenAI names.

    No max_tokens is ``n_predict: -1``: generate until the model stops or the context is full (a server started
    with ``-n N`` still caps it at N). Sent explicitly rather than left to the server's default.
    """
    body: dict[str, Any] = {"prompt": prompt, "stream": stream}
    body["n_predict"] = params.max_tokens if params.max_tokens is not None else -1
    for key in ("temperature", "top_p", "top_k", "seed"):
        value = getattr(params, key)
        if value is not None:
            body[key] = value
    body["stop"] = stop_strings(params.stop)
    return body


def served_model(info: Any) -> str | None:
    """``/props``: the ``--alias`` if one was given, else the GGUF file's name; ``/v1/models``: the first id's
    file name."""
    if not isinstance(info, Mapping):
        return None
    if isinstance(info.get("data"), list):
        first = info["data"][0] if info["data"] else None
        name = first.get("id") if isinstance(first, Mapping) else None
        return _file_name(name) if isinstance(name, str) else None
    alias = info.get("model_alias")
    path = info.get("model_path")
    # Without --alias, llama-server reports the -m path as the alias too: serve its file name, not a server path.
    if isinstance(alias, str) and alias and alias != path:
        return alias
    return _file_name(path) if isinstance(path, str) else None


def _file_name(path: str) -> str | None:
    """The last part of a model path (llama.cpp reports where the GGUF lies; clients need no server paths)."""
    return posixpath.basename(path.replace("\\", "/")) or None


def _finish(obj: Mapping[str, Any]) -> str | None:
    if obj.get("stop") is not True:
        return None
    stop_type = obj.get("stop_type")
    if stop_type == "limit" or (stop_type is None and obj.get("stopped_limit") is True):
        return "length"
    return "stop"


def _decode(obj: Any) -> Piece:
    if (error := in_band_error(obj)) is not None:
        raise error
    if not isinstance(obj, Mapping):
        raise protocol_error("llama.cpp response is not a JSON object")
    content = obj.get("content", "")
    if not isinstance(content, str):
        raise protocol_error("llama.cpp 'content' is not a string")
    finish = _finish(obj)
    usage = None
    if finish is not None:
        usage = Usage(int_or_none(obj.get("tokens_evaluated")), int_or_none(obj.get("tokens_predicted")))
    return Piece(content, finish, usage)


def decode_stream_data(data: str) -> Piece | None:
    """One SSE ``data`` payload -> a Piece (the one with ``stop: true`` ends the stream)."""
    return _decode(load_json(data))


def decode_response(body: Any) -> Piece:
    piece = _decode(body)
    return piece if piece.finish_reason else Piece(piece.text, "stop", piece.usage)
