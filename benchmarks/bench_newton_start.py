#!/usr/bin/env python
"""Where the crystal-plasticity Newton of a residual evaluation starts: from the increment's latest
evaluation (`taylor` and `odmn` option ``newton_start: last``, DAMASK's Lpguess) or from the
committed state (``committed``), measured side by side in one invocation on the plate's elastic and
yield-onset increments.

The case is the component-scale plate's layout (slot, free layer, graded texture) on
``--cells N N NZ``, uniaxial tension in 0.1 % increments and `solver: initial_guess: elastic`, as
the whole 151×151×15 plate is run. ``taylor``: K orientations per voxel. ``odmn``: one network per
texture band, inferred by the shipped encoder ``fm_small_v1_odmn.pt`` (``polyfe2 demo --backend
odmn --encoder``); ``newton_start: last`` also starts every leaf's Newton from its previous
evaluation within the node equilibrium. For each setting: N-GMRES
iterations, residual evaluations, wall time and seconds per evaluation of every increment; then
the ratios, and how far the two answers are apart (cell P of the last increment, relative to
its RMS; both converge to the solver's tolerance, eps_div_rel = 5e-4).

  python benchmarks/bench_newton_start.py [--cells 151 151 1] [--K 4] [--increments 2]
  python benchmarks/bench_newton_start.py --backend odmn --cells 24 24 1
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
try:
    import polyfe2  # noqa: F401
except ImportError:  # running from a checkout without an install
    sys.path.insert(0, str(HERE.parents[1] / "src"))

SETTINGS = ("committed", "last")


def odmn_parameters(directory: Path) -> dict[int, Path]:
    import polyfe2
    from polyfe2.learn.fm_infer import infer_band_parameters

    return infer_band_parameters(Path(polyfe2.__file__).parent / "models" / "fm_small_v1_odmn.pt", directory)


def run_setting(directory: Path, cells, K: int, increments: int, start: str, backend: str = "taylor",
                parameters: dict | None = None):
    from polyfe2.simulation.plate import plate_case
    from polyfe2.simulation.runner import run

    config, _ = plate_case(cells=tuple(cells), K=K, increments=increments, strain=1e-3 * increments,
                           backend=backend, solver={"initial_guess": "elastic"}, odmn_parameters=parameters)
    config.backend_options = {**(config.backend_options or {}), "newton_start": start}
    config.output.directory = str(directory)
    config.output.xdmf = config.output.plots = False
    t0 = time.perf_counter()
    summary = run(config, progress=False, log=lambda line: None)
    wall = time.perf_counter() - t0
    import csv

    rows = list(csv.DictReader(open(directory / "plate_status.csv")))
    import h5py

    with h5py.File(directory / "plate.hdf5") as f:
        P = f[f"increment_{increments}/homogenization"]
        P = P[next(iter(P))]["mechanical/P"][()]
    return rows, wall, summary, P


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, nargs=3, default=[151, 151, 1], metavar=("NX", "NY", "NZ"))
    p.add_argument("--K", type=int, default=4)
    p.add_argument("--increments", type=int, default=2)
    p.add_argument("--backend", choices=("taylor", "odmn"), default="taylor")
    args = p.parse_args(argv)
    import torch

    what = f"taylor K = {args.K}" if args.backend == "taylor" else "odmn (networks of fm_small_v1_odmn)"
    print(f"{what} plate on {'x'.join(map(str, args.cells))} cells, {args.increments} increments "
          f"of 0.1 %, {torch.get_num_threads()} thread(s)")
    print(f"{'newton_start':<13} {'inc':>3} {'iterations':>10} {'evaluations':>11} {'wall s':>8} {'s/eval':>7}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        parameters = odmn_parameters(Path(tmp) / "networks") if args.backend == "odmn" else None
        for start in SETTINGS:
            rows, wall, summary, P = run_setting(Path(tmp) / start, args.cells, args.K, args.increments, start,
                                                 args.backend, parameters)
            for r in rows:
                ev = int(r["residual_evals"])
                print(f"{start:<13} {r['increment']:>3} {r['iterations']:>10} {ev:>11} {float(r['wall_s']):8.1f} "
                      f"{float(r['wall_s']) / ev:7.2f}", flush=True)
            results[start] = (rows, wall, P)
    (rc, wc, Pc), (rl, wl, Pl) = results["committed"], results["last"]
    tc, tl = per_increment(rc), per_increment(rl)
    for i in sorted(tc):
        (ea, sa, ca), (eb, sb, cb) = tc[i], tl[i]
        print(f"increment {i} (all attempts): committed/last evaluations {ea}/{eb} = {ea / eb:.2f}, wall "
              f"{sa / sb:.2f}, s per evaluation {(sa / ea) / (sb / eb):.2f}; cutbacks {ca} and {cb}")
    rms = float(np.sqrt((Pc**2).mean()))
    print(f"whole run: committed {wc:.0f} s, last {wl:.0f} s, ratio {wc / wl:.2f}; cell P of the last increment: "
          f"RMS difference {np.sqrt(((Pc - Pl) ** 2).mean()) / rms:.1e} of its RMS, mean P_11 "
          f"{Pc[:, 0, 0].mean() / 1e6:.3f} vs {Pl[:, 0, 0].mean() / 1e6:.3f} MPa"
          + (" (after different cutbacks: different paths)" if any(tc[i][2] != tl[i][2] for i in tc) else ""))


def per_increment(rows) -> dict[int, tuple[int, float, int]]:
    """Increment -> (residual evaluations, wall s, cutback attempts), summed over its attempts."""
    out = {}
    for r in rows:
        e, w, c = out.get(int(r["increment"]), (0, 0.0, 0))
        out[int(r["increment"])] = (e + int(r["residual_evals"]), w + float(r["wall_s"]),
                                    c + (r["converged"] != "True"))
    return out


if __name__ == "__main__":
    main()
