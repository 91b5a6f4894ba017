"""A tiny MiniMax-M2 stand-in that real engines load: tokenizer, Llama weights and config, built in seconds.

Real engines (vLLM, llama.cpp, SGLang) need a model directory; the real M2 is 230 B parameters and nothing may be
downloaded here. This kit builds one locally, deterministically, from the repository's own files:

- **tokenizer**: byte-level BPE (the ``tokenizers`` library) trained on ``fixtures/*.txt``. The turn markers
  ``]~!b[``, ``]~b]``, ``[e~[`` are special tokens; ``<think>``, ``</think>``, ``<minimax:tool_call>``,
  ``</minimax:tool_call>`` are added tokens with ``special=False``, as in the real M2 tokenizer
  (``skip_special_tokens=True`` drops the markers and keeps the tags). ``[e~[`` is eos, ``]~!b[`` bos.
- **model**: a ``LlamaForCausalLM`` (1 layer, hidden 128, float32 safetensors, ~3 MB) whose logits are the same
  at every position, whatever the input: every token embeds to the same vector along dimension 0 and every layer
  writes zeros, so the final hidden state is constant and ``lm_head`` column 0 *is* the logit vector. The logits
  are ``EOS_LOGIT`` for ``[e~[``, ``LOGIT_PER_BYTE * len(token bytes)`` for every other token, 0 for the other
  markers. So unconstrained generation stops at once (empty output), and under a grammar or regex that admits
  exactly one text the greedy choice is the longest token that keeps the text on track: the forced output is
  that text, tokenized by longest prefix (``longest_prefix_ids``), tags as single tokens.
- **chat template**: the official M2 ``chat_template.jinja`` read from the reference folder
  (``$M2PARSE_REFERENCE_DIR``, else ``<repo>/../shared/reference``) — never copied into the repository. Without
  the folder the model has no chat template (``has_chat_template`` says so; raw-completion suites do not need it).

``build_hf_model(cache_dir)`` returns the model directory, built once per key: a hash of this file, the fixture
texts, the template and the ``tokenizers`` version, so any change rebuilds it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import struct
import tempfile
from collections.abc import Iterable
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from tokenizers import __version__ as tokenizers_version

ROOT = Path(__file__).resolve().parents[2]
FIXTURES_DIR = ROOT / "fixtures"

BOS = "]~!b["
TURN_START = "]~b]"
EOS = "[e~["
#: Special tokens, as in M2: skip_special_tokens drops them.
SPECIAL_TOKENS = (BOS, TURN_START, EOS)
#: Added tokens with special=False, as in M2: they survive skip_special_tokens.
PLAIN_TAGS = ("<think>", "</think>", "<minimax:tool_call>", "</minimax:tool_call>")

VOCAB_SIZE = 2000  # BPE target before the added tokens
HIDDEN = 128
HEADS = 2
HEAD_DIM = HIDDEN // HEADS  # 64: a head size every CPU attention kernel supports
INTERMEDIATE = 256
MAX_POSITIONS = 4096
EOS_LOGIT = 1000.0
LOGIT_PER_BYTE = 20.0  # a one-byte-longer token wins by e**20 even when sampling at temperature 1

CACHE_ENV = "M2PARSE_ENGINE_CACHE"
REFERENCE_ENV = "M2PARSE_REFERENCE_DIR"


def default_cache_dir() -> Path:
    """``$M2PARSE_ENGINE_CACHE``, else a folder under the system temp dir (shared by the engine suites)."""
    return Path(os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "m2parse-engine-cache")


def reference_template() -> str | None:
    """The official current M2 chat template from the reference folder, or None when there is none."""
    for candidate in (os.environ.get(REFERENCE_ENV), ROOT.parent / "shared" / "reference"):
        if candidate and (path := Path(candidate) / "MiniMax-M2" / "chat_template.jinja").is_file():
            return path.read_text(encoding="utf-8")
    return None


def training_texts() -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted(FIXTURES_DIR.glob("*.txt"))]


def kit_key(template: str | None) -> str:
    """What the build depends on; a change to any of it gives a new directory."""
    digest = hashlib.sha256()
    parts: Iterable[bytes] = (
        Path(__file__).read_bytes(),
        tokenizers_version.encode(),
        (template or "<no template>").encode(),
        *(p.name.encode() + b"\0" + p.read_bytes() for p in sorted(FIXTURES_DIR.glob("*.txt"))),
    )
    for part in parts:
        digest.update(len(part).to_bytes(8, "little") + part)
    return digest.hexdigest()[:16]


def build_hf_model(cache_dir: Path | None = None) -> Path:
    """Build (or reuse) the model directory under ``cache_dir`` and return its path.

    Safe to call from several processes at once: each builds in a private folder and renames it into place; the
    first rename wins and the others use it.
    """
    template = reference_template()
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = root / f"tiny-m2-{kit_key(template)}"
    if (target / "model.safetensors").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=root))
    tokenizer = train_tokenizer()
    tokenizer.save(str(staging / "tokenizer.json"))
    (staging / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(tokenizer, template), indent=1))
    (staging / "special_tokens_map.json").write_text(
        json.dumps({"bos_token": BOS, "eos_token": EOS, "pad_token": EOS}, indent=1)
    )
    ids = {t: tokenizer.token_to_id(t) for t in SPECIAL_TOKENS}
    vocab = tokenizer.get_vocab_size(with_added_tokens=True)
    (staging / "config.json").write_text(json.dumps(llama_config(vocab, ids[BOS], ids[EOS]), indent=1))
    gen = {"bos_token_id": ids[BOS], "eos_token_id": ids[EOS], "pad_token_id": ids[EOS]}
    (staging / "generation_config.json").write_text(json.dumps(gen, indent=1))
    write_safetensors(staging / "model.safetensors", weights(token_logits(tokenizer)))
    try:
        staging.rename(target)
    except OSError:  # another process won the race
        _remove_tree(staging)
    return target


def has_chat_template(model_dir: Path) -> bool:
    return "chat_template" in json.loads((model_dir / "tokenizer_config.json").read_text())


# ------------------------------------------------------------------------------------------------- tokenizer


def train_tokenizer() -> Tokenizer:
    """Byte-level BPE over the fixtures (every byte is in the alphabet, so any text encodes), plus the markers."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(training_texts(), trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in PLAIN_TAGS])
    return tok


