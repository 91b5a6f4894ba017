"""Forcing an engine to write an exact text with the kit's model, and what the result must then be.

The kit's model always prefers the longest token (and eos above all), so a constraint that admits one text makes
greedy decoding write exactly that text, tokenized by ``model_kit.longest_prefix_ids``, then stop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m2parse import ParsedMessage, parse, sequential_ids

from ..fixture_loader import Fixture, load_fixture
from . import model_kit

_REGEX_META = frozenset("\\.^$|?*+()[]{}")
_CONTROL = {"\n": r"\n", "\t": r"\t", "\r": r"\r"}


def regex_literal(text: str) -> str:
    """A regex that matches exactly ``text``: metacharacters escaped, control characters as escapes, the rest
    literal (``re.escape`` also escapes spaces, ``-``, ``#``, ``&`` and ``~``, which some engines' regex
    dialects refuse)."""
    out = []
    for ch in text:
        if ch in _REGEX_META:
            out.append("\\" + ch)
        elif ch in _CONTROL:
            out.append(_CONTROL[ch])
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def structured_regex(text: str) -> dict[str, Any]:
    """vLLM's request field that forces ``text`` (the older ``guided_regex`` is silently ignored by vLLM 0.32)."""
    return {"structured_outputs": {"regex": regex_literal(text)}}


@dataclass(frozen=True)
class Forced:
    """One forced output: the fixture it comes from, its text and the tools of the request."""

    name: str
    text: str
    tools: list[dict[str, Any]] | None

    def expected(
        self, *, prefix_tokens: int | None = None, model_dir: Path | None = None, **options: Any
    ) -> ParsedMessage:
        """``parse()`` of what the engine writes: the whole text, or its first ``prefix_tokens`` tokens."""
        return parse(self.written(prefix_tokens, model_dir), self.tools, id_factory=sequential_ids(), **options)

    def written(self, prefix_tokens: int | None = None, model_dir: Path | None = None) -> str:
        if prefix_tokens is None:
            return self.text
        assert model_dir is not None, "a token prefix needs the model's tokenizer"
        ids = model_kit.longest_prefix_ids(model_dir, self.text)[:prefix_tokens]
        raw = model_kit.token_bytes_of(model_dir)
        return b"".join(raw[i] for i in ids).decode("utf-8", errors="strict")


def forced_fixture(name: str) -> Forced:
    fx: Fixture = load_fixture(name)
    assert fx.options in ({}, {"reasoning": "separated"}), f"{name}: forced fixtures need the default options"
    tools = [t if "function" in t else {"type": "function", "function": t} for t in fx.tools] if fx.tools else None
    return Forced(name, fx.text, tools)


#: The outputs the engine suites force: reasoning + content + call, reasoning only (cut off), plain answer, two
#: calls in one block, a call cut off inside a value, Chinese text (multi-byte tokens), a leading ``<think>``.
FORCED_NAMES = (
    "weather_basic",
    "reasoning_only_cut_off",
    "no_tool_call_plain_answer",
    "parallel_calls_one_block",
    "truncated_in_value",
    "chinese_text",
    "leading_think_tag",
)
