"""m2parse beside vLLM's ``minimax_m3`` and SGLang's ``minimax-m3`` parsers, over the same MiniMax-M3 outputs.

The outputs are ``tests/m3_cases.py``: the M3 fixtures plus hand-written ones for nested objects and arrays,
strings holding ``<``, truncation, whitespace between tags, a missing ``</mm:think>``, unknown keys and tools.
Each peer runs in its own virtual environment, the way its server runs it:

- vLLM 0.33 (``.venv-ci-integrations``): the reasoning + tool parser pair from ``ParserManager``, non-streaming
  (``Parser.parse``) and streamed one token per delta through ``ChatStreamProcessor``, with the request's
  ``chat_template_kwargs.thinking_mode``;
- SGLang 0.5.23 (``.venv-ci-sglang``): ``ReasoningParser("minimax-m3")`` then ``FunctionCallParser(...,
  "minimax-m3")``, non-streaming and streamed one token per delta (the markers arrive whole, as SGLang's
  detector expects), with ``force_reasoning`` as SGLang's serving code sets it for ``minimax-m3``
  (``thinking_mode == "enabled"``);
- m2parse: ``parse(text, tools, format="m3", thinking_mode=…)``.

``python benchmarks/compare_m3_peers.py`` (from any environment with m2parse) runs the peers in their venvs
(``--vllm-python`` / ``--sglang-python`` override where) and prints the Markdown table of every case where an
engine's message differs from m2parse's; ``--peer vllm|sglang`` is the per-venv half it calls. The table in
docs/peers-m3.md is this script's output.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from m2parse import parse  # noqa: E402
from tests.m3_cases import Case, generation_prompt, m3_cases, tiny_m3_tokenizer  # noqa: E402

ENGINES = {"m2parse": "m2parse", "vllm": "vLLM `minimax_m3`", "sglang": "SGLang `minimax-m3`"}


def openai_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    return [t if "function" in t else {"type": "function", "function": t} for t in tools] if tools else None


def message(content: Any, reasoning: Any, calls: list[tuple[str, str]]) -> dict[str, Any]:
    """One engine's answer, normalised: empty text is None, arguments decoded when they are JSON."""
    decoded = []
    for name, arguments in calls:
        try:
            decoded.append([name, json.loads(arguments)])
        except (TypeError, ValueError):
            decoded.append([name, f"(not JSON) {arguments}"])
    return {"content": content or None, "reasoning": reasoning or None, "tool_calls": decoded}


def ours(case: Case) -> dict[str, Any]:
    result = parse(case.text, case.tools, format="m3", thinking_mode=case.thinking_mode, **dict(case.options))
    calls = [(c.name, c.arguments_json) for c in result.tool_calls]
    return message(result.content, result.reasoning_content, calls)


# ---------------------------------------------------------------------------------------------- vLLM


def run_vllm(cases: list[Case]) -> dict[str, Any]:
    from vllm import SamplingParams
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.entrypoints.openai.chat_completion.stream_processor import ChatStreamProcessor
    from vllm.parser import ParserManager
    from vllm.v1.engine import EngineCoreRequest
    from vllm.v1.engine.detokenizer import IncrementalDetokenizer

    tok = tiny_m3_tokenizer("plain")
    cls = ParserManager.get_parser(
        tool_parser_name="minimax_m3", reasoning_parser_name="minimax_m3", enable_auto_tools=True, tokenizer=tok
    )
    out: dict[str, Any] = {}
    for case in cases:
        kwargs = {"thinking_mode": case.thinking_mode} if case.thinking_mode else {}
        prompt = tok.encode("]~b]user\nhi[e~[\n" + generation_prompt(case.thinking_mode), add_special_tokens=False)

        def request(stream: bool, case: Case = case, kwargs: dict[str, Any] = kwargs) -> Any:
            return ChatCompletionRequest(
                model="m",
                messages=[{"role": "user", "content": "hi"}],
                tools=openai_tools(case.tools),
                stream=stream,
                chat_template_kwargs=kwargs,
            )

        entry: dict[str, Any] = {}
        try:
            parser = cls(tok, request(False).tools, chat_template_kwargs=kwargs, model_config=None)
            parser.set_prompt_token_ids(prompt)
            reasoning, content, calls = parser.parse(case.text, request(False), enable_auto_tools=True)
            entry["whole"] = message(content, reasoning, [(c.name, c.arguments) for c in calls or []])
        except Exception as exc:  # a peer's crash is a finding, not the end of the comparison
            entry["whole"] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
        try:
            req = request(True)
            processor = ChatStreamProcessor(
                req,
                cls(tok, req.tools, chat_template_kwargs=kwargs, model_config=None),
                enable_auto_tools=True,
                parser_cls=cls,
            )
            ids = tok.encode(case.text, add_special_tokens=False)
            params = SamplingParams(skip_special_tokens=False)
            detok = IncrementalDetokenizer.from_new_request(
                tok, EngineCoreRequest("r", prompt, None, params, None, time.time(), None, None, None)
            )
            content, reasoning, calls_by_index = "", "", {}
            for i, token in enumerate(ids):
                last = i == len(ids) - 1
                detok.update([token], stop_terminated=False)
                finish = ("length" if case.truncated else "stop") if last else None
                delta = processor.step(detok.get_next_output_text(last, delta=True), [token], finish, prompt).delta
                if delta is None:
                    continue
                content += delta.content or ""
                reasoning += delta.reasoning or ""
                for tc in delta.tool_calls:
                    call = calls_by_index.setdefault(tc.index, ["", ""])
                    if tc.function is not None:
                        call[0] += tc.function.name or ""
                        call[1] += tc.function.arguments or ""
            entry["stream"] = message(content, reasoning, [tuple(c) for _, c in sorted(calls_by_index.items())])
        except Exception as exc:
            entry["stream"] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
        out[case.name] = entry
    return out


