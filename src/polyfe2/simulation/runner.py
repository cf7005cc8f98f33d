"""A whole run: load steps, increments, cutbacks and outputs around the spectral solver."""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..constitutive import registry
from ..constitutive.base import MaterialPoints
from ..constitutive.dispatch import MaterialModel, PhaseGroup
from ..devices import resolve_device
from ..errors import InputError, SolverError
from ..solver.boundary import masked_compliance
from ..solver.fft import make_fft
from ..solver.spectral import SpectralSolver
from .config import RunConfig
from .outputs import RunOutputs
from .parallel import agree, local_rank, rank, world
from .restart import RestartStore


def build_material_model(config: RunConfig, device: torch.device, dtype=torch.float64,
                         z_range: tuple[int, int] | None = None) -> MaterialModel:
    """Group the cells by phase and give every group its backend and per-cell points.

    ``z_range`` = [start, stop) of the z-planes this rank holds (default: all); cell indices
    are then those of the slab, (x, y, z) row-major as the (Nx, Ny, nz) field."""
    mat = config.material
    material = config.geometry.material
    if z_range is not None:
        material = material[:, :, z_range[0]:z_range[1]]
    ids = torch.as_tensor(np.ascontiguousarray(material).reshape(-1), device=device)
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
    #: this rank's seconds: constitutive update, FFTs with the Green operator (and, for the
    #: torch-slab FFT, the global transposes within them), whole increments
    timings: dict = field(default_factory=dict)


