"""Solver benchmark: N-GMRES settings and reference media, side by side.

Two cases on an N³ grid (default 32³) of a 20-grain Voronoi aluminium polycrystal under
uniaxial tension along x (P_22 = P_33 = 0):

* elastic: the `elastic` backend with a spherical void (stiffness contrast 1e6);
* taylor: the `taylor` backend (K = 1, full-field crystal plasticity) into the plastic range.

First table: each PETSc setting (acceleration) with one reference medium and one derivative
(``--reference``, ``--derivative``), so that the ratio of evaluations to those of the plain
fixed-point (basic) scheme measures the acceleration alone. The fixed point diverges with
DAMASK's min/max reference medium on anisotropic grains, so that table uses the stiffest
medium (``max``) unless told otherwise. It prints residual evaluations and iterations per
increment, wall time, and the time per residual evaluation per voxel.

Second table (``--references``): the reference media under the default PETSc setting, for
each of ``--derivatives``.

    python benchmarks/bench_solver.py [--cells 32] [--increments 3] [--cases elastic taylor]
        [--settings NAME ...] [--reference max] [--derivative rotated]
        [--references minmax componentwise] [--derivatives rotated continuous]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import damask
import numpy as np

#: name -> PETSc options; every setting of a table runs with the same reference medium and derivative
SETTINGS = {
    "PETSc ngmres defaults (m=30)": "-snes_type ngmres",
    "ngmres m=8": "-snes_type ngmres -snes_ngmres_m 8",
    "ngmres m=8 approxfunc": "-snes_type ngmres -snes_ngmres_m 8 -snes_ngmres_approxfunc",
    "ngmres m=4": "-snes_type ngmres -snes_ngmres_m 4",
    "anderson m=8": "-snes_type anderson -snes_anderson_m 8",
    "anderson m=4": "-snes_type anderson -snes_anderson_m 4",
    "fixed point (basic scheme)": "-snes_type nrichardson -snes_linesearch_type basic",
}

def build_case(n: int, case: str, increments: int):
    """The benchmark's case as an in-memory run config (20 Voronoi grains; a spherical void for
    ``elastic``)."""
    from polyfe2.microstructure.materials import aluminium, soft_phase
    from polyfe2.simulation.config import Geometry, MaterialConfig, OutputOptions, RunConfig
    from polyfe2.simulation.plate import uniaxial_tension_x

    seeds = damask.seeds.from_random(np.ones(3), 20, rng_seed=1234)
    mat = damask.GeomGrid.from_Voronoi_tessellation([n] * 3, np.ones(3), seeds).material.copy()
    O = damask.Rotation.from_random(20, rng_seed=5678).quaternion
    al = aluminium()
    phases, phase = {"Al": al}, ["Al"] * 20
    if case == "elastic":
        x = (np.indices(mat.shape) + 0.5) / n - 0.5
        mat[(x**2).sum(axis=0) < 0.2**2] = 20
        phases["Void"] = soft_phase(al)
        phase.append("Void")
        O = np.concatenate([O, [[1.0, 0, 0, 0]]])
    material = MaterialConfig.from_arrays(phases, {"SX": {"N_constituents": 1, "mechanical": {"type": "pass"}}},
                                          "SX", phase, O[:, None], np.ones((len(O), 1)))
    t = 0.2 if case == "elastic" else 2.0
    return RunConfig.build(Geometry.from_array(mat, size=np.ones(3) * 1e-4), material,
                           uniaxial_tension_x(strain=1e-3 * t, increments=increments),
                           backend="elastic" if case == "elastic" else "taylor",
                           output=OutputOptions(xdmf=False, plots=False))


def run_setting(directory: Path, config, options: dict):
    from polyfe2.simulation.config import OutputOptions
    from polyfe2.simulation.runner import run
    from polyfe2.solver.options import SolverOptions

    config = config.with_options(solver=SolverOptions.from_mapping({**options, "N_iter_max": 400, "N_cutback_max": 0}),
                                 output=OutputOptions(directory=str(directory / "out"), xdmf=False, plots=False))
    t0 = time.perf_counter()
    try:
        s = run(config, progress=False, log=lambda *a: None)
        ok = True
    except Exception as e:  # a setting that fails is reported, not fatal to the benchmark
        print(f"    ({type(e).__name__}: {str(e)[:100]})")
        return None
    return s, time.perf_counter() - t0, ok


def print_table(title, rows, n_vox, base=None):
    print(f"\n{title}")
    print(f"{'setting':<30} {'evals/inc':>9} {'iters/inc':>9} {'wall s':>8} {'us/eval/voxel':>14} "
          f"{'evals vs fixed':>14}")
    for name, r in rows:
        if r is None:
            print(f"{name:<30} {'failed to converge':>9}")
            continue
        s, wall, _ = r
        ratio = f"{s.evaluations / base:.2f}" if base else "-"
        print(f"{name:<30} {s.evaluations / s.increments:9.1f} {s.iterations / s.increments:9.1f} "
              f"{wall:8.1f} {1e6 * wall / s.evaluations / n_vox:14.3f} {ratio:>14}")


def main(argv=None):
    from polyfe2.solver.options import DEFAULT_PETSC_OPTIONS, REFERENCE_MEDIA

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=32)
    p.add_argument("--increments", type=int, default=3)
    p.add_argument("--cases", nargs="+", default=["elastic", "taylor"])
    p.add_argument("--settings", nargs="*", default=list(SETTINGS), help="names from SETTINGS")
    p.add_argument("--reference", default="max", choices=REFERENCE_MEDIA,
                   help="reference medium of every setting in the first table")
    p.add_argument("--derivative", default="rotated", choices=("rotated", "continuous"))
    p.add_argument("--references", nargs="*", default=[], choices=REFERENCE_MEDIA,
                   help="second table: these reference media with the default PETSc options")
    p.add_argument("--derivatives", nargs="+", default=["rotated", "continuous"], choices=("rotated", "continuous"))
    args = p.parse_args(argv)
    import torch

    print(f"polyfe2 solver benchmark: {args.cells}^3 cells, {args.increments} increments, torch threads "
          f"{torch.get_num_threads()}, device {'cuda' if torch.cuda.is_available() else 'cpu'}")
    n_vox = args.cells**3
    for case in args.cases:
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            # warm-up (allocations, first FFT plans): not timed
            run_setting(d, build_case(args.cells, case, 1), {"petsc_options": SETTINGS["ngmres m=8"]})
            config = build_case(args.cells, case, args.increments)
            if args.settings:
                rows = [(name, run_setting(d, config, {"petsc_options": SETTINGS[name], "reference": args.reference,
                                                     "derivative": args.derivative}))
                        for name in args.settings]
                base = next((r[0].evaluations for name, r in rows if r is not None and name.startswith("fixed")), None)
                print_table(f"case {case} ({n_vox} voxels), reference {args.reference}, derivative {args.derivative}",
                            rows, n_vox, base)
            for derivative in args.derivatives if args.references else []:
                rows = [(f"reference {ref}", run_setting(d, config, {"petsc_options": DEFAULT_PETSC_OPTIONS,
                                                                   "reference": ref, "derivative": derivative}))
                        for ref in args.references]
                print_table(f"case {case} ({n_vox} voxels), default PETSc options, derivative {derivative}",
                            rows, n_vox)


if __name__ == "__main__":
    main()
