"""The kit's tiny model as a GGUF file, for llama.cpp, made with llama.cpp's own converter.

The converter is ``convert_hf_to_gguf.py`` (with its vendored ``gguf-py``) from the llama.cpp source the engine
build keeps next to ``llama-server`` (``.ci/engines/llamacpp-build.sh``), so the GGUF always matches the server
that loads it. It needs torch and transformers: run it from the llama.cpp engine venv.

The one step the converter cannot do alone is naming the pre-tokenizer. It recognises a BPE pre-tokenizer by
hashing how the tokenizer encodes a probe text, against a table of known models; a tokenizer trained here is in
no table, so it stops with "BPE pre-tokenizer was not recognized". Upstream adds a model to that table with
``convert_hf_to_gguf_update.py``, which downloads the model from a hub, so that is not an option. The converter
has no flag for it either. The least intrusive fix is the one the table itself makes: give the name of a
pre-tokenizer that llama.cpp implements and that is the same regex as ours. The kit's tokenizer uses
``ByteLevel(use_regex=True)``, which is GPT-2's split, and llama.cpp calls that ``"gpt-2"``. So the converter runs
unchanged, with only that lookup (``TextModel.get_vocab_base_pre``) replaced by a function that returns
``"gpt-2"``, after :func:`pre_tokenizer_name` has checked that the tokenizer really uses that split. The real
M2 tokenizer has a split of its own, which llama.cpp knows as ``"minimax-m2"``.
The suite checks the choice: ``llama-server``'s ``/tokenize`` gives the same ids as the HF tokenizer.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

#: What the converter is told, for a tokenizer whose pre-tokenizer is GPT-2's byte-level regex split.
GPT2_PRE = "gpt-2"

# Run in a child process: import the converter's package, replace the one lookup, run the script as __main__.
_RUNNER = """
import runpy, sys
src, pre, script_args = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.path[:0] = [src, src + "/gguf-py"]
import conversion.base
conversion.base.TextModel.get_vocab_base_pre = lambda self, tokenizer: pre
sys.argv = [src + "/convert_hf_to_gguf.py", *script_args]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


class ConversionError(RuntimeError):
    """The converter failed; the message holds the end of its output."""


def pre_tokenizer_name(model_dir: Path) -> str:
    """The llama.cpp pre-tokenizer name for the model's ``tokenizer.json``; only GPT-2's split is supported."""
    spec = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8")).get("pre_tokenizer") or {}
    if spec.get("type") == "ByteLevel" and spec.get("use_regex", True):
        return GPT2_PRE
    raise ConversionError(f"no known llama.cpp pre-tokenizer for {spec!r}: pick one in tests/engines/gguf.py")


def gguf_path(model_dir: Path, llama_cpp_dir: Path) -> Path:
    """Where the GGUF for this kit build and this llama.cpp lives: next to the kit's directory.

    The kit's directory name carries the kit's hash; the llama.cpp directory name carries its version; this
    file's own hash covers the conversion recipe.
    """
    recipe = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:8]
    return model_dir.parent / f"{model_dir.name}-{llama_cpp_dir.name}-{recipe}.gguf"


def convert(model_dir: Path, llama_cpp_dir: Path, *, python: str = sys.executable) -> Path:
    """The GGUF of ``model_dir`` (float32, as the HF weights), converted once and then reused.

    ``llama_cpp_dir`` is the engine cache directory (``src/`` holds the llama.cpp source). The file is written
    under a temporary name and renamed into place, so a crash never leaves a half file that later runs trust.
    """
    target = gguf_path(model_dir, llama_cpp_dir)
    if target.is_file():
        return target
    src = llama_cpp_dir / "src"
    if not (src / "convert_hf_to_gguf.py").is_file():
        raise ConversionError(f"{src} has no convert_hf_to_gguf.py (run .ci/engines/llamacpp-build.sh)")
    fd, tmp_name = tempfile.mkstemp(prefix=".converting-", suffix=".gguf", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    args = [str(model_dir), "--outfile", str(tmp), "--outtype", "f32", "--model-name", "tiny-m2"]
    proc = subprocess.run(
        [python, "-c", _RUNNER, str(src), pre_tokenizer_name(model_dir), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_LOCAL_GGUF": "1"},  # the runner puts the vendored gguf-py on the path itself
        check=False,
    )
    if proc.returncode != 0 or tmp.stat().st_size == 0:
        tmp.unlink(missing_ok=True)
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise ConversionError(f"convert_hf_to_gguf.py exited with {proc.returncode}:\n{tail}")
    tmp.replace(target)
    return target


if __name__ == "__main__":
    # python -m tests.engines.gguf LLAMA_CPP_DIR: build the kit (cached) and its GGUF (cached); print the path.
    from .model_kit import build_hf_model

    print(convert(build_hf_model(), Path(sys.argv[1])))