def tokenizer_config(tok: Tokenizer, template: str | None) -> dict[str, object]:
    added = {
        str(tok.token_to_id(t)): {
            "content": t,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": t in SPECIAL_TOKENS,
        }
        for t in (*SPECIAL_TOKENS, *PLAIN_TAGS)
    }
    config: dict[str, object] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "added_tokens_decoder": added,
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": EOS,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": MAX_POSITIONS,
    }
    if template is not None:
        config["chat_template"] = template
    return config


def _byte_level_chars() -> dict[str, int]:
    """GPT-2's byte-to-character table that ByteLevel uses, inverted: character -> byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = [b for b in range(256) if b not in printable]
    table = {chr(b): b for b in printable}
    table.update({chr(256 + n): b for n, b in enumerate(shifted)})
    return table


_BYTE_OF = _byte_level_chars()


def token_bytes(tok: Tokenizer) -> dict[int, bytes]:
    """Every token id -> the bytes it stands for (added tokens: their UTF-8)."""
    added = {tok.token_to_id(t) for t in (*SPECIAL_TOKENS, *PLAIN_TAGS)}
    return {
        i: text.encode() if i in added else bytes(_BYTE_OF[ch] for ch in text)
        for text, i in tok.get_vocab(with_added_tokens=True).items()
    }


def token_logits(tok: Tokenizer) -> list[float]:
    """The constant logit vector (see the module docstring)."""
    specials = {tok.token_to_id(t) for t in SPECIAL_TOKENS}
    eos = tok.token_to_id(EOS)
    logits = [0.0] * tok.get_vocab_size(with_added_tokens=True)
    for i, raw in token_bytes(tok).items():
        logits[i] = EOS_LOGIT if i == eos else 0.0 if i in specials else LOGIT_PER_BYTE * len(raw)
    return logits


def longest_prefix_ids(model_dir: Path, text: str) -> list[int]:
    """The token ids a grammar-forced greedy run of the kit's model writes for ``text`` (markers excluded)."""
    by_bytes = _forcible_tokens(Path(model_dir))
    longest = max(map(len, by_bytes))
    data, ids, at = text.encode(), [], 0
    while at < len(data):
        n = next(n for n in range(min(longest, len(data) - at), 0, -1) if data[at : at + n] in by_bytes)
        ids.append(by_bytes[data[at : at + n]])
        at += n
    return ids


