"""The fcc slip-slip (latent hardening) interaction table against DAMASK's own.

DAMASK's table is written below as the Fortran source has it (DAMASK 3.0.2, src/crystal.f90,
``crystal_interaction_SlipBySlip``, ``CF_INTERACTIONSLIPSLIP``; 18×18 with the non-octahedral
systems) and read with DAMASK's semantics: ``reshape`` fills columns, and ``buildInteraction``
sets ``h(reacting, acting) = values(matrix(acting, reacting))``. Nothing here reads polyfe2's
copy of the table to build the expectation.
"""
from __future__ import annotations

import itertools

import numpy as np
import torch

from polyfe2.constitutive import crystal, get

CF_INTERACTIONSLIPSLIP_F90 = """
       1, 2, 2, 4, 7, 6, 3, 5, 5, 4, 6, 7,  10,11,10,11,12,13, & ! -----> acting (forest)
       2, 1, 2, 7, 4, 6, 6, 4, 7, 5, 3, 5,  10,11,12,13,10,11, & ! |
       2, 2, 1, 5, 5, 3, 6, 7, 4, 7, 6, 4,  12,13,10,11,10,11, & ! |
       4, 7, 6, 1, 2, 2, 4, 6, 7, 3, 5, 5,  10,11,11,10,13,12, & ! v
       7, 4, 6, 2, 1, 2, 5, 3, 5, 6, 4, 7,  10,11,13,12,11,10, & ! reacting (primary)
       5, 5, 3, 2, 2, 1, 7, 6, 4, 6, 7, 4,  12,13,11,10,11,10, &
       3, 5, 5, 4, 6, 7, 1, 2, 2, 4, 7, 6,  11,10,11,10,12,13, &
       6, 4, 7, 5, 3, 5, 2, 1, 2, 7, 4, 6,  11,10,13,12,10,11, &
       6, 7, 4, 7, 6, 4, 2, 2, 1, 5, 5, 3,  13,12,11,10,10,11, &
       4, 6, 7, 3, 5, 5, 4, 7, 6, 1, 2, 2,  11,10,10,11,13,12, &
       5, 3, 5, 6, 4, 7, 7, 4, 6, 2, 1, 2,  11,10,12,13,11,10, &
       7, 6, 4, 6, 7, 4, 5, 5, 3, 2, 2, 1,  13,12,10,11,11,10, &

      10,10,12,10,10,12,11,11,13,11,11,13,   1, 8, 9, 9, 9, 9, &
      11,11,13,11,11,13,10,10,12,10,10,12,   8, 1, 9, 9, 9, 9, &
      10,12,10,11,13,11,11,13,11,10,12,10,   9, 9, 1, 8, 9, 9, &
      11,13,11,10,12,10,10,12,10,11,13,11,   9, 9, 8, 1, 9, 9, &
      12,10,10,13,11,11,12,10,10,13,11,11,   9, 9, 9, 9, 1, 8, &
      13,11,11,12,10,10,13,11,11,12,10,10,   9, 9, 9, 9, 8, 1  &
"""

# seven distinct values, one per type
VALUES = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]


def damask_matrix() -> np.ndarray:
    """DAMASK's ``CF_INTERACTIONSLIPSLIP`` as the Fortran array ``matrix(i, j)`` (0-based)."""
    numbers = [int(tok) for line in CF_INTERACTIONSLIPSLIP_F90.splitlines()
               for tok in line.split("!")[0].replace("&", "").split(",") if tok.strip()]
    assert len(numbers) == 18 * 18
    return np.reshape(numbers, (18, 18), order="F")  # Fortran reshape: first index fastest


def damask_types() -> np.ndarray:
    """Type of h(reacting α, acting β) for the 12 octahedral systems, by buildInteraction:
    with i = acting, j = reacting, ``buildInteraction(l=reacting, k=acting) = values(matrix(i, j))``."""
    m = damask_matrix()
    return np.array([[m[beta, alpha] for beta in range(12)] for alpha in range(12)])


def test_table_is_damasks_octahedral_block():
    ours = np.array(crystal.FCC_SLIP_INTERACTION_TYPES)
    assert ours.shape == (12, 12)
    np.testing.assert_array_equal(ours, damask_types())


def test_interaction_matrix_puts_each_type_where_damask_has_it():
    """Seven distinct values: swapping any two types, or transposing, changes some entry."""
    H = crystal.fcc_interaction_matrix(VALUES).numpy()
    T = damask_types()
    assert H.shape == (12, 12)
    for a, b in itertools.product(range(12), range(12)):
        assert H[a, b] == VALUES[T[a, b] - 1], (a, b, H[a, b], T[a, b])
    for t1, t2 in itertools.combinations(range(7), 2):  # the test above can tell every pair apart
        swapped = list(VALUES)
        swapped[t1], swapped[t2] = swapped[t2], swapped[t1]
        assert not np.array_equal(crystal.fcc_interaction_matrix(swapped).numpy(), H)
    assert not np.array_equal(H.T, H)


