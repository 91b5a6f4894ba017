"""The grammar property at benchmark scale, against a real engine, and the same requests without the grammar.

For hypothesis tool lists (nested objects, arrays, enums, unions, integers, strings with ``<`` and newlines)
each example asks the kit's tiny model through ``m2parse serve`` with ``tool_choice`` required or a named
function (tests/engines/grammar_property.py), then the same request with the grammar switched off through
``m2parse.backend_extra``. Prints how many examples ran, how many replies held the guarantee (no problem, a call
of an allowed tool, valid arguments), and what the unconstrained replies were.

Run it in the engine's venv, with the engine started for you:

    .venv-engine-llamacpp/bin/python benchmarks/bench_grammar.py --llamacpp ~/.cache/m2parse-engines/llama-server-0.3.36
    .venv-engine-vllm/bin/python benchmarks/bench_grammar.py --vllm
    python benchmarks/bench_grammar.py --serve http://127.0.0.1:9000 --backend-type llamacpp   # already running

``--examples N`` (default 200), ``--seed S`` (hypothesis seed; default 0).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the strategies and the engine kit live with the tests

import openai  # noqa: E402
from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.engines.grammar_property import ask, check_reply  # noqa: E402
from tests.grammar_strategies import tool_lists  # noqa: E402

#: the body field that switches a backend's grammar off (the client's backend_extra wins over m2parse's)
GRAMMAR_OFF = {"llamacpp": {"grammar": ""}, "vllm": {"structured_outputs": None}, "sglang": {"ebnf": None}}


def unconstrained(client: openai.OpenAI, tools: list[dict[str, Any]], choice: Any, backend_type: str) -> Any:
    return ask(client, tools, choice, backend_extra=GRAMMAR_OFF[backend_type])


def run(url: str, backend_type: str, examples: int, hypothesis_seed: int) -> None:
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", timeout=600, max_retries=0)
    counts: Counter[str] = Counter()
    seconds: list[float] = []

    @seed(hypothesis_seed)
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(tools=tool_lists(bounded=True), data=st.data())
    def one(tools: list[dict[str, Any]], data: Any) -> None:
        names = [t["function"]["name"] for t in tools]
        pick = data.draw(st.sampled_from(["required", *names]))
        choice: Any = pick if pick == "required" else {"type": "function", "function": {"name": pick}}
        counts["examples"] += 1
        counts["named" if pick != "required" else "required"] += 1
        started = time.monotonic()
        try:
            summary = check_reply(ask(client, tools, choice), tools, choice)
            counts["held"] += 1
            counts["calls"] += summary["calls"]
            counts["with notes (validation not claimed)"] += bool(summary["notes"])
        except AssertionError as exc:
            counts["FAILED"] += 1
            print("FAILED:", str(exc)[:400], file=sys.stderr)
        seconds.append(time.monotonic() - started)
        reply = unconstrained(client, tools, choice, backend_type).choices[0]
        problems = reply.model_extra["m2parse"]["problems"]
        counts["unconstrained: with a tool call"] += bool(reply.message.tool_calls)
        counts["unconstrained: empty output"] += not (reply.message.content or reply.message.tool_calls)
        counts["unconstrained: with problems"] += bool(problems)

    one()
    seconds.sort()
    print(f"engine {backend_type}, {counts['examples']} examples (hypothesis seed {hypothesis_seed})")
    for key, value in counts.items():
        print(f"  {key}: {value}")
    if seconds:
        print(f"  constrained request: median {seconds[len(seconds) // 2]:.2f} s, max {seconds[-1]:.2f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--serve", metavar="URL", help="a running m2parse serve")
    where.add_argument("--llamacpp", metavar="ENGINE_DIR", help="start llama-server from ENGINE_DIR/bin")
    where.add_argument("--vllm", action="store_true", help="start vLLM on CPU (the engine venv)")
    parser.add_argument("--backend-type", default="llamacpp", choices=sorted(GRAMMAR_OFF))
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        if args.serve:
            url, kind = args.serve, args.backend_type
        else:
            logs = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            from tests.engines import model_kit as kit

            kit_dir = kit.build_hf_model()
            if args.llamacpp:
                from tests.engines.gguf import convert
                from tests.engines.llamacpp.processes import llama_server, m2parse_serve

                engine = Path(args.llamacpp)
                server = stack.enter_context(
                    llama_server(engine / "bin" / "llama-server", convert(kit_dir, engine), logs / "llama.log")
                )
                url = stack.enter_context(m2parse_serve(server.url, "llamacpp", logs / "serve.log")).url
                kind = "llamacpp"
            else:
                from tests.engines.vllm_suite.processes import m2parse_serve as vllm_serve
                from tests.engines.vllm_suite.processes import vllm_server

                server = stack.enter_context(
                    vllm_server(kit_dir, kit.default_cache_dir() / "vllm-cache", logs / "vllm.log")
                )
                url = stack.enter_context(vllm_serve(server.url, logs / "serve.log")).url
                kind = "vllm"
        run(url, kind, args.examples, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
