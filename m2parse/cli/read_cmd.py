"""``m2parse read PROMPT.txt``: a rendered prompt back into messages, tools and render options, as JSON.

The format (M2 or MiniMax-M3) is detected from the text; an M3 reading carries ``template`` and ``thinking_mode``.

The output is what ``m2parse render`` takes, so ``m2parse read p.txt > c.json && m2parse render c.json``
prints ``p.txt`` again, byte for byte.
"""

from __future__ import annotations

import argparse
import sys

from ..prompt_reader import PromptReadError, read_prompt
from . import UsageError
from .common import dump_json, read_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt", help="a rendered M2 or MiniMax-M3 prompt, byte-exact ('-' for stdin)")
    parser.add_argument("--compact", action="store_true", help="one-line JSON instead of indented")


def run(args: argparse.Namespace) -> int:
    text = _read_exact(args.prompt)
    try:
        reading = read_prompt(text)
    except PromptReadError as exc:
        raise UsageError(f"{args.prompt}: {exc}") from None
    sys.stdout.buffer.write((dump_json(dict(reading), compact=args.compact) + "\n").encode("utf-8"))
    sys.stdout.buffer.flush()
    return 0


def _read_exact(path: str) -> str:
    """The file's text; stdin is read as bytes, since text-mode stdin would turn ``\\r\\n`` into ``\\n``."""
    if path != "-":
        return read_text(path)
    try:
        return sys.stdin.buffer.read().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"stdin: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