# ---------------------------------------------------------------------------------------------- SGLang


def run_sglang(cases: list[Case]) -> dict[str, Any]:
    from sglang.srt.entrypoints.openai.protocol import ChatCompletionRequest
    from sglang.srt.function_call.function_call_parser import FunctionCallParser
    from sglang.srt.parser.reasoning_parser import ReasoningParser

    tok = tiny_m3_tokenizer("plain")
    out: dict[str, Any] = {}
    for case in cases:
        kwargs = {"thinking_mode": case.thinking_mode} if case.thinking_mode else {}
        tools = openai_tools(case.tools)

        def request(stream: bool, tools: Any = tools, kwargs: dict[str, Any] = kwargs) -> Any:
            messages = [{"role": "user", "content": "hi"}]
            return ChatCompletionRequest(
                model="m", messages=messages, tools=tools, stream=stream, chat_template_kwargs=kwargs
            )

        def reasoning_parser(stream: bool, kwargs: dict[str, Any] = kwargs, case: Case = case) -> Any:
            # what serving_chat passes: force_reasoning from the thinking switch the template reads
            force = kwargs.get("thinking_mode") == "enabled"
            return ReasoningParser(
                "minimax-m3", stream, force, request(stream), tool_call_parser_active=bool(case.tools)
            )

        entry: dict[str, Any] = {}
        try:
            reasoning, rest = reasoning_parser(False).parse_non_stream(case.text)
            calls: list[tuple[str, str]] = []
            content = rest
            if tools:
                parser = FunctionCallParser(request(False).tools, "minimax-m3")
                if parser.has_tool_call(rest or ""):
                    content, items = parser.parse_non_stream(rest or "")
                    calls = [(item.name, item.parameters) for item in items]
            entry["whole"] = message(content, reasoning, calls)
        except Exception as exc:
            entry["whole"] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
        try:
            rparser = reasoning_parser(True)
            fparser = FunctionCallParser(request(True).tools, "minimax-m3") if tools else None
            content, reasoning, by_index = "", "", {}
            for piece in token_deltas(tok, case.text):
                r, normal = rparser.parse_stream_chunk(piece)
                reasoning += r or ""
                if fparser is None:
                    content += normal or ""
                    continue
                normal, items = fparser.parse_stream_chunk(normal or "")
                content += normal or ""
                for item in items:
                    call = by_index.setdefault(item.tool_index, ["", ""])
                    call[0] += item.name or ""
                    call[1] += item.parameters or ""
            entry["stream"] = message(content, reasoning, [tuple(c) for _, c in sorted(by_index.items())])
        except Exception as exc:
            entry["stream"] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
        out[case.name] = entry
    return out


def token_deltas(tok: Any, text: str) -> list[str]:
    """The text one token at a time, as a detokenizer reports it (a character split across tokens waits)."""
    ids = tok.encode(text, add_special_tokens=False)
    out, before = [], ""
    for i in range(len(ids)):
        now = tok.decode(ids[: i + 1], skip_special_tokens=False)
        if now.endswith("\ufffd") and i < len(ids) - 1:
            continue
        out.append(now[len(before) :])
        before = now
    return out


