"""Per-delta cost inside vLLM: its built-in ``minimax_m2`` / ``minimax_m3`` parsers versus the m2parse plugin.

Both run the way ``vllm serve`` runs them: the parser class from vLLM's ``ParserManager``, one
``ChatStreamProcessor`` per request, one token per delta, the delta texts made by vLLM's own incremental
detokenizer (outside the timed loop, shared by both). Outputs: the fixtures, then synthetic ones of growing size,
to show how the cost per delta scales: a long output (reasoning, content, one long string argument), and one
call with many parameters (the built-in parser re-reads the call's arguments as they grow). The MiniMax-M3 rows
run vLLM's ``minimax_m3`` pair against ``m2parse_m3`` the same way, over the M3 cases (``tests/m3_cases.py``)
and over a long M3 output and one call with a growing array of nested objects, with the M3 tiny tokenizer and
the request's ``chat_template_kwargs.thinking_mode``.

Run in the vLLM venv (``.ci/run_integrations.sh`` makes one): ``python benchmarks/bench_vllm.py [--quick]``.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the tiny tokenizer and the fixture loader live with the tests

from vllm import SamplingParams  # noqa: E402
from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest  # noqa: E402
from vllm.entrypoints.openai.chat_completion.stream_processor import ChatStreamProcessor  # noqa: E402
from vllm.parser import ParserManager  # noqa: E402
from vllm.tokenizers.hf import get_cached_tokenizer  # noqa: E402
from vllm.v1.engine import EngineCoreRequest  # noqa: E402
from vllm.v1.engine.detokenizer import IncrementalDetokenizer  # noqa: E402

import m2parse.integrations.vllm_plugin  # noqa: E402, F401  (registers "m2parse" and "m2parse_m3")
from m2parse import parse  # noqa: E402
from tests.fixture_loader import all_fixtures  # noqa: E402
from tests.m3_cases import TOOLS as M3_TOOLS  # noqa: E402
from tests.m3_cases import el, generation_prompt, invoke, m3_cases, tiny_m3_tokenizer  # noqa: E402
from tests.test_integration_transformers import GENERATION_PROMPT, tiny_tokenizer  # noqa: E402

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "write_file",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "content": {"type": "string"}, "mode": {"type": "integer"}},
            },
        },
    }
]
PARSERS = {"vllm minimax_m2": "minimax_m2", "m2parse plugin": "m2parse"}
M3_PARSERS = {"vllm minimax_m3": "minimax_m3", "m2parse_m3 plugin": "m2parse_m3"}


def long_output(chars: int) -> str:
    """About ``chars`` characters: a third reasoning, a third content, a third one code argument."""
    third = max(1, chars // 3)
    prose = "The user wants a file written; I check the path, the mode and the content first. "
    code = "def handler(event, context):\n    return {'status': 200, \"body\": event['body']}\n\n"
    return (
        (prose * (third // len(prose) + 1))[:third]
        + "\n</think>\n\n"
        + (prose * (third // len(prose) + 1))[:third]
        + '\n<minimax:tool_call>\n<invoke name="write_file">\n<parameter name="path">app.py</parameter>\n'
        + '<parameter name="content">'
        + (code * (third // len(code) + 1))[:third]
        + '</parameter>\n<parameter name="mode">420</parameter>\n</invoke>\n</minimax:tool_call>'
    )


def many_parameters(count: int) -> str:
    """One call with ``count`` short parameters (a wide form, a batch of settings)."""
    params = "".join(f'<parameter name="field_{i}">value number {i}</parameter>\n' for i in range(count))
    call = f'<invoke name="write_file">\n{params}</invoke>'
    return f"Fill the form.\n</think>\n\n<minimax:tool_call>\n{call}\n</minimax:tool_call>"


def deltas(tok: Any, prompt: list[int], text: str) -> list[tuple[str, list[int]]]:
    """(delta_text, [token]) per token, as vLLM's detokenizer produces them for skip_special_tokens=False."""
    request = EngineCoreRequest(
        "bench", prompt, None, SamplingParams(skip_special_tokens=False), None, time.time(), None, None, None
    )
    detok = IncrementalDetokenizer.from_new_request(tok, request)
    ids = tok.encode(text, add_special_tokens=False)
    out = []
    for i, token in enumerate(ids):
        detok.update([token], stop_terminated=False)
        out.append((detok.get_next_output_text(i == len(ids) - 1, delta=True), [token]))
    return out


