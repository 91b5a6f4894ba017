"""The real llama-server itself, before m2parse is put in front: what the suite and docs/engines.md rely on.

- the GGUF's tokenizer agrees with the kit's HF tokenizer (so the converter's pre-tokenizer choice is right);
- the tags are plain tokens that come back as text, the turn markers are control tokens that come back empty;
- a GBNF grammar forces an exact text, streamed and not;
- what the server does when the token limit is omitted or null, on both of its completion endpoints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from tokenizers import Tokenizer

from ...fixture_loader import fixture_names, load_fixture
from .. import model_kit as kit
from .cases import FORCED, LONG
from .grammar import exact_text
from .processes import ALIAS, ENGINE_MARKS, Running

pytestmark = ENGINE_MARKS
TIMEOUT = httpx.Timeout(300.0, connect=30.0)


def post(server: Running, path: str, body: dict[str, Any]) -> Any:
    response = httpx.post(server.url + path, json=body, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def stream_text(server: Running, path: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Concatenated streamed text of ``/completion`` (``content``) or ``/v1/completions`` (``choices[0].text``),
    and the last JSON object."""
    text, last = [], {}
    with httpx.stream("POST", server.url + path, json={**body, "stream": True}, timeout=TIMEOUT) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            last = json.loads(line[6:])
            choices = last.get("choices")
            text.append(choices[0]["text"] if choices else last.get("content", ""))
    return "".join(text), last


def test_health_props_and_models(llama: Running, tiny_gguf: Path) -> None:
    assert httpx.get(llama.url + "/health", timeout=TIMEOUT).json() == {"status": "ok"}
    props = httpx.get(llama.url + "/props", timeout=TIMEOUT).json()
    assert Path(props["model_path"]).name == tiny_gguf.name
    assert props["model_alias"] == ALIAS
    assert props["default_generation_settings"]["n_ctx"] == 4096
    models = httpx.get(llama.url + "/v1/models", timeout=TIMEOUT).json()
    assert models["data"][0]["id"] == ALIAS


@pytest.mark.parametrize("name", fixture_names())
def test_tokenizer_agrees_with_the_hf_tokenizer(llama: Running, kit_dir: Path, name: str) -> None:
    """Same ids for every fixture output: the GGUF's vocab, merges, tags and "gpt-2" pre-tokenizer are right."""
    text = load_fixture(name).text
    hf = Tokenizer.from_file(str(kit_dir / "tokenizer.json")).encode(text, add_special_tokens=False).ids
    assert post(llama, "/tokenize", {"content": text, "add_special": False})["tokens"] == hf


def test_tags_come_back_as_text_and_markers_as_nothing(llama: Running, kit_dir: Path) -> None:
    """The tags are plain (user-defined) tokens, written as text; the turn markers are control tokens, which
    generation writes as empty strings (without ``--special``). A GBNF token element (``<[id]>``) makes the
    engine write the marker token itself, which a text literal never would (the kit prefers ``]`` to it)."""
    tok = Tokenizer.from_file(str(kit_dir / "tokenizer.json"))
    for tag in kit.PLAIN_TAGS:
        assert post(llama, "/detokenize", {"tokens": [tok.token_to_id(tag)]})["content"] == tag
    turn_start = tok.token_to_id(kit.TURN_START)
    grammar = f'root ::= "<think>ok" <[{turn_start}]> "ai"\n'
    reply = post(llama, "/completion", {"prompt": "x", "grammar": grammar, "return_tokens": True})
    assert turn_start in reply["tokens"]
    assert reply["content"] == "<think>okai"  # the marker token is there, its text is not
    for marker in kit.SPECIAL_TOKENS:
        # prompt side: a marker in the text is read as its one control token
        assert post(llama, "/tokenize", {"content": marker})["tokens"] == [tok.token_to_id(marker)]
        # /detokenize, unlike generation, does write control tokens
        assert post(llama, "/detokenize", {"tokens": [tok.token_to_id(marker)]})["content"] == marker


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("name", sorted(FORCED))
def test_grammar_forces_the_exact_text(llama: Running, name: str, stream: bool) -> None:
    text = load_fixture(name).text
    body = {"prompt": "]~b]user\nhi[e~[\n]~b]ai\n<think>\n", "grammar": exact_text(text), "temperature": 0}
    if stream:
        got, last = stream_text(llama, "/completion", body)
    else:
        last = post(llama, "/completion", body)
        got = last["content"]
    assert got == text
    assert last["stop_type"] == "eos"


# What "no token limit" looks like on each endpoint, and the answer: the whole forced output (hundreds of tokens;
# the 16-token default of OpenAI-style servers would cut it).
LIMITS = {
    "completion-omitted": ("/completion", {}),
    "completion-minus-1": ("/completion", {"n_predict": -1}),
    "completion-null": ("/completion", {"n_predict": None}),
    "v1-omitted": ("/v1/completions", {}),
    "v1-null": ("/v1/completions", {"max_tokens": None}),
    "v1-minus-1": ("/v1/completions", {"max_tokens": -1}),
}


@pytest.mark.parametrize("limit", sorted(LIMITS))
def test_no_token_limit_generates_the_whole_output(llama: Running, limit: str) -> None:
    path, extra = LIMITS[limit]
    text = load_fixture(LONG).text
    body = {"prompt": "]~b]ai\n<think>\n", "grammar": exact_text(text), "temperature": 0, **extra}
    reply = post(llama, path, body)
    got = reply["choices"][0]["text"] if path == "/v1/completions" else reply["content"]
    assert got == text
    if path == "/v1/completions":
        assert reply["choices"][0]["finish_reason"] == "stop"
        assert reply["usage"]["completion_tokens"] > 16
    else:
        assert reply["stop_type"] == "eos"
        assert reply["tokens_predicted"] > 16
