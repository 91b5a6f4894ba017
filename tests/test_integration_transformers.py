"""The transformers integration, for real and offline: a tiny byte-level BPE tokenizer with M2's markers as added
tokens (special and non-special variants), a tiny randomly initialised Llama on CPU, and a logits processor that
makes ``generate()`` spell a fixture's raw output token by token.

``tiny_tokenizer`` needs only ``tokenizers`` and ``transformers``; the vLLM tests reuse it.
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, TextIteratorStreamer

from m2parse import (
    ContentDelta,
    Event,
    ProblemFound,
    ReasoningDelta,
    StreamParser,
    ToolCallArgumentsDelta,
    ToolCallEnd,
    ToolCallStart,
    parse,
    sequential_ids,
)
from m2parse.format import THINK_CLOSE, THINK_OPEN, TOOL_CALL_CLOSE, TOOL_CALL_OPEN, TURN_MARKERS
from m2parse.integrations.transformers import (
    DECODE_KWARGS,
    M2ParseWarning,
    M2Streamer,
    MarkersStrippedWarning,
    PromptEchoWarning,
    iter_events,
    parse_generated,
    stripped_markers,
)

from .fixture_loader import FIXTURES_DIR, Fixture, all_fixtures, load_fixture

try:
    import torch
except ImportError:  # the core run: these tests need the torch venv (.ci/run_integrations.sh)
    torch = None  # type: ignore[assignment]

pytestmark = [pytest.mark.torch, pytest.mark.skipif(torch is None, reason="needs torch (.ci/run_integrations.sh)")]

TAGS = (THINK_OPEN, THINK_CLOSE, TOOL_CALL_OPEN, TOOL_CALL_CLOSE)
VARIANTS = ("special", "plain")
GENERATION_PROMPT = "]~b]ai\n<think>\n"
NO_REASONING_PROMPT = "]~b]ai\n"


@functools.cache
def tiny_tokenizer(variant: str) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on the fixtures (so every character is covered, CJK as multi-token bytes).

    The turn markers are special tokens, as in M2's tokenizer; the four tags are special in ``"special"`` and
    plain added tokens in ``"plain"`` (both occur in M2 tokenizer files). ``[e~[`` is the end-of-sequence token.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    texts = [p.read_text(encoding="utf-8") for p in sorted(FIXTURES_DIR.glob("*.txt"))]
    trainer = trainers.BpeTrainer(
        vocab_size=2000, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(texts, trainer)
    tok.add_special_tokens([AddedToken(m, special=True, normalized=False) for m in TURN_MARKERS])
    tags = [AddedToken(m, special=variant == "special", normalized=False) for m in TAGS]
    if variant == "special":
        tok.add_special_tokens(tags)
    else:
        tok.add_tokens(tags)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="]~!b[", eos_token="[e~[", pad_token="[e~[")


def reassemble(events: list[Event]) -> dict[str, Any]:
    """What a client rebuilds from the events (and the problems, with their offsets)."""
    calls: dict[int, dict[str, Any]] = {}
    for event in events:
        if isinstance(event, ToolCallStart):
            calls[event.index] = {"id": event.id, "name": event.name, "arguments": ""}
        elif isinstance(event, ToolCallArgumentsDelta):
            calls[event.index]["arguments"] += event.fragment
        elif isinstance(event, ToolCallEnd):
            assert calls[event.index]["arguments"] == event.arguments_json
            calls[event.index]["truncated"] = event.truncated
    return {
        "content": "".join(e.text for e in events if isinstance(e, ContentDelta)),
        "reasoning": "".join(e.text for e in events if isinstance(e, ReasoningDelta)),
        "calls": [calls[i] for i in sorted(calls)],
        "problems": [(e.problem.code, e.problem.offset) for e in events if isinstance(e, ProblemFound)],
    }


def reference(fx: Fixture) -> tuple[dict[str, Any], Any]:
    parser = StreamParser(fx.tools, id_factory=sequential_ids(), **fx.options)
    events = parser.feed(fx.text) + parser.finish()
    result = parse(fx.text, fx.tools, id_factory=sequential_ids(), **fx.options)
    assert parser.result == result
    return reassemble(events), result


# ---------------------------------------------------------------------------------------------- the tiny model


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    # Two cores: torch's default thread pool makes a 16-wide model ~8x slower than one thread.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@functools.cache
def tiny_model(vocab_size: int) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=8192,
    )
    model = LlamaForCausalLM(config).eval()
    model.generation_config.eos_token_id = None
    return model


def spell(target: list[int], prompt_length: int) -> Any:
    """A logits processor that leaves only the target's next token possible."""
    from transformers import LogitsProcessor

    class Spell(LogitsProcessor):
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            forced = torch.full_like(scores, float("-inf"))
            forced[:, target[input_ids.shape[1] - prompt_length]] = 0.0
            return forced

    return Spell()


