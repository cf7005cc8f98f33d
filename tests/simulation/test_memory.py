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


def test_taylor_temporaries_are_one_chunk_of_newton_work_however_many_points():
    """The chunked update holds one chunk's Newton temporaries: they grow with the points up to a
    chunk, then stay fixed (0.5 GiB), and the run's check counts them once, not per cell."""
    from polyfe2.constitutive import get
    from polyfe2.microstructure.materials import aluminium

    be = get("taylor")(aluminium())
    per_crystal = be.newton_bytes_per_crystal

    def workspace(N, K):
        return be.workspace_bytes({"v": torch.full((N, K), 1.0 / K)})

    assert workspace(100, 20) == 100 * 20 * per_crystal
    full = workspace(be.chunk_crystals // 20, 20)
    assert full == (be.chunk_crystals // 20) * 20 * per_crystal and 0.45 * 2**30 < full <= 0.5 * 2**30
    assert workspace(10**6, 20) == full
    config = type("C", (), {"path": "run.yaml"})()
    available = _available_memory()
    _check_memory(1000, available // 2000, config, 0)   # half the memory: fits
    with pytest.raises(InputError, match="the run needs at least"):
        _check_memory(1000, available // 2000, config, 0, workspace=available // 2 + 2**20)


def test_a_run_that_cannot_fit_says_so_before_it_starts():
    available = _available_memory()
    assert available is not None and available > 0
    config = type("C", (), {"path": "run.yaml"})()
    with pytest.raises(InputError, match=r"run.yaml, key 'geometry': the run needs at least .* GiB on rank 0 "
                                         r"\(9.8 kB per cell\) but .* GiB are available"):
        _check_memory(10_000, 4 * available // 10_000, config, 0)
    _check_memory(10_000, available // 1_000_000, config, 0)   # fits: no error


def test_odmn_temporaries_are_one_chunk_however_many_points(tmp_path):
    """odmn solves chunk_points networks at a time: its temporaries stop growing at one chunk."""
    from polyfe2.constitutive import get
    from polyfe2.constitutive.odmn_network import ODMNParameters
    from polyfe2.microstructure.materials import aluminium

    be = get("odmn")(aluminium(), {"parameters": {"default": str(ODMNParameters.random(4).save(tmp_path / "p.pt"))},
                                   "chunk_points": 64})

    def workspace(N):
        return be.workspace_bytes({"a": torch.zeros(N, 15, 3)})

    assert 0 < workspace(10) < workspace(64) == workspace(10**6)
    assert workspace(10) * 64 == workspace(64) * 10
