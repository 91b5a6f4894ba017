"""Run ``sglang serve ARGS`` with m2parse's detectors registered (SGLang has no plugin flag).

SGLang starts its scheduler and detokenizer processes with multiprocessing's ``spawn``: each child imports
the parent's ``__main__`` module again. The scheduler builds a ``ReasoningParser`` from ``--reasoning-parser``
(it reads ``think_end_token``), so the registration must happen in the children too. It does when this
launcher's ``__main__`` is ``m2parse.integrations.sglang.__main__``, which registers at import time; the
``m2parse sglang`` verb therefore re-executes the interpreter with ``-m m2parse.integrations.sglang``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

MODULE = "m2parse.integrations.sglang"


def serve(argv: Sequence[str]) -> int:
    """Register, then hand ``argv`` to SGLang's own CLI as ``sglang serve ARGV`` (in this process)."""
    from sglang.cli.main import main as sglang_main

    from . import register

    register()
    sys.argv = ["sglang", "serve", *argv]
    sglang_main()
    return 0


def exec_launcher(argv: Sequence[str]) -> None:
    """Replace this process by ``python -m m2parse.integrations.sglang ARGV`` (see the module docstring)."""
    os.execv(sys.executable, [sys.executable, "-m", MODULE, *argv])
