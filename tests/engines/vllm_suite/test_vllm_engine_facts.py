"""What vLLM's own /v1/completions does with ``max_tokens``, pinned: ``m2parse serve`` relies on it (see
docs/server.md, "max_tokens when the request sets none"), so a vLLM upgrade that changes it fails here first."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ..forcing import forced_fixture, structured_regex
from .processes import ENGINE_MARKS, MAX_MODEL_LEN, SERVED_NAME, Running

pytestmark = ENGINE_MARKS

PROMPT = "]~b]ai\n<think>\n"


def complete(vllm: Running, **fields: Any) -> httpx.Response:
    forced = forced_fixture("weather_basic")
    body = {"model": SERVED_NAME, "prompt": PROMPT, "temperature": 0, **structured_regex(forced.text), **fields}
    return httpx.post(vllm.url + "/v1/completions", json=body, timeout=600)


@pytest.mark.parametrize("fields", [{}, {"max_tokens": None}], ids=["omitted", "null"])
def test_missing_or_null_max_tokens_means_16(vllm: Running, fields: dict[str, Any]) -> None:
    reply = complete(vllm, **fields).json()
    assert reply["usage"]["completion_tokens"] == 16
    assert reply["choices"][0]["finish_reason"] == "length"


def test_max_tokens_up_to_the_context_is_accepted(vllm: Running) -> None:
    """Even when prompt + max_tokens exceeds max_model_len: generation would stop when the context is full."""
    reply = complete(vllm, max_tokens=MAX_MODEL_LEN).json()
    choice = reply["choices"][0]
    assert (choice["text"], choice["finish_reason"]) == (forced_fixture("weather_basic").text, "stop")


def test_max_tokens_over_the_context_is_refused(vllm: Running) -> None:
    response = complete(vllm, max_tokens=MAX_MODEL_LEN + 1)
    assert response.status_code == 400
    assert "max_tokens" in response.text
