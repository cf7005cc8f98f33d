#!/usr/bin/env python
"""Strong scaling of a run over MPI ranks, with the split of the time per residual evaluation.

One case, side by side in one invocation: a cells³ Voronoi polycrystal (random texture, one
``taylor`` crystal per cell), uniaxial tension along x at 1e-3/s (the other normal stresses
zero), ``increments`` increments of Δt = 1 s (0.1 % strain each: the first elastic, the second
yield onset). It runs

* on 1 rank with 1 thread (the reference of the ratio),
* on 1 rank with as many threads as ranks (what one process makes of the same cores),
* on 2, ... ranks with 1 thread each (``mpiexec`` of the mpich wheel),

and prints per configuration the wall time per increment, the residual evaluations, the split
of rank 0's time (constitutive update / FFT with the Green operator, its transposes included /
the rest: PETSc's N-GMRES and the run loop), and the speed-up against 1 rank. With
``--fft torch`` the ranks use the torch-slab FFT, whose transposes are timed on their own.

  python benchmarks/bench_mpi.py [--cells 64] [--grains 100] [--increments 1] [--ranks 2] [--fft fftw|torch]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
try:
    import polyfe2  # noqa: F401
except ImportError:  # running from a checkout without an install
    sys.path.insert(0, str(HERE.parents[1] / "src"))


def case(cells: int, grains: int, increments: int):
    import numpy as np

    from polyfe2.microstructure.descriptor import random_texture
    from polyfe2.microstructure.materials import aluminium
    from polyfe2.simulation.plate import uniaxial_tension_x
    from polyfe2.simulation.rve import voronoi_rve

    load = uniaxial_tension_x(strain=1e-3 * increments, increments=increments)
    return voronoi_rve(random_texture(grains, np.random.default_rng(0)), cells, aluminium(), load)


def worker(args) -> None:
    """One configuration (under mpiexec or alone): run the case, rank 0 prints its figures as JSON."""
    from polyfe2.simulation.parallel import rank, world
    from polyfe2.simulation.runner import run

    comm = world()
    config = case(args.cells, args.grains, args.increments)
    config.output.directory = args.out
    t0 = time.perf_counter()
    summary = run(config, progress=False, log=lambda *a: None, comm=comm)
    wall = time.perf_counter() - t0
    if rank(comm) == 0:
        print("RESULT " + json.dumps(dict(wall=wall, increments=summary.increments, evaluations=summary.evaluations,
                                          timings=summary.timings, P11=float(summary.P_av[0, 0]))), flush=True)


def launch(ranks: int, threads: int, args) -> dict:
    cmd = [sys.executable, str(HERE), "--worker", "--cells", str(args.cells), "--grains", str(args.grains),
           "--increments", str(args.increments), "--out", args.out]
    if ranks > 1:
        cmd = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(ranks), *cmd]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "POLYFE2_SLAB_FFT": args.fft}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if out.returncode != 0 or line is None:
        raise SystemExit(f"{ranks} rank(s) failed:\n{out.stderr[-2000:]}")
    return json.loads(line[len("RESULT "):])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=64)
    p.add_argument("--grains", type=int, default=100)
    p.add_argument("--increments", type=int, default=1)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--fft", choices=["fftw", "torch"], default="fftw")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    args.out = tempfile.mkdtemp(prefix="bench_mpi_")
    print(f"{args.cells}³ taylor (K = 1), {args.grains} grains, {args.increments} increments, slab FFT {args.fft}; "
          f"{os.cpu_count()} cores")
    configs = [(1, 1), (1, args.ranks), (args.ranks, 1)]
    results = {c: launch(*c, args) for c in configs}
    ref = results[(1, 1)]
    head = ("configuration", "s/increment", "evaluations", "constitutive s", "FFT s", "transpose s", "rest s",
            "speed-up", "P11 MPa")
    print(" | ".join(head))
    for (ranks, threads), r in results.items():
        t = r["timings"]
        rest = t["solve"] - t["constitutive"] - t["fft"]
        print(" | ".join([f"{ranks} rank(s) x {threads} thread(s)", f"{r['wall'] / r['increments']:.1f}",
                          str(r["evaluations"]), f"{t['constitutive']:.1f}", f"{t['fft']:.1f}",
                          f"{t['transpose']:.1f}" if "transpose" in t else "-", f"{rest:.1f}",
                          f"{ref['wall'] / r['wall']:.2f}", f"{r['P11'] / 1e6:.3f}"]))


if __name__ == "__main__":
    main()
