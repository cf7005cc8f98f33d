"""The spectral solver against independent references: DAMASK's own results, analytical
laminates, Voigt/Reuss bounds, Schmid's law, and the boundary-condition tolerances."""
from __future__ import annotations

import damask
import numpy as np
import pytest
import torch
from solver_cases import (AL_PLASTIC, curve_tensor, deformation, last_field, phase, read_damask_curve,
                          run_case, run_damask_reference, uniaxial_x, write_case)


def cubic_C(c11, c12, c44):
    from polyfe2.mechanics import cubic_stiffness

    return cubic_stiffness(c11, c12, c44, dtype=torch.float64).numpy()


def test_taylor_T1_inputs_run_unchanged_and_match_damask(tmp_path, damask_refs):
    summary, curve, status = run_damask_reference(damask_refs / "T1_taylor20_uniaxialx", tmp_path)
    damask_curve = read_damask_curve(damask_refs / "T1_taylor20_uniaxialx")
    assert len(curve["increment"]) == len(damask_curve) == 41
    P11, P11_ref = curve["P_11_MPa"], damask_curve["P_11_MPa"]
    assert np.max(np.abs(P11[1:] - P11_ref[1:]) / P11_ref[1:]) < 2e-3
    assert P11[-1] == pytest.approx(88.620, rel=1e-3)
    # the lateral contraction found by the stress BCs matches DAMASK's
    assert curve["F_22"][-1] == pytest.approx(damask_curve["F_22"][-1], abs=2e-5)
    assert curve["F_33"][-1] == pytest.approx(damask_curve["F_33"][-1], abs=2e-5)


def test_homogeneous_grid_equals_single_material_point(tmp_path):
    """A 2×2×2 grid of one crystal: every cell is the material point driven by the average F."""
    from polyfe2.constitutive import MaterialPoints, get

    q = damask.Rotation.from_random(rng_seed=3).quaternion
    path = write_case(tmp_path, np.zeros((2, 2, 2), dtype=int), {"Al": phase(plastic=AL_PLASTIC)},
                      [("Al", [q])], [uniaxial_x(t=4.0, N=8)])
    summary, curve, status = run_case(path)
    backend = get("taylor")(phase(plastic=AL_PLASTIC))
    pts = MaterialPoints(torch.tensor(q[None, None], dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64),
                         torch.zeros(1, dtype=torch.long))
    state = backend.setup(pts, torch.device("cpu"), torch.float64)
    F_0 = torch.eye(3, dtype=torch.float64)[None]
    for row in range(1, len(curve["increment"])):
        F = torch.tensor(curve_tensor(curve, "F", row))[None]
        dt = curve["t_s"][row] - curve["t_s"][row - 1]
        r = backend.evaluate(F, F_0, dt, state)
        state, F_0 = backend.commit(r.state), F
        # the curve stores F with 10 significant digits: ~1e-10 strain, ~10 Pa of stress
        np.testing.assert_allclose(r.P[0].numpy() / 1e6, curve_tensor(curve, "P_MPa", row), atol=1e-4)
    assert curve["P_11_MPa"][-1] > 40.0  # well into the plastic range


def laminate_effective_P(C1, C2, f1, eps):
    """Small-strain laminate with normal x: strains ε_i = ε + sym(a_i ⊗ x), f1 a_1 + f2 a_2 = 0,
    traction σ_i·x continuous. Returns the average stress (independent of any FFT)."""
    n = np.array([1.0, 0.0, 0.0])
    f2 = 1.0 - f1

    def stress(C, a):
        e = eps + 0.5 * (np.outer(a, n) + np.outer(n, a))
        return np.einsum("ijkl,kl->ij", C, e)

    # linear in a_1: solve (σ_1 − σ_2)·n = 0 with a_2 = −f1/f2 a_1
    A = np.zeros((3, 3))
    b = -(stress(C1, np.zeros(3)) - stress(C2, np.zeros(3))) @ n
    for k in range(3):
        e = np.zeros(3)
        e[k] = 1.0
        A[:, k] = ((stress(C1, e) - stress(C1, np.zeros(3))) - (stress(C2, -f1 / f2 * e) - stress(C2, np.zeros(3)))) @ n
    a1 = np.linalg.solve(A, b)
    return f1 * stress(C1, a1) + f2 * stress(C2, -f1 / f2 * a1)