# ---------------------------------------------------------------------------------------------- the table


def short(value: Any, width: int = 70) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("|", "\\|").replace("\n", "⏎")
    return text if len(text) <= width else text[: width - 1] + "…"


def first_difference(ours: Any, theirs: Any, path: str = "") -> tuple[str, Any] | None:
    """(where, their value there) at the first place two answers differ; None when they are equal. Values
    compare as JSON does: 1 and 1.0 differ, as do 2.5 and "2.5"."""
    if type(ours) is not type(theirs):
        return path, theirs
    if isinstance(ours, dict):
        for key in [*ours, *(k for k in theirs if k not in ours)]:
            if key not in ours or key not in theirs:
                return f"{path}.{key}", theirs.get(key, "(missing)")
            if (found := first_difference(ours[key], theirs[key], f"{path}.{key}")) is not None:
                return found
        return None
    if isinstance(ours, list):
        for i, (a, b) in enumerate(zip(ours, theirs, strict=False)):
            if (found := first_difference(a, b, f"{path}[{i}]")) is not None:
                return found
        return None if len(ours) == len(theirs) else (f"{path} length", len(theirs))
    return None if ours == theirs else (path, theirs)


def cell(answer: dict[str, Any] | None, key: str, reference: dict[str, Any]) -> str:
    if answer is None:
        return "(not run)"
    if "error" in answer:
        return "raises: " + short(answer["error"])
    found = first_difference(reference[key], answer[key], key)
    if found is None:
        return "same"
    where, value = found
    shown = "null" if value is None else "`" + short(value, 60) + "`"
    return shown if where == key else f"{where}: {shown}"


def table(cases: list[Case], peers: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| case | mode | field | m2parse | " + " | ".join(ENGINES[p] for p in ("vllm", "sglang")) + " |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    same = 0
    for case in cases:
        want = ours(case)
        rows = []
        for key in ("reasoning", "content", "tool_calls"):
            cells = []
            for peer in ("vllm", "sglang"):
                result = peers.get(peer, {}).get(case.name)
                whole = cell(result and result["whole"], key, want)
                stream = cell(result and result["stream"], key, want)
                cells.append(whole if whole == stream else f"{whole} (streamed: {stream})")
            if any(c not in ("same", "(not run)") for c in cells):
                rows.append(
                    f"| {case.name} | {case.thinking_mode or 'unset'} | {key} | `{short(want[key])}` | "
                    + " | ".join(cells)
                    + " |"
                )
        same += not rows
        lines += rows
    lines.append("")
    lines.append(f"{same} of {len(cases)} cases: all three agree on every field.")
    return "\n".join(lines)


def run_peer(python: str, peer: str) -> dict[str, Any]:
    if not Path(python).exists():
        print(f"(skipping {peer}: no interpreter at {python})", file=sys.stderr)
        return {}
    proc = subprocess.run(
        [python, str(Path(__file__).resolve()), "--peer", peer], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        print(f"{peer} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
        return {}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer", choices=("vllm", "sglang"), help="run one peer here and print its answers as JSON")
    ap.add_argument("--vllm-python", default=str(ROOT / ".venv-ci-integrations" / "bin" / "python"))
    ap.add_argument("--sglang-python", default=str(ROOT / ".venv-ci-sglang" / "bin" / "python"))
    ap.add_argument("--json", action="store_true", help="print every engine's answers as JSON instead of the table")
    args = ap.parse_args()
    # inline mode (reasoning kept in the content) is m2parse's own option, with no peer counterpart
    cases = [case for case in m3_cases() if dict(case.options).get("reasoning") != "inline"]
    if args.peer is not None:
        import logging

        logging.disable(logging.CRITICAL)
        found = run_vllm(cases) if args.peer == "vllm" else run_sglang(cases)
        print(json.dumps(found, ensure_ascii=False))
        return 0
    peers = {"vllm": run_peer(args.vllm_python, "vllm"), "sglang": run_peer(args.sglang_python, "sglang")}
    if args.json:
        print(json.dumps({"m2parse": {c.name: ours(c) for c in cases}, **peers}, ensure_ascii=False, indent=1))
        return 0
    print(table(cases, peers))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
