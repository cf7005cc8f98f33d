"""``taylor``: DAMASK ``phenopowerlaw`` crystal plasticity, iso-strain over K constituents.

Follows DAMASK 3 (src/phase_mechanical.f90: integrateStress, integrateStateFPI;
src/phase_mechanical_plastic_phenopowerlaw.f90; src/crystal.f90), batched in torch over all
N·K constituents, float64. Per constituent (no F_i, no thermal terms):

(1) F = F_e F_p,  F_p(t=0) = R = O.as_matrix() (lab->crystal), so the intermediate configuration
    is the lattice frame: the stiffness is the plain cubic C and m_α = d_α ⊗ n_α (Schmid tensors) are lattice
    vectors (DAMASK phase_mechanical.f90, mechanical_init).
(2) S = C : ½(F_eᵀF_e − I),  M_p = S  (Mandel stress with F_i = I),  τ_α = M_p : m_α.
(3) γ̇_α = γ̇_0 |τ_α/ξ_α|^n sign(τ_α),  L_p = Σ_α γ̇_α m_α,
    ∂γ̇_α/∂τ_α = γ̇_0 n |τ_α/ξ_α|^(n−1) / ξ_α   (kinetics_sl, LpAndItsTangent).
(4) ξ̇_α = h_0 (1 + h_int) sign(1 − ξ_α/ξ_∞)|1 − ξ_α/ξ_∞|^a Σ_β h_αβ |γ̇_β|,  γ̇^state_α = |γ̇_α|
    (phenopowerlaw_dotState: the saturation factor uses the hardened system α, outside the sum).
(5) Stress, implicit in L_p (integrateStress): F_p⁻¹ = F_p0⁻¹ (I − Δt L_p), F_e = F F_p⁻¹,
    Newton on R(L_p) = L_p − L_p^c(S(F_e(L_p))) with the analytical 9×9 Jacobian
        ∂R/∂L_p = I + Δt Σ_α ∂γ̇_α/∂τ_α  m_α ⊗ (Aᵀ F_e Q_α),   A = F F_p0⁻¹,  Q_α = C : m_α,
    converged when |R| < max(rtol max(|L_p|, |L_p^c|), atol); when |R| does not decrease the
    step is halved along the last Newton direction (subStepSizeLp = 0.5).
(6) State (ξ, γ) by backward Euler with DAMASK's damped fixed-point iteration (integrateStateFPI):
    y = y_0 + ẏ Δt, converged when |r_i| ≤ max(atol_i, rtol |y_i|) for every component.
(7) P_k = F F_p⁻¹ S F_p⁻ᵀ, F_p regularised by det(F_p)^(1/3); P = Σ_k v_k P_k.

A point whose update does not converge is integrated again from its committed state in 2, 4,
... equal substeps (F linear in time, Δt/n each) up to ``2**substep_levels``, as DAMASK's
crystallite cuts a step that fails (phase_mechanical.f90, crystallite: subStep, subStepMinCryst).
Points that still fail, or whose F is not admissible, are reported in ``failed`` and answered
with the elastic predictor (F_p = F_p0); nothing raises. The solver then cuts the increment back.
"""
from __future__ import annotations

import torch
from torch.func import jacfwd, vmap

from ..errors import InputError
from ..schema import Field, Schema
from ..mechanics import average_stiffness, cubic_stiffness, ddot42, green_lagrange
from . import crystal
from .parameters import N_FCC_SLIP_TYPES
from .base import Backend, MaterialPoints, Response, State, keep_committed
from .registry import register


