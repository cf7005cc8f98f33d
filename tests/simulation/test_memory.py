"""The memory estimate a run states before its first increment, and the stop when it cannot fit."""
import pytest
import torch

from polyfe2.errors import InputError
from polyfe2.simulation.runner import FIELD_ARRAYS, _available_memory, _check_memory, memory_estimate


def test_estimate_counts_fields_and_two_to_three_copies_of_the_state():
    state = {"Aluminum": {"F_p": torch.zeros(100, 20, 3, 3, dtype=torch.float64), "n": 3}}
    low, high = memory_estimate(state, 100)
    assert low == FIELD_ARRAYS * 72 + 2 * 20 * 9 * 8
    assert high == FIELD_ARRAYS * 72 + 3 * 20 * 9 * 8


def test_a_run_that_cannot_fit_says_so_before_it_starts():
    available = _available_memory()
    assert available is not None and available > 0
    config = type("C", (), {"path": "run.yaml"})()
    with pytest.raises(InputError, match=r"run.yaml, key 'geometry': the run needs at least .* GiB on rank 0 "
                                         r"\(9.8 kB per cell\) but .* GiB are available"):
        _check_memory(10_000, 4 * available // 10_000, config, 0)
    _check_memory(10_000, available // 1_000_000, config, 0)   # fits: no error
