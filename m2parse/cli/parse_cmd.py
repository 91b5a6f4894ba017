"""``m2parse FILE``: the parsed assistant message as OpenAI-shaped JSON, with the problems beside it."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from ..events import Event
from ..formats import m3
from ..formats.detect import FORMATS
from ..parser import StreamParser, sequential_ids
from ..problems import M2ParseError
from . import UsageError
from .common import dump_json, read_text, read_tools

#: How many characters --stream feeds at a time (the output is the same for any size).
STREAM_DELTA = 16


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="raw model output to parse ('-' for stdin)")
    parser.add_argument("--tools", metavar="TOOLS.json", help="OpenAI tools list (or an object with 'tools')")
    parser.add_argument(
        "--inline-think", action="store_true", help="keep <think>…</think> in content instead of reasoning_content"
    )
    parser.add_argument(
        "--no-think-prefix",
        action="store_true",
        help="the prompt did not end with <think>: the output starts in content",
    )
    parser.add_argument(
        "--format", choices=FORMATS, default="m2", help="the output format: m2 (MiniMax-M2.x) or m3 (MiniMax-M3)"
    )
    parser.add_argument(
        "--thinking-mode",
        choices=m3.THINKING_MODES,
        help="M3 only: the thinking_mode the prompt was rendered with; enabled: the output starts in reasoning, "
        "disabled: it is content, adaptive: the model opens <mm:think> or writes a bare </mm:think> "
        "(default: adaptive, what the template does when thinking_mode is unset)",
    )
    parser.add_argument("--infer-types", action="store_true", help="read values of unknown parameters as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 on the first problem")
    parser.add_argument("--stream", action="store_true", help="print the event stream as JSON lines")
    parser.add_argument(
        "--view",
        action="store_true",
        help="a human view: reasoning, content, argument tables, each problem under its place in the raw text "
        "(colours on a terminal unless NO_COLOR is set)",
    )
    parser.add_argument("--compact", action="store_true", help="one-line JSON instead of indented")
    parser.add_argument(
        "--deterministic-ids", action="store_true", help="call ids call_0, call_1, … instead of random ones"
    )


def run(args: argparse.Namespace) -> int:
    if args.view and args.stream:
        raise UsageError("--view and --stream are two different outputs: choose one")
    tools = read_tools(args.tools)
    text = read_text(args.file)
    parser = StreamParser(
        tools,
        reasoning="inline" if args.inline_think else "separated",
        infer_types=args.infer_types,
        strict=args.strict,
        id_factory=sequential_ids() if args.deterministic_ids else None,
        **format_options(args),
    )
    try:
        if args.stream:
            for start in range(0, len(text), STREAM_DELTA):
                _print_events(parser.feed(text[start : start + STREAM_DELTA]))
            _print_events(parser.finish())
            return 0
        parser.feed(text)
        parser.finish()
    except M2ParseError as exc:
        print(f"m2parse: {args.file}: {exc}", file=sys.stderr)
        return 1
    result = parser.result
    if args.view:
        from ..view import render_view, use_color

        sys.stdout.write(render_view(result, text, color=use_color(sys.stdout)))
        return 0
    out = {"message": result.to_openai(), "problems": [p.to_dict() for p in result.problems]}
    print(dump_json(out, compact=args.compact))
    return 0


def format_options(args: argparse.Namespace) -> dict[str, Any]:
    """The parser's format keywords. M2 passes ``starts_in_reasoning`` only, as it always has; M3 says where its
    output starts with ``thinking_mode`` (the template's own kwarg), so M2's ``--no-think-prefix`` is refused."""
    if args.format == "m2":
        if args.thinking_mode is not None:
            raise UsageError("--thinking-mode is for --format m3 (an M2 prompt always opens the reasoning)")
        return {"starts_in_reasoning": not args.no_think_prefix}
    if args.no_think_prefix:
        raise UsageError("--no-think-prefix is for M2; with --format m3 say --thinking-mode disabled or adaptive")
    return {"format": "m3", "thinking_mode": args.thinking_mode or "adaptive"}


def _print_events(events: list[Event]) -> None:
    for event in events:
        print(dump_json(event_to_json(event), compact=True), flush=False)
    sys.stdout.flush()


def event_to_json(event: Event) -> dict[str, Any]:
    """An event as {"type": ClassName, ...fields}; problems are flattened to their dict."""
    fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    if "problem" in fields:
        fields = fields["problem"].to_dict()
    return {"type": type(event).__name__, **fields}
