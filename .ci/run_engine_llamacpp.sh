#!/usr/bin/env bash
# The llama.cpp real-engine suite (pytest marker "engine_llamacpp"): a real llama-server, built from the llama.cpp
# source in the llama-cpp-python sdist and cached per machine, loads the test kit's tiny model converted to GGUF;
# m2parse serve is tested in front of it through the official openai SDK. A venv of its own; pinned versions in
# .ci/engines/llamacpp-*; only package registries are used. Prints each phase's time.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
phase_start=$SECONDS
phase() { echo "llamacpp: $1 took $((SECONDS - phase_start)) s"; phase_start=$SECONDS; }

VENV=.venv-engine-llamacpp
rm -rf "$VENV"
python3 -m venv "$VENV"
PY="$VENV/bin/python"
pip_install() { "$PY" -m pip install -q --disable-pip-version-check "$@"; }
pip_install --upgrade pip
# torch first and alone (the converter imports it): torch==2.13.0 is the CPU wheel on these machines; letting a
# dependent pick a torch downloads a multi-GB CUDA build.
pip_install torch==2.13.0
pip_install -e '.[test]' -r .ci/engines/llamacpp-requirements.txt
phase "venv"

# llama-server: built once per machine (6-20 min on 2 cores), then reused from the cache.
ENGINE_DIR=$(bash .ci/engines/llamacpp-build.sh)
"$ENGINE_DIR/bin/llama-server" --version 2>&1 | head -n 1
phase "llama-server build (or cache hit: $ENGINE_DIR)"

# The kit's HF model and its GGUF, both cached by content hash.
"$PY" -m tests.engines.gguf "$ENGINE_DIR"
phase "kit + GGUF"

M2PARSE_LLAMA_CPP_DIR="$ENGINE_DIR" "$PY" -m pytest -m engine_llamacpp tests/engines/llamacpp -p no:cacheprovider
phase "suite"
echo "llamacpp: total $((SECONDS - start)) s"
