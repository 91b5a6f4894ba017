#!/usr/bin/env bash
# The SGLang suite (pytest marker "sglang") and its benchmark, in a venv of their own so the core venv never
# gets torch or SGLang. Everything is pinned; only package registries (and the wheels on this machine) are used.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

VENV=.venv-ci-sglang
rm -rf "$VENV"
python3 -m venv "$VENV"
PY="$VENV/bin/python"
pip_install() { "$PY" -m pip install -q --disable-pip-version-check "$@"; }
quiet_resolver() { grep -v -e "dependency resolver" -e "requires .*, which is not installed" -e "which is incompatible" >&2; }

pip_install --upgrade pip
# torch and torchvision first and alone. SGLang's OpenAI serving code imports torchvision, and PyPI's
# torchvision wheels only load with torch's CUDA build (the CPU torch wheel leaves its ops undefined and the
# import fails): torch==2.14.1 is sglang 0.5.23's own pin and, with its CUDA libraries, lies on this machine.
pip_install torch==2.14.1 torchvision==0.29.1
# SGLang and the packages whose full requirements are GPU builds, without their requirements.
pip_install --no-deps sglang==0.5.23 xgrammar==0.2.7 compressed-tensors==0.18.0
pip_install -e '.[sglang-test]' 2> >(quiet_resolver)
echo "sglang venv ready at $((SECONDS - start)) s"

"$PY" -c "import sglang, torch; print('sglang venv: torch', torch.__version__, '| sglang', sglang.__version__)"
"$PY" -m pytest -m sglang -p no:cacheprovider tests/test_integration_sglang.py
"$PY" benchmarks/bench_sglang.py --quick
echo "run_sglang.sh: done in $((SECONDS - start)) s"
