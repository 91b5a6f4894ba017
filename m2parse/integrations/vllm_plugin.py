"""The file vLLM loads with ``--tool-parser-plugin`` and ``--reasoning-parser-plugin``.

vLLM imports a plugin file under its bare file name, so this file only imports the real module, which
registers the ``m2parse`` tool parser and reasoning parser (importing it twice registers them once).
"""

import m2parse.integrations.vllm  # noqa: F401