def test_elastic_laminate_matches_analytical_solution(tmp_path):
    nx = 8
    mat = np.zeros((nx, 2, 2), dtype=int)
    mat[: nx // 4] = 1  # f1 = 1/4 of the stiff phase
    soft = phase(scale=0.2)
    eps = np.array([[2e-4, 0.5e-4, 0], [0.5e-4, -1e-4, 0.3e-4], [0, 0.3e-4, 0.5e-4]])
    path = write_case(tmp_path, mat, {"soft": soft, "stiff": phase()},
                      [("soft", [[1, 0, 0, 0]]), ("stiff", [[1, 0, 0, 0]])],
                      [deformation(np.eye(3) + eps)], backend="elastic")
    summary, curve, status = run_case(path)
    C_stiff = cubic_C(106.75e9, 60.41e9, 28.34e9)
    expected = laminate_effective_P(C_stiff, 0.2 * C_stiff, 0.25, eps) / 1e6
    got = curve_tensor(curve, "P_MPa")
    # finite strain vs the small-strain solution: agree to O(|ε|) relative
    np.testing.assert_allclose(got, expected, atol=2e-3 * np.abs(expected).max())
    # and differ clearly from the Voigt (uniform strain) answer
    voigt = np.einsum("ijkl,kl->ij", (0.25 + 0.75 * 0.2) * C_stiff, eps) / 1e6
    assert np.abs(voigt - expected).max() > 20 * 2e-3 * np.abs(expected).max()


def test_elastic_polycrystal_between_voigt_and_reuss(tmp_path):
    rng = np.random.default_rng(7)
    cells = (6, 6, 6)
    seeds = damask.seeds.from_random(np.ones(3), 12, rng_seed=11)
    grid = damask.GeomGrid.from_Voronoi_tessellation(cells, np.ones(3), seeds)
    q = damask.Rotation.from_random(12, rng_seed=12).quaternion
    eps = 1e-4 * np.array([[1.0, 0.3, 0], [0.3, -0.5, 0.2], [0, 0.2, 0.4]])
    path = write_case(tmp_path, grid.material, {"Al": phase()}, [("Al", [qi]) for qi in q],
                      [deformation(np.eye(3) + eps)], backend="elastic")
    summary, curve, status = run_case(path)
    from polyfe2.mechanics import rotate_stiffness

    C = torch.as_tensor(cubic_C(106.75e9, 60.41e9, 28.34e9))
    R = torch.as_tensor(damask.Rotation(q).as_matrix())
    C_lab = rotate_stiffness(C, R).numpy()  # (12,3,3,3,3) per grain
    frac = np.bincount(grid.material.ravel(), minlength=12) / grid.material.size
    C_voigt = np.einsum("g,gijkl->ijkl", frac, C_lab)
    # quadratic forms: ε:C_R:ε ≤ ε:P̄ ≤ ε:C_V:ε (Hill); Reuss = inverse of the average compliance,
    # inverted on the space of symmetric tensors
    sym = 0.5 * (np.eye(9) + np.eye(9).reshape(3, 3, 3, 3).transpose(0, 1, 3, 2).reshape(9, 9))

    def sym_inv(C4):
        return np.linalg.pinv(sym @ C4.reshape(9, 9) @ sym)

    S_avg = sum(f * sym_inv(Cg) for f, Cg in zip(frac, C_lab))
    C_reuss = np.linalg.pinv(S_avg).reshape(3, 3, 3, 3)
    e = eps
    energy = float(np.sum(e * curve_tensor(curve, "P_MPa") * 1e6))
    upper = float(np.einsum("ij,ijkl,kl", e, C_voigt, e))
    lower = float(np.einsum("ij,ijkl,kl", e, C_reuss, e))
    assert lower < upper
    assert lower * (1 - 1e-3) < energy < upper * (1 + 1e-3)
    assert lower * 1.001 < energy < upper * 0.999  # strictly inside: a real polycrystal


def uniaxial_stress_x(rate=1e-3, t=1.0, N=2):
    """Uniaxial stress: F_11 at a rate, P_22 = P_33 = 0 and the upper shear stresses zero
    (the lower shear components of F held, which fixes the rotation)."""
    return {"boundary_conditions": {"mechanical": {
        "dot_F": [[rate, "x", "x"], [0, "x", "x"], [0, 0, "x"]],
        "P": [["x", 0, 0], ["x", 0, 0], ["x", "x", 0]]}},
        "discretization": {"t": t, "N": N}}


@pytest.mark.parametrize("hardening", ["aluminium", "fast"])
def test_single_crystal_yields_by_schmid_and_saturates(tmp_path, hardening):
    """One crystal (K = 1) in uniaxial tension: plastic flow sets in when the largest Schmid
    factor m gives τ = m σ = ξ_0, and the flow stress saturates at ξ_∞/m (Schmid's law with
    the rate factor (γ̇/γ̇_0)^(1/n) of the power law, ~1 here). Stress BCs hold throughout."""
    plastic = AL_PLASTIC if hardening == "aluminium" else dict(AL_PLASTIC, **{"h_0_sl-sl": [10e9], "a_sl": [1.0]})
    q = damask.Rotation.from_Euler_angles([10.0, 25.0, 35.0], degrees=True).quaternion
    path = write_case(tmp_path, np.zeros((2, 1, 1), dtype=int), {"Al": phase(plastic=plastic)},
                      [("Al", [q])], [uniaxial_stress_x(t=30.0, N=30)])
    summary, curve, status = run_case(path)
    kin = damask.Crystal(lattice="cF").kinematics("slip")
    d, n = np.vstack(kin["direction"]), np.vstack(kin["plane"])
    d, n = d / np.linalg.norm(d, axis=1, keepdims=True), n / np.linalg.norm(n, axis=1, keepdims=True)
    x_c = damask.Rotation(q).as_matrix() @ np.array([1.0, 0, 0])  # lab x in crystal frame
    m_max = np.max(np.abs((d @ x_c) * (n @ x_c)))
    P11, strain = curve["P_11_MPa"], curve["F_11"] - 1.0
    tau = m_max * P11
    # elastic start: E_x between the <111> and <100> moduli of aluminium (76 and 63 GPa)
    assert 60e3 < P11[1] / strain[1] < 78e3
    # yield: the first increment whose secant tangent drops below a quarter of the elastic one
    tangent = np.diff(P11) / np.diff(strain)
    first_plastic = int(np.argmax(tangent < 0.25 * tangent[0])) + 1
    if hardening == "aluminium":
        assert tau[first_plastic] == pytest.approx(31.0, rel=0.06)
        # slow hardening (a = 2.25): the plateau stays at ξ_0 within a few percent
        assert np.all((tau[first_plastic:] > 30.5) & (tau[first_plastic:] < 33.0))
    else:  # saturation: ξ → ξ_∞ on the active systems
        assert tau[-1] == pytest.approx(63.0, rel=0.05)
        assert abs(tau[-1] - tau[-4]) < 0.02 * tau[-1]
    # stress BCs within max(1e-3 max|P̄|, 1 kPa) at every increment
    tol = np.maximum(1e-3 * np.abs(P11), 1e-3)
    for comp in ("P_22_MPa", "P_33_MPa", "P_12_MPa", "P_13_MPa", "P_23_MPa"):
        assert np.all(np.abs(curve[comp]) <= tol), comp


def test_an_older_accepted_evaluation_is_evaluated_again_to_the_same_fields(tmp_path, monkeypatch):
    """Only the latest evaluation keeps its trial state; when an older one is accepted its state is
    computed again: the run's fields equal those of runs where the accepted one kept its state, to
    the crystal-plasticity Newton's tolerance (computed again, its Newton starts from the latest
    evaluation's L_p, not from the one it first started from; rtol_Lp = 1e-6)."""
    from polyfe2.solver.spectral import SpectralSolver

    rng = np.random.default_rng(4)
    ids = rng.integers(0, 4, (4, 4, 2))
    qs = damask.Rotation.from_random(4, rng_seed=5).quaternion
    path = write_case(tmp_path / "a", ids, {"Al": phase(plastic=AL_PLASTIC)}, [("Al", [q]) for q in qs],
                      [uniaxial_x(t=4.0, N=4)])
    first = run_case(path)[0]
    reference = last_field(first), last_field(first, "F")
    accepted_then_dropped = []
    converged = SpectralSolver._converged

    def drop_accepted_state(self, snes, it, norms):   # as if the accepted iterate were an older one
        reason = converged(self, snes, it, norms)
        if self._accepted is not None and self._accepted.trial is not None:
            self._accepted.trial = None
            accepted_then_dropped.append(it)
        return reason

    monkeypatch.setattr(SpectralSolver, "_converged", drop_accepted_state)
    summary, curve, status = run_case(path)
    assert len(accepted_then_dropped) == 4 == len(status)
    P, P_ref = last_field(summary), reference[0]
    assert np.abs(P - P_ref).max() < 1e-5 * np.abs(P_ref).max()   # 7.7e-7 here
    np.testing.assert_allclose(last_field(summary, "F"), reference[1], rtol=0, atol=1e-8)   # 7.5e-10 here
    assert curve["P_11_MPa"][-1] > 40.0   # plastic: the state carried between increments matters
