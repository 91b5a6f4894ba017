"""``m2parse vllm-plugin-path``: where the vLLM plugin file is, for ``--tool-parser-plugin``."""

from __future__ import annotations

import argparse
from importlib.util import find_spec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "use: vllm serve MiniMaxAI/MiniMax-M2 --enable-auto-tool-choice "
        '--tool-parser-plugin "$(m2parse vllm-plugin-path)" --tool-call-parser m2parse '
        '--reasoning-parser-plugin "$(m2parse vllm-plugin-path)" --reasoning-parser m2parse\n'
        "The file registers the parsers m2parse (MiniMax-M2.x) and m2parse_m3 (MiniMax-M3): for "
        "MiniMaxAI/MiniMax-M3 pass --tool-call-parser m2parse_m3 --reasoning-parser m2parse_m3."
    )


def run(args: argparse.Namespace) -> int:
    # find_spec locates the file without importing it: the plugin imports vllm, which need not be installed here.
    spec = find_spec("m2parse.integrations.vllm_plugin")
    assert spec is not None and spec.origin is not None
    print(spec.origin)
    return 0