def generate(tok: Any, prompt: str, target: list[int], streamer: Any = None, eos: int | None = None) -> Any:
    from transformers import LogitsProcessorList

    model = tiny_model(len(tok))
    input_ids = torch.tensor([tok.encode(prompt, add_special_tokens=False)])
    kwargs: dict[str, Any] = {
        "attention_mask": torch.ones_like(input_ids),
        "max_new_tokens": len(target),
        "do_sample": False,
        "logits_processor": LogitsProcessorList([spell(target, input_ids.shape[1])]),
        "pad_token_id": tok.pad_token_id,
        "eos_token_id": eos,
        "streamer": streamer,
    }
    if streamer is None:
        return input_ids.shape[1], model.generate(input_ids, **kwargs)
    result: dict[str, Any] = {}

    def run() -> None:
        result["out"] = model.generate(input_ids, **kwargs)

    thread = threading.Thread(target=run)
    thread.start()
    return input_ids.shape[1], thread, result


def prompt_for(fx: Fixture) -> str:
    return GENERATION_PROMPT if fx.options.get("starts_in_reasoning", True) else NO_REASONING_PROMPT


# ---------------------------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("fx", all_fixtures(), ids=lambda fx: fx.name)
def test_streamer_events_equal_parse(fx: Fixture, variant: str, one_thread: None) -> None:
    tok = tiny_tokenizer(variant)
    target = tok.encode(fx.text, add_special_tokens=False)
    assert tok.decode(target, skip_special_tokens=False) == fx.text
    want_events, want = reference(fx)
    with warnings.catch_warnings():
        warnings.simplefilter("error", M2ParseWarning)
        streamer = M2Streamer(tok, fx.tools, timeout=120, id_factory=sequential_ids(), **fx.options)
        prompt_length, thread, out = generate(tok, prompt_for(fx), target, streamer)
        events = list(streamer)
        thread.join()
        assert reassemble(events) == want_events
        assert streamer.result == want
        # The finished output, decoded and parsed in one go, agrees too.
        assert out["out"][0, prompt_length:].tolist() == target
        done = parse_generated(
            tok, out["out"], fx.tools, prompt_length=prompt_length, id_factory=sequential_ids(), **fx.options
        )
        assert done == want


