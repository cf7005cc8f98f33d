"""Shared test fixtures.

DAMASK's reference results live in ``shared/refs`` beside the checkout (``<repo>/../shared``:
``/work/main`` reads ``/work/shared``; CI clones into another folder with a copy of ``shared/``
beside it). Tests that compare with them fail when the folder is missing: a missing reference
must not turn the comparison into a silent skip.
"""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REFS = REPO.parent / "shared" / "refs"


@pytest.fixture(scope="session")
def damask_refs() -> Path:
    """``shared/refs/damask``: one folder per DAMASK reference case (see its README.md)."""
    path = REFS / "damask"
    if not path.is_dir():
        pytest.fail(f"DAMASK reference results not found at {path} (expected shared/refs beside the "
                    f"repository {REPO})", pytrace=False)
    return path
