"""The file vLLM loads with ``--tool-parser-plugin`` and ``--reasoning-parser-plugin``.

vLLM imports a plugin file under its bare file name, so this file only imports the real module, which
registers the tool parsers and reasoning parsers ``m2parse`` (MiniMax-M2.x) and ``m2parse_m3`` (MiniMax-M3)
(importing it twice registers them once).
"""

import m2parse.integrations.vllm  # noqa: F401
