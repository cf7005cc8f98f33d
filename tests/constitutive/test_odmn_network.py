"""The ODMN tree offline: interaction coefficients, the homogenised stiffness against independent
references (a single crystal, a homogeneous tree, the solver's DNS of a laminate), parameter files
and the fit (paper 000, eq. 13)."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import damask
import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "solver"))
from solver_cases import build_case, deformation, phase  # noqa: E402

from polyfe2.constitutive.odmn_network import (ODMNParameters, fit, interaction_coefficients,  # noqa: E402
                                               relative_frobenius_loss, subtree_masks, tree_stiffness)
from polyfe2.errors import InputError  # noqa: E402
from polyfe2.mechanics import cubic_stiffness, rotate_stiffness, to_mandel  # noqa: E402
from polyfe2.simulation.homogenize import homogenized_stiffness  # noqa: E402

C11, C12, C44 = 106.75e9, 60.41e9, 28.34e9


def mandel_of(q, scale=1.0):
    R = torch.as_tensor(damask.Rotation(np.asarray(q)).as_matrix())
    return to_mandel(rotate_stiffness(cubic_stiffness(C11, C12, C44) * scale, R))


def test_depth_6_has_382_parameters_and_alpha_keeps_the_average():
    p = ODMNParameters.random(6, seed=1)
    assert p.count() == 382
    W = p.weights
    alpha = interaction_coefficients(W, 6)
    assert alpha.shape == (64, 63)
    torch.testing.assert_close(W @ alpha, torch.zeros(63, dtype=W.dtype), rtol=0, atol=1e-12)
    left, right = subtree_masks(6)
    assert (left.sum(0) == right.sum(0)).all() and left[:, 0].sum() == 32   # the root splits 32 | 32
    assert ((alpha > 0) == (left > 0)).all() and ((alpha < 0) == (right > 0)).all()


def test_depth_0_is_the_single_crystal():
    p = ODMNParameters.random(0, seed=2)
    q = damask.Rotation.from_Euler_angles(p.euler.numpy()).quaternion
    torch.testing.assert_close(p.stiffness(C11, C12, C44), mandel_of(q[0]), rtol=1e-12, atol=0)


def test_equal_leaves_give_the_homogeneous_answer():
    p = ODMNParameters.random(4, seed=3)
    p.euler[:] = torch.tensor([0.4, 1.1, 2.0], dtype=torch.float64)
    q = damask.Rotation.from_Euler_angles(np.array([0.4, 1.1, 2.0])).quaternion
    torch.testing.assert_close(p.stiffness(C11, C12, C44), mandel_of(q), rtol=1e-10, atol=0)


def test_a_two_leaf_tree_is_the_laminate_the_solver_computes():
    """Depth 1 with normal e_x against the spectral solver's DNS of the same laminate (3/8 of a
    stiff, rotated crystal and 5/8 of a softer one, layers normal to x)."""
    q1, q2 = damask.Rotation.from_random(2, rng_seed=7).quaternion
    mat = np.zeros((8, 2, 2), dtype=int)
    mat[:3] = 1
    dns = homogenized_stiffness(build_case(mat, {"soft": phase(scale=0.3), "stiff": phase()},
                                           [("soft", [q2]), ("stiff", [q1])], [deformation(np.eye(3))],
                                           backend="elastic"))
    leaves = torch.stack([mandel_of(q1), mandel_of(q2, 0.3)])
    W = torch.tensor([3.0, 5.0], dtype=torch.float64)
    N = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    C = tree_stiffness(leaves, W, N)
    np.testing.assert_allclose(C.numpy(), dns, rtol=0, atol=1e-4 * C11)
    # and the laminate is really stiffer than Reuss and softer than Voigt along x
    voigt = (3 * leaves[0] + 5 * leaves[1]) / 8
    assert float(C[0, 0]) < float(voigt[0, 0]) - 1e-2 * C11


def test_parameter_file_round_trip_and_one_line_errors(tmp_path):
    p = ODMNParameters.random(3, seed=4)
    p.provenance = {"fit": "test"}
    back = ODMNParameters.load(p.save(tmp_path / "p.pt"))
    for k in ("z", "euler", "theta", "phi"):
        torch.testing.assert_close(getattr(back, k), getattr(p, k), rtol=0, atol=0)
    assert back.depth == 3 and back.provenance == {"fit": "test"}
    bad = torch.load(tmp_path / "p.pt", weights_only=True)
    bad["theta"] = bad["theta"][:3]
    torch.save(bad, tmp_path / "bad.pt")
    (tmp_path / "text.pt").write_text("not a parameter file")
    for name, key in (("bad.pt", "theta"), ("text.pt", None), ("missing.pt", None)):
        with pytest.raises(InputError) as e:
            ODMNParameters.load(tmp_path / name)
        assert name in str(e.value) and "\n" not in str(e.value)
        if key:
            assert f"key '{key}'" in str(e.value)


def test_fit_recovers_the_stiffness_of_a_known_network_on_held_out_triplets():
    truth = ODMNParameters.random(2, seed=5)
    rng = np.random.default_rng(0)
    triplets = torch.as_tensor(np.column_stack([rng.uniform(90, 120, 8), rng.uniform(40, 70, 8),
                                                rng.uniform(20, 60, 8)]) * 1e9)
    triplets = triplets[(triplets[:, 0] > triplets[:, 1])]
    targets = truth.stiffness(triplets[:, 0], triplets[:, 1], triplets[:, 2]).detach()
    train, test = slice(0, 5), slice(5, None)
    p, history = fit(targets[train], triplets[train], depth=2, steps=400, lr=0.05, seed=11)
    assert history[-1] < 0.1 * history[0]
    err = relative_frobenius_loss(p.stiffness(triplets[test, 0], triplets[test, 1], triplets[test, 2]),
                                  targets[test])
    assert float(err) < 0.01
    assert math.isfinite(p.provenance["fit"]["loss"])
