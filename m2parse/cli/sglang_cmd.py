"""``m2parse sglang -- ARGS``: run ``sglang serve ARGS`` with m2parse's tool-call and reasoning detectors."""

from __future__ import annotations

import argparse
from importlib.util import find_spec

from . import UsageError

EPILOG = (
    "use: m2parse sglang -- --model-path MiniMaxAI/MiniMax-M2 --tool-call-parser m2parse --reasoning-parser m2parse"
    " (any other `sglang serve` flags after --)\n"
    "Parsers: m2parse (tool calls and reasoning) and m2parse-append-think (reasoning) for MiniMax-M2.x; m2parse-m3"
    " (both) for MiniMax-M3: --model-path MiniMaxAI/MiniMax-M3 --tool-call-parser m2parse-m3 --reasoning-parser"
    " m2parse-m3."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sglang_args", nargs=argparse.REMAINDER, help="arguments for `sglang serve`, after --")


def run(args: argparse.Namespace) -> int:
    argv = list(args.sglang_args)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if find_spec("sglang") is None:
        raise UsageError("sglang is not installed in this environment (pip install sglang)")
    from ..integrations.sglang.launcher import exec_launcher

    exec_launcher(argv)
    return 0  # not reached: the process is replaced