@functools.cache
def token_bytes_of(model_dir: Path) -> dict[int, bytes]:
    """:func:`token_bytes` of a built model's tokenizer (read once per directory)."""
    return token_bytes(Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json")))


@functools.cache
def _forcible_tokens(model_dir: Path) -> dict[bytes, int]:
    specials = {m.encode() for m in SPECIAL_TOKENS}
    return {raw: i for i, raw in token_bytes_of(model_dir).items() if raw not in specials}


# ----------------------------------------------------------------------------------------------------- model


def llama_config(vocab: int, bos: int, eos: int) -> dict[str, object]:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": vocab,
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": 1,
        "num_attention_heads": HEADS,
        "num_key_value_heads": HEADS,
        "head_dim": HEAD_DIM,
        "hidden_act": "silu",
        "max_position_embeddings": MAX_POSITIONS,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "bos_token_id": bos,
        "eos_token_id": eos,
        "pad_token_id": eos,
    }


def weights(logits: list[float]) -> dict[str, tuple[list[int], bytes]]:
    """name -> (shape, little-endian float32 bytes). Only the embedding's and lm_head's column 0 are non-zero.

    Every token embeds to ``sqrt(HIDDEN) * e0``, whose RMSNorm is itself (mean square 1, so eps shifts it by 5e-7):
    lm_head column 0 holds logits / sqrt(HIDDEN).
    """
    vocab = len(logits)

    def zeros(*shape: int) -> tuple[list[int], bytes]:
        return list(shape), bytes(4 * math.prod(shape))

    def ones(n: int) -> tuple[list[int], bytes]:
        return [n], struct.pack(f"<{n}f", *([1.0] * n))

    def column0(values: list[float]) -> tuple[list[int], bytes]:
        data = bytearray(4 * len(values) * HIDDEN)
        for row, value in enumerate(values):
            struct.pack_into("<f", data, 4 * row * HIDDEN, value)
        return [len(values), HIDDEN], bytes(data)

    scale = math.sqrt(HIDDEN)
    layer = "model.layers.0."
    return {
        "model.embed_tokens.weight": column0([scale] * vocab),
        layer + "input_layernorm.weight": ones(HIDDEN),
        layer + "self_attn.q_proj.weight": zeros(HEADS * HEAD_DIM, HIDDEN),
        layer + "self_attn.k_proj.weight": zeros(HEADS * HEAD_DIM, HIDDEN),
        layer + "self_attn.v_proj.weight": zeros(HEADS * HEAD_DIM, HIDDEN),
        layer + "self_attn.o_proj.weight": zeros(HIDDEN, HEADS * HEAD_DIM),
        layer + "post_attention_layernorm.weight": ones(HIDDEN),
        layer + "mlp.gate_proj.weight": zeros(INTERMEDIATE, HIDDEN),
        layer + "mlp.up_proj.weight": zeros(INTERMEDIATE, HIDDEN),
        layer + "mlp.down_proj.weight": zeros(HIDDEN, INTERMEDIATE),
        "model.norm.weight": ones(HIDDEN),
        "lm_head.weight": column0([v / scale for v in logits]),
    }


def write_safetensors(path: Path, tensors: dict[str, tuple[list[int], bytes]]) -> None:
    """The safetensors layout (u64 header length, JSON header, raw data), written without torch or numpy."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (shape, data) in tensors.items():
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for _, data in tensors.values():
            f.write(data)


def _remove_tree(path: Path) -> None:
    for child in path.iterdir():
        child.unlink()
    path.rmdir()
