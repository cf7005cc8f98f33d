"""Homogenised elastic stiffness (six solves) against independent references: a single crystal,
the exact rank-one laminate formula, and the Voigt/Reuss bounds of a polycrystal."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import damask
import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "solver"))
from solver_cases import build_case, deformation, phase  # noqa: E402

from polyfe2.cli import main  # noqa: E402
from polyfe2.mechanics import cubic_stiffness, rotate_stiffness, to_mandel  # noqa: E402
from polyfe2.simulation.homogenize import homogenized_stiffness  # noqa: E402

C11, C12, C44 = 106.75e9, 60.41e9, 28.34e9


def crystal_mandel(q, scale=1.0) -> np.ndarray:
    R = torch.as_tensor(damask.Rotation(np.asarray(q)).as_matrix())
    return to_mandel(rotate_stiffness(cubic_stiffness(C11, C12, C44) * scale, R)).numpy()


def case(material_id, phases, materials):
    return build_case(np.asarray(material_id), phases, materials, [deformation(np.eye(3))], backend="elastic")


def test_single_crystal_gives_its_own_rotated_stiffness():
    q = damask.Rotation.from_random(rng_seed=3).quaternion
    C = homogenized_stiffness(case(np.zeros((4, 3, 2), dtype=int), {"Al": phase()}, [("Al", [q])]))
    np.testing.assert_allclose(C, crystal_mandel(q), rtol=0, atol=1e-8 * C11)


def laminate(C1, C2, f1, n) -> np.ndarray:
    """Exact stiffness of a rank-one laminate with normal n (Mandel):
    C̄ = f1 C1 + f2 C2 − f1 f2 ΔC H (Hᵀ Ĉ H)⁻¹ Hᵀ ΔC with Ĉ = f2 C1 + f1 C2 and H a = Mandel(sym(a ⊗ n))."""
    f2 = 1.0 - f1
    w = np.array([1, 1, 1, math.sqrt(2), math.sqrt(2), math.sqrt(2)])
    pairs = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
    H = np.zeros((6, 3))
    for k in range(3):
        a = np.zeros(3)
        a[k] = 1.0
        E = 0.5 * (np.outer(a, n) + np.outer(n, a))
        H[:, k] = [w[m] * E[i, j] for m, (i, j) in enumerate(pairs)]
    dC = C1 - C2
    hat = f2 * C1 + f1 * C2
    return f1 * C1 + f2 * C2 - f1 * f2 * dC @ H @ np.linalg.solve(H.T @ hat @ H, H.T @ dC)


@pytest.mark.parametrize("axis", [0, 1])
def test_laminate_matches_the_rank_one_formula(axis):
    q1, q2 = damask.Rotation.from_random(2, rng_seed=7).quaternion
    shape = [2, 2, 2]
    shape[axis] = 8
    mat = np.zeros(shape, dtype=int)
    index = [slice(None)] * 3
    index[axis] = slice(0, 3)
    mat[tuple(index)] = 1                                   # f1 = 3/8 of the stiff, rotated phase
    C = homogenized_stiffness(case(mat, {"soft": phase(scale=0.3), "stiff": phase()},
                                   [("soft", [q2]), ("stiff", [q1])]))
    n = np.eye(3)[axis]
    expected = laminate(crystal_mandel(q1), crystal_mandel(q2, 0.3), 3 / 8, n)
    np.testing.assert_allclose(C, expected, rtol=0, atol=1e-4 * C11)


def test_polycrystal_lies_between_voigt_and_reuss_and_the_command_writes_it(tmp_path, damask_refs, capsys):
    ref = damask_refs / "F1_full16_uniaxialx"
    out = tmp_path / "C.json"
    assert main(["homogenize", "--geometry", str(ref / "grid.vti"), "--material", str(ref / "material.yaml"),
                 "--out", str(out)]) == 0
    C = np.array(json.loads(out.read_text())["mandel_Pa"])
    grid = damask.GeomGrid.load(ref / "grid.vti")
    cfg = damask.ConfigMaterial.load(ref / "material.yaml")
    q = np.array([m["constituents"][0]["O"] for m in cfg["material"]])
    counts = np.bincount(grid.material.ravel(), minlength=len(q)) / grid.material.size
    Cs = np.array([crystal_mandel(qi) for qi in q])
    voigt = np.einsum("g,gab->ab", counts, Cs)
    reuss = np.linalg.inv(np.einsum("g,gab->ab", counts, np.linalg.inv(Cs)))
    np.testing.assert_allclose(C, C.T, rtol=0, atol=1e-9 * C11)
    assert np.linalg.eigvalsh(voigt - C).min() > -1e-4 * C11
    assert np.linalg.eigvalsh(C - reuss).min() > -1e-4 * C11
    # the bounds are apart (except along the hydrostatic strain: cubic crystals share one bulk modulus)
    assert np.sort(np.linalg.eigvalsh(voigt - reuss))[1] > 1e-3 * C11
    assert np.trace(voigt - C) > 0.1 * np.trace(voigt - reuss) and np.trace(C - reuss) > 0.1 * np.trace(voigt - reuss)
    assert "Mandel" in capsys.readouterr().out