def run(config: RunConfig, *, progress: bool = True, outputs=None, log=print, restart: int | None = None,
        comm=None) -> RunSummary:
    """Run the simulation described by ``config``; returns a summary, writes the outputs.

    ``comm``: the MPI communicator of a run on several ranks (default: MPI's world when launched
    by ``mpiexec`` with more than one rank); every rank then holds one z-slab of the grid.
    ``restart``: continue from the restart point at that increment (see :mod:`.restart`); the
    results files keep the increments up to it and go on from there.

    Raises :class:`~polyfe2.errors.SolverError` (after writing all converged increments) when
    an increment does not converge within ``N_cutback_max`` halvings of its time step.
    """
    t_start = time.perf_counter()
    comm = world() if comm is None else comm
    root = rank(comm) == 0
    log = log if root else (lambda *a, **k: None)
    device = agree(comm, resolve_device, config.device, file=config.path, local_rank=local_rank(comm))
    dtype = torch.float64
    grid = config.geometry.grid
    options = config.solver
    fft = agree(comm, _make_fft, grid, comm, device, config)
    model = agree(comm, build_material_model, config, device, dtype, fft.z_range)
    state = model.setup(device, dtype)
    C = model.stiffness(state)
    solver = agree(comm, _make_solver, grid, model, C, options, fft, config)
    cells = int(np.prod(solver.local_cells))
    low, high = memory_estimate(state, cells)
    workspace = model.workspace_bytes(state)
    agree(comm, _check_memory, low, cells, config, rank(comm), workspace)
    C_avg = fft.sum(C.sum(dim=0).cpu().numpy()) / grid.N
    store = RestartStore(config.output_dir, config.name, comm)
    resumed = agree(comm, store.read, restart, source=config.path) if restart is not None else None
    log(f"polyfe2: grid {grid.cells}, {grid.N} cells, {1 if comm is None else comm.Get_size()} rank(s), FFT "
        f"{fft.name}, device {device}, backends "
        + ", ".join(f"{g.name}:{g.backend.describe()}" for g in model.groups)
        + f", PETSc options '{options.petsc_options}', memory {(low * cells + workspace) / 2**30:.2f}-"
        f"{(high * cells + workspace) / 2**30:.2f} GiB per rank ({low / 1024:.1f}-{high / 1024:.1f} kB per cell"
        + (f" and {workspace / 2**30:.2f} GiB of constitutive temporaries" if workspace else "") + ")"
        + (f", restarting from increment {restart}" if restart is not None else ""))

    if outputs is None:
        outputs = agree(comm, RunOutputs, config, grid, comm=comm, z_range=fft.z_range, restart=restart)
    outputs.bind(model)
    summary = RunSummary(files=outputs.files)
    local_cells = solver.local_cells
    extrapolating: dict[str, int] = {}   # per phase: the count of points beyond a model's range last said

    def average(T: torch.Tensor) -> np.ndarray:
        return fft.sum(T.sum(dim=(0, 1, 2)).cpu().numpy()) / grid.N

    eye = torch.eye(3, device=device, dtype=dtype)
    F = eye.expand(*local_cells, 3, 3).clone()
    P = torch.zeros_like(F)
    F_prev, dt_prev = F, None
    F_aim, F_aim_prev, P_av = np.eye(3), np.eye(3), np.zeros((3, 3))
    F_start, P_start = F_aim.copy(), P_av.copy()
    t = t_step = 0.0
    inc = s0 = n0 = 0
    if resumed is None:
        outputs.write_increment(0, 0.0, F, P, model.outputs(state, F.reshape(-1, 3, 3)))
    else:
        r = _to(resumed, device)
        state, F, F_prev, P = r["state"], r["F"], r["F_prev"], r["P"]
        F_aim, F_aim_prev, P_av, F_start, P_start = (r[k] for k in ("F_aim", "F_aim_prev", "P_av", "F_start",
                                                                     "P_start"))
        t, t_step, dt_prev, inc, s0, n0 = (r[k] for k in ("t", "t_step", "dt_prev", "inc", "step", "n"))
        for k in ("iterations", "evaluations", "cutbacks"):
            setattr(summary, k, r["summary"][k])
        summary.increments = inc
    total = sum(st.N for st in config.load.steps)
    bar = _progress(total, progress and root, initial=inc)
    t_written = t_completed = t
    shown = [time.perf_counter()]   # when the bar last showed an iteration
    try:
        for s, step in enumerate(config.load.steps):
            if s < s0:
                continue
            if s > s0 or resumed is None:
                F_start, P_start, t_step = F_aim.copy(), P_av.copy(), 0.0
            compliance = masked_compliance(C_avg, step.stress_mask)
            for n, dt_nominal in enumerate(step.increments()):
                if s == s0 and n < n0:
                    continue
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
                    F_guess += torch.as_tensor(F_aim_guess - average(F_guess), device=device, dtype=dtype)
                    if dt_prev is None and options.initial_guess == "elastic":
                        F_guess = _elastic_guess(config, grid, fft, C, options, F_guess, F, dt, F_aim_new, P_aim,
                                                 step.stress_mask, compliance, log)

                    def monitor(it, div, bc):
                        bar.set_postfix_str(f"step {s + 1} inc {n + 1} it {it} div/tol {div:.2g} "
                                            f"bc/tol {bc:.2g} cutbacks {summary.cutbacks}", refresh=False)
                        if time.perf_counter() - shown[0] >= 1.0:   # iterations of a large grid take minutes
                            bar.refresh()
                            shown[0] = time.perf_counter()

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
                _report_range(model, state, fft, extrapolating, log)
                bar.update(1)
                if (n + 1) % step.f_out == 0 or n + 1 == step.N:
                    outputs.write_increment(inc, t, F, P, model.outputs(state, F.reshape(-1, 3, 3)))
                    t_written = t
                if step.f_restart and (n + 1) % step.f_restart == 0:
                    store.write(inc, dict(
                        state=state, F=F, F_prev=F_prev, P=P, F_aim=F_aim, F_aim_prev=F_aim_prev, P_av=P_av,
                        F_start=F_start, P_start=P_start, t=t, t_step=t_step, dt_prev=dt_prev, inc=inc, step=s,
                        n=n + 1, summary=dict(iterations=summary.iterations, evaluations=summary.evaluations,
                                              cutbacks=summary.cutbacks)))
    except SolverError:
        if t > t_written:  # keep every converged (sub-)increment
            partial = t > t_completed  # converged sub-steps of the failing increment
            outputs.write_increment(inc + 1 if partial else inc, t, F, P, model.outputs(state, F.reshape(-1, 3, 3)))
        raise
    finally:
        bar.close()
        summary.wall = time.perf_counter() - t_start
        summary.P_av, summary.F_av = P_av, F_aim
        summary.timings = dict(solver.timings)
        if hasattr(fft, "transpose_seconds"):
            summary.timings["transpose"] = fft.transpose_seconds
        outputs.finish(summary)
    return summary


