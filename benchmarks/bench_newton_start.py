#!/usr/bin/env python
"""Where the crystal-plasticity Newton of a residual evaluation starts: from the increment's latest
evaluation (`taylor` option ``newton_start: last``, DAMASK's Lpguess) or from the committed state
(``committed``), measured side by side in one invocation on the plate's elastic and yield-onset
increments.

The case is the component-scale plate's layout (slot, free layer, graded texture) on
``--cells N N NZ`` with K orientations per voxel, uniaxial tension in 0.1 % increments and
`solver: initial_guess: elastic`, as the whole 151×151×15 plate is run. For each setting: N-GMRES
iterations, residual evaluations, wall time and seconds per evaluation of every increment; then
the ratios, and how far the two answers are apart (cell P of the last increment, relative to
its RMS; both converge to the solver's tolerance, eps_div_rel = 5e-4).

  python benchmarks/bench_newton_start.py [--cells 151 151 1] [--K 4] [--increments 2]
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


def run_setting(directory: Path, cells, K: int, increments: int, start: str):
    from polyfe2.simulation.plate import plate_case
    from polyfe2.simulation.runner import run

    config, _ = plate_case(cells=tuple(cells), K=K, increments=increments, strain=1e-3 * increments,
                           backend="taylor", solver={"initial_guess": "elastic"})
    config.backend_options = {"newton_start": start}
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
    args = p.parse_args(argv)
    import torch

    print(f"taylor K = {args.K} plate on {'x'.join(map(str, args.cells))} cells, {args.increments} increments "
          f"of 0.1 %, {torch.get_num_threads()} thread(s)")
    print(f"{'newton_start':<13} {'inc':>3} {'iterations':>10} {'evaluations':>11} {'wall s':>8} {'s/eval':>7}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for start in SETTINGS:
            rows, wall, summary, P = run_setting(Path(tmp) / start, args.cells, args.K, args.increments, start)
            for r in rows:
                ev = int(r["residual_evals"])
                print(f"{start:<13} {r['increment']:>3} {r['iterations']:>10} {ev:>11} {float(r['wall_s']):8.1f} "
                      f"{float(r['wall_s']) / ev:7.2f}", flush=True)
            results[start] = (rows, wall, P)
    (rc, wc, Pc), (rl, wl, Pl) = results["committed"], results["last"]
    for i, (a, b) in enumerate(zip(rc, rl)):
        ea, eb = int(a["residual_evals"]), int(b["residual_evals"])
        sa, sb = float(a["wall_s"]), float(b["wall_s"])
        print(f"increment {i + 1}: committed/last evaluations {ea / eb:.2f}, wall {sa / sb:.2f}, "
              f"s per evaluation {(sa / ea) / (sb / eb):.2f}")
    rms = float(np.sqrt((Pc**2).mean()))
    print(f"whole run: committed {wc:.0f} s, last {wl:.0f} s, ratio {wc / wl:.2f}; cell P of the last increment: "
          f"RMS difference {np.sqrt(((Pc - Pl) ** 2).mean()) / rms:.1e} of its RMS, mean P_11 "
          f"{Pc[:, 0, 0].mean() / 1e6:.3f} vs {Pl[:, 0, 0].mean() / 1e6:.3f} MPa")


if __name__ == "__main__":
    main()
