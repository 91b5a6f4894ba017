"""The llama.cpp real-engine suite: a real ``llama-server`` loading the kit's GGUF, with ``m2parse serve`` in front.

Runs from ``.ci/run_engine_llamacpp.sh`` (marker ``engine_llamacpp``), which builds the server, makes the venv
and sets ``M2PARSE_LLAMA_CPP_DIR``; without that variable every test here is skipped.
"""
