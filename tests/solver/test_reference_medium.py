"""The reference media of the Green operator, DAMASK's ``C_minMaxAvg`` among them."""
from __future__ import annotations

import damask
import pytest
import torch

from polyfe2.mechanics import cubic_stiffness, rotate_stiffness
from polyfe2.errors import InputError
from polyfe2.solver.spectral import REFERENCE_MEDIA, SolverOptions, reference_stiffness

D = torch.float64


def al_stiffness(n, seed):
    C = cubic_stiffness(106.75e9, 60.41e9, 28.34e9, dtype=D)
    R = torch.as_tensor(damask.Rotation.from_random(n, rng_seed=seed).as_matrix(), dtype=D)
    return rotate_stiffness(C, R)


def test_minmax_averages_the_whole_tensors_of_the_stiffest_and_softest_cell():
    """DAMASK (grid_mech_utilities.f90, utilities_constitutiveResponse): the cells with the
    largest and smallest sum(dPdF**2) give C⁰ = (dPdF_max + dPdF_min) / 2, not a mean of
    component-wise extremes taken from different cells."""
    C = al_stiffness(6, seed=3)
    C[1] *= 1.5                                      # stiffest cell
    C[4] *= 1e-6                                     # void
    C0 = reference_stiffness(C, "minmax")
    torch.testing.assert_close(C0, 0.5 * (C[1] + C[4]), rtol=0, atol=0)
    componentwise = reference_stiffness(C, "componentwise")
    torch.testing.assert_close(componentwise, 0.5 * (C.amax(0) + C.amin(0)), rtol=0, atol=0)
    assert (C0 - componentwise).abs().max() > 5e-3 * C0.abs().max()  # the two differ
    torch.testing.assert_close(reference_stiffness(C, "max"), C.amax(0), rtol=0, atol=0)
    torch.testing.assert_close(reference_stiffness(C, "mean"), C.mean(0), rtol=0, atol=0)


def test_minmax_ties_go_to_the_first_cell_in_damasks_order():
    """DAMASK loops over its cells x fastest and replaces the extreme only on a strict
    improvement. A grid (Nx,Ny,Nz,...) is read in that order: of two cells with the same norm,
    the one at (1,0,0) comes before the one at (0,1,0)."""
    # small integers: the sums of squares are exact in any order
    A = torch.randint(-9, 10, (3, 3, 3, 3), generator=torch.Generator().manual_seed(0)).to(D)
    B = A.permute(2, 3, 0, 1).contiguous()           # the same 81 numbers: exactly the same norm
    assert not torch.equal(A, B)
    grid = torch.zeros(2, 2, 2, 3, 3, 3, 3, dtype=D)
    grid[:] = 0.5 * A                                # between the extremes
    grid[1, 0, 0], grid[0, 1, 0] = A, B              # both have the largest norm
    grid[1, 1, 0] = 0.25 * B
    grid[0, 0, 0] = 0.25 * A                         # same smallest norm; (0,0,0) comes first
    expected = 0.5 * (A + 0.25 * A)
    torch.testing.assert_close(reference_stiffness(grid, "minmax"), expected, rtol=0, atol=0)
    flat = grid.permute(2, 1, 0, 3, 4, 5, 6).reshape(-1, 3, 3, 3, 3)  # DAMASK's flat order
    torch.testing.assert_close(reference_stiffness(flat, "minmax"), expected, rtol=0, atol=0)


@pytest.mark.parametrize("how", REFERENCE_MEDIA)
def test_a_homogeneous_grid_is_its_own_reference(how):
    C = al_stiffness(1, seed=5)[0]
    torch.testing.assert_close(reference_stiffness(C.expand(2, 3, 2, 3, 3, 3, 3), how), C, rtol=1e-15, atol=0)


def test_reference_option_is_checked():
    assert SolverOptions().reference in REFERENCE_MEDIA
    for how in REFERENCE_MEDIA:
        assert SolverOptions.from_mapping({"reference": how}).reference == how
    with pytest.raises(InputError, match="componentwise"):
        SolverOptions.from_mapping({"reference": "minimax"}, file="run.yaml")
    with pytest.raises(ValueError):
        reference_stiffness(al_stiffness(2, seed=1), "minimax")