def test_every_system_sees_each_type_as_often():
    """Per row and per column: 1 self, 2 coplanar, 1 collinear, 2 Hirth, 2 + 2 glissile, 2 Lomer."""
    T = np.array(crystal.FCC_SLIP_INTERACTION_TYPES)
    expected = [1, 2, 1, 2, 2, 2, 2]
    for k in range(12):
        assert np.bincount(T[k], minlength=8)[1:].tolist() == expected, ("row", k)
        assert np.bincount(T[:, k], minlength=8)[1:].tolist() == expected, ("column", k)


def test_symmetry_except_glissile_pairs():
    """DAMASK's table is symmetric except glissile junctions: type(α, β) = 5 ⇔ type(β, α) = 6."""
    T = np.array(crystal.FCC_SLIP_INTERACTION_TYPES)
    sym = ~np.isin(T, (5, 6))
    np.testing.assert_array_equal(T[sym], T.T[sym])
    np.testing.assert_array_equal(T == 5, T.T == 6)


def test_interaction_types_follow_from_slip_geometry():
    """Every type from the geometry of DAMASK's slip systems (polyfe2.crystal.fcc_slip_systems):
    self, coplanar (same plane), collinear (same direction), Hirth (b_α ⊥ b_β); for the other
    pairs the junction's Burgers vector b = b_α ± b_β (the one with |b| = |b_α|) lies in
    neither plane (Lomer, 7), in the reacting plane n_α (glissile, 6) or in the acting plane
    n_β (glissile, 5)."""
    d, n = (x.numpy() for x in crystal.fcc_slip_systems())
    T = np.array(crystal.FCC_SLIP_INTERACTION_TYPES)
    for a, b in itertools.product(range(12), range(12)):
        same_plane = abs(abs(n[a] @ n[b]) - 1) < 1e-12
        same_dir = abs(abs(d[a] @ d[b]) - 1) < 1e-12
        if a == b:
            expected = 1
        elif same_plane:
            expected = 2
        elif same_dir:
            expected = 3
        elif abs(d[a] @ d[b]) < 1e-12:
            expected = 4
        else:
            junction = min((d[a] + d[b], d[a] - d[b]), key=lambda v: abs(np.linalg.norm(v) - 1))
            assert abs(np.linalg.norm(junction) - 1) < 1e-12
            in_reacting, in_acting = abs(junction @ n[a]) < 1e-12, abs(junction @ n[b]) < 1e-12
            assert not (in_reacting and in_acting)
            expected = 6 if in_reacting else 5 if in_acting else 7
        assert T[a, b] == expected, (a, b, T[a, b], expected)


def test_taylor_hardening_uses_rows_as_reacting_systems():
    """The backend's hardening rate ξ̇_α ∝ Σ_β h_αβ |γ̇_β|: with slip on one system β only (Mandel
    stress d_β ⊗ n_β at ξ, the others at most half as loaded, suppressed by n = 20), the
    hardening of the systems α is column β of DAMASK's matrix."""
    phase = {"lattice": "cF", "mechanical": {
        "elastic": {"type": "Hooke", "C_11": 106.75e9, "C_12": 60.41e9, "C_44": 28.34e9},
        "plastic": {"type": "phenopowerlaw", "N_sl": [12], "a_sl": [2.25], "dot_gamma_0_sl": [1e-3],
                    "h_0_sl-sl": [75e6], "h_sl-sl": VALUES, "n_sl": [20],
                    "xi_0_sl": [31e6], "xi_inf_sl": [63e6]}}}
    be = get("taylor")(phase)
    c = be._constants(torch.zeros(1, dtype=torch.float64))
    d, n = crystal.fcc_slip_systems()
    T = damask_types()
    xi = torch.full((1, 12), 31e6, dtype=torch.float64)
    for beta in range(12):
        S = 31e6 * torch.outer(d[beta], n[beta])[None]
        rates = be._dot_state(S, xi, c)[0]
        dxi, gd = rates[:12].numpy(), rates[12:].numpy()
        assert gd.argmax() == beta and np.delete(gd, beta).max() < 1e-5 * gd[beta]
        np.testing.assert_allclose(dxi / dxi.min(), [VALUES[T[a, beta] - 1] for a in range(12)], rtol=1e-4)
