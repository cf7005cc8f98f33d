#!/usr/bin/env python
"""Peak memory per voxel of a run, per backend, and the setup time of the component-scale plate.

Each backend runs the plate (slot, free layer, graded texture) for one increment in a fresh
process on two grids, side by side in one invocation; the peak resident memory of the process
(``ru_maxrss``) on the small grid holds the fixed cost (Python, torch, PETSc, damask), so

    memory per voxel = (peak(large) - peak(small)) / (voxels(large) - voxels(small)).

Next to it: the run's own estimate per cell (its first log line, the range between the committed
state twice and three times) and the voxels that would fit in 24 GB. Then the plate at
151×151×15 with 20 grains per voxel is built and written (the gru case: descriptors and the HDF5
side file of the constituents), timed, with its peak memory.

Both grids should be larger than the constitutive chunks (taylor: 65 536 crystals, i.e. 3 277
voxels of 20 grains; gru's setup: 32 768 voxels): below them the chunk temporaries grow with the
grid and count as memory per voxel.

  python benchmarks/bench_memory.py [--small 32 32 16] [--large 64 64 16] [--no-plate]
"""
from __future__ import annotations

import argparse
import json
import re
import resource
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

#: (label, backend, constituents per voxel)
CASES = [("elastic", "elastic", 1), ("taylor K=1", "taylor", 1), ("taylor K=20", "taylor", 20), ("gru", "gru", 20)]


def worker(args) -> None:
    from polyfe2.simulation.plate import write_plate_case
    from polyfe2.simulation.config import load_run_config
    from polyfe2.simulation.runner import run

    out = Path(args.out)
    path = write_plate_case(out, cells=tuple(args.cells), K=args.K, backend=args.backend, increments=1,
                            strain=0.001)   # one increment of Δt = 1 s: elastic
    config = load_run_config(path)
    lines = []
    run(config, progress=False, log=lines.append)
    estimate = re.search(r"\(([\d.]+)-([\d.]+) kB per cell", lines[0])   # per cell; the fixed temporaries apart
    print("RESULT " + json.dumps(dict(peak=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                                      low=float(estimate[1]) * 1024, high=float(estimate[2]) * 1024)), flush=True)


def measure(backend: str, K: int, cells, out: Path) -> dict:
    cmd = [sys.executable, str(HERE), "--worker", "--backend", backend, "--K", str(K), "--out", str(out),
           "--cells", *map(str, cells)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if r.returncode != 0 or line is None:
        raise SystemExit(f"{backend} on {cells} failed:\n{r.stderr[-2000:]}")
    return json.loads(line[len("RESULT "):])


def plate_setup(out: Path) -> None:
    from polyfe2.simulation.plate import write_plate_case

    t0 = time.perf_counter()
    write_plate_case(out, cells=(151, 151, 15), K=20, backend="gru")
    wall = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in out.iterdir()) / 1e6
    print(f"plate 151×151×15, 20 grains per voxel (gru case): built and written in {wall:.1f} s, "
          f"{size:.0f} MB of files, peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", type=int, nargs=3, default=[32, 32, 16])
    p.add_argument("--large", type=int, nargs=3, default=[64, 64, 16])
    p.add_argument("--no-plate", action="store_true")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--backend", help=argparse.SUPPRESS)
    p.add_argument("--K", type=int, help=argparse.SUPPRESS)
    p.add_argument("--cells", type=int, nargs=3, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    n_small, n_large = (int(a * b * c) for a, b, c in (args.small, args.large))
    print(f"peak memory per voxel, one elastic increment of the plate, {args.small} vs {args.large} cells")
    print("backend | peak small MB | peak large MB | measured kB/voxel | estimate kB/voxel | voxels in 24 GB")
    with tempfile.TemporaryDirectory() as tmp:
        for label, backend, K in CASES:
            small = measure(backend, K, args.small, Path(tmp) / f"{backend}{K}s")
            large = measure(backend, K, args.large, Path(tmp) / f"{backend}{K}l")
            per_voxel = (large["peak"] - small["peak"]) / (n_large - n_small)
            fits = (24 * 2**30 - small["peak"]) / per_voxel
            print(f"{label} | {small['peak'] / 1e6:.0f} | {large['peak'] / 1e6:.0f} | {per_voxel / 1024:.1f} | "
                  f"{large['low'] / 1024:.1f}-{large['high'] / 1024:.1f} | {fits:.2e}")
        if not args.no_plate:
            plate_setup(Path(tmp) / "plate")


if __name__ == "__main__":
    main()
