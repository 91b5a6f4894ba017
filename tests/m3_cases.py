"""MiniMax-M3 outputs for the engine integrations and the peer comparison, and a tiny M3 tokenizer.

``m3_cases()`` is the M3 fixtures (``fixtures/m3/``) plus hand-written outputs that exercise what the peer
comparison must cover (nested objects and arrays, strings holding ``<``, truncation, whitespace between tags, a
missing ``</mm:think>``, unknown keys), each written from the template's rendering rules. ``tiny_m3_tokenizer``
is a byte-level BPE with M3's markers as added tokens, as ``tiny_tokenizer`` is for M2; it needs ``tokenizers``
and ``transformers``, imported only when it is called.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from m2parse.formats import m3
from m2parse.formats.m3 import NAMESPACE as NS

from .fixture_loader import FIXTURES_DIR, load_fixture


@dataclass(frozen=True)
class Case:
    name: str
    text: str
    tools: list[dict[str, Any]] | None
    thinking_mode: str | None
    #: other parse() options (from a fixture's options)
    options: tuple[tuple[str, Any], ...] = ()
    #: the output was cut off by the token limit (the engine reports "length")
    truncated: bool = False


def el(name: str, body: str) -> str:
    return f"{NS}<{name}>{body}{NS}</{name}>"


def invoke(name: str, args: str) -> str:
    return f'{NS}<invoke name="{name}">{args}{NS}</invoke>\n'


def block(*invokes: str) -> str:
    return f"{NS}<tool_call>\n{''.join(invokes)}{NS}</tool_call>"


def tool(name: str, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    params = {"type": "object", "properties": properties, **extra}
    return {"type": "function", "function": {"name": name, "parameters": params}}


def calls(*pairs: tuple[str, str]) -> str:
    """A tool-call block of ``(name, arguments as elements)`` invokes."""
    return block(*(invoke(name, args) for name, args in pairs))


#: create_order's nested ``customer`` and ``items`` parameters (the CLI and server M3 tests use them too);
#: ORDER_ARGS is the two written as M3 writes them.
ORDER_PROPERTIES: dict[str, Any] = {
    "customer": {"type": "object", "properties": {"name": {"type": "string"}, "vip": {"type": "boolean"}}},
    "items": {
        "type": "array",
        "items": {"type": "object", "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}}},
    },
}
TOOLS: list[dict[str, Any]] = [
    tool("get_weather", {"location": {"type": "string"}, "days": {"type": "integer"}}, required=["location"]),
    tool(
        "create_order",
        {
            **ORDER_PROPERTIES,
            "tags": {"type": "array", "items": {"type": "string"}},
            "note": {"type": "string"},
        },
        additionalProperties=False,
    ),
    tool("run_code", {"code": {"type": "string"}, "timeout": {"type": "number"}}),
]

WEATHER = invoke("get_weather", el("location", "Lisbon, Portugal") + el("days", "3"))
ORDER_ARGS = el("customer", el("name", "Ana") + el("vip", "true")) + el(
    "items", el("item", el("sku", "book-001") + el("qty", "2")) + el("item", el("sku", "pen-7") + el("qty", "10"))
)
ORDER = invoke("create_order", ORDER_ARGS + el("tags", el("item", "gift") + el("item", "fragile")))
CODE = "if a < b and c<d:\n    print('<b>', \"</b>\")\n"

_HAND_WRITTEN: list[tuple[str, str, str | None, bool]] = [
    # name, text, thinking_mode, truncated
    ("m3_enabled_weather", "Need the forecast.</mm:think>Let me check." + block(WEATHER), "enabled", False),
    ("m3_adaptive_think_weather", "<mm:think>Need the forecast.</mm:think>Checking." + block(WEATHER), None, False),
    ("m3_adaptive_bare_close", "</mm:think>Checking." + block(WEATHER), "adaptive", False),
    ("m3_disabled_plain", "The answer is 42.", "disabled", False),
    ("m3_nested_object_array", "</mm:think>" + block(ORDER), None, False),
    (
        "m3_string_with_lt",
        "</mm:think>" + block(invoke("run_code", el("code", CODE) + el("timeout", "2.5"))),
        None,
        False,
    ),
    (
        "m3_parallel_calls",
        "Two things.</mm:think>" + block(WEATHER, invoke("get_weather", el("location", "Porto"))),
        "enabled",
        False,
    ),
    (
        "m3_whitespace_between_tags",
        "</mm:think>"
        + f'{NS}<tool_call>\n  {NS}<invoke name="create_order">\n  '
        + el("customer", f"\n    {el('name', 'Ana')}\n    {el('vip', 'false')}\n  ")
        + f"\n  {NS}</invoke>\n{NS}</tool_call>",
        None,
        False,
    ),
    ("m3_missing_think_end", "I keep thinking and never close", "enabled", True),
    ("m3_missing_think_end_call", "Thinking, then a call." + block(WEATHER), "enabled", False),
    (
        "m3_truncated_in_value",
        "</mm:think>" + f'{NS}<tool_call>\n{NS}<invoke name="run_code">{NS}<code>print(1',
        None,
        True,
    ),
    (
        "m3_truncated_in_nested",
        "</mm:think>" + f'{NS}<tool_call>\n{NS}<invoke name="create_order">' + ORDER_ARGS[: len(ORDER_ARGS) // 2],
        None,
        True,
    ),
    (
        "m3_unknown_key",
        "</mm:think>"
        + block(invoke("create_order", el("customer", el("name", "Ana") + el("tier", "gold")) + el("coupon", "X1"))),
        None,
        False,
    ),
    ("m3_unknown_tool", "</mm:think>" + block(invoke("send_mail", el("to", "a@b.c"))), None, False),
    ("m3_empty_array", "</mm:think>" + block(invoke("create_order", el("tags", ""))), None, False),
    ("m3_content_after_block", "</mm:think>Before." + block(WEATHER) + "After.", None, False),
    ("m3_turn_marker", "</mm:think>Done." + block(WEATHER) + "[e~[\n]~b]user\nmore", None, False),
]


def hand_written() -> list[Case]:
    return [Case(name, text, TOOLS, mode, (), cut) for name, text, mode, cut in _HAND_WRITTEN]


def fixture_cases() -> list[Case]:
    """The M3 fixtures written by the parser's authors (``fixtures/m3/NAME.txt`` + ``.json``)."""
    from .fake_backends import fixture_is_truncated

    out = []
    for path in sorted((FIXTURES_DIR / "m3").glob("*.txt")):
        fx = load_fixture(f"m3/{path.stem}")
        options = {k: v for k, v in fx.options.items() if k not in ("format", "thinking_mode")}
        cut = fixture_is_truncated(fx.name)
        out.append(Case(fx.name, fx.text, fx.tools, fx.options.get("thinking_mode"), tuple(options.items()), cut))
    return out


def m3_cases() -> list[Case]:
    return fixture_cases() + hand_written()


def generation_prompt(mode: str | None) -> str:
    return m3.GENERATION_PROMPTS[mode]


@functools.cache
def tiny_m3_tokenizer(variant: str = "plain") -> Any:
    """Byte-level BPE trained on M3 outputs. The turn markers are special tokens; the think tags and the
    namespace token are plain added tokens in ``"plain"`` (as vLLM's M3 parser describes the real tokenizer) and
    special ones in ``"special"`` (so ``skip_special_tokens`` drops their text)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    texts = [case.text for case in m3_cases()] + [p.read_text(encoding="utf-8") for p in FIXTURES_DIR.glob("*.txt")]
    trainer = trainers.BpeTrainer(
        vocab_size=2000, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(texts, trainer)
    tok.add_special_tokens([AddedToken(m, special=True, normalized=False) for m in m3.TURN_MARKERS])
    tags = [AddedToken(m, special=variant == "special", normalized=False) for m in (m3.THINK_OPEN, m3.THINK_CLOSE, NS)]
    if variant == "special":
        tok.add_special_tokens(tags)
    else:
        tok.add_tokens(tags)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=m3.BOS, eos_token=m3.TURN_END, pad_token=m3.TURN_END)
