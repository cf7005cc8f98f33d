#!/usr/bin/env bash
# Configure, build and install polyfe2's compiled kernels (fused GRU step) with CMake.
# The modules land in src/polyfe2/kernels/ (_gru_cpu*.so, and _gru_cuda*.so when a CUDA compiler
# is found). A second run is a quick no-op when nothing changed (CMake/Ninja up-to-date checks).
#
# Usage: tools/build_kernels.sh [PYTHON]
#   PYTHON        interpreter whose pybind11/headers to build against (default: .venv/bin/python,
#                 else python3)
# Environment:
#   POLYFE2_BUILD_DIR   build tree (default build/kernels)
#   POLYFE2_CMAKE_ARGS  extra configure arguments, e.g. "-DPOLYFE2_CUDA=OFF -DPOLYFE2_NATIVE=OFF"
#   POLYFE2_JOBS        parallel build jobs (default 2)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PY=${1:-}
if [ -z "$PY" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
PY="$(command -v "$PY")"
case "$PY" in /*) ;; *) PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")" ;; esac  # CMake needs it absolute
BUILD=${POLYFE2_BUILD_DIR:-build/kernels}
JOBS=${POLYFE2_JOBS:-2}
log() { printf '[build_kernels] %s\n' "$*" >&2; }

# nvcc is often installed outside PATH
if ! command -v nvcc >/dev/null 2>&1 && [ -z "${CUDACXX:-}" ] && [ -x /usr/local/cuda/bin/nvcc ]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi

GEN=()
if [ ! -f "$BUILD/CMakeCache.txt" ] && command -v ninja >/dev/null 2>&1; then GEN=(-G Ninja); fi

# Re-configure only when there is no cache yet or the interpreter changed; otherwise the build
# step re-runs CMake itself if CMakeLists.txt changed.
if [ ! -f "$BUILD/CMakeCache.txt" ] || ! grep -q "^Python_EXECUTABLE:[A-Z]*=$PY\$" "$BUILD/CMakeCache.txt"; then
  log "configuring $BUILD with $PY"
  # shellcheck disable=SC2086
  cmake -S "$ROOT" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release \
        -DPython_EXECUTABLE="$PY" -DCMAKE_INSTALL_PREFIX="$ROOT" ${POLYFE2_CMAKE_ARGS:-} >/dev/null
fi
cmake --build "$BUILD" --parallel "$JOBS"
cmake --install "$BUILD" >/dev/null

if grep -q "cuda=ON" "$BUILD/polyfe2_kernels_config.txt" 2>/dev/null; then
  log "CUDA module: built (_gru_cuda)"
else
  log "CUDA module: NOT built (no CUDA compiler found, or -DPOLYFE2_CUDA=OFF)"
fi
ls "$ROOT"/src/polyfe2/kernels/_gru_*.so 2>/dev/null | sed 's/^/[build_kernels] installed /' >&2
