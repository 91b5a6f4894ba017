"""Per-delta cost inside SGLang: m2parse's detectors against SGLang's built-in ``minimax-m2`` pair.

Both pairs run the way SGLang's chat serving runs them for one streamed request: a ``ReasoningParser`` and a
``FunctionCallParser`` built from the parser names, each delta through the reasoning parser first and its normal
text through the tool parser, both flushed at the end. The built-in pair is the one in MiniMax's deployment
guide (``--tool-call-parser minimax-m2 --reasoning-parser minimax-append-think``); m2parse's is
``--tool-call-parser m2parse --reasoning-parser m2parse``. Deltas are 4 characters.

Three outputs, each at 1 KB, 100 KB and 1 MB: one long string argument (``arguments``), a long reasoning
(``reasoning``), a long answer (``content``). A run that exceeds the time budget is stopped and reported with
the deltas it did (the cost per delta still shows). MiniMax-M3 rows: SGLang's ``minimax-m3`` pair against
``m2parse-m3``, ``thinking_mode`` "enabled" in the request's ``chat_template_kwargs``, for one long string
argument and one call with a growing array of nested objects. Run in the SGLang venv (``.ci/run_sglang.sh`` makes one):
``python benchmarks/bench_sglang.py [--quick]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sglang.srt.entrypoints.openai.protocol import ChatCompletionRequest, Tool  # noqa: E402
from sglang.srt.function_call.function_call_parser import FunctionCallParser  # noqa: E402
from sglang.srt.parser.reasoning_parser import ReasoningParser  # noqa: E402

from m2parse import parse  # noqa: E402
from m2parse.format import THINK_CLOSE, THINK_OPEN, TOOL_CALL_CLOSE, TOOL_CALL_OPEN  # noqa: E402
from m2parse.formats import m3  # noqa: E402
from m2parse.integrations.sglang import register  # noqa: E402
from tests.m3_cases import TOOLS as M3_TOOLS  # noqa: E402
from tests.m3_cases import el, invoke  # noqa: E402

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
#: label -> (tool-call parser, reasoning parser)
PAIRS = {"sglang minimax-m2": ("minimax-m2", "minimax-append-think"), "m2parse": ("m2parse", "m2parse")}
DELTA = 4
#: M2 writes these as single tokens, so a delta never splits them (the built-in detector relies on that).
MARKERS = re.compile(
    "(" + "|".join(re.escape(m) for m in (THINK_OPEN, THINK_CLOSE, TOOL_CALL_OPEN, TOOL_CALL_CLOSE)) + ")"
)
#: M3's markers (single tokens in its tokenizer): the think tags and the namespace token.
M3_MARKERS = re.compile("(" + "|".join(re.escape(m) for m in (m3.THINK_OPEN, m3.THINK_CLOSE, m3.NAMESPACE)) + ")")
M3_PAIRS = {"sglang minimax-m3": ("minimax-m3", "minimax-m3"), "m2parse-m3": ("m2parse-m3", "m2parse-m3")}
M3_OUTPUTS: dict[str, Callable[[int], str]] = {
    "arguments": lambda size: (
        "Run it.</mm:think>Running."
        + f"{m3.TOOL_CALL_OPEN}\n{invoke('run_code', el('code', _fill(CODE, size)) + el('timeout', '2.5'))}"
        + m3.TOOL_CALL_CLOSE
    ),
    "nested": lambda size: (
        "Order.</mm:think>"
        + m3.TOOL_CALL_OPEN
        + "\n"
        + invoke(
            "create_order",
            el("items", "".join(el("item", el("sku", f"sku-{i}") + el("qty", str(i))) for i in range(size // 60))),
        )
        + m3.TOOL_CALL_CLOSE
    ),
}
PROSE = "The user wants a file written; I check the path, the mode and the content first. "
CODE = "def handler(event, context):\n    return {'status': 200, \"body\": event['body']}\n\n"


def _fill(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def _call(argument: str) -> str:
    return (
        '<minimax:tool_call>\n<invoke name="write_file">\n<parameter name="path">app.py</parameter>\n'
        f'<parameter name="content">{argument}</parameter>\n<parameter name="mode">420</parameter>\n'
        "</invoke>\n</minimax:tool_call>"
    )


OUTPUTS: dict[str, Callable[[int], str]] = {
    "arguments": lambda size: "Write it.\n</think>\n\nWriting.\n" + _call(_fill(CODE, size)),
    "reasoning": lambda size: _fill(PROSE, size) + "\n</think>\n\nDone.",
    "content": lambda size: "Answer.\n</think>\n\n" + _fill(PROSE, size),
}


@dataclass
class Run:
    times: list[float] = field(default_factory=list)
    content: str = ""
    reasoning: str = ""
    calls: dict[int, list[str]] = field(default_factory=dict)
    finished: bool = True

    def per_delta_us(self) -> tuple[float, float]:
        """Mean and median µs per delta."""
        return statistics.fmean(self.times) * 1e6, statistics.median(self.times) * 1e6


def deltas_of(text: str, markers: re.Pattern[str] = MARKERS) -> list[str]:
    """``DELTA``-character deltas, each marker one delta of its own."""
    out: list[str] = []
    for part in markers.split(text):
        if markers.fullmatch(part):
            out.append(part)
        else:
            out += [part[i : i + DELTA] for i in range(0, len(part), DELTA)]
    return out


def run_pair(
    pair: tuple[str, str], text: str, budget: float, tool_list: list[dict] = TOOLS, request: object = None
) -> Run:
    """One streamed request through both parsers, as serving_chat drives them; stops past ``budget`` seconds."""
    tool_name, reasoning_name = pair
    tools = [Tool.model_validate(t) for t in tool_list]
    reasoning_parser = ReasoningParser(reasoning_name, True, None, request, tool_call_parser_active=True)
    tool_parser = FunctionCallParser(tools, tool_name)
    out = Run()
    deltas = deltas_of(text, M3_MARKERS if request is not None else MARKERS)
    clock = time.perf_counter
    started = clock()
    gc.disable()
    try:
        for n, delta in enumerate(deltas):
            last = n == len(deltas) - 1
            t0 = clock()
            reasoning, normal = reasoning_parser.parse_stream_chunk(delta)
            if last:
                end_reasoning, end_normal = reasoning_parser.parse_stream_end()
                reasoning, normal = (reasoning or "") + (end_reasoning or ""), (normal or "") + (end_normal or "")
            content, calls = tool_parser.parse_stream_chunk(normal or "")
            if last:
                end_content, end_calls = tool_parser.parse_stream_end()
                content, calls = content + end_content, [*calls, *end_calls]
            out.times.append(clock() - t0)
            out.reasoning += reasoning or ""
            out.content += content
            for call in calls:
                entry = out.calls.setdefault(call.tool_index, ["", ""])
                entry[0] += call.name or ""
                entry[1] += call.parameters
            if clock() - started > budget and not last:
                out.finished = False
                break
    finally:
        gc.enable()
    return out


def agrees(run: Run, text: str) -> bool:
    ref = parse(text, TOOLS)
    calls = [(name, args) for _, (name, args) in sorted(run.calls.items())]
    return (run.content, run.reasoning, calls) == (
        ref.content,
        ref.reasoning_content or "",
        [(c.name, c.arguments_json) for c in ref.tool_calls],
    )


def arguments_equal(run: Run, text: str) -> bool:
    """The built-in pair keeps reasoning in content; compare only the call it reassembles."""
    ref = parse(text, TOOLS)
    try:
        got = [(name, json.loads(args)) for _, (name, args) in sorted(run.calls.items())]
    except json.JSONDecodeError:
        return False
    return got == [(c.name, c.arguments) for c in ref.tool_calls]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 KB and 20 KB, 5 s budget per run (CI smoke, < 1 min)")
    ap.add_argument("--budget", type=float, default=None, help="seconds per run before it is stopped (default 60)")
    args = ap.parse_args()
    register()
    sizes = [1_000, 20_000] if args.quick else [1_000, 100_000, 1_000_000]
    budget = args.budget if args.budget is not None else (5.0 if args.quick else 60.0)

    print(f"µs per {DELTA}-character delta (markers whole): mean | median")
    print(f"  {'output':10} {'size':>9} {'deltas':>8}  " + "  ".join(f"{label:>26}" for label in PAIRS))
    for shape, make in OUTPUTS.items():
        for size in sizes:
            text = make(size)
            cells = []
            for label, pair in PAIRS.items():
                run = run_pair(pair, text, budget)
                mean, tail = run.per_delta_us()
                if not run.finished:
                    mark = f" (stopped at {len(run.times) * DELTA // 1000} KB)"
                elif label == "m2parse":
                    mark = "" if agrees(run, text) else " (!)"
                else:
                    mark = "" if shape != "arguments" or arguments_equal(run, text) else " (≠)"
                cells.append(f"{mean:9.1f} | {tail:9.1f}{mark}")
            print(f"  {shape:10} {len(text):9d} {len(deltas_of(text)):8d}  " + "  ".join(f"{c:>26}" for c in cells))
    bench_m3(sizes[:2], budget)
    print(
        "\n(!) = m2parse's reassembled message differs from parse(); (≠) = the built-in pair's call arguments differ"
        " from parse()'s (it strips string values); stopped = over the time budget, the cost shown is for the"
        " deltas done"
    )
    return 0


def bench_m3(sizes: list[int], budget: float) -> None:
    request = ChatCompletionRequest(
        model="m", messages=[{"role": "user", "content": "hi"}], chat_template_kwargs={"thinking_mode": "enabled"}
    )
    print(f"\nMiniMax-M3, thinking_mode enabled: µs per {DELTA}-character delta (markers whole): mean | median")
    print(f"  {'output':10} {'size':>9} {'deltas':>8}  " + "  ".join(f"{label:>26}" for label in M3_PAIRS))
    for shape, make in M3_OUTPUTS.items():
        for size in sizes:
            text = make(size)
            ref = parse(text, M3_TOOLS, format="m3", thinking_mode="enabled")
            cells = []
            for pair in M3_PAIRS.values():
                run = run_pair(pair, text, budget, M3_TOOLS, request)
                mean, median = run.per_delta_us()
                try:
                    got = [(n, json.loads(a)) for _, (n, a) in sorted(run.calls.items())]
                except json.JSONDecodeError:
                    got = []
                mark = "" if got == [(c.name, c.arguments) for c in ref.tool_calls] else " (≠)"
                if not run.finished:
                    mark = f" (stopped at {len(run.times) * DELTA // 1000} KB)"
                cells.append(f"{mean:9.1f} | {median:9.1f}{mark}")
            deltas = len(deltas_of(text, M3_MARKERS))
            print(f"  {shape:10} {len(text):9d} {deltas:8d}  " + "  ".join(f"{c:>26}" for c in cells))


if __name__ == "__main__":
    raise SystemExit(main())
