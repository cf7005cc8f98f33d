"""A whole run: load steps, increments, cutbacks and outputs around the spectral solver."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..constitutive import registry
from ..constitutive.base import MaterialPoints
from ..constitutive.dispatch import MaterialModel, PhaseGroup
from ..devices import resolve_device
from ..errors import InputError, SolverError
from ..solver.boundary import masked_compliance
from ..solver.spectral import SpectralSolver
from .config import RunConfig
from .outputs import RunOutputs


def build_material_model(config: RunConfig, device: torch.device, dtype=torch.float64) -> MaterialModel:
    """Group the cells by phase and give every group its backend and per-cell points."""
    mat = config.material
    ids = torch.as_tensor(config.geometry.material.reshape(-1), device=device)
    O = torch.as_tensor(mat.O, device=device, dtype=dtype)
    v = torch.as_tensor(mat.v, device=device, dtype=dtype)
    groups = []
    n_constituents = mat.n_constituents()
    for phase, pdata in mat.phases.items():
        in_phase = np.flatnonzero(mat.phase == phase)
        index = torch.nonzero(torch.isin(ids, torch.as_tensor(in_phase, device=device))).squeeze(1)
        if index.numel() == 0:
            continue
        cell_ids = ids[index]
        name = config.backend_of(phase)
        options = config.backend_options if name == config.backend else {}
        try:
            backend = registry.get(name)(pdata, options, source=str(mat.path or "material"),
                                         base_dir=config.base_dir, phase_name=phase)
            extra = {k: t.to(device) for k, t in backend.point_data(cell_ids.cpu().numpy()).items()}
        except InputError as e:  # backend options come from the run config
            raise (InputError(e.message, file=config.path, key=e.key) if e.file is None else e) from None
        K = int(n_constituents[in_phase].max())
        points = MaterialPoints(O[cell_ids, :K], v[cell_ids, :K], cell_ids, extra)
        groups.append(PhaseGroup(phase, backend, index, points))
    return MaterialModel(groups, int(ids.numel()))


@dataclass
class RunSummary:
    increments: int = 0
    iterations: int = 0
    evaluations: int = 0
    cutbacks: int = 0
    wall: float = 0.0
    P_av: np.ndarray | None = None
    F_av: np.ndarray | None = None
    files: dict = field(default_factory=dict)


def run(config: RunConfig, *, progress: bool = True, outputs=None, log=print) -> RunSummary:
    """Run the simulation described by ``config``; returns a summary, writes the outputs.

    Raises :class:`~polyfe2.errors.SolverError` (after writing all converged increments) when
    an increment does not converge within ``N_cutback_max`` halvings of its time step.
    """
    t_start = time.perf_counter()
    device = resolve_device(config.device, file=config.path)
    dtype = torch.float64
    grid = config.geometry.grid
    options = config.solver
    model = build_material_model(config, device, dtype)
    state = model.setup(device, dtype)
    C = model.stiffness(state)
    try:
        solver = SpectralSolver(grid, model, C, options)
    except InputError as e:   # PETSc options come from the run config
        raise (InputError(e.message, file=config.path, key=e.key) if e.file is None else e) from None
    C_avg = C.mean(dim=0).cpu().numpy()
    log(f"polyfe2: grid {grid.cells}, {grid.N} cells, device {device}, backends "
        + ", ".join(f"{g.name}:{g.backend.describe()}" for g in model.groups)
        + f", PETSc options '{options.petsc_options}'")

    outputs = outputs or RunOutputs(config, grid)
    outputs.bind(model)
    summary = RunSummary(files=outputs.files)
    eye = torch.eye(3, device=device, dtype=dtype)
    F = eye.expand(*grid.cells, 3, 3).clone()
    P = torch.zeros_like(F)
    F_prev, dt_prev = F, None
    F_aim, F_aim_prev, P_av = np.eye(3), np.eye(3), np.zeros((3, 3))
    t = 0.0
    inc = 0
    outputs.write_increment(0, 0.0, F, P, model.outputs(state, F.reshape(-1, 3, 3)))
    total = sum(s.N for s in config.load.steps)
    bar = _progress(total, progress)
    t_written = t_completed = 0.0
    try:
        for s, step in enumerate(config.load.steps):
            F_start, P_start = F_aim.copy(), P_av.copy()
            compliance = masked_compliance(C_avg, step.stress_mask)
            t_step = 0.0
            for n, dt_nominal in enumerate(step.increments()):
                remaining, level = dt_nominal, 0
                while remaining > 1e-9 * dt_nominal:
                    dt = min(dt_nominal / 2**level, remaining)
                    fraction = min((t_step + dt) / step.t, 1.0)
                    guess = step.estimate_rate and dt_prev is not None and level == 0
                    F_aim_new = step.deformation_aim(F_start, F_aim, dt, fraction)
                    rate_aim = (F_aim - F_aim_prev) / dt_prev if guess else np.zeros((3, 3))
                    F_aim_guess = np.where(step.deformation_mask, F_aim_new, F_aim + rate_aim * dt)
                    P_aim = step.stress_aim(P_start, P_av, dt, fraction)
                    F_guess = F + (F - F_prev) * (dt / dt_prev) if guess else F.clone()
                    F_guess += torch.as_tensor(F_aim_guess, device=device, dtype=dtype) - F_guess.mean(dim=(0, 1, 2))

                    def monitor(it, div, bc):
                        bar.set_postfix_str(f"step {s + 1} inc {n + 1} it {it} div/tol {div:.2g} "
                                            f"bc/tol {bc:.2g} cutbacks {summary.cutbacks}", refresh=False)

                    res = solver.solve(F_guess, F, state, dt, F_aim_new, P_aim, step.stress_mask, compliance, monitor)
                    summary.iterations += res.iterations
                    summary.evaluations += res.evaluations
                    outputs.status_row(inc + 1, t + dt, dt, level, res)
                    if res.converged:
                        state = model.commit(res.trial)
                        F_prev, F, P = F, res.F, res.P
                        F_aim_prev, F_aim, P_av = F_aim, res.F_av, res.P_av
                        dt_prev, t, t_step, remaining = dt, t + dt, t_step + dt, remaining - dt
                        continue
                    level += 1
                    summary.cutbacks += 1
                    if level > options.N_cutback_max:
                        raise SolverError(
                            f"load step {s + 1}, increment {n + 1} (t = {t + dt:.6g} s) did not converge "
                            f"({res.reason}) after {options.N_cutback_max} cutbacks; results up to "
                            f"t = {t:.6g} s are in {outputs.directory}")
                inc += 1
                summary.increments, t_completed = inc, t
                bar.update(1)
                if (n + 1) % step.f_out == 0 or n + 1 == step.N:
                    outputs.write_increment(inc, t, F, P, model.outputs(state, F.reshape(-1, 3, 3)))
                    t_written = t
    except SolverError:
        if t > t_written:  # keep every converged (sub-)increment
            partial = t > t_completed  # converged sub-steps of the failing increment
            outputs.write_increment(inc + 1 if partial else inc, t, F, P, model.outputs(state, F.reshape(-1, 3, 3)))
        raise
    finally:
        bar.close()
        summary.wall = time.perf_counter() - t_start
        summary.P_av, summary.F_av = P_av, F_aim
        outputs.finish(summary)
    return summary


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="inc", desc="polyfe2", dynamic_ncols=True, mininterval=0.5,
                disable=not enabled)
