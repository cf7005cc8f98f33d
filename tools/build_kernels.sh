#!/usr/bin/env bash
# Install polyfe2 editable into PYTHON's environment through its build backend: pip runs
# scikit-build-core, which configures CMakeLists.txt, compiles the kernels in csrc/ and puts the
# modules into that environment (site-packages/polyfe2/kernels/_gru_cpu*.so, and _gru_cuda*.so
# when a CUDA compiler is found); the Python sources stay in src/ and nothing is written there.
# This is `pip install --no-build-isolation -e ".[dev]"` plus a check that skips it when nothing
# changed, so make and the kernel tests (tests/kernels/conftest.py) can call it every time.
#
# Re-installs when polyfe2 is not installed, when pyproject.toml, CMakeLists.txt or csrc/ changed
# since the last install from this checkout, or when a module of src/polyfe2 was added, moved or
# removed (an editable install maps module names to files). The CMake tree in build/<wheel tag>
# is kept, so a re-install recompiles only what changed. An install of polyfe2 from somewhere
# else (a wheel, another checkout) is left alone unless POLYFE2_FORCE=1.
#
# Usage: tools/build_kernels.sh [PYTHON]   (default: .venv/bin/python, else python3)
# Environment:
#   POLYFE2_CMAKE_ARGS  extra configure arguments, e.g. "-DPOLYFE2_CUDA=OFF -DPOLYFE2_NATIVE=OFF"
#   POLYFE2_JOBS        parallel compile jobs (default 2)
#   POLYFE2_PIP_ARGS    extra pip arguments, e.g. "--no-deps"
#   POLYFE2_FORCE=1     re-install even when up to date or installed from elsewhere
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PY=${1:-}
if [ -z "$PY" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
log() { printf '[build_kernels] %s\n' "$*" >&2; }

# Where the environment is, and where polyfe2 is installed from ("" when it is not installed).
read -r PREFIX INSTALLED < <("$PY" - <<'EOF'
import json, sys
from importlib import metadata
try:
    dist = metadata.distribution("polyfe2")
except metadata.PackageNotFoundError:
    src = "-"
else:
    url = json.loads(dist.read_text("direct_url.json") or "{}")
    src = url.get("url", "?") if url.get("dir_info", {}).get("editable") else "non-editable"
print(sys.prefix, src)
EOF
)
STAMP="$PREFIX/.polyfe2-installed"
MODULES="$(find src/polyfe2 -name __pycache__ -prune -o -name '*.py' -print | LC_ALL=C sort | cksum)"
WANT="root=$ROOT cmake_args=${POLYFE2_CMAKE_ARGS:-} modules=$MODULES"

if [ "${POLYFE2_FORCE:-0}" != 1 ]; then
  if [ "$INSTALLED" != "-" ] && [ "$INSTALLED" != "file://$ROOT" ]; then
    log "polyfe2 in $PREFIX is installed from $INSTALLED, not from $ROOT: left as it is" \
        "(POLYFE2_FORCE=1 re-installs it from here)"
    exit 0
  fi
  if [ "$INSTALLED" = "file://$ROOT" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] \
     && [ -z "$(find pyproject.toml CMakeLists.txt csrc -newer "$STAMP" -print -quit)" ]; then
    log "polyfe2 (editable, kernels) up to date in $PREFIX"
    exit 0
  fi
fi

# --no-build-isolation builds with this environment's scikit-build-core, pybind11, cmake and
# ninja (the build requirements in pyproject.toml, and the dev extra) so that the CMake tree in
# build/ stays valid between installs.
if ! "$PY" -c "import scikit_build_core, pybind11" >/dev/null 2>&1; then
  log "installing the build requirements (scikit-build-core, pybind11, cmake, ninja)"
  "$PY" -m pip install -q "scikit-build-core>=0.11" "pybind11>=2.11" "cmake>=3.24" ninja
fi

# nvcc is often installed outside PATH; CMakeLists.txt also looks in /usr/local/cuda/bin.
if ! command -v nvcc >/dev/null 2>&1 && [ -z "${CUDACXX:-}" ] && [ -x /usr/local/cuda/bin/nvcc ]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi
export CMAKE_ARGS="${CMAKE_ARGS:-} ${POLYFE2_CMAKE_ARGS:-}"
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-${POLYFE2_JOBS:-2}}

mkdir -p build
LOGFILE="$ROOT/build/build_kernels.log"
log "pip install --no-build-isolation -e .[dev] into $PREFIX (scikit-build-core -> CMake;" \
    "log: build/build_kernels.log)"
START=$SECONDS
rm -f "$STAMP"
# shellcheck disable=SC2086
if ! "$PY" -m pip install -v --no-build-isolation ${POLYFE2_PIP_ARGS:-} -e "$ROOT[dev]" >"$LOGFILE" 2>&1; then
  grep -v '^WARNING: Location' "$LOGFILE" | tail -n 60 >&2
  log "FAILED (full log: $LOGFILE)"
  exit 1
fi
printf '%s' "$WANT" >"$STAMP"

# What CMake said about the build (CPU-only or with CUDA) and what was installed.
sed -n 's/^ *-- \(polyfe2: .*\)/\1/p' "$LOGFILE" | while read -r line; do log "$line"; done
if grep -q 'polyfe2: CPU-ONLY BUILD' "$LOGFILE"; then
  grep -A3 'polyfe2: CPU-ONLY BUILD' "$LOGFILE" | sed -e '/^ *$/d' -e 's/^ */  /' >&2
  log "CUDA module: NOT built -- CPU-only build"
fi
sed -n 's#.*-- \(Installing\|Up-to-date\): .*/polyfe2/kernels/\(_gru_[^/]*\.so\)$#\2#p' "$LOGFILE" \
  | while read -r so; do log "installed polyfe2/kernels/$so"; done
log "done in $((SECONDS - START)) s"
