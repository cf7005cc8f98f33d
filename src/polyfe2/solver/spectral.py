"""One load increment of the basic spectral scheme, solved by PETSc SNES (N-GMRES by default).

The unknown is the deformation-gradient field F. The residual (DAMASK ``spectral_basic``) is

    r(F) = Γ⁰ * P(F)            for every frequency k ≠ 0,
    r̄(F) = F̄ − F̄_aim           on the deformation-controlled components of the average,
    r̄(F) = 𝕊 : (P̄ − P̄_aim)      on the stress-controlled components,

with 𝕊 (``compliance``) the masked compliance of the *elastic* stiffness: taking it from the elastic rather
than the current tangent keeps the stress-BC correction stable on elastic unloading after
plastic loading (where a compliance from the plastic tangent overshoots by about ten times).
The plain fixed-point iteration F ← F − r(F) is the basic scheme; N-GMRES accelerates it.

The PETSc vector is a 3-D DMDA with 9 dof (x fastest, DAMASK's order) whose local part is a
z-slab; the constitutive update and FFTs run on the run's torch device and only F in and r
out cross to PETSc per evaluation. With several MPI ranks every rank holds one z-slab of the
cells (the DMDA's ownership ranges are the FFT's slabs, :mod:`.fft`), evaluates only its own
material points, and the averages, norms and convergence decisions are reduced over the ranks,
so that every rank takes the same decisions.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from .fft import SerialFFT, z_slabs
from .green import GreenOperator
from .grid import Grid
from .options import REFERENCE_MEDIA, SolverOptions, parse_petsc_options

#: PETSc error codes (petsc/include/petscerror.h) that bad options give
_PETSC_ERRORS = {56: "not supported", 60: "wrong state", 62: "invalid argument", 63: "argument out of range",
                 86: "unknown type"}


def _petsc_message(error) -> str:
    """PETSc's error as text (petsc4py's Error carries the code only)."""
    code = getattr(error, "ierr", None)
    return f"{_PETSC_ERRORS.get(code, 'error')}, PETSc error code {code}"


def reference_stiffness(C: torch.Tensor, how: str) -> torch.Tensor:
    """Reference medium C⁰ (3,3,3,3) from the cell stiffnesses (see :class:`SolverOptions`).

    ``C`` is (Nx,Ny,Nz,3,3,3,3), or (N,3,3,3,3) already in DAMASK's cell order (x fastest).

    'minmax' is DAMASK's ``C_minMaxAvg`` (``utilities_constitutiveResponse``, DAMASK 3.0.2
    src/grid/grid_mech_utilities.f90): with the norm ``sum(dPdF**2)`` over the 81 components of
    each cell's tangent, C⁰ = (dPdF of the cell with the largest norm + dPdF of the cell with the
    smallest norm) / 2; on ties the first cell in DAMASK's order wins (strict comparisons). By
    default DAMASK builds Γ⁰ once, from the tangent at F = I, Δt = 0, i.e. the elastic stiffness
    passed here. The Frobenius norm does not change under rotation, so in a single-phase
    polycrystal every cell has the same norm up to rounding, and which two grains are averaged
    is decided by rounding, in DAMASK as here.
    """
    if how not in REFERENCE_MEDIA:
        raise ValueError(f"unknown reference medium {how!r}; expected one of {REFERENCE_MEDIA}")
    if C.dim() == 7:
        C = C.permute(2, 1, 0, 3, 4, 5, 6)  # x fastest, as DAMASK loops over its cells
    C = C.reshape(-1, 3, 3, 3, 3)
    if how == "minmax":
        norm = (C**2).sum(dim=(1, 2, 3, 4))
        return 0.5 * (C[int(torch.argmax(norm))] + C[int(torch.argmin(norm))])
    if how == "componentwise":
        return 0.5 * (C.amax(dim=0) + C.amin(dim=0))
    if how == "max":
        return C.amax(dim=0)
    return C.mean(dim=0)


def distributed_reference_stiffness(C: torch.Tensor, how: str, fft) -> torch.Tensor:
    """:func:`reference_stiffness` over the slabs of all ranks: ``C`` is this rank's
    (Nx,Ny,nz,3,3,3,3); the result is what one rank holding the whole grid would compute
    ('minmax': ties go to the first cell in DAMASK's order, as there)."""
    if fft.comm is None:
        return reference_stiffness(C, how)
    from mpi4py import MPI

    if how not in REFERENCE_MEDIA:
        raise ValueError(f"unknown reference medium {how!r}; expected one of {REFERENCE_MEDIA}")
    comm = fft.comm
    offset = fft.z_range[0] * fft.grid.cells[0] * fft.grid.cells[1]   # cells on the ranks below
    C = C.permute(2, 1, 0, 3, 4, 5, 6).reshape(-1, 3, 3, 3, 3)
    if how == "minmax":
        norm = (C**2).sum(dim=(1, 2, 3, 4))
        picks = []
        for arg, sign in ((torch.argmax, -1.0), (torch.argmin, 1.0)):
            i = int(arg(norm))
            # (sign·norm, global index) orders the candidates: the extreme first, then DAMASK's order
            candidates = comm.allgather((sign * float(norm[i]), offset + i, C[i].cpu().numpy()))
            picks.append(min(candidates, key=lambda c: (c[0], c[1]))[2])
        return torch.as_tensor(0.5 * (picks[0] + picks[1]), device=C.device, dtype=C.dtype)
    local = C.cpu().numpy()
    if how == "componentwise":
        hi, lo = np.empty((3, 3, 3, 3)), np.empty((3, 3, 3, 3))
        comm.Allreduce(np.ascontiguousarray(local.max(axis=0)), hi, op=MPI.MAX)
        comm.Allreduce(np.ascontiguousarray(local.min(axis=0)), lo, op=MPI.MIN)
        out = 0.5 * (hi + lo)
    elif how == "max":
        out = np.empty((3, 3, 3, 3))
        comm.Allreduce(np.ascontiguousarray(local.max(axis=0)), out, op=MPI.MAX)
    else:
        out = fft.sum(local.sum(axis=0)) / fft.grid.N
    return torch.as_tensor(out, device=C.device, dtype=C.dtype)


@dataclass
class Evaluation:
    """A residual evaluation, kept to identify the iterate that converges. Only the latest one
    keeps its trial material state (a copy of the whole state: gigabytes at component scale);
    an older one that turns out to be accepted is evaluated again (the update is pure)."""

    x: np.ndarray
    P: torch.Tensor
    trial: Any
    failed: int  # material points that failed, on all ranks
    err_div: float
    err_bc: float
    P_av: np.ndarray
    F_av: np.ndarray


@dataclass
class IncrementResult:
    converged: bool
    reason: str
    iterations: int
    evaluations: int
    err_div: float
    err_bc: float
    div_tol: float
    bc_tol: float
    F: torch.Tensor | None = None  # (Nx,Ny,Nz,3,3) on the run device
    P: torch.Tensor | None = None
    trial: Any = None
    P_av: np.ndarray | None = None
    F_av: np.ndarray | None = None
    wall: float = 0.0


class SpectralSolver:
    """Solves one increment: given the committed state, the start-of-increment F field, the
    aims of the average and Δt, find the equilibrated F field.

    Parameters
    ----------
    grid : Grid
    model : MaterialModel
        Batched P(F) over all cells (see :mod:`polyfe2.constitutive.dispatch`).
    C_ref : (N,3,3,3,3) tensor
        Elastic stiffness of every cell of this rank's slab, for the reference medium.
    options : SolverOptions
    fft : the transform of :mod:`.fft` (default: one rank, :class:`~.fft.SerialFFT`)
    """

    def __init__(self, grid: Grid, model, C_ref: torch.Tensor, options: SolverOptions, fft=None):
        from petsc4py import PETSc

        self.PETSc = PETSc
        self.grid, self.model, self.options = grid, model, options
        self.device, self.dtype = C_ref.device, C_ref.dtype
        self.fft = fft or SerialFFT(grid)
        z0, z1 = self.fft.z_range
        self.local_cells = (grid.cells[0], grid.cells[1], z1 - z0)
        C0 = distributed_reference_stiffness(C_ref.reshape(*self.local_cells, 3, 3, 3, 3), options.reference,
                                             self.fft)
        self.green = GreenOperator(grid, C0, options.derivative, fft=self.fft)
        comm = PETSc.COMM_SELF if self.fft.comm is None else PETSc.Comm(self.fft.comm)
        size = comm.getSize()
        slabs = [b - a for a, b in z_slabs(grid.cells[2], size)]
        self.da = PETSc.DMDA().create(dim=3, dof=9, sizes=grid.cells, proc_sizes=(1, 1, size),
                                      ownership_ranges=((grid.cells[0],), (grid.cells[1],), tuple(slabs)),
                                      stencil_width=0, comm=comm)
        self.x = self.da.createGlobalVec()
        self.r = self.x.duplicate()
        self.snes = self._make_snes(options.petsc_options)
        #: seconds spent, summed over the run: the constitutive update, the FFTs with the Green
        #: operator (their global transposes included), all of it (the rest is PETSc's N-GMRES)
        self.timings = {"constitutive": 0.0, "fft": 0.0, "solve": 0.0}

    # --- PETSc plumbing -------------------------------------------------------------------
    def _make_snes(self, option_string: str):
        PETSc = self.PETSc
        opts = PETSc.Options()
        prefix = "polyfe2_"
        pairs = parse_petsc_options(option_string)
        for name, value in pairs:
            opts[prefix + name] = "" if value is None else value
        names = [prefix + name for name, _ in pairs]
        try:
            snes = PETSc.SNES().create(comm=self.da.getComm())
            snes.setOptionsPrefix(prefix)
            snes.setType("ngmres")
            snes.setFunction(self._form_residual, self.r)
            snes.setConvergenceTest(self._converged)
            snes.setTolerances(max_it=self.options.N_iter_max)
            snes.setMaxFunctionEvaluations(-1)  # our convergence test bounds the iterations
            snes.setFromOptions()
        except PETSc.Error as e:
            raise InputError(f"PETSc rejected the options '{option_string}' ({_petsc_message(e)})",
                             key="solver/petsc_options") from None
        finally:
            # viewers and monitors are read when the solver runs, not at setFromOptions: keep them
            later = [n for n in names if "view" in n or "monitor" in n]
            unused = [n for n in names if n not in later and not opts.used(n)]
            for name in (set(opts.getAll()) & set(names)) - set(later):
                opts.delValue(name)  # the database is global: keep one run's options from the next
        if unused:
            raise InputError(f"PETSc did not use the option(s) {['-' + n[len(prefix):] for n in unused]} "
                             f"(misspelt, or not meant for SNES type {snes.getType()})", key="solver/petsc_options")
        return snes

    def field(self, vec, readonly: bool = False) -> np.ndarray:
        """(Nx,Ny,nz,3,3) numpy view of this rank's slab of a DMDA vector (x fastest in memory)."""
        nx, ny, nz = self.local_cells
        return vec.getArray(readonly=readonly).reshape(nz, ny, nx, 3, 3).transpose(2, 1, 0, 3, 4)

    # --- the residual -----------------------------------------------------------------------
    def _form_residual(self, snes, X, R) -> None:
        x = np.array(self.field(X, readonly=True))  # a copy: kept to identify the iterate later
        try:
            ev, r = self.residual(torch.from_numpy(x).to(self.device, self.dtype))
        except BaseException as e:   # PETSc reports it as a bare error code: keep the original
            self._callback_error = e
            raise
        ev.x = x
        for old in self._cache:
            old.trial = None
        self._cache.append(ev)
        del self._cache[:-4]
        self.evaluations += 1
        self.field(R)[...] = r.cpu().numpy()

    def residual(self, F: torch.Tensor):
        """r(F) for the current increment (see the module docstring); pure."""
        inc = self._inc
        shape = F.shape
        t0 = time.perf_counter()
        latest = self._cache[-1].trial if getattr(self, "_cache", None) else None   # starts local iterations
        P, trial, failed = self.model.evaluate(F.reshape(-1, 3, 3), inc["F_0"], inc["dt"], inc["state"], latest)
        t1 = time.perf_counter()
        P = P.reshape(shape)
        P_hat = self.green.fft(P)
        err_div = self.green.divergence_rms(P_hat)
        if self.fft.comm is None:
            P_av = (P_hat[0, 0, 0].real / self.grid.N).cpu().numpy()
            F_av = F.mean(dim=(0, 1, 2)).cpu().numpy()
        else:
            P_av = self.fft.sum(P.sum(dim=(0, 1, 2)).cpu().numpy()) / self.grid.N
            F_av = self.fft.sum(F.sum(dim=(0, 1, 2)).cpu().numpy()) / self.grid.N
        dP = np.where(inc["stress_mask"], P_av - inc["P_aim"], 0.0)
        r_avg = np.where(inc["stress_mask"], np.einsum("ijkl,kl->ij", inc["compliance"], dP), F_av - inc["F_aim"])
        r = self.green.convolve(P_hat)
        self.timings["constitutive"] += t1 - t0
        self.timings["fft"] += time.perf_counter() - t1
        r += torch.as_tensor(r_avg, device=r.device, dtype=r.dtype)
        n_failed = self.fft.sum(int(failed.sum()))   # over all ranks
        ev = Evaluation(None, P, trial, n_failed, err_div, float(np.abs(dP).max()), P_av, F_av)
        return ev, r

    def _find(self, X) -> Evaluation | None:
        """The cached evaluation of the iterate X (on every rank the same one, or None)."""
        x = self.field(X, readonly=True)
        same = np.array([np.array_equal(ev.x, x) for ev in self._cache], dtype=np.int64)
        if self.fft.comm is not None:
            same = self.fft.sum(same) == self.fft.comm.Get_size()   # equal on every rank's slab
        for ev, hit in zip(reversed(self._cache), reversed(same)):
            if hit:
                return ev
        return None

    def _tolerances(self, P_av: np.ndarray) -> tuple[float, float]:
        o = self.options
        p = float(np.abs(P_av).max())
        return max(o.eps_div_rel * p, o.eps_div_abs), max(o.eps_stress_rel * p, o.eps_stress_abs)

    def _converged(self, snes, it, norms):
        """DAMASK's criteria on an exactly evaluated iterate: the current one when it was
        evaluated, else the latest evaluation (N-GMRES with approxfunc only estimates the
        residual of its combined iterate). The iterate that passes is the one returned."""
        R = self.PETSc.SNES.ConvergedReason
        ev = self._find(snes.getSolution()) or self._cache[-1]
        if ev.failed:
            self._failed_points = ev.failed
            return R.DIVERGED_FUNCTION_DOMAIN
        if not (np.isfinite(ev.err_div) and np.isfinite(ev.err_bc)):
            return R.DIVERGED_FUNCTION_NANORINF
        div_tol, bc_tol = self._tolerances(ev.P_av)
        self._last = (ev.err_div, ev.err_bc, div_tol, bc_tol)
        if self.monitor is not None:
            self.monitor(it, ev.err_div / div_tol, ev.err_bc / bc_tol)
        if it >= self.options.N_iter_min and ev.err_div < div_tol and ev.err_bc < bc_tol:
            self._accepted = ev
            return R.CONVERGED_USER
        if it >= self.options.N_iter_max:
            return R.DIVERGED_MAX_IT
        return R.ITERATING

    # --- one increment ------------------------------------------------------------------------
    def solve(self, F_guess: torch.Tensor, F_0: torch.Tensor, state, dt: float, F_aim: np.ndarray,
              P_aim: np.ndarray, stress_mask: np.ndarray, compliance: np.ndarray, monitor=None) -> IncrementResult:
        """Equilibrate the increment starting from ``F_guess`` (Nx,Ny,Nz,3,3).

        ``F_0`` is the committed field (start of the increment), ``state`` the committed
        material state, ``F_aim``/``P_aim`` the aims of the average at the end of the increment.
        """
        t0 = time.perf_counter()
        self._inc = dict(F_0=F_0.reshape(-1, 3, 3), dt=dt, state=state, F_aim=F_aim, P_aim=P_aim,
                         stress_mask=stress_mask, compliance=compliance)
        self._cache: list[Evaluation] = []
        self.reevaluations = 0
        self._failed_points = 0
        self._accepted = None
        self._last = (np.nan, np.nan, np.nan, np.nan)
        self.evaluations = 0
        self.monitor = monitor
        self.field(self.x)[...] = F_guess.cpu().numpy()
        self._callback_error = None
        try:
            self.snes.solve(None, self.x)
        except self.PETSc.Error:
            if self._callback_error is not None:
                raise self._callback_error from None
            raise
        reason_code = self.snes.getConvergedReason()
        names = {v: k for k, v in vars(self.PETSc.SNES.ConvergedReason).items() if isinstance(v, int)}
        reason = names.get(reason_code, str(reason_code))
        if self._failed_points:
            reason = f"material point failure in {self._failed_points} cells"
        result = IncrementResult(converged=reason_code > 0, reason=reason, iterations=self.snes.getIterationNumber(),
                                 evaluations=self.evaluations, err_div=self._last[0], err_bc=self._last[1],
                                 div_tol=self._last[2], bc_tol=self._last[3])
        if result.converged:
            ev = self._accepted
            if ev.trial is None:   # not the latest evaluation: its state was dropped
                ev.trial = self.residual(torch.from_numpy(ev.x).to(self.device, self.dtype))[0].trial
                self.reevaluations += 1
                result.evaluations += 1
            result.F = torch.from_numpy(ev.x).to(self.device, self.dtype)
            result.P, result.trial, result.P_av, result.F_av = ev.P, ev.trial, ev.P_av, ev.F_av
        self._cache = []
        result.wall = time.perf_counter() - t0
        self.timings["solve"] += result.wall
        return result
