"""The model kit's promises, checked without an engine: stable builds, M2-like tokens, a predictable greedy choice.

The logit checks run the model's arithmetic from the safetensors file in numpy (the core venv has no torch);
``test_vllm_plugin`` and the server suite then show a real engine agreeing.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tokenizers import Tokenizer

from m2parse.render import render_prompt

from . import model_kit as kit

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return kit.build_hf_model(tmp_path_factory.mktemp("kit"))


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    assert header.pop("__metadata__") == {"format": "pt"}
    body = data[8 + size :]
    return {
        name: np.frombuffer(body[a:b], dtype="<f4").reshape(info["shape"])
        for name, info in header.items()
        for a, b in [info["data_offsets"]]
    }


def test_build_is_deterministic_and_cached(model_dir: Path, tmp_path: Path) -> None:
    again = kit.build_hf_model(tmp_path)
    assert again.name == model_dir.name  # same inputs, same key
    for name in ("tokenizer.json", "tokenizer_config.json", "config.json", "model.safetensors"):
        assert (again / name).read_bytes() == (model_dir / name).read_bytes(), name
    before = (again / "model.safetensors").stat().st_mtime_ns
    assert kit.build_hf_model(tmp_path) == again
    assert (again / "model.safetensors").stat().st_mtime_ns == before  # reused, not rebuilt


def test_key_follows_the_template() -> None:
    assert kit.kit_key("a") != kit.kit_key("b") != kit.kit_key(None)


def test_tokens_are_special_as_in_m2(model_dir: Path) -> None:
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    assert (tok.bos_token, tok.eos_token) == (kit.BOS, kit.EOS)
    text = "]~b]ai\n<think>\nhm\n</think>\n\n<minimax:tool_call>\nx</minimax:tool_call>[e~[\n"
    ids = tok.encode(text, add_special_tokens=False)
    for marker in (*kit.SPECIAL_TOKENS[1:], *kit.PLAIN_TAGS):
        assert tok.convert_tokens_to_ids(marker) in ids  # each is one token
    assert tok.decode(ids) == text
    assert tok.decode(ids, skip_special_tokens=True) == text.replace("]~b]", "").replace("[e~[", "")
    config = json.loads((model_dir / "generation_config.json").read_text())
    assert config["eos_token_id"] == tok.eos_token_id


@pytest.mark.skipif(kit.reference_template() is None, reason="no reference templates (M2PARSE_REFERENCE_DIR)")
def test_chat_template_is_the_official_one(model_dir: Path) -> None:
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt == render_prompt(messages, add_generation_prompt=True)
    assert kit.has_chat_template(model_dir)


def test_logits_are_constant_and_favour_eos(model_dir: Path) -> None:
    w = read_safetensors(model_dir / "model.safetensors")
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    hidden = w["model.embed_tokens.weight"][[0, 7, tok.token_to_id(kit.EOS)]]  # any tokens: one vector
    assert (hidden == hidden[0]).all()
    normed = hidden[0] / np.sqrt(np.mean(hidden[0] ** 2) + 1e-6)
    logits = w["lm_head.weight"] @ normed
    assert logits.argmax() == tok.token_to_id(kit.EOS)
    raw = kit.token_bytes(tok)
    plain = [i for i in raw if raw[i] not in {m.encode() for m in kit.SPECIAL_TOKENS}]
    np.testing.assert_allclose(logits[plain], [kit.LOGIT_PER_BYTE * len(raw[i]) for i in plain], rtol=1e-5)
    layer_outputs = ("o_proj", "down_proj")
    assert all(not w[n].any() for n in w if n.endswith(tuple(f"{p}.weight" for p in layer_outputs)))


@pytest.fixture(scope="module")
def vocab_bytes(model_dir: Path) -> dict[int, bytes]:
    return kit.token_bytes(Tokenizer.from_file(str(model_dir / "tokenizer.json")))


@given(st.text(max_size=60))
def test_longest_prefix_tokenization_spells_the_text(
    model_dir: Path, vocab_bytes: dict[int, bytes], text: str
) -> None:
    ids = kit.longest_prefix_ids(model_dir, text)
    assert b"".join(vocab_bytes[i] for i in ids) == text.encode()
    assert all(vocab_bytes[i] not in {m.encode() for m in kit.SPECIAL_TOKENS} for i in ids)


def test_tags_are_forced_as_single_tokens(model_dir: Path) -> None:
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    ids = kit.longest_prefix_ids(model_dir, "a\n</think>\n\n<minimax:tool_call>\n")
    assert tok.token_to_id("</think>") in ids and tok.token_to_id("<minimax:tool_call>") in ids
