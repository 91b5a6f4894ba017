"""Where M2 users already run the model: transformers, TGI and vLLM.

Each module imports its framework when it is imported, so import the one you use:
:mod:`m2parse.integrations.transformers` (a ``generate()`` streamer and a decode-and-parse helper),
:mod:`m2parse.integrations.tgi` (events from a TGI token stream), :mod:`m2parse.integrations.vllm` (the vLLM
tool and reasoning parsers; vLLM loads them through ``vllm_plugin.py``, see ``m2parse vllm-plugin-path``).
"""
