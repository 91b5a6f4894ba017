"""Command line: ``m2parse FILE`` parses; ``m2parse VERB ...`` runs one of the other verbs.

Each verb lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``; modules are
imported only when their verb is used, so the parse path never pays for the server's imports.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

#: verb -> (module under m2parse.cli, one-line help)
VERBS: dict[str, tuple[str, str]] = {
    "render": ("render_cmd", "render OpenAI-style messages into the exact M2 prompt"),
    "read": ("read_cmd", "read a rendered M2 prompt back into messages and tools"),
    "serve": ("serve_cmd", "run the OpenAI-compatible server in front of a raw-completion backend"),
    "vllm-plugin-path": ("vllm_cmd", "print the path of the vLLM tool/reasoning parser plugin file"),
}


class UsageError(Exception):
    """A problem with the command line or its input files: one line on stderr, exit code 2."""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in VERBS:
        verb = args.pop(0)
        module_name, help_text = VERBS[verb]
        prog = f"m2parse {verb}"
    else:
        verb, module_name, help_text, prog = "parse", "parse_cmd", "parse raw M2 output", "m2parse"
    module = importlib.import_module(f"{__name__}.{module_name}")
    parser = argparse.ArgumentParser(prog=prog, description=help_text, epilog=_epilog() if verb == "parse" else None)
    module.add_arguments(parser)
    parsed = parser.parse_args(args)
    try:
        return int(module.run(parsed))
    except UsageError as exc:
        print(f"m2parse: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `m2parse out.txt --stream | head`: the reader left, which is not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _epilog() -> str:
    return "other verbs: " + "; ".join(f"m2parse {v} ({h})" for v, (_, h) in VERBS.items())