def _report_range(model, state, fft, said: dict, log) -> None:
    """Say in the log when a learned model's points beyond its training range first appear, and
    each time their number has doubled since. Counted over all ranks with one collective call that
    every rank makes, whichever phases its slab holds."""
    local = {}
    for g in model.groups:
        r = g.backend.beyond_range(state[g.name])
        if r is not None:
            local[g.name] = (r[0], int(g.index.numel()), r[1], r[2], g.backend.name)
    parts = [local] if fft.comm is None else fft.comm.allgather(local)
    for name in sorted({k for p in parts for k in p}):
        rows = [p[name] for p in parts if name in p]
        count, n_points = sum(r[0] for r in rows), sum(r[1] for r in rows)
        largest, limit, backend = max(r[2] for r in rows), rows[0][3], rows[0][4]
        if count and count >= 2 * said.get(name, 0):
            said[name] = count
            log(f"polyfe2: {name} ({backend}): {count} points ({100 * count / n_points:.3g} %) lie beyond "
                f"the model's training range (largest {largest:.3g}, limit {limit:.3g}); it extrapolates there")


def _elastic_guess(config, grid, fft, C, options, F_guess, F_0, dt, F_aim, P_aim, stress_mask, compliance, log):
    """The first iterate of the run's first increment: the equilibrium of the same increment with
    every phase elastic (cheap to evaluate; with the same reference medium), else ``F_guess``."""
    dev, dtype = F_guess.device, F_guess.dtype
    elastic = replace(config, backends={p: "elastic" for p in config.material.phases})
    model = build_material_model(elastic, dev, dtype, fft.z_range)
    state = model.setup(dev, dtype)
    res = SpectralSolver(grid, model, C, options, fft=fft).solve(F_guess, F_0, state, dt, F_aim, P_aim, stress_mask,
                                                                 compliance)
    log(f"polyfe2: elastic initial guess: {res.evaluations} evaluations in {res.wall:.1f} s"
        + ("" if res.converged else f", not converged ({res.reason}): the homogeneous guess is used"))
    return res.F if res.converged else F_guess


#: field-sized arrays (9 doubles per cell) a run holds: F, F_prev, P, the guess, the residual, the
#: 4 cached evaluations (x and P each), PETSc's x and r and N-GMRES's 2 m history vectors (m = 8),
#: the FFT's spectra (complex, half the grid: counted as 9 real fields), and the transient copies
#: and temporaries of one residual evaluation (30: measured with benchmarks/bench_memory.py on
#: the elastic backend, whose own state is small)
FIELD_ARRAYS = 5 + 8 + 2 + 16 + 9 + 30


def _state_bytes(obj) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_state_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_state_bytes(v) for v in obj)
    return 0


def memory_estimate(state, cells: int) -> tuple[int, int]:
    """Bytes per cell this rank needs at least and at most: the field arrays, plus the committed
    material state twice (it and one trial) at least and three times (the latest evaluation's
    trial is kept while the next one is computed) at most; a backend's trial may share tensors
    with the committed state (gru's stiffness and gate terms), hence the range. The constitutive
    update's temporaries are bounded by its chunks, not by the grid: a fixed amount
    (:meth:`Backend.workspace_bytes`) that the run adds to these."""
    fields, per_state = FIELD_ARRAYS * 9 * 8, _state_bytes(state) // max(cells, 1)
    return fields + 2 * per_state, fields + 3 * per_state


def _available_memory() -> int | None:
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _check_memory(per_cell: int, cells: int, config, rank_: int, workspace: int = 0) -> None:
    """Stop before the first increment when the least memory the run needs (``per_cell`` bytes per
    cell and a fixed ``workspace``) is not available."""
    available = _available_memory()
    need = per_cell * cells + workspace
    if available is not None and need > available:
        raise InputError(f"the run needs at least {need / 2**30:.1f} GiB on rank {rank_} "
                         f"({per_cell / 1024:.1f} kB per cell) but {available / 2**30:.1f} GiB are available; run "
                         f"on more ranks or nodes, or a smaller grid", file=config.path, key="geometry")


def _make_fft(grid, comm, device, config):
    try:
        return make_fft(grid, comm, device)
    except ValueError as e:   # more ranks than planes
        raise InputError(str(e), file=config.geometry.path or "geometry", key="cells") from None


def _make_solver(grid, model, C, options, fft, config):
    try:
        return SpectralSolver(grid, model, C, options, fft=fft)
    except InputError as e:   # PETSc options come from the run config
        raise (InputError(e.message, file=config.path, key=e.key) if e.file is None else e) from None


def _to(obj, device):
    """A restart payload with its tensors moved to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to(v, device) for v in obj)
    return obj


def _progress(total: int, enabled: bool, initial: int = 0):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="inc", desc="polyfe2", dynamic_ncols=True, mininterval=0.5,
                disable=not enabled)
