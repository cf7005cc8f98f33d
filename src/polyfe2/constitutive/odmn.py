"""``odmn``: the orientation-aware interaction-based material network (paper 000, section 2.3)
with DAMASK phenopowerlaw crystal plasticity (the ``taylor`` backend's update) at its leaves.

Every material point is one network: a parameter set (:mod:`.odmn_network`; leaf weights W^i,
leaf orientations, node normals N^j, interaction coefficients α^{ij}) chosen by the point's
material ID. Online stage, for the point's average deformation gradient F̄ (paper 000 eqs. 9-11):

    F^i = F̄ + Σ_j α^{ij} a^j ⊗ N^j                                   (eq. 9, downscaling)
    r^j = Σ_i W^i α^{ij} P^i(F^i) N^j = 0                             (eq. 11, node equilibrium)
    P̄  = Σ_i W^i P^i / Σ_i W^i                                        (upscaling)

with one unknown vector a^j per internal node. Since Σ_i W^i α^{ij} = 0, F̄ is the weighted
average of the F^i for any a. Newton on a, warm-started from the last converged a:

    K^{jk} = Σ_i W^i α^{ij} α^{ik} N^j · A^i · N^k,  (N^j·A^i·N^k)_pq = N^j_s A^i_psqt N^k_t,
    K Δa = −r,

A^i = ∂P^i/∂F^i the leaves' consistent tangent (:meth:`TaylorBackend.constituent_tangent`).
Leaf i only sees its depth-N ancestors (α^{ij} = 0 elsewhere), so K is assembled from the
(leaf, ancestor, ancestor) blocks and scattered, never from dense 2^N × (2^N − 1)² products.
Newton starts from the last converged a extrapolated with its rate over the last increment (from
the converged a itself when that start fails); with ``newton_start: last`` (default) it starts
instead from the a of the increment's latest evaluation, which the solver passes as ``start``,
and every leaf's L_p Newton starts from that leaf's L_p and S of the network's previous
evaluation (DAMASK's Lpguess, as ``taylor`` does). A step that does not lower |r| (or makes a leaf
fail) is halved along the same direction (batched line search); each point stops when the
largest component of r / Σ W is at most rtol times the largest leaf stress component plus atol.

Condensed consistent tangent (the linearisation of P̄ with the node equilibrium kept):

    dP̄/dF̄ = (Σ_i W^i A^i − E K⁻¹ B) / Σ_i W^i,
    B^j = Σ_i W^i α^{ij} N^j · A^i  (∂r^j/∂F̄),   E^j = Σ_i W^i α^{ij} A^i · N^j.

The elastic stiffness (the solver's reference medium and compliance) is the offline stage's
closed-form stiffness of the same tree (:func:`.odmn_network.tree_stiffness`), equal to the
condensed tangent at F̄ = I.
"""
from __future__ import annotations

import re
from pathlib import Path

import damask
import numpy as np
import torch

from ..errors import InputError
from ..mechanics import cubic_stiffness, from_mandel, rotate_stiffness, to_mandel
from ..schema import Field, Schema
from .base import Backend, MaterialPoints, Response, State, keep_committed
from .odmn_network import ODMNParameters, euler_to_matrix, interaction_coefficients, tree_stiffness
from .registry import register
from .taylor import TaylorBackend

_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")
LEAF = "leaf."


def ancestors(depth: int) -> torch.Tensor:
    """(2^N, N) heap index of the ancestor of every leaf at levels 0 .. N − 1."""
    leaves = torch.arange(2**depth)
    if depth == 0:
        return torch.zeros(1, 0, dtype=torch.long)
    return torch.stack([2**level - 1 + (leaves >> (depth - level)) for level in range(depth)], dim=1)