@pytest.mark.parametrize("variant", VARIANTS)
def test_final_end_of_sequence_token_is_dropped(variant: str, one_thread: None) -> None:
    """generate() stops on [e~[; the streamer and the helper treat it as the turn's end, not as output."""
    fx = load_fixture("weather_basic")
    tok = tiny_tokenizer(variant)
    target = [*tok.encode(fx.text, add_special_tokens=False), tok.eos_token_id, *tok.encode("junk")]
    want = parse(fx.text, fx.tools, id_factory=sequential_ids())
    streamer = M2Streamer(tok, fx.tools, timeout=120, id_factory=sequential_ids())
    prompt_length, thread, out = generate(tok, GENERATION_PROMPT, target, streamer, eos=tok.eos_token_id)
    list(streamer)
    thread.join()
    assert out["out"][0, -1].item() == tok.eos_token_id
    assert streamer.result == want
    assert not want.problems
    assert parse_generated(tok, out["out"], fx.tools, prompt_length=prompt_length, id_factory=sequential_ids()) == want


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", ["weather_basic", "chinese_text", "turn_marker_after_call"])
def test_adapter_over_text_iterator_streamer(name: str, variant: str, one_thread: None) -> None:
    fx = load_fixture(name)
    tok = tiny_tokenizer(variant)
    target = [*tok.encode(fx.text, add_special_tokens=False), tok.eos_token_id]
    _, want = reference(fx)
    streamer = TextIteratorStreamer(tok, skip_prompt=True, timeout=120, **DECODE_KWARGS)
    parser = StreamParser(fx.tools, id_factory=sequential_ids(), **fx.options)
    with warnings.catch_warnings():
        warnings.simplefilter("error", M2ParseWarning)
        events_iter = iter_events(streamer, parser)
    _, thread, _ = generate(tok, GENERATION_PROMPT, target, streamer)
    events = list(events_iter)
    thread.join()
    assert parser.result == want
    assert reassemble(events)["content"] == want.content


# ---------------------------------------------------------------------------------------------- warnings


def test_warns_when_skip_special_tokens_strips_markers() -> None:
    special, plain = tiny_tokenizer("special"), tiny_tokenizer("plain")
    assert stripped_markers(special, skip_special_tokens=True) == [*TAGS, *TURN_MARKERS]
    assert stripped_markers(plain, skip_special_tokens=True) == list(TURN_MARKERS)
    assert stripped_markers(special, skip_special_tokens=False) == []
    with pytest.warns(MarkersStrippedWarning, match=r"</think>.*\[e~\[.*skip_special_tokens=False"):
        iter_events(TextIteratorStreamer(special, skip_prompt=True, skip_special_tokens=True), StreamParser())
    with pytest.warns(MarkersStrippedWarning) as record:
        iter_events(TextIteratorStreamer(plain, skip_prompt=True, skip_special_tokens=True), StreamParser())
    assert "</think>" not in str(record[0].message) and "]~b]" in str(record[0].message)


def test_what_the_warning_is_about() -> None:
    """The pitfall itself: with skip_special_tokens=True the reasoning and the call are gone."""
    fx = load_fixture("weather_basic")
    tok = tiny_tokenizer("special")
    ids = tok.encode(fx.text, add_special_tokens=False)
    stripped = parse(tok.decode(ids, skip_special_tokens=True), fx.tools)
    right = parse(tok.decode(ids, skip_special_tokens=False), fx.tools)
    assert right.tool_calls and not stripped.tool_calls
    assert stripped.content == "" and "<invoke" in (stripped.reasoning_content or "")


def test_warns_when_the_prompt_is_echoed() -> None:
    tok = tiny_tokenizer("special")
    with pytest.warns(PromptEchoWarning, match="skip_prompt"):
        M2Streamer(tok, skip_prompt=False)
    with pytest.warns(PromptEchoWarning, match="skip_prompt"):
        iter_events(TextIteratorStreamer(tok), StreamParser())
    whole = tok.encode("]~!b[]~b]user\nhi[e~[\n" + GENERATION_PROMPT + "Hi.\n</think>\n\nHello!")
    with pytest.warns(PromptEchoWarning, match="include the prompt"):
        echoed = parse_generated(tok, whole)
    assert echoed.content == ""  # the prompt's first turn marker ends the "output" at once
    prompt_length = len(tok.encode("]~!b[]~b]user\nhi[e~[\n" + GENERATION_PROMPT))
    assert parse_generated(tok, whole, prompt_length=prompt_length).content == "Hello!"


def test_batches_are_refused() -> None:
    tok = tiny_tokenizer("special")
    with pytest.raises(ValueError, match="batch of 2"):
        parse_generated(tok, [[1, 2], [3, 4]])
