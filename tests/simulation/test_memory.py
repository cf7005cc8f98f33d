"""The memory estimate a run states before its first increment, and the stop when it cannot fit."""
import numpy as np
import pytest
import torch

from polyfe2.errors import InputError
from polyfe2.simulation.runner import FIELD_ARRAYS, _check_memory, _available_memory, memory_estimate


def test_estimate_counts_fields_and_six_copies_of_the_state():
    state = {"Aluminum": {"F_p": torch.zeros(100, 20, 3, 3, dtype=torch.float64), "n": 3}}
    need, per_cell = memory_estimate(state, 100, None)
    assert per_cell == FIELD_ARRAYS * 72 + 6 * 20 * 9 * 8
    assert need == 100 * per_cell


def test_a_run_that_cannot_fit_says_so_before_it_starts():
    available = _available_memory()
    assert available is not None and available > 0
    with pytest.raises(InputError, match=r"needs about .* GiB on rank 0 \(.* kB per cell\) but .* GiB are available"):
        _check_memory(4 * available, 10_000, type("C", (), {"path": "run.yaml"})(), 0)
    _check_memory(available // 100, 10_000, type("C", (), {"path": "run.yaml"})(), 0)   # fits: no error
