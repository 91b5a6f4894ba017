#!/usr/bin/env bash
# The integration suites that need torch and the real vLLM (pytest markers "torch" and "vllm"), in a venv of
# their own so the core venv never gets torch or vLLM. One venv serves both: vLLM's parser framework needs torch
# and transformers anyway. Everything is pinned; only package registries are used.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-ci-integrations
rm -rf "$VENV"
python3 -m venv "$VENV"
PY="$VENV/bin/python"
pip_install() { "$PY" -m pip install -q --disable-pip-version-check "$@"; }

pip_install --upgrade pip
# torch first and alone: torch==2.13.0 resolves to the CPU wheel on this machine; any other spec (or letting a
# dependent pick one) downloads a multi-GB CUDA build.
pip_install torch==2.13.0
# vLLM and xgrammar without their requirements (CUDA kernels, triton, ...): the parser framework imports without
# them. What it does import is the [vllm-test] extra. pip's resolver warns about vLLM's unmet requirements.
pip_install --no-deps vllm==0.33.0 xgrammar==0.2.8
pip_install -e '.[vllm-test]' 2> >(grep -v -e "dependency resolver" -e "requires .*, which is not installed" \
    -e "which is incompatible" >&2)

"$PY" -c "import torch, vllm.parser; print('integration venv: torch', torch.__version__, '| vllm', vllm.__version__)"
"$PY" -m pytest -m "vllm or torch" -p no:cacheprovider
"$PY" benchmarks/bench_vllm.py --quick