@register("taylor")
class TaylorBackend(Backend):
    """DAMASK ``phenopowerlaw`` (fcc, 12 {111}<110> systems), iso-strain (Taylor) over K.

    Parameters
    ----------
    phase : mapping
        material.yaml phase entry, e.g. DAMASK's aluminium: ``lattice: cF``; ``mechanical:
        {elastic: {type: Hooke, C_11, C_12, C_44}, plastic: {type: phenopowerlaw, N_sl: [12],
        a_sl, dot_gamma_0_sl, h_0_sl-sl, h_sl-sl (7 values), n_sl, xi_0_sl, xi_inf_sl}}``;
        optional ``h_int`` (default 0), ``atol_xi`` (Pa, default 1), ``atol_gamma`` (default
        1e-6); validated by :data:`polyfe2.constitutive.parameters.PHENOPOWERLAW`.
    options : mapping, optional
        See :attr:`options_schema`.

    State keys (committed and trial; N points, K constituents)
    ----------------------------------------------------------
    ``F_p`` (N,K,3,3), ``L_p`` (N,K,3,3) (Newton start of the next increment), ``S`` (N,K,3,3)
    (2nd Piola–Kirchhoff in the lattice frame; DAMASK's first FPI predictor uses it),
    ``xi_sl`` (N,K,12) in Pa, ``gamma_sl`` (N,K,12) accumulated |shear|; constants ``R``
    (N,K,3,3) lab->crystal rotation and ``v`` (N,K) fractions.
    """

    options_schema = Schema("backend_options (taylor)", {
        "max_newton": Field("integer", "Newton iterations of L_p (DAMASK nStress)", default=40, low=1),
        "max_state_iter": Field("integer", "state fixed-point iterations (DAMASK nState)", default=20, low=1),
        "rtol_Lp": Field("number", "relative tolerance of L_p (DAMASK rtol_Stress)", default=1e-6, low=0,
                         open_low=True),
        "atol_Lp": Field("number", "absolute tolerance of L_p (DAMASK atol_Stress)", default=1e-8, unit="1/s",
                         low=0, open_low=True),
        "rtol_state": Field("number", "relative tolerance of the state (DAMASK rtol_State)", default=1e-6,
                            low=0, open_low=True),
        "step_shrink_Lp": Field("number", "step shrink of the L_p Newton (DAMASK subStepSizeLp)", default=0.5,
                                low=0, high=1, open_low=True, open_high=True),
        "substep_levels": Field("integer", "a point that fails is integrated again in 2, 4, ..., 2**substep_levels "
                                "substeps before it counts as failed (DAMASK's crystallite substepping; 0: none; "
                                "odmn's leaves do not use it)", default=4, low=0, high=12),
        "newton_start": Field("choice", "where the L_p Newton and the first state predictor of an evaluation start: "
                              "last (L_p and S of the increment's latest evaluation, as DAMASK's Lpguess and "
                              "current S) or committed (those of the start of the increment)", default="last",
                              choices=("last", "committed")),
    })

    starts_from_trial = True

    def __init__(self, phase, options=None, *, source="material.yaml", base_dir=None, phase_name="NAME"):
        super().__init__(phase, options, source=source, base_dir=base_dir, phase_name=phase_name)
        if phase["lattice"] != "cF":
            raise InputError(f"expected 'cF' (only fcc is implemented in taylor), got {phase['lattice']!r}",
                             file=source, key=f"phase/{phase_name}/lattice")
        pl = self.plastic
        if pl is None:
            raise InputError("expected a plastic law of type phenopowerlaw for the taylor backend", file=source,
                             key=f"phase/{phase_name}/mechanical/plastic")
        self.dot_gamma_0, self.n, self.a = pl["dot_gamma_0_sl"], pl["n_sl"], pl["a_sl"]
        self.h_0, self.xi_0, self.xi_inf, self.h_int = pl["h_0_sl-sl"], pl["xi_0_sl"], pl["xi_inf_sl"], pl["h_int"]
        self.atol_xi, self.atol_gamma = pl["atol_xi"], pl["atol_gamma"]
        self.h_sl_sl = pl["h_sl-sl"][:N_FCC_SLIP_TYPES]

    # ------------------------------------------------------------------------------------------
    # constants per device/dtype (built per call; nothing cached at module level)
    # ------------------------------------------------------------------------------------------
    def _constants(self, like: torch.Tensor) -> dict[str, torch.Tensor]:
        dev, dt = like.device, like.dtype
        C = cubic_stiffness(self.C_11, self.C_12, self.C_44, device=dev, dtype=dt)
        d, n = crystal.fcc_slip_systems(device=dev, dtype=dt)
        schmid = crystal.schmid_tensors(d, n)
        Q = torch.einsum("aij,ijkl->akl", schmid, C)         # Q_α = m_α : C = C : m_α (symmetric)
        H = crystal.fcc_interaction_matrix(self.h_sl_sl, device=dev, dtype=dt)
        return {"C": C, "schmid": schmid, "Q": Q, "H": H, "I": torch.eye(3, device=dev, dtype=dt)}

    # ------------------------------------------------------------------------------------------
    def setup(self, points: MaterialPoints, device, dtype) -> State:
        """Initial state: F_p = R / det(R)^(1/3), ξ = ξ_0, γ = 0, L_p = S = 0 (DAMASK)."""
        v = points.fractions.to(device=device, dtype=dtype)
        R = crystal.orientation_matrices(points.orientations, v, device=device, dtype=dtype)
        N, K = v.shape
        Fp = R / torch.linalg.det(R)[..., None, None].abs() ** (1.0 / 3.0)
        z33 = torch.zeros(N, K, 3, 3, device=device, dtype=dtype)
        return {"F_p": Fp, "L_p": z33, "S": z33.clone(),
                "xi_sl": torch.full((N, K, 12), self.xi_0, device=device, dtype=dtype),
                "gamma_sl": torch.zeros(N, K, 12, device=device, dtype=dtype),
                "R": R, "v": v}

    def stiffness(self, state: State) -> torch.Tensor:
        """(N,3,3,3,3) Σ_k v_k C_lab(R_k): the elastic stiffness rotated by the initial orientation."""
        R = state["R"]
        return average_stiffness(self._constants(R)["C"], R, state["v"])

    # ------------------------------------------------------------------------------------------
    # constitutive pieces, eqs. (2)-(4)
    # ------------------------------------------------------------------------------------------
    def _rates(self, tau: torch.Tensor, xi: torch.Tensor):
        """γ̇_α and ∂γ̇_α/∂τ_α, eq. (3)."""
        x = tau / xi
        ax = x.abs()
        gd = self.dot_gamma_0 * ax ** self.n * torch.sign(x)
        nz = tau != 0
        dgd = torch.where(nz, self.dot_gamma_0 * self.n * torch.where(nz, ax, 1.0) ** (self.n - 1.0) / xi,
                          torch.zeros_like(x))
        return gd, dgd

    def _dot_state(self, S: torch.Tensor, xi: torch.Tensor, c) -> torch.Tensor:
        """[ξ̇, |γ̇|] (m, 24) from the stress S (m,3,3) and hardness ξ (m,12), eq. (4)."""
        tau = torch.einsum("mij,aij->ma", S, c["schmid"])
        gd, _ = self._rates(tau, xi)
        agd = gd.abs()
        u = 1.0 - xi / self.xi_inf
        left = torch.sign(u) * u.abs() ** self.a
        dxi = self.h_0 * (1.0 + self.h_int) * left * (agd @ c["H"].T)
        return torch.cat([dxi, agd], dim=-1)

    def _integrate_stress(self, A, xi, Lp_guess, dt, c):
        """Newton on the L_p residual, eq. (5), for the batch (m); mask-based.

        Returns S (m,3,3), L_p (m,3,3), ok (m,) bool.
        """
        o = self.options
        m = A.shape[0]
        I, C, schmid, Q = c["I"], c["C"], c["schmid"], c["Q"]
        Lp = Lp_guess.clone()
        Lp_old = Lp.clone()
        delta = torch.zeros_like(Lp)
        step = torch.ones(m, device=A.device, dtype=A.dtype)
        rn_old = torch.full((m,), float("inf"), device=A.device, dtype=A.dtype)
        S_out = torch.zeros_like(A)
        ok = torch.zeros(m, dtype=torch.bool, device=A.device)
        active = torch.arange(m, device=A.device)
        for it in range(1, int(o["max_newton"]) + 1):
            if active.numel() == 0:
                break
            a = active
            Lpa, Aa = Lp[a], A[a]
            Fe = Aa @ (I - dt * Lpa)
            E = green_lagrange(Fe)
            S = ddot42(C, E)
            tau = torch.einsum("mij,aij->ma", E, Q)          # = S : m_α
            gd, dgd = self._rates(tau, xi[a])
            Lpc = torch.einsum("ma,aij->mij", gd, schmid)
            res = Lpa - Lpc
            rn = torch.linalg.matrix_norm(res)
            tol = torch.clamp_min(o["rtol_Lp"] * torch.maximum(torch.linalg.matrix_norm(Lpa),
                                                               torch.linalg.matrix_norm(Lpc)), o["atol_Lp"])
            finite = torch.isfinite(res).flatten(1).all(1) & torch.isfinite(S).flatten(1).all(1)
            conv = finite & (rn < tol)
            improved = finite & ~conv & ((rn < rn_old[a]) if it > 1 else torch.ones_like(conv))
            worse = finite & ~conv & ~improved
            keep = worse.clone()

            ic = a[conv]
            ok[ic] = True
            S_out[ic] = S[conv]

            if bool(worse.any()):                             # shorter step along the same direction
                w = a[worse]
                step[w] = step[w] * o["step_shrink_Lp"]
                Lp[w] = Lp_old[w] + delta[w] * step[w, None, None]

            if bool(improved.any()):
                i = a[improved]
                rn_old[i] = rn[improved]
                Lp_old[i] = Lpa[improved]
                step[i] = 1.0
                J = self._jacobian(Aa[improved], Fe[improved], dgd[improved], dt, c)
                sol, info = torch.linalg.solve_ex(J, res[improved].reshape(-1, 9, 1))
                d = -sol.reshape(-1, 3, 3)
                good = (info == 0) & torch.isfinite(d).flatten(1).all(1)
                delta[i] = torch.where(good[:, None, None], d, torch.zeros_like(d))
                Lp[i] = Lpa[improved] + delta[i]
                keep[improved] = good
            active = a[keep]
        return S_out, Lp, ok

    @staticmethod
    def _jacobian(A, Fe, dgd, dt, c):
        """∂R/∂L_p = I + Δt Σ_α ∂γ̇_α/∂τ_α m_α ⊗ (Aᵀ F_e Q_α), (m, 9, 9), row-major 3x3 -> 9.

        From τ_α = Q_α : E, ∂τ_α/∂F_e = F_e Q_α and ∂F_e,ab/∂L_p,kl = −Δt A_ak δ_bl
        (DAMASK: dRLp_dLp = I − dLp_dS : dS_dFe : dFe_dLp).
        """
        G9 = torch.einsum("mkb,abl->makl", A.transpose(-1, -2) @ Fe, c["Q"]).reshape(-1, 12, 9)
        I9 = torch.eye(9, device=A.device, dtype=A.dtype)
        return I9 + dt * torch.einsum("ma,ai,maj->mij", dgd, c["schmid"].reshape(12, 9), G9)

    @staticmethod
    def _damper(w0, w1, w2):
        """DAMASK's FPI damping factor ζ (integrateStateFPI/damper), per row."""
        p12 = ((w0 - w1) * (w1 - w2)).sum(-1)
        p22 = ((w1 - w2) ** 2).sum(-1)
        p01 = (w0 * w1).sum(-1)
        damp = (torch.minimum(p01, p12) < 0) & (p22 > 0)
        z = 0.75 + 0.25 * torch.tanh(2.0 + 4.0 * p12 / torch.where(p22 > 0, p22, torch.ones_like(p22)))
        return torch.where(damp, z, torch.ones_like(z))

    def _integrate_state(self, A, y0, Lp0, S0, dt, c):
        """Backward-Euler state by damped fixed-point iteration around the stress Newton, eq. (6).

        Returns y (m,24) = [ξ, γ], S (m,3,3), L_p (m,3,3), ok (m,) bool.
        """
        o = self.options
        m = A.shape[0]
        atol = torch.cat([torch.full((12,), self.atol_xi, device=A.device, dtype=A.dtype),
                          torch.full((12,), self.atol_gamma, device=A.device, dtype=A.dtype)])
        dot = self._dot_state(S0, y0[:, :12], c)              # predictor with the stress at t_0
        y = y0 + dot * dt
        prev1 = dot.clone()
        S, Lp = S0.clone(), Lp0.clone()
        ok = torch.zeros(m, dtype=torch.bool, device=A.device)
        active = torch.arange(m, device=A.device)
        for it in range(1, int(o["max_state_iter"]) + 1):
            if active.numel() == 0:
                break
            a = active
            p2 = prev1[a] if it > 1 else torch.zeros_like(prev1[a])
            p1 = dot[a]
            ya = y[a]
            Sa, Lpa, oka = self._integrate_stress(A[a], ya[:, :12], Lp[a], dt, c)
            new = self._dot_state(Sa, ya[:, :12], c)
            zeta = self._damper(new, p1, p2)[:, None]
            d = new * zeta + p1 * (1.0 - zeta)
            r = ya - y0[a] - d * dt
            yn = ya - r
            conv = (r.abs() <= torch.maximum(atol, o["rtol_state"] * yn.abs())).all(1)
            fine = oka & torch.isfinite(yn).all(1) & torch.isfinite(d).all(1)
            u = a[fine]
            prev1[u] = p1[fine]
            dot[u] = d[fine]
            y[u] = yn[fine]
            S[u] = Sa[fine]
            Lp[u] = Lpa[fine]
            ok[a[fine & conv]] = True
            active = a[fine & ~conv]
        return y, S, Lp, ok

    # ------------------------------------------------------------------------------------------
    def update_constituents(self, Fk: torch.Tensor, dt: float, state: State, start: State | None = None):
        """Eqs. (5)-(7) for every constituent with its own deformation gradient; pure.

        Parameters
        ----------
        Fk : (N,K,3,3) tensor
            Deformation gradient of every constituent at the end of the increment (finite, det > 0).
        dt : float
            Time increment Δt in s.
        state : dict
            Committed state (N points, K constituents).
        start : dict, optional
            A trial state of the same increment whose ``L_p`` and ``S`` start the Newton and the
            first state predictor (default: the committed ones). The answer is the same to the
            Newton's tolerance; near the solution the Newton needs fewer iterations.

        Returns
        -------
        P_k (N,K,3,3), trial state, ok (N,K) bool. A constituent that did not converge keeps its
        committed state and answers with the elastic predictor (F_p = F_p0).
        """
        dt = float(dt)
        N, K = state["v"].shape
        M = N * K
        c = self._constants(Fk)
        I = c["I"]
        Fm = Fk.reshape(M, 3, 3)
        Fp0 = state["F_p"].reshape(M, 3, 3)
        invFp0 = torch.linalg.inv(Fp0)
        A = Fm @ invFp0
        Lp0 = state["L_p"].reshape(M, 3, 3)
        S0 = state["S"].reshape(M, 3, 3)
        y0 = torch.cat([state["xi_sl"].reshape(M, 12), state["gamma_sl"].reshape(M, 12)], dim=-1)
        first = state if start is None else start

        y, S, Lp, ok = self._integrate_state(A, y0, first["L_p"].reshape(M, 3, 3), first["S"].reshape(M, 3, 3), dt, c)

        invFp = invFp0 @ (I - dt * Lp)
        Pk = Fm @ invFp @ S @ invFp.transpose(-1, -2)
        Fp = torch.linalg.inv(invFp)
        det = torch.linalg.det(Fp)
        Fp = Fp / (det.abs() ** (1.0 / 3.0) * torch.sign(det))[:, None, None]
        ok = ok & torch.isfinite(Pk).flatten(1).all(1) & torch.isfinite(Fp).flatten(1).all(1)

        S_pred = ddot42(c["C"], green_lagrange(A))
        P_pred = A @ S_pred @ invFp0.transpose(-1, -2)
        k3 = ok[:, None, None]
        Pk = torch.where(k3, Pk, P_pred)
        Pk = torch.where(torch.isfinite(Pk), Pk, torch.zeros_like(Pk))
        trial = {"F_p": torch.where(k3, Fp, Fp0), "L_p": torch.where(k3, Lp, Lp0), "S": torch.where(k3, S, S0)}
        y = torch.where(ok[:, None], y, y0)
        trial = {k: t.reshape(N, K, 3, 3) for k, t in trial.items()}
        trial.update(xi_sl=y[:, :12].reshape(N, K, 12), gamma_sl=y[:, 12:].reshape(N, K, 12),
                     R=state["R"], v=state["v"])
        return Pk.reshape(N, K, 3, 3), trial, ok.reshape(N, K)

    def evaluate(self, F: torch.Tensor, F_0: torch.Tensor, dt: float, state: State,
                 start: State | None = None) -> Response:
        """P at the end of the increment from the committed ``state``; pure.

        Parameters
        ----------
        F, F_0 : (N,3,3) tensors
            Deformation gradient at the end and the start of the increment (every constituent
            gets the point's F: iso-strain). The implicit scheme needs F_0 only where a point is
            substepped: the substeps go linearly from the committed F_0 to F.
        dt : float
            Time increment Δt in s.
        state : dict
            Committed state from :meth:`setup` or :meth:`commit`.
        start : dict, optional
            The trial state of the increment's latest evaluation: with ``newton_start: last``
            (default) its L_p and S start each constituent's Newton, as DAMASK's integrateStress
            starts from the latest L_p (Lpguess); the answer changes within the Newton's tolerance.
            Substeps always start from the committed state.
        """
        N, K = state["v"].shape
        if start is not None and self.options["newton_start"] == "committed":
            start = None
        if N * K <= self.chunk_crystals:
            return self._evaluate(F, F_0, dt, state, start)
        # bounded temporaries (the Newton's per-crystal Jacobians); each chunk's answer goes
        # straight into the whole trial state, so that no second copy of it is ever held
        step = max(1, self.chunk_crystals // K)
        P = torch.empty_like(F)
        failed = torch.empty(N, dtype=torch.bool, device=F.device)
        trial: State = {}
        for i in range(0, N, step):
            part = slice(i, i + step)
            committed = {k: t[part] for k, t in state.items()}
            r = self._evaluate(F[part], F_0[part], dt, committed,
                               None if start is None else {k: start[k][part] for k in ("L_p", "S")})
            P[part], failed[part] = r.P, r.failed
            for k, t in r.state.items():
                unchanged = t is committed.get(k)   # the trial shares it with the committed state (R, v)
                if k not in trial:
                    trial[k] = state[k] if unchanged else t.new_empty((N,) + t.shape[1:])
                elif trial[k] is state.get(k) and not unchanged:   # changed in this chunk: a copy from here on
                    trial[k] = state[k].clone()
                if trial[k] is not state.get(k):
                    trial[k][part] = t
        return Response(P=P, failed=failed, state=trial)

    #: crystals per chunk of :meth:`evaluate` (the answer does not depend on it)
    chunk_crystals = 1 << 16
    #: bytes of Newton temporaries per crystal of a chunk (benchmarks/bench_memory.py: taylor K = 1
    #: on 64×64×16 cells, one chunk, measured against the estimate without them)
    newton_bytes_per_crystal = 8 * 1024

    def workspace_bytes(self, state: State) -> int:
        """The temporaries of one chunk of :meth:`evaluate` (0.5 GiB once the points fill a chunk)."""
        N, K = state["v"].shape
        return min(N, max(1, self.chunk_crystals // K)) * K * self.newton_bytes_per_crystal

    def _evaluate(self, F: torch.Tensor, F_0: torch.Tensor, dt: float, state: State,
                  start: State | None = None) -> Response:
        v = state["v"]
        N, K = v.shape
        okF = self._admissible(F)
        Fs = torch.where(okF[:, None, None], F, torch.eye(3, dtype=F.dtype, device=F.device).expand_as(F))
        Pk, trial, ok = self.update_constituents(Fs[:, None].expand(N, K, 3, 3), dt, state, start)
        failed = ~okF | ((~ok) & (v > 0)).any(dim=1)
        retry = torch.nonzero(failed & okF).squeeze(1)   # F_0 is the committed, admissible field
        if retry.numel() and self.options["substep_levels"] > 0:
            sub = {k: t[retry] for k, t in state.items()}
            done, P_sub, trial_sub = self._substepped(F_0[retry], Fs[retry], dt, sub)
            keep = retry[done]
            Pk = Pk.index_put((keep,), P_sub[done])
            trial = {k: t if k in ("R", "v") else t.index_put((keep,), trial_sub[k][done])   # R, v: the committed ones
                     for k, t in trial.items()}
            failed[keep] = False
        # a failed point (any constituent with v > 0, or an inadmissible F) keeps the committed state
        # in all its constituents and answers with the elastic predictor (F_p = F_p0)
        if bool(failed.any()):
            trial = keep_committed(trial, state, failed)
            Pk = torch.where(failed[:, None, None, None], self._predictor(Fs, state), Pk)
        P = torch.einsum("nk,nkij->nij", v, Pk)
        P = torch.where(okF[:, None, None], P, torch.zeros_like(P))
        return Response(P=P, state=trial, failed=failed)

    def _substepped(self, F_0: torch.Tensor, F: torch.Tensor, dt: float, state: State):
        """The step from ``F_0`` to ``F`` (n,3,3) in 2, 4, ... equal substeps from the committed
        ``state``: a point is done at the first level at which every substep converges.

        Returns done (n,) bool, P_k (n,K,3,3) and the trial state of the done points."""
        n, K = state["v"].shape
        done = torch.zeros(n, dtype=torch.bool, device=F.device)
        Pk, trial = None, None
        for level in range(1, int(self.options["substep_levels"]) + 1):
            todo = torch.nonzero(~done).squeeze(1)
            if todo.numel() == 0:
                break
            m = 2**level
            st = {k: t[todo] for k, t in state.items()}
            ok = torch.ones(todo.numel(), dtype=torch.bool, device=F.device)
            for j in range(1, m + 1):
                Fj = F_0[todo] + (j / m) * (F[todo] - F_0[todo])
                P_j, st, ok_j = self.update_constituents(Fj[:, None].expand(-1, K, 3, 3), dt / m, st)
                ok &= ~((~ok_j) & (st["v"] > 0)).any(dim=1)
            if Pk is None:
                Pk = torch.zeros((n,) + P_j.shape[1:], dtype=P_j.dtype, device=P_j.device)
                trial = {k: t.new_zeros((n,) + t.shape[1:]) for k, t in st.items()}
            win = todo[ok]
            Pk[win] = P_j[ok]
            for k in trial:
                trial[k][win] = st[k][ok]
            done[win] = True
        return done, Pk, trial

    @staticmethod
    def _admissible(F: torch.Tensor) -> torch.Tensor:
        """(N,) finite F with det F > 0 (no inverted cell)."""
        ok = torch.isfinite(F).flatten(1).all(1)
        I = torch.eye(3, dtype=F.dtype, device=F.device)
        return ok & (torch.linalg.det(torch.where(ok[:, None, None], F, I.expand_as(F))) > 0)

    def _predictor(self, F: torch.Tensor, state: State) -> torch.Tensor:
        """(N,K,3,3) elastic predictor P_k with F_p = F_p0 for the points' F (N,3,3)."""
        return self.predictor_constituents(F[:, None].expand(state["F_p"].shape), state)

    def predictor_constituents(self, Fk: torch.Tensor, state: State) -> torch.Tensor:
        """(N,K,3,3) elastic predictor P_k with F_p = F_p0 for every constituent's F_k (N,K,3,3)."""
        invFp0 = torch.linalg.inv(state["F_p"])
        A = Fk @ invFp0
        S = ddot42(self._constants(Fk)["C"], green_lagrange(A))
        return A @ S @ invFp0.transpose(-1, -2)

    # ------------------------------------------------------------------------------------------
    # consistent tangent
    # ------------------------------------------------------------------------------------------
    def _implicit_functions(self, c, dt: float):
        """Per-constituent residual G(F, z; F_p0⁻¹, ξ_0) of the converged update, z = (L_p, ξ) (21,),
        and P(F, L_p; F_p0⁻¹): the implicit system that eqs. (5) and (6) solve,

            G = [L_p − Σ_α γ̇_α(τ_α, ξ) m_α ;  (ξ − ξ_0 − Δt ξ̇(τ, ξ)) / ξ_0],

        written for one constituent so that ``torch.func`` differentiates and batches it."""
        I, C, schmid, H = c["I"], c["C"], c["schmid"], c["H"]
        g0, n, a, h = self.dot_gamma_0, self.n, self.a, self.h_0 * (1.0 + self.h_int)
        xi_inf, xi_scale = self.xi_inf, self.xi_0

        def elastic(F, Lp, invFp0):
            invFp = invFp0 @ (I - dt * Lp)
            Fe = F @ invFp
            S = torch.einsum("ijkl,kl->ij", C, 0.5 * (Fe.T @ Fe - I))
            return S, invFp

        def residual(F, z, invFp0, xi0):
            Lp, xi = z[:9].reshape(3, 3), z[9:]
            S, _ = elastic(F, Lp, invFp0)
            x = torch.einsum("ij,aij->a", S, schmid) / xi
            gd = g0 * x.abs() ** n * torch.sign(x)
            u = 1.0 - xi / xi_inf
            dxi = h * torch.sign(u) * u.abs() ** a * (H @ gd.abs())
            return torch.cat([(Lp - torch.einsum("a,aij->ij", gd, schmid)).reshape(9),
                              (xi - xi0 - dt * dxi) / xi_scale])

        def stress(F, Lp, invFp0):
            S, invFp = elastic(F, Lp, invFp0)
            return F @ invFp @ S @ invFp.T

        return residual, stress

    def _partials(self, F, Lp, xi, invFp0, dt, c):
        """Partial derivatives of the implicit system of :meth:`_implicit_functions` for m
        constituents, written out: ∂G/∂F (m,21,9), ∂G/∂z (m,21,21), ∂P/∂F and ∂P/∂L_p (m,9,9).

        With invF_p = F_p0⁻¹(I − Δt L_p), F_e = F invF_p, A = F F_p0⁻¹, Q_α = C : m_α, s_β = sign γ̇_β,
        u_α = 1 − ξ_α/ξ_∞, ℓ_α = sign(u_α)|u_α|^a and Σ_α = Σ_β h_αβ |γ̇_β|:
            ∂τ_α/∂F = F_e Q_α invF_pᵀ,   ∂τ_α/∂L_p = −Δt Aᵀ F_e Q_α,   ∂γ̇_α/∂ξ_α = −n γ̇_α/ξ_α,
            ∂G_1/∂· = I δ_{·L_p} − Σ_α (∂γ̇_α/∂·) m_α,
            ∂G_2α/∂· = [δ_αβ δ_{·ξ} − Δt h (∂ℓ_α/∂· Σ_α + ℓ_α Σ_β h_αβ s_β ∂γ̇_β/∂·)] / ξ_0,
            ∂P/∂F: δ_ik (invF_p S invF_pᵀ)_lj + F_e,ip C_pqrs F_e,kr invF_p,ls invF_p,jq,
            ∂P/∂L_p,kl: −Δt [A_ik (S invF_pᵀ)_lj + F_e,ip C_pqrl (AᵀF_e)_kr invF_p,jq + (F_e S)_il F_p0⁻¹_jk].
        """
        m = F.shape[0]
        I, C, schmid, Q, H = c["I"], c["C"], c["schmid"], c["Q"], c["H"]
        invFp = invFp0 @ (I - dt * Lp)
        A = F @ invFp0
        Fe = F @ invFp
        S = ddot42(C, green_lagrange(Fe))
        tau = torch.einsum("mij,aij->ma", S, schmid)
        gd, dgd = self._rates(tau, xi)
        dgd_xi = -self.n * gd / xi
        u = 1.0 - xi / self.xi_inf
        ell = torch.sign(u) * u.abs() ** self.a
        dell = -self.a * u.abs() ** (self.a - 1.0) / self.xi_inf
        h = self.h_0 * (1.0 + self.h_int)
        hsum = gd.abs() @ H.T
        FeQ = torch.einsum("mij,ajk->maik", Fe, Q)
        tau_F = (FeQ @ invFp.transpose(-1, -2)[:, None]).reshape(m, 12, 9)
        tau_L = (-dt * A.transpose(-1, -2)[:, None] @ FeQ).reshape(m, 12, 9)
        m9 = schmid.reshape(12, 9)
        Hs = H * torch.sign(gd)[:, None, :]                                     # h_αβ s_β  (m,12,12)
        xs = self.xi_0

        def g1(rate_derivative):                                              # −Σ_α ∂γ̇_α/∂· m_α
            return -torch.einsum("ma,ai,maj->mij", dgd, m9, rate_derivative)

        def g2(rate_derivative):                                              # −Δt h ℓ Σ_β h_αβ s_β ∂γ̇_β/∂·
            return -dt * h * ell[:, :, None] * torch.einsum("mab,mb,mbj->maj", Hs, dgd, rate_derivative) / xs

        G_F = torch.cat([g1(tau_F), g2(tau_F)], dim=1)
        G_LL = torch.eye(9, dtype=F.dtype, device=F.device) + g1(tau_L)
        G_Lxi = -(m9.T[None] * dgd_xi[:, None, :])
        G_xiL = g2(tau_L)
        G_xixi = (torch.diag_embed(1.0 - dt * h * dell * hsum) - dt * h * ell[:, :, None] * Hs * dgd_xi[:, None, :]) / xs
        G_z = torch.cat([torch.cat([G_LL, G_Lxi], dim=2), torch.cat([G_xiL, G_xixi], dim=2)], dim=1)

        CFe = torch.einsum("pqrs,mkr,mls->mpqkl", C, Fe, invFp)
        P_F = torch.einsum("ik,mlj->mijkl", I, invFp @ S @ invFp.transpose(-1, -2)) \
            + torch.einsum("mip,mpqkl,mjq->mijkl", Fe, CFe, invFp)
        AtFe = A.transpose(-1, -2) @ Fe
        P_L = -dt * (torch.einsum("mik,mlj->mijkl", A, S @ invFp.transpose(-1, -2))
                     + torch.einsum("mip,mpqrl,mkr,mjq->mijkl", Fe, C.expand(m, 3, 3, 3, 3), AtFe, invFp)
                     + torch.einsum("mil,mjk->mijkl", Fe @ S, invFp0))
        return G_F, G_z, P_F.reshape(m, 9, 9), P_L.reshape(m, 9, 9)

    def constituent_tangent(self, Fk: torch.Tensor, dt: float, state: State, trial: State, ok: torch.Tensor,
                            chunk: int = 32768, autograd: bool = False) -> torch.Tensor:
        """(N,K,3,3,3,3) consistent tangent ∂P_k/∂F_k of :meth:`update_constituents`.

        Implicit differentiation of the converged update: with G(F, z) = 0 (see
        :meth:`_implicit_functions`), dz/dF = −(∂G/∂z)⁻¹ ∂G/∂F and
        dP/dF = ∂P/∂F + ∂P/∂L_p · dL_p/dF. The partial derivatives are written out
        (:meth:`_partials`); ``autograd=True`` takes them from ``torch.func`` instead (forward mode
        batched with ``vmap``; the reference of the tests, about 10 times slower). Constituents that
        did not converge (``ok`` false), or whose implicit system is singular, get the elastic
        tangent of their predictor (F_p = F_p0).
        """
        N, K = state["v"].shape
        M = N * K
        c = self._constants(Fk)
        dt = float(dt)
        if autograd:
            residual, stress = self._implicit_functions(c, dt)
            dG = vmap(jacfwd(residual, argnums=(0, 1)))
            dP = vmap(jacfwd(stress, argnums=(0, 1)))
        F = Fk.reshape(M, 3, 3)
        invFp0 = torch.linalg.inv(state["F_p"].reshape(M, 3, 3))
        xi0 = state["xi_sl"].reshape(M, 12)
        good = ok.reshape(M)
        Lp = torch.where(good[:, None, None], trial["L_p"].reshape(M, 3, 3), torch.zeros_like(F))
        xi = trial["xi_sl"].reshape(M, 12)
        out = torch.empty(M, 9, 9, dtype=F.dtype, device=F.device)
        for s in range(0, M, chunk):
            i = slice(s, min(s + chunk, M))
            if autograd:
                G_F, G_z = dG(F[i], torch.cat([Lp[i].reshape(-1, 9), xi[i]], dim=-1), invFp0[i], xi0[i])
                G_F = G_F.reshape(-1, 21, 9)
                P_F, P_L = (t.reshape(-1, 9, 9) for t in dP(F[i], Lp[i], invFp0[i]))
            else:
                G_F, G_z, P_F, P_L = self._partials(F[i], Lp[i], xi[i], invFp0[i], dt, c)
            dz, info = torch.linalg.solve_ex(G_z, G_F)
            use = good[i] & (info == 0) & torch.isfinite(dz).flatten(1).all(1)
            dz = torch.where(use[:, None, None], -dz, torch.zeros_like(dz))
            out[i] = P_F + P_L @ dz[:, :9]
        return out.reshape(N, K, 3, 3, 3, 3)

    def tangent(self, F: torch.Tensor, dt: float, state: State, response: Response) -> torch.Tensor:
        """(N,3,3,3,3) consistent tangent dP/dF = Σ_k v_k ∂P_k/∂F of the converged ``response`` to
        ``F`` from the committed ``state`` (iso-strain; failed points: the elastic stiffness). At a
        point that was substepped it is the tangent of one step over the whole Δt, an approximation."""
        v = state["v"]
        N, K = v.shape
        ok = ~response.failed[:, None].expand(N, K)
        Fs = torch.where(response.failed[:, None, None], torch.eye(3, dtype=F.dtype, device=F.device), F)
        A = torch.einsum("nk,nkijlm->nijlm", v, self.constituent_tangent(Fs[:, None].expand(N, K, 3, 3), dt,
                                                                         state, response.state, ok))
        return torch.where(response.failed[:, None, None, None, None], self.stiffness(state), A)

    def constituent_outputs(self, state: State, F: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Per-constituent result fields (N,K,...): ``F_p``, ``L_p``, ``xi_sl``, ``gamma_sl``
        and, where the point's ``F`` (N,3,3) is given, ``F_e`` = F F_p⁻¹ and
        ``P`` = F_e S F_p⁻ᵀ (DAMASK's phase outputs of the same names)."""
        out = {"F_p": state["F_p"], "L_p": state["L_p"], "xi_sl": state["xi_sl"],
               "gamma_sl": state["gamma_sl"]}
        if F is not None:
            invFp = torch.linalg.inv(state["F_p"])
            Fe = F[:, None] @ invFp
            out["F_e"] = Fe
            out["P"] = Fe @ state["S"] @ invFp.transpose(-1, -2)
        return out