def run_once(
    name: str,
    tok: Any,
    tools: list[dict[str, Any]] | None,
    prompt: list[int],
    steps: list[tuple[str, list[int]]],
    kwargs: dict[str, Any] | None = None,
) -> tuple[list[float], dict[str, Any]]:
    """Seconds per delta for one streamed request, and what the deltas reassemble to."""
    parser_cls = ParserManager.get_parser(
        tool_parser_name=name, reasoning_parser_name=name, enable_auto_tools=True, tokenizer=tok
    )
    assert parser_cls is not None
    kwargs = kwargs or {}
    request = ChatCompletionRequest(
        model="m", messages=[{"role": "user", "content": "hi"}], tools=tools, stream=True, chat_template_kwargs=kwargs
    )
    processor = ChatStreamProcessor(
        request, parser_cls(tok, request.tools, chat_template_kwargs=kwargs, model_config=None),
        enable_auto_tools=True, parser_cls=parser_cls,
    )  # fmt: skip
    got: dict[str, Any] = {"content": "", "reasoning": "", "calls": {}}
    times: list[float] = []
    clock: Callable[[], float] = time.perf_counter
    last = len(steps) - 1
    gc.disable()
    try:
        for i, (text, ids) in enumerate(steps):
            t0 = clock()
            delta = processor.step(text, ids, "stop" if i == last else None, prompt).delta
            times.append(clock() - t0)
            if delta is not None:
                got["content"] += delta.content or ""
                got["reasoning"] += delta.reasoning or ""
                for tc in delta.tool_calls:
                    call = got["calls"].setdefault(tc.index, ["", ""])
                    if tc.function is not None:
                        call[0] += tc.function.name or ""
                        call[1] += tc.function.arguments or ""
    finally:
        gc.enable()
    return times, got


