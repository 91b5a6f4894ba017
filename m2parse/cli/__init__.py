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

from .. import __version__

#: verb -> (module under m2parse.cli, one-line help)
VERBS: dict[str, tuple[str, str]] = {
    "render": ("render_cmd", "render OpenAI-style messages into the exact M2 prompt"),
    "read": ("read_cmd", "read a rendered M2 prompt back into messages and tools"),
    "serve": ("serve_cmd", "run the OpenAI-compatible server in front of a raw-completion backend"),
    "stats": ("stats_cmd", "statistics over many raw outputs: clean rate, problems, tools, finish states, sizes"),
    "vllm-plugin-path": ("vllm_cmd", "print the path of the vLLM tool/reasoning parser plugin file"),
    "sglang": ("sglang_cmd", "run `sglang serve` with the m2parse tool-call and reasoning parsers registered"),
    "grammar": ("grammar_cmd", "print a GBNF/xgrammar grammar of M2 tool-call output for a tools file"),
}


class UsageError(Exception):
    """A problem with the command line or its input files: one line on stderr, exit code 2."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's default in its help (unless the help already says it); epilogs keep their line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "(default" in text or not action.option_strings or action.default in (None, argparse.SUPPRESS):
            return text
        if action.default is False:
            return f"{text} (default: off)"
        return f"{text} (default: %(default)s)"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in VERBS:
        verb = args.pop(0)
        module_name, help_text = VERBS[verb]
        prog = f"m2parse {verb}"
    else:
        verb, module_name, help_text, prog = "parse", "parse_cmd", "parse raw M2 output", "m2parse"
    module = importlib.import_module(f"{__name__}.{module_name}")
    epilog = _epilog() if verb == "parse" else getattr(module, "EPILOG", None)
    parser = argparse.ArgumentParser(prog=prog, description=help_text, epilog=epilog, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"m2parse {__version__}")
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
    width = max(len(v) for v in VERBS)
    return "other verbs:\n" + "\n".join(f"  m2parse {v:<{width}}  {h}" for v, (_, h) in VERBS.items())
