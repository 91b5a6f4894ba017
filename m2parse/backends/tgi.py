"""Text Generation Inference: ``/generate_stream`` (SSE) and ``/generate``.

Stream events are ``data:{"index": n, "token": {"id", "text", "logprob", "special"}, "generated_text": null,
"details": null}``; the last one carries ``generated_text`` and ``details: {"finish_reason": "length" |
"eos_token" | "stop_sequence", "generated_tokens", "seed", ["input_length"]}``.

The text is built from every ``token.text``, special tokens included: ``generated_text`` is decoded with special
tokens skipped, which would lose ``<think>``/``<minimax:tool_call>`` when the tokenizer marks them special. The one
exception is the end-of-sequence token that closes an ``eos_token`` finish: it is the turn end, not output.

TGI keeps a matched stop sequence in its output (vLLM and llama.cpp drop it); :class:`StopTrimmer` removes it.
Decoders accept parsed JSON dicts, raw JSON strings, or ``huggingface_hub`` output objects
(``TextGenerationStreamOutput`` / ``TextGenerationOutput``), which have the same fields as attributes.
"""

from __future__ import annotations

from typing import Any

from .base import (
    Piece,
    SamplingParams,
    StopTrimmer,
    Usage,
    get,
    in_band_error,
    int_or_none,
    load_json,
    protocol_error,
    stop_strings,
)

NAME = "tgi"
STREAM_PATH = "/generate_stream"
PATH = "/generate"
HEALTH_PATH = "/health"
HEALTH_FALLBACK_PATH = "/info"
MODELS_PATH = None
#: ``{"model_id": ..., "max_total_tokens": ..., ...}``
INFO_PATHS = ("/info",)
INCLUDES_STOP_STRINGS = True

__all__ = ["StopTrimmer", "decode_response", "decode_stream_data", "decode_stream_event", "request_body"]

FINISH_REASONS = {"length": "length", "eos_token": "stop", "stop_sequence": "stop"}


def request_body(prompt: str, params: SamplingParams, *, stream: bool, model: str | None = None) -> dict[str, Any]:
    """TGI's ``parameters``. TGI rejects temperature <= 0 and top_p outside (0, 1): temperature 0 becomes greedy
    (``do_sample: false``), top_p >= 1 is left out (it means "off" anyway). ``details`` is needed on ``/generate``
    for the per-token texts; the stream always has them. ``stream`` only picks the endpoint.

    No max_tokens is ``max_new_tokens: null``: TGI then allows ``max_total_tokens`` minus the prompt (it
    generates in rounds of 1024 and requeues). A missing key means the same; ``null`` says it in the request."""
    parameters: dict[str, Any] = {"details": True}
    if params.temperature is not None:
        if params.temperature <= 0:
            parameters["do_sample"] = False
        else:
            parameters["temperature"] = params.temperature
    if params.top_p is not None and 0 < params.top_p < 1:
        parameters["top_p"] = params.top_p
    if params.top_k is not None and params.top_k > 0:
        parameters["top_k"] = params.top_k
    parameters["max_new_tokens"] = params.max_tokens
    if params.seed is not None:
        parameters["seed"] = params.seed
    parameters["stop"] = stop_strings(params.stop)
    return {"inputs": prompt, "parameters": parameters}


def served_model(info: Any) -> str | None:
    """``/info``'s ``model_id``."""
    name = get(info, "model_id", None) if info is not None else None
    return name if isinstance(name, str) and name else None


def _usage(details: Any) -> Usage | None:
    if details is None:
        return None
    prompt = int_or_none(get(details, "input_length", None))
    if prompt is None:
        prompt = int_or_none(get(details, "prompt_tokens", None))
    return Usage(prompt, int_or_none(get(details, "generated_tokens", None)))


def _finish(details: Any) -> str | None:
    if details is None:
        return None
    reason = get(details, "finish_reason", None)
    reason = getattr(reason, "value", reason)  # tolerate enum-typed finish reasons
    if not isinstance(reason, str):
        raise protocol_error("TGI details without a finish_reason")
    return FINISH_REASONS.get(reason, "stop")


def _is_eos_finish(details: Any) -> bool:
    reason = get(details, "finish_reason", None) if details is not None else None
    return getattr(reason, "value", reason) == "eos_token"


def decode_stream_event(event: Any) -> Piece:
    """One ``/generate_stream`` event (JSON text, dict or huggingface_hub object) -> a Piece."""
    obj = load_json(event) if isinstance(event, (str, bytes)) else event
    if (error := in_band_error(obj)) is not None:
        raise error
    token = get(obj, "token", None)
    text = get(token, "text", None) if token is not None else None
    if not isinstance(text, str):
        raise protocol_error("TGI stream event without token.text")
    details = get(obj, "details", None)
    if _is_eos_finish(details) and get(token, "special", False):
        text = ""
    return Piece(text, _finish(details), _usage(details))


def decode_stream_data(data: str) -> Piece | None:
    """The SSE ``data`` payload of one event (TGI has no ``[DONE]``; a finish reason ends the stream)."""
    return decode_stream_event(data)


def decode_response(body: Any) -> Piece:
    """A ``/generate`` response (requested with ``details: true``) -> the whole text from its tokens."""
    obj = load_json(body) if isinstance(body, (str, bytes)) else body
    if isinstance(obj, list) and len(obj) == 1:  # the compat route "/" wraps the response in a list
        obj = obj[0]
    if (error := in_band_error(obj)) is not None:
        raise error
    details = get(obj, "details", None)
    tokens = get(details, "tokens", None) if details is not None else None
    if not isinstance(tokens, list):
        raise protocol_error("TGI /generate response without details.tokens (was details: true sent?)")
    texts: list[str] = []
    for token in tokens:
        text = get(token, "text", None)
        if not isinstance(text, str):
            raise protocol_error("TGI token without text")
        texts.append(text)
    if tokens and _is_eos_finish(details) and get(tokens[-1], "special", False):
        texts.pop()
    return Piece("".join(texts), _finish(details) or "stop", _usage(details))