def agrees(got: dict[str, Any], text: str, tools: list[dict[str, Any]] | None, **options: Any) -> bool:
    ref = parse(text, tools, **options)
    calls = [tuple(c) for _, c in sorted(got["calls"].items())]
    return (got["content"].strip(), got["reasoning"].strip(), calls) == (
        ref.content.strip(),
        (ref.reasoning_content or "").strip(),
        [(c.name, c.arguments_json) for c in ref.tool_calls],
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller outputs (a smoke run)")
    args = ap.parse_args()
    tok = get_cached_tokenizer(tiny_tokenizer("special"))  # as vLLM serves it (vocab looked up once)
    prompt = tok.encode(GENERATION_PROMPT, add_special_tokens=False)

    print("fixtures, one token per delta: µs per delta (mean, median), and how many reassemble to parse()")
    fixtures = [fx for fx in all_fixtures() if fx.options.get("reasoning", "separated") == "separated"]
    fixtures = [fx for fx in fixtures if fx.options.get("starts_in_reasoning", True)]
    for label, name in PARSERS.items():
        per_delta, ok = [], 0
        for fx in fixtures:
            tools = [t if "function" in t else {"type": "function", "function": t} for t in fx.tools or []] or None
            times, got = run_once(name, tok, tools, prompt, deltas(tok, prompt, fx.text))
            per_delta += times
            ok += agrees(got, fx.text, fx.tools)
        mean, median = statistics.fmean(per_delta) * 1e6, statistics.median(per_delta) * 1e6
        print(f"  {label:16} mean {mean:6.1f}  median {median:6.1f}   agrees with parse(): {ok}/{len(fixtures)}")

    series = [
        ("long output: reasoning, content, one long argument (chars)", long_output, [2_000, 8_000, 32_000, 128_000]),
        ("one call with many parameters (parameters)", many_parameters, [25, 100, 400]),
    ]
    for title, make, sizes in series:
        print(f"\n{title}: µs per delta, mean over the output | mean over its last 10% of deltas")
        print(f"  {'size':>8} {'deltas':>7}  " + "  ".join(f"{label:>26}" for label in PARSERS))
        for size in sizes[:2] if args.quick else sizes:
            text = make(size)
            steps = deltas(tok, prompt, text)
            cells = []
            for name in PARSERS.values():
                times, got = run_once(name, tok, TOOLS, prompt, steps)
                tail = times[-max(1, len(times) // 10) :]
                mark = "" if agrees(got, text, TOOLS) else " (!)"
                cells.append(f"{statistics.fmean(times) * 1e6:9.1f} | {statistics.fmean(tail) * 1e6:9.1f}{mark:>4}")
            print(f"  {size:8d} {len(steps):7d}  " + "  ".join(f"{c:>26}" for c in cells))
    bench_m3(args.quick)
    print("\n(!) = the reassembled message differs from m2parse.parse() of the same text")
    return 0


def m3_long_output(chars: int) -> str:
    """MiniMax-M3, "enabled": a third reasoning, a third content, a third one code argument."""
    third = max(1, chars // 3)
    prose = "The user wants code run; I check the snippet and the timeout first. "
    code = "def handler(event, context):\n    return {'status': 200, \"body\": event['body']}\n\n"
    body = el("code", (code * (third // len(code) + 1))[:third]) + el("timeout", "2.5")
    return (
        (prose * (third // len(prose) + 1))[:third]
        + "</mm:think>"
        + (prose * (third // len(prose) + 1))[:third]
        + f"]<]minimax[>[<tool_call>\n{invoke('run_code', body)}]<]minimax[>[</tool_call>"
    )


def m3_many_items(count: int) -> str:
    """MiniMax-M3, "enabled": one call whose array argument holds ``count`` nested objects."""
    items = "".join(el("item", el("sku", f"sku-{i}") + el("qty", str(i))) for i in range(count))
    call = invoke("create_order", el("customer", el("name", "Ana")) + el("items", items))
    return f"Fill the order.</mm:think>]<]minimax[>[<tool_call>\n{call}]<]minimax[>[</tool_call>"


def bench_m3(quick: bool) -> None:
    tok = get_cached_tokenizer(tiny_m3_tokenizer("plain"))
    print("\nMiniMax-M3 cases, one token per delta: µs per delta (mean, median), and how many reassemble to parse()")
    cases = [c for c in m3_cases() if dict(c.options).get("reasoning") != "inline"]
    for label, name in M3_PARSERS.items():
        per_delta, ok = [], 0
        for case in cases:
            kwargs = {"thinking_mode": case.thinking_mode} if case.thinking_mode else {}
            prompt = tok.encode(generation_prompt(case.thinking_mode), add_special_tokens=False)
            tools = [t if "function" in t else {"type": "function", "function": t} for t in case.tools or []] or None
            times, got = run_once(name, tok, tools, prompt, deltas(tok, prompt, case.text), kwargs)
            per_delta += times
            options = {"format": "m3", "thinking_mode": case.thinking_mode, **dict(case.options)}
            ok += agrees(got, case.text, case.tools, **options)
        mean, median = statistics.fmean(per_delta) * 1e6, statistics.median(per_delta) * 1e6
        print(f"  {label:18} mean {mean:6.1f}  median {median:6.1f}   agrees with parse(): {ok}/{len(cases)}")

    kwargs = {"thinking_mode": "enabled"}
    prompt = tok.encode(generation_prompt("enabled"), add_special_tokens=False)
    series = [
        ("M3 long output: reasoning, content, one long argument (chars)", m3_long_output, [2_000, 8_000, 32_000]),
        ("M3 one call, an array of N nested objects (N)", m3_many_items, [25, 100, 400]),
    ]
    for title, make, sizes in series:
        print(f"\n{title}: µs per delta, mean over the output | mean over its last 10% of deltas")
        print(f"  {'size':>8} {'deltas':>7}  " + "  ".join(f"{label:>26}" for label in M3_PARSERS))
        for size in sizes[:2] if quick else sizes:
            text = make(size)
            steps = deltas(tok, prompt, text)
            cells = []
            for name in M3_PARSERS.values():
                times, got = run_once(name, tok, M3_TOOLS, prompt, steps, kwargs)
                tail = times[-max(1, len(times) // 10) :]
                mark = "" if agrees(got, text, M3_TOOLS, format="m3", thinking_mode="enabled") else " (!)"
                cells.append(f"{statistics.fmean(times) * 1e6:9.1f} | {statistics.fmean(tail) * 1e6:9.1f}{mark:>4}")
            print(f"  {size:8d} {len(steps):7d}  " + "  ".join(f"{c:>26}" for c in cells))


if __name__ == "__main__":
    raise SystemExit(main())
