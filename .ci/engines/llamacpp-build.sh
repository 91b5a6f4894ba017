#!/usr/bin/env bash
# Build llama.cpp's `llama-server` from the llama.cpp source vendored in the llama-cpp-python sdist (PyPI is the
# only source reachable here), once per machine: the binary is cached under
# ${M2PARSE_ENGINE_CACHE:-$HOME/.cache/m2parse-engines}/llama-server-<version>/ and reused while it runs.
# The build goes into a temporary directory that is renamed into place only when complete, so an interrupted
# build never leaves a half cache. Prints the cache directory (holding bin/llama-server and src/) on stdout.
set -euo pipefail
VERSION=$(cat "$(dirname "$0")/llamacpp-version.txt")
CACHE=${M2PARSE_ENGINE_CACHE:-$HOME/.cache/m2parse-engines}
DEST="$CACHE/llama-server-$VERSION"
if [ -x "$DEST/bin/llama-server" ] && "$DEST/bin/llama-server" --version >/dev/null 2>&1; then
  echo "$DEST"; exit 0
fi
mkdir -p "$CACHE"
TMP=$(mktemp -d "$CACHE/.llama-server-$VERSION.XXXXXX")
chmod 755 "$TMP"
trap 'rm -rf "$TMP"' EXIT
# --no-binary for this one package only: with :all:, pip would also build the sdist's build backend and its
# dependencies from source just to read the metadata.
python3 -m pip download -q --disable-pip-version-check --no-deps --no-binary llama-cpp-python \
    "llama-cpp-python==$VERSION" -d "$TMP/sdist" >&2
tar -xzf "$TMP/sdist/llama_cpp_python-$VERSION.tar.gz" -C "$TMP"
mv "$TMP/llama_cpp_python-$VERSION/vendor/llama.cpp" "$TMP/src"
rm -rf "$TMP/llama_cpp_python-$VERSION" "$TMP/sdist"
# Portable (no -march=native: a cached binary must survive a CPU change), no libcurl (no downloads), server only.
cmake -S "$TMP/src" -B "$TMP/build" -DGGML_NATIVE=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF -DCMAKE_BUILD_TYPE=Release >&2
cmake --build "$TMP/build" --target llama-server -j"${M2PARSE_BUILD_JOBS:-2}" >&2
mkdir -p "$TMP/bin"
cp "$TMP/build/bin/llama-server" "$TMP/bin/llama-server"
rm -rf "$TMP/build"
"$TMP/bin/llama-server" --version >&2
rm -rf "$DEST"
mv "$TMP" "$DEST"
trap - EXIT
echo "$DEST"
