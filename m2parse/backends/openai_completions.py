"""OpenAI-style ``/v1/completions`` as vLLM, SGLang and llama.cpp's server speak it.

Stream: ``data: {"choices": [{"index": 0, "text": "...", "finish_reason": null}], ...}`` per token, the finish
reason on the last text chunk, then (with ``stream_options.include_usage``) a chunk with ``"choices": []`` and
``usage``, then ``data: [DONE]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import (
    BackendError,
    Piece,
    SamplingParams,
    Usage,
    in_band_error,
    int_or_none,
    load_json,
    protocol_error,
    stop_strings,
)

NAME = "openai"
STREAM_PATH = "/v1/completions"
PATH = "/v1/completions"
HEALTH_PATH = "/health"
#: llama-cpp-python's server has no /health; a 2xx here means it is serving.
HEALTH_FALLBACK_PATH = "/v1/models"
MODELS_PATH = "/v1/models"
#: Where the backend says which model it serves (the first ``data[].id``) and its context (``max_model_len``).
INFO_PATHS = ("/v1/models",)
#: vLLM serves ``/tokenize``, SGLang ``/v1/tokenize``; both answer ``{"count": n, ...}`` for ``{"prompt": ...}``.
TOKENIZE_PATHS = ("/tokenize", "/v1/tokenize")
#: The backend leaves stop strings out of its output, so nothing needs trimming.
INCLUDES_STOP_STRINGS = False


def request_body(prompt: str, params: SamplingParams, *, stream: bool, model: str | None = None) -> dict[str, Any]:
    """``skip_special_tokens: false`` keeps ``<think>``/``<minimax:tool_call>`` if the tokenizer marks them special.

    No ``max_tokens`` is sent as ``null``, never left out: left out, vLLM, SGLang and llama-cpp-python stop after
    16 tokens; ``null`` means "up to the context" on llama.cpp's server, llama-cpp-python and vLLM before the
    renderer rewrite. Where the backend can count the prompt, the client sends the exact room left instead
    (:meth:`m2parse.backends.client.BackendClient.output_budget`), which is what current vLLM and SGLang need.
    """
    body: dict[str, Any] = {"prompt": prompt, "stream": stream}
    if model:
        body["model"] = model
    body["max_tokens"] = params.max_tokens
    for key in ("temperature", "top_p", "top_k", "seed"):
        value = getattr(params, key)
        if value is not None:
            body[key] = value
    if params.top_k is not None and params.top_k <= 0:
        body["top_k"] = -1  # "off" in every version of vLLM and SGLang (some reject 0)
    body["stop"] = stop_strings(params.stop)
    body["skip_special_tokens"] = False
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def _first_model(info: Any) -> Mapping[str, Any] | None:
    data = info.get("data") if isinstance(info, Mapping) else None
    if isinstance(data, list) and data and isinstance(data[0], Mapping):
        return data[0]
    return None


def served_model(info: Any) -> str | None:
    """The first model id of a ``/v1/models`` listing."""
    first = _first_model(info)
    name = first.get("id") if first is not None else None
    return name if isinstance(name, str) and name else None


def context_length(info: Any) -> int | None:
    """``max_model_len`` of the first model (vLLM and SGLang list it; llama.cpp does not)."""
    first = _first_model(info)
    length = int_or_none(first.get("max_model_len")) if first is not None else None
    return length if length is not None and length > 0 else None


def tokenize_body(prompt: str, model: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"prompt": prompt}
    if model:
        body["model"] = model
    return body


def token_count(obj: Any) -> int | None:
    """``count`` of a vLLM/SGLang ``/tokenize`` answer (llama.cpp's ``/tokenize`` has another shape: None)."""
    count = int_or_none(obj.get("count")) if isinstance(obj, Mapping) else None
    return count if count is not None and count >= 0 else None


def _usage(obj: Any) -> Usage | None:
    if not isinstance(obj, Mapping):
        return None
    return Usage(int_or_none(obj.get("prompt_tokens")), int_or_none(obj.get("completion_tokens")))


def _finish(reason: Any) -> str | None:
    if reason is None:
        return None
    if reason == "length":
        return "length"
    if reason in ("abort", "error"):
        raise BackendError("backend", f"the backend ended the completion with finish_reason {reason!r}")
    return "stop"


def _decode(obj: Any) -> Piece:
    if (error := in_band_error(obj)) is not None:
        raise error
    if not isinstance(obj, Mapping) or not isinstance(obj.get("choices"), list):
        raise protocol_error("completion chunk without a 'choices' list")
    usage = _usage(obj.get("usage"))
    if not obj["choices"]:
        return Piece(usage=usage)
    choice = obj["choices"][0]
    text = choice.get("text") if isinstance(choice, Mapping) else None
    if text is None and isinstance(choice, Mapping) and "text" not in choice:
        raise protocol_error("completion choice without 'text'")
    if text is not None and not isinstance(text, str):
        raise protocol_error("completion choice 'text' is not a string")
    return Piece(text or "", _finish(choice.get("finish_reason")), usage)


def decode_stream_data(data: str) -> Piece | None:
    """One SSE ``data`` payload -> a Piece; None for ``[DONE]``, the end of the stream."""
    if data.strip() == "[DONE]":
        return None
    return _decode(load_json(data))


def decode_response(body: Any) -> Piece:
    """A non-streaming ``/v1/completions`` response (parsed JSON) -> the whole text as one Piece."""
    piece = _decode(body)
    return piece if piece.finish_reason else Piece(piece.text, "stop", piece.usage)
