"""``m2parse stats INPUT...``: batch statistics over many raw outputs (``.txt`` files, folders, JSONL).

The progress bar is a few plain lines of code rather than tqdm or rich: it needs a count, a rate and a carriage
return on stderr, only when stderr is a terminal, and the core install stays dependency-free.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from ..schema import normalize_tools
from ..stats import (
    STATE_LABELS,
    STATES,
    Output,
    Stats,
    jsonl_outputs,
    parse_output,
    split_path,
)
from . import UsageError
from .common import read_tools

EPILOG = """inputs:
  FILE.txt         one raw output
  FILE.jsonl       one output per line: the string at --field, or an OpenAI completion there (choices[0].text;
                   its finish_reason "length" counts as truncated). '-' reads JSONL from stdin
  FOLDER           every .txt file in it (recursively), and every .jsonl file when --field is given

examples:
  m2parse stats fixtures/
  m2parse stats logs.jsonl --field response --tools tools.json --json"""

JSONL_SUFFIXES = (".jsonl", ".ndjson")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help=".txt files, folders, or JSONL files ('-': stdin)")
    parser.add_argument(
        "--field",
        metavar="PATH",
        help="where each JSONL line holds the output: a dotted path such as 'output' or 'response.choices[0].text' "
        "(default: the line itself when it is a string or an OpenAI completion, else 'text')",
    )
    parser.add_argument("--tools", metavar="TOOLS.json", help="OpenAI tools list, for typing and unknown_tool")
    parser.add_argument(
        "--no-think-prefix", action="store_true", help="the prompts did not end with <think>: outputs start in content"
    )
    parser.add_argument("--infer-types", action="store_true", help="read values of unknown parameters as JSON")
    parser.add_argument("--json", action="store_true", help="print the statistics as JSON instead of tables")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr (default: on a TTY)")


def run(args: argparse.Namespace) -> int:
    tools = read_tools(args.tools)
    specs = normalize_tools(tools) if tools else None
    options = {"starts_in_reasoning": not args.no_think_prefix, "infer_types": args.infer_types}
    try:
        path = split_path(args.field) if args.field else []
    except ValueError as exc:
        raise UsageError(f"--field: {exc}") from None
    stats = Stats()
    progress = Progress(sys.stderr) if not args.no_progress and sys.stderr.isatty() else None
    for output in outputs(args.inputs, path, args.field is not None, stats):
        result, seconds = parse_output(output, specs, options)
        stats.add(output, result, seconds)
        if progress is not None:
            progress.tick(stats.outputs)
    if progress is not None:
        progress.close(stats.outputs)
    data = stats.to_dict()
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        sys.stdout.write(table(data))
    return 0


def outputs(inputs: list[str], path: list[str | int], field_given: bool, stats: Stats) -> Iterator[Output]:
    """Every output of every input, one at a time, in the order given (folders sorted)."""
    for name in inputs:
        if name == "-":
            yield from jsonl_outputs(iter(sys.stdin), "<stdin>", path, stats)
            continue
        where = Path(name)
        if where.is_dir():
            for file in sorted(where.rglob("*")):
                if file.suffix == ".txt" or (field_given and file.suffix in JSONL_SUFFIXES):
                    yield from _file_outputs(file, path, stats)
        elif where.exists():
            yield from _file_outputs(where, path, stats)
        else:
            raise UsageError(f"{name}: no such file or folder")


def _file_outputs(file: Path, path: list[str | int], stats: Stats) -> Iterator[Output]:
    try:
        if file.suffix in JSONL_SUFFIXES or (path and file.suffix != ".txt"):
            with open(file, encoding="utf-8") as lines:
                yield from jsonl_outputs(lines, str(file), path, stats)
            return
        with open(file, encoding="utf-8", newline="") as handle:
            text = handle.read()
    except UnicodeDecodeError as exc:
        stats.skip(str(file), f"not UTF-8 ({exc.reason} at byte {exc.start})")
        return
    except OSError as exc:
        raise UsageError(f"{file}: {exc.strerror}") from None
    yield Output(str(file), text)


class Progress:
    """``12,345 outputs  3,210/s`` on one line of stderr, redrawn at most ten times a second."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.start = self.last = time.monotonic()

    def tick(self, count: int) -> None:
        now = time.monotonic()
        if now - self.last >= 0.1:
            self.last = now
            self._draw(count, now)

    def close(self, count: int) -> None:
        self._draw(count, time.monotonic())
        self.stream.write("\n")
        self.stream.flush()

    def _draw(self, count: int, now: float) -> None:
        rate = count / max(now - self.start, 1e-9)
        self.stream.write(f"\r{count:,} outputs  {rate:,.0f}/s ")
        self.stream.flush()


# ---------------------------------------------------------------------------------------------- human table


def table(data: dict[str, Any]) -> str:
    n = data["outputs"]
    lines = [
        f"outputs     {n:>9,}",
        f"clean       {data['clean']:>9,}  {data['clean_percent']:6.2f} %",
    ]
    if data["unreadable"]:
        lines.append(f"unreadable  {data['unreadable']:>9,}  (not counted in outputs)")
        lines += [f"  {example}" for example in data["unreadable_examples"]]
    rows = [(STATE_LABELS[s], data["finish_states"][s]["outputs"], data["finish_states"][s]["percent"]) for s in STATES]
    lines += _block("finish state", rows)
    rows = [(code, v["outputs"], v["percent"], v["occurrences"]) for code, v in data["problems"].items()]
    lines += _block("problem code", rows, extra="occurrences") if rows else ["", "problem code: none"]
    rows = [(name, v["outputs"], v["percent"], v["calls"]) for name, v in data["tools"].items()]
    lines += _block("tool", rows, extra="calls") if rows else ["", "tool: no calls"]
    sizes = data["sizes"]
    rows = [(_size_label(b["from"], b["below"]), b["outputs"], b["percent"]) for b in sizes["buckets"]]
    lines += _block("size (characters)", rows)
    lines.append(f"  min {sizes['min']:,}, mean {sizes['mean']:,.0f}, max {sizes['max']:,}")
    if data["slowest"]:
        lines += ["", f"slowest parses (of {data['parse_seconds']:.3f} s in all)"]
        for slow in data["slowest"]:
            lines.append(f"  {slow['seconds'] * 1000:9.3f} ms  {slow['source']} ({slow['characters']:,} characters)")
    return "\n".join(lines) + "\n"


def _block(title: str, rows: list[tuple[Any, ...]], extra: str | None = None) -> list[str]:
    width = max(len(title), *(len(str(row[0])) for row in rows)) if rows else len(title)
    head = f"{title:<{width}}  {'outputs':>9}  {'%':>6}" + (f"  {extra:>11}" if extra else "")
    out = ["", head]
    for row in rows:
        line = f"{row[0]!s:<{width}}  {row[1]:>9,}  {row[2]:6.2f}"
        if extra:
            line += f"  {row[3]:>11,}"
        out.append(line)
    return out


def _size_label(low: int, high: int | None) -> str:
    return f"{low:,}-{high - 1:,}" if high else f"{low:,}+"
