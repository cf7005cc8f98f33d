"""Build the compiled GRU kernels once per test session (quick no-op when up to date)."""
from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD_DIR = Path(os.environ.get("POLYFE2_BUILD_DIR", ROOT / "build" / "kernels"))


@pytest.fixture(scope="session")
def kernels():
    """The ``polyfe2.kernels`` package with the compiled modules built and (re)imported.

    Runs ``tools/build_kernels.sh`` with this interpreter unless POLYFE2_SKIP_KERNEL_BUILD=1;
    a failing build fails the tests that use this fixture.
    """
    if os.environ.get("POLYFE2_SKIP_KERNEL_BUILD") != "1":
        if shutil.which("cmake") is None:
            pytest.fail("cmake not found: cannot build the GRU kernels (tools/build_kernels.sh)")
        proc = subprocess.run(["bash", str(ROOT / "tools" / "build_kernels.sh"), sys.executable],
                              cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.fail("tools/build_kernels.sh failed:\n" + proc.stdout[-4000:] + proc.stderr[-4000:])
    import polyfe2.kernels as k

    if k._gru_cpu is None or k._gru_cuda is None:
        importlib.invalidate_caches()
        k = importlib.reload(k)
    return k