@register("odmn")
class ODMNBackend(Backend):
    """ODMN with phenopowerlaw leaves; one parameter set per material ID (module docstring).

    State keys (N points, L = 2^depth leaves, J = L − 1 nodes)
    -----------------------------------------------------------
    ``a`` (N,J,3) node vectors of eq. 9 and ``a_rate`` their rate over the last increment (the
    next increment starts from a + Δt ȧ); ``set`` (N,) parameter set of every point;
    ``evaluations`` (N,) network evaluations of the last increment (the start, one per Newton step
    and one per line-search trial); ``leaf.*`` the leaves' ``taylor`` state (N,L,...).
    """

    options_schema = Schema("backend_options (odmn)", {
        "parameters": Field("files", "ODMN parameter file (from `polyfe2 odmn fit`) per material ID of "
                            "material.yaml: keys are IDs, ranges 'first-last' or 'default'"),
        "max_newton": Field("integer", "Newton iterations of the node equilibrium per increment", default=25, low=1),
        "rtol": Field("number", "node equilibrium tolerance relative to the largest leaf stress", default=1e-6,
                      low=0, open_low=True),
        "atol": Field("number", "absolute floor of the node equilibrium tolerance", default=1.0, unit="Pa", low=0),
        "line_search": Field("integer", "step halvings before a point counts as failed", default=8, low=0),
        "chunk_points": Field("integer", "points solved together (bounds the memory of the Newton)",
                              default=256, low=1),
        "leaves": Field("mapping", "options of the leaves' crystal plasticity (those of `taylor`)", default={}),
        "newton_start": Field("choice", "where an evaluation starts: last (the node vectors of the increment's latest "
                              "evaluation, and every leaf's L_p Newton from its L_p and S of the network's previous "
                              "evaluation) or committed (the extrapolated committed node vectors, the leaves from "
                              "their committed state)", default="last", choices=("last", "committed")),
    })

    starts_from_trial = True

    def __init__(self, phase, options=None, *, source="material.yaml", base_dir=None, phase_name="NAME"):
        super().__init__(phase, options, source=source, base_dir=base_dir, phase_name=phase_name)
        try:
            self.leaves = TaylorBackend(phase, self.options["leaves"], source=source, base_dir=base_dir,
                                        phase_name=phase_name)
        except InputError as e:
            raise InputError(e.message, file=e.file, key=e.key.replace("backend_options", "backend_options/leaves")
                             if e.key else e.key) from None
        self.selectors, self.sets = self._load_sets(self.options["parameters"], base_dir)
        depths = {p.depth for p in self.sets}
        if len(depths) > 1:
            raise InputError(f"parameter sets of one phase must have one depth, got {sorted(depths)}",
                             key="backend_options/parameters")
        self.depth = depths.pop()
        for key, p in zip(self.selectors, self.sets):
            if p.crystal != phase["lattice"]:
                raise InputError(f"parameter set is for lattice {p.crystal!r}; phase {phase_name} is "
                                 f"{phase['lattice']!r}", key=f"backend_options/parameters/{key}")

    @staticmethod
    def _load_sets(mapping, base_dir):
        selectors, sets = [], []
        for key, path in mapping.items():
            k = key.strip()
            if not (k == "default" or k.isdigit() or _RANGE.match(k)):
                raise InputError(f"expected a material ID, a range 'first-last' or 'default', got {key!r}",
                                 key="backend_options/parameters")
            path = Path(path)
            if not path.is_absolute() and base_dir is not None:
                path = Path(base_dir) / path
            selectors.append(k)
            sets.append(ODMNParameters.load(path))
        return selectors, sets

    def describe(self) -> str:
        return (f"odmn (depth {self.depth}, {len(self.sets)} parameter set(s), phenopowerlaw leaves; "
                "the constituents' orientations are not used)")

    def point_data(self, material_ids) -> dict[str, torch.Tensor]:
        """The parameter set of every point from its material ID (explicit IDs before ranges
        before ``default``)."""
        ids = np.asarray(material_ids, dtype=np.int64)
        which = np.full(ids.shape, -1, dtype=np.int64)

        def selected(k):
            m = _RANGE.match(k)
            return (ids == int(k)) if k.isdigit() else (ids >= int(m[1])) & (ids <= int(m[2])) if m else True

        priority = lambda s: 0 if self.selectors[s].isdigit() else 1 if _RANGE.match(self.selectors[s]) else 2
        for s in sorted(range(len(self.selectors)), key=priority):
            which = np.where((which < 0) & selected(self.selectors[s]), s, which)
        if (which < 0).any():
            missing = int(ids[which < 0][0])
            raise InputError(f"material {missing} ({int((which < 0).sum())} point(s) without a set) has no "
                             "parameter set; expected its ID, a range containing it, or 'default'",
                             key="backend_options/parameters")
        return {"parameter_set": torch.as_tensor(which)}

    # ------------------------------------------------------------------------------------------
    def _constants(self, device, dtype) -> dict[str, torch.Tensor]:
        """Per parameter set (P sets): W (P,L), α (P,L,J), normals (P,J,3), α at the leaves'
        ancestors (P,L,N), rotations (P,L,3,3); the ancestors (L,N)."""
        cast = dict(device=device, dtype=dtype)
        W = torch.stack([p.weights for p in self.sets]).to(**cast)
        anc = ancestors(self.depth).to(device)
        alpha = interaction_coefficients(W, self.depth)
        return {"W": W, "alpha": alpha, "N": torch.stack([p.normals for p in self.sets]).to(**cast),
                "alpha_anc": torch.gather(alpha, 2, anc.expand(W.shape[0], -1, -1)),
                "R": torch.stack([euler_to_matrix(p.euler) for p in self.sets]).to(**cast), "anc": anc}

    def setup(self, points: MaterialPoints, device, dtype) -> State:
        """Leaves' initial state from the sets' orientations; a = 0."""
        c = self._constants(device, dtype)
        which = points.extra["parameter_set"].to(device)
        P, L = c["W"].shape
        q = damask.Rotation.from_matrix(c["R"].cpu().numpy().reshape(-1, 3, 3)).as_quaternion().reshape(P, L, 4)
        v = c["W"] / c["W"].sum(1, keepdim=True)
        leaf = self.leaves.setup(MaterialPoints(torch.as_tensor(q), v, torch.arange(P)), device, dtype)
        state = {LEAF + k: t[which] for k, t in leaf.items()}
        n = len(points)
        state.update(a=torch.zeros(n, L - 1, 3, device=device, dtype=dtype),
                     a_rate=torch.zeros(n, L - 1, 3, device=device, dtype=dtype), set=which,
                     evaluations=torch.zeros(n, device=device, dtype=dtype))
        return state

    def stiffness(self, state: State) -> torch.Tensor:
        """(N,3,3,3,3) the offline closed-form stiffness of every point's tree."""
        like = state["a"]
        c = self._constants(like.device, like.dtype)
        C = cubic_stiffness(self.C_11, self.C_12, self.C_44, device=like.device, dtype=like.dtype)
        C_leaves = to_mandel(rotate_stiffness(C, c["R"]))
        return from_mandel(tree_stiffness(C_leaves, c["W"], c["N"]))[state["set"]]

    def workspace_bytes(self, state: State) -> int:
        """The temporaries of one chunk of :meth:`evaluate`: twice ``taylor``'s Newton bytes per leaf
        (its Newton, and the network's leaf F, P, tangents and trial copies) and the node system K
        (3J × 3J per point); measured: 53-113 MB at depth 4 and 256 points per chunk (peak memory of
        two evaluations on 4 096-32 768 points, less the 2 trial states)."""
        N, J = state["a"].shape[:2]
        n = min(N, int(self.options["chunk_points"]))
        return n * (2 * (J + 1) * self.leaves.newton_bytes_per_crystal + 3 * (3 * J) ** 2 * 8)

    # ------------------------------------------------------------------------------------------
    def _network(self, c, which):
        W, alpha, N, aa = c["W"][which], c["alpha"][which], c["N"][which], c["alpha_anc"][which]
        return W, alpha, N, aa, N[:, c["anc"]]

    @staticmethod
    def _leaf_F(Fbar, alpha, a, N):
        return Fbar[:, None] + torch.einsum("nlj,nja,njb->nlab", alpha, a, N)

    @staticmethod
    def _residual(W, alpha, P, N):
        return torch.einsum("nl,nlj,nlab,njb->nja", W, alpha, P, N)

    def _blocks(self, W, aa, N_anc, A, anc, J, condensed=False):
        """K (n,3J,3J) of the module docstring from the (leaf, ancestor, ancestor) blocks; with
        ``condensed`` also B (n,3J,9) and E (n,9,3J)."""
        n, L, D = aa.shape
        wa = (W[:, :, None] * aa).reshape(n * L, D, 1, 1)
        A27 = A.reshape(n * L, 3, 3, 9)                                          # A_{p s (q t)}
        N_l = N_anc.reshape(n * L, D, 3)
        # T_{l d p (q t)} = W α_ld N_s A_{p s q t}
        T = wa * torch.einsum("xds,xpsk->xdpk", N_l, A27)
        # K blocks: T_{l d p q t} α_le N_t  ->  (l, d, e, p, q)
        Kb = torch.einsum("xdpqt,xet->xdepq", T.reshape(n * L, D, 3, 3, 3), N_l) * aa.reshape(n * L, 1, D, 1, 1)
        pair = (anc[:, :, None] * J + anc[:, None, :]).reshape(-1)
        K = A.new_zeros(n, J * J, 3, 3).index_add_(1, pair, Kb.reshape(n, L * D * D, 3, 3))
        K = K.reshape(n, J, J, 3, 3).permute(0, 1, 3, 2, 4).reshape(n, 3 * J, 3 * J)
        if not condensed:
            return K
        flat = anc.reshape(-1)
        B = A.new_zeros(n, J, 3, 9).index_add_(1, flat, T.reshape(n, L * D, 3, 9)).reshape(n, 3 * J, 9)
        Eb = wa * torch.einsum("xabpt,xdt->xdpab", A.reshape(n * L, 3, 3, 3, 3), N_l).reshape(n * L, D, 3, 9)
        E = A.new_zeros(n, J, 3, 9).index_add_(1, flat, Eb.reshape(n, L * D, 3, 9))
        return K, B, E.reshape(n, 3 * J, 9).transpose(1, 2)

    def _solve(self, Fbar, dt, st, c, start=None):
        """Newton with line search on the node vectors of the n points of one chunk; ``start``
        (``a`` and the leaves' ``L_p``, ``S``) a trial of the same increment to start from."""
        o = self.options
        n = Fbar.shape[0]
        W, alpha, N, aa, N_anc = self._network(c, st["set"])
        J = alpha.shape[-1]
        Wsum = W.sum(1)
        leaf0 = {k[len(LEAF):]: t for k, t in st.items() if k.startswith(LEAF)}
        if start is None:
            a = st["a"] + dt * st["a_rate"]        # extrapolated from the last two converged increments
            retried = (st["a_rate"] == 0).flatten(1).all(1)     # no extrapolation: nothing to retry from
            leaf_start = None                      # every leaf Newton from the committed state
        else:
            a = start["a"].clone()
            retried = (start["a"] == st["a"]).flatten(1).all(1)
            leaf_start = {k: start[LEAF + k].clone() for k in ("L_p", "S")}
        a_prev, delta = a.clone(), torch.zeros_like(a)
        step = torch.ones(n, dtype=Fbar.dtype, device=Fbar.device)
        r_prev = torch.full((n,), float("inf"), dtype=Fbar.dtype, device=Fbar.device)
        halvings = torch.zeros(n, dtype=torch.long, device=Fbar.device)
        steps = torch.zeros(n, dtype=torch.long, device=Fbar.device)
        P_bar = torch.zeros_like(Fbar)
        leaf_trial = {k: t.clone() for k, t in leaf0.items()}
        done = torch.zeros(n, dtype=torch.bool, device=Fbar.device)
        evaluations = torch.zeros(n, dtype=Fbar.dtype, device=Fbar.device)
        active = torch.arange(n, device=Fbar.device)
        max_newton, max_halvings = int(o["max_newton"]), int(o["line_search"])
        for _ in range(max_newton * (max_halvings + 1) + 2):
            if active.numel() == 0:
                break
            x = active
            leaf_x = {k: t[x] for k, t in leaf0.items()}
            F_l = self._leaf_F(Fbar[x], alpha[x], a[x], N[x])
            P_l, trial, ok = self.leaves.update_constituents(
                F_l, dt, leaf_x, None if leaf_start is None else {k: t[x] for k, t in leaf_start.items()})
            if leaf_start is not None:             # a failed leaf's trial is its committed state
                for k, t in leaf_start.items():
                    t[x] = trial[k]
            ok = ok.all(1)
            r = self._residual(W[x], alpha[x], P_l, N[x])
            rn = r.flatten(1).abs().amax(1) / Wsum[x] if J else torch.zeros_like(Wsum[x])
            tol = o["rtol"] * P_l.abs().flatten(1).amax(1) + o["atol"]
            conv = ok & (rn <= tol)
            better = ok & ~conv & (rn < r_prev[x])
            worse = ~conv & ~better
            evaluations[x] += 1

            ic = x[conv]
            done[ic] = True
            P_bar[ic] = torch.einsum("nl,nlab->nab", W[ic], P_l[conv]) / Wsum[ic, None, None]
            for k, t in trial.items():
                leaf_trial[k][ic] = t[conv]

            start = worse & (steps[x] == 0)        # the start itself fails: once more from the committed a
            again, hopeless = x[start & ~retried[x]], x[start & retried[x]]
            halvings[hopeless] = max_halvings + 1
            a[again], retried[again] = st["a"][again], True
            worse = worse & ~start
            if bool(worse.any()):                   # halve the step along the same direction
                w = x[worse]
                halvings[w] += 1
                step[w] *= 0.5
                a[w] = a_prev[w] + step[w, None, None] * delta[w]
            if bool(better.any()):
                b = x[better]
                A = self.leaves.constituent_tangent(F_l[better], dt, {k: t[better] for k, t in leaf_x.items()},
                                                    {k: t[better] for k, t in trial.items()},
                                                    torch.ones(b.numel(), F_l.shape[1], dtype=torch.bool,
                                                               device=Fbar.device))
                K = self._blocks(W[b], aa[b], N_anc[b], A, c["anc"], J)
                d, info = torch.linalg.solve_ex(K, -r[better].reshape(-1, 3 * J, 1))
                good = (info == 0) & torch.isfinite(d).flatten(1).all(1)
                r_prev[b], a_prev[b], step[b], halvings[b] = rn[better], a[b], 1.0, 0
                steps[b] += 1
                delta[b] = torch.where(good[:, None, None], d.reshape(-1, J, 3), torch.zeros_like(a[b]))
                a[b] = a[b] + delta[b]
                halvings[b[~good]] = max_halvings + 1
            lost = (halvings > max_halvings) | (steps > max_newton)
            active = x[~done[x] & ~lost[x]]
        failed = ~done
        trial = {LEAF + k: t for k, t in leaf_trial.items()}
        trial.update(a=a, a_rate=(a - st["a"]) / dt, set=st["set"])
        trial = keep_committed(trial, st, failed)
        trial["evaluations"] = evaluations
        if bool(failed.any()):     # the elastic predictor of the committed network
            Fl = self._leaf_F(Fbar[failed], alpha[failed], st["a"][failed], N[failed])
            Pp = self.leaves.predictor_constituents(Fl, {k: t[failed] for k, t in leaf0.items()})
            P_bar[failed] = torch.einsum("nl,nlab->nab", W[failed], Pp) / Wsum[failed, None, None]
        return P_bar, trial, failed

    def evaluate(self, F: torch.Tensor, F_0: torch.Tensor, dt: float, state: State,
                 start: State | None = None) -> Response:
        """P̄ of every point's network at F̄ = F from the committed ``state``; pure. ``start``: the
        trial state of the increment's latest evaluation, where the Newton starts with
        ``newton_start: last`` (the answer changes within the node equilibrium's tolerance)."""
        dt = float(dt)
        last = self.options["newton_start"] == "last"
        if not last:
            start = None
        c = self._constants(F.device, F.dtype)
        okF = self.leaves._admissible(F)
        Fs = torch.where(okF[:, None, None], F, torch.eye(3, dtype=F.dtype, device=F.device).expand_as(F))
        n = F.shape[0]
        P = torch.empty_like(F)
        failed = torch.empty(n, dtype=torch.bool, device=F.device)
        trial = {k: t.clone() for k, t in state.items()}
        size = int(self.options["chunk_points"])
        for s in range(0, n, size):
            i = slice(s, min(s + size, n))
            st = {k: t[i] for k, t in state.items()}
            if start is not None:
                first = {k: start[k][i] for k in ("a", LEAF + "L_p", LEAF + "S")}
            elif last:                             # the first evaluation: a as before, leaves warm within it
                first = {"a": st["a"] + dt * st["a_rate"], LEAF + "L_p": st[LEAF + "L_p"], LEAF + "S": st[LEAF + "S"]}
            else:
                first = None
            P[i], tr, failed[i] = self._solve(Fs[i], dt, st, c, first)
            for k, t in tr.items():
                trial[k][i] = t
        P = torch.where(okF[:, None, None], P, torch.zeros_like(P))
        bad = ~okF
        if bool(bad.any()):    # in place: the trial is this call's own copy (a second one would be a
            for k, t in trial.items():          # fourth copy of the state at the solver's peak)
                t[bad] = state[k][bad]
        return Response(P=P, state=trial, failed=failed | bad)

    def tangent(self, F: torch.Tensor, dt: float, state: State, response: Response) -> torch.Tensor:
        """(N,3,3,3,3) condensed consistent tangent dP̄/dF̄ of the converged ``response``
        (module docstring), in chunks of ``chunk_points``; failed points: the elastic stiffness."""
        c = self._constants(F.device, F.dtype)
        out = self.stiffness(state).clone()
        n, size = F.shape[0], int(self.options["chunk_points"])
        for s in range(0, n, size):
            i = slice(s, min(s + size, n))
            st = {k: t[i] for k, t in state.items()}
            trial = {k: t[i] for k, t in response.state.items()}
            good = ~response.failed[i]
            W, alpha, N, aa, N_anc = self._network(c, st["set"])
            J = alpha.shape[-1]
            F_l = self._leaf_F(F[i], alpha, trial["a"], N)
            leaf0 = {k[len(LEAF):]: t for k, t in st.items() if k.startswith(LEAF)}
            leaf1 = {k[len(LEAF):]: t for k, t in trial.items() if k.startswith(LEAF)}
            A = self.leaves.constituent_tangent(F_l, dt, leaf0, leaf1, good[:, None].expand(F_l.shape[:2]))
            mean = torch.einsum("nl,nlabcd->nabcd", W, A).reshape(-1, 9, 9)
            if J:
                K, B, E = self._blocks(W, aa, N_anc, A, c["anc"], J, condensed=True)
                X, info = torch.linalg.solve_ex(K, B)
                good = good & (info == 0)
                mean = mean - E @ X
            A_bar = (mean / W.sum(1)[:, None, None]).reshape(-1, 3, 3, 3, 3)
            out[i] = torch.where(good[:, None, None, None, None], A_bar, out[i])
        return out
