"""``python -m m2parse.integrations.sglang ARGS``: ``sglang serve ARGS`` with m2parse's detectors registered.

The registration runs at import, not under ``if __name__ == "__main__"``: SGLang's spawned worker processes
import this module again (as ``__mp_main__``) and need the names too.
"""

import sys

from m2parse.integrations.sglang import register
from m2parse.integrations.sglang.launcher import serve

register()

if __name__ == "__main__":
    raise SystemExit(serve(sys.argv[1:]))
