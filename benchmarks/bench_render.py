"""Rendering speed: render_prompt() against transformers' jinja rendering of the same official template.

A 50-turn agent conversation with tools (user turns, assistant turns with reasoning and parallel tool calls,
tool results). transformers is timed twice: through ``render_jinja_template`` (what ``apply_chat_template``
runs, input copying included) and as the bare compiled template's ``render()`` (jinja alone).

    python benchmarks/bench_render.py [--template MiniMax-M2] [--reference ../shared/reference] [--repeat 7]

``--template MiniMax-M3`` times the M3 renderer on the same conversation (its reference template renders it too).
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit
from pathlib import Path
from typing import Any

from m2parse.render import render_prompt

ROOT = Path(__file__).resolve().parent.parent
SPECIAL_TOKENS = {"bos_token": "]~!b[", "eos_token": "[e~[", "unk_token": "]!d~["}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name}: an example tool with a few typed parameters.",
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "what to look up"},
                    "limit": {"type": "integer", "minimum": 1},
                    "filters": {"type": "object", "properties": {"lang": {"type": "string"}}},
                },
                "required": ["query"],
            },
        },
    }
    for name in ("search", "fetch_page", "run_python", "get_weather")
]


def conversation(turns: int = 50) -> list[dict[str, Any]]:
    """``turns`` messages: a system prompt, then user / assistant(+calls) / tool results in an agent loop."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are a careful research agent. " * 4}]
    step = 0
    while len(messages) < turns:
        step += 1
        if step % 4 == 1:
            messages.append({"role": "user", "content": f"Question {step}: what changed in Köln since 2020? " * 3})
            continue
        calls = [
            {
                "id": f"call_{step}_{k}",
                "type": "function",
                "function": {
                    "name": TOOLS[(step + k) % len(TOOLS)]["function"]["name"],
                    "arguments": {"query": f"köln {step} {k}", "limit": 5, "filters": {"lang": "de"}},
                },
            }
            for k in range(2)
        ]
        messages.append(
            {
                "role": "assistant",
                "content": "Let me look this up." if step % 2 else "",
                "reasoning_content": f"Step {step}: I should search twice and compare the results. " * 3,
                "tool_calls": calls,
            }
        )
        messages += [
            {"role": "tool", "tool_call_id": c["id"], "content": f"Result for {c['id']}: " + "lorem ipsum " * 20}
            for c in calls
        ]
    return messages[:turns]


def best_per_call(fn: Any, repeat: int) -> float:
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat=repeat, number=number)) / number


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", default="MiniMax-M2")
    default_reference = os.environ.get("M2PARSE_REFERENCE_DIR") or str(ROOT.parent / "shared" / "reference")
    parser.add_argument("--reference", default=default_reference, help="folder of <template>/chat_template.jinja")
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    try:
        from transformers.utils.chat_template_utils import _compile_jinja_template, render_jinja_template
    except ImportError:
        print("needs transformers (pip install 'm2parse[conformance]')", file=sys.stderr)
        return 2
    source = (Path(args.reference) / args.template / "chat_template.jinja").read_text(encoding="utf-8")
    messages = conversation(args.turns)

    def ours() -> str:
        return render_prompt(messages, TOOLS, template=args.template)

    def transformers_render() -> str:
        out, _ = render_jinja_template(
            conversations=[messages], tools=TOOLS, chat_template=source, add_generation_prompt=True, **SPECIAL_TOKENS
        )
        return out[0]

    compiled = _compile_jinja_template(source)

    def jinja_only() -> str:
        return compiled.render(messages=messages, tools=TOOLS, add_generation_prompt=True, **SPECIAL_TOKENS)

    prompt = ours()
    assert prompt == transformers_render() == jinja_only(), "outputs differ: run the conformance tests"
    t_ours = best_per_call(ours, args.repeat)
    t_hf = best_per_call(transformers_render, args.repeat)
    t_jinja = best_per_call(jinja_only, args.repeat)
    print(f"python {sys.version.split()[0]}; best of {args.repeat} runs per timing")
    print(f"{args.template}: {len(messages)} messages, {len(TOOLS)} tools, prompt {len(prompt):,} chars")
    print(f"  m2parse render_prompt           {t_ours * 1e3:8.3f} ms")
    print(f"  transformers render_jinja       {t_hf * 1e3:8.3f} ms   ratio {t_hf / t_ours:5.1f}x slower")
    print(f"  jinja compiled.render() alone   {t_jinja * 1e3:8.3f} ms   ratio {t_jinja / t_ours:5.1f}x slower")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
