#!/usr/bin/env python
"""The ``odmn`` backend's online stage per increment against full-field crystal plasticity.

For each point count N, side by side in one run, one plastic increment (the third of a uniaxial
path at 1e-3/s, Δt = 1 s, after two committed ones):

* ``odmn`` -- N material points, each a depth-D network (2^D phenopowerlaw leaves): the whole
  increment (batched Newton on the node vectors with its line search), with the mean and
  largest number of network evaluations per point (start, Newton steps, line-search trials);
  the default ``newton_start: last`` (every leaf's Newton starts from its previous evaluation
  within the node equilibrium) beside ``committed`` (every leaf from its committed state);
* ``taylor K=1`` -- one residual evaluation of N full-field voxels (one crystal per cell), what
  the spectral solver pays per iteration (a full-field increment takes several);
* ``taylor K=2^D`` -- N points of 2^D crystals each, iso-strain: the same crystal count as the
  ODMN without the network's equilibrium.

Figures: the minimum wall time over repeats, points per second, and the ratios. Peak resident
memory of the process is printed at the end. The fit time per RVE and whole-run times against
the full-field RVE are in ``polyfe2 odmn validate`` (README, "ODMN").

  python benchmarks/bench_odmn.py [--sizes 1e2,1e3,1e4] [--depth 6] [--repeat 2]
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

try:
    from polyfe2.constitutive import MaterialPoints, registry
except ImportError:  # running from a checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from polyfe2.constitutive import MaterialPoints, registry
import damask

from polyfe2.constitutive.odmn_network import ODMNParameters
from polyfe2.microstructure.materials import aluminium

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gru_kernels import timeit  # noqa: E402  (same timing rules as the other benchmarks)

D = torch.float64


def uniaxial(e: float, n: int) -> torch.Tensor:
    return torch.diag(torch.tensor([1 + e, (1 + e) ** -0.5, (1 + e) ** -0.5], dtype=D)).expand(n, 3, 3)


def warm(backend, state, n, increments=2):
    """Commit ``increments`` increments of the path; returns (state, F_0, F)."""
    F0 = uniaxial(0.0, n)
    for k in range(1, increments + 1):
        F = uniaxial(1e-3 * k, n)
        r = backend.evaluate(F, F0, 1.0, state)
        state, F0 = backend.commit(r.state), F
    return state, F0, uniaxial(1e-3 * (increments + 1), n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1e2,1e3,1e4")
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    phase = aluminium()
    L = 2**args.depth
    with tempfile.TemporaryDirectory() as tmp:
        params = ODMNParameters.random(args.depth, seed=0).save(Path(tmp) / "p.pt")
        odmn = registry.get("odmn")(phase, {"parameters": {"default": str(params)}})
        cold = registry.get("odmn")(phase, {"parameters": {"default": str(params)}, "newton_start": "committed"})
        taylor = registry.get("taylor")(phase)
        print(f"threads {torch.get_num_threads()}, depth {args.depth} ({L} leaves), float64, CPU")
        print(f"{'N':>7} | {'odmn s/inc':>10} {'evals':>10} {'pts/s':>9} {'committed s/inc':>15} {'ratio':>6} | "
              f"{'taylor K=1 s/eval':>17} "
              f"{'ratio':>6} | {'taylor K=' + str(L) + ' s/eval':>18} {'ratio':>6}")
        for n in (int(float(s)) for s in args.sizes.split(",")):
            pts = MaterialPoints(torch.zeros(n, 1, 4, dtype=D), torch.ones(n, 1, dtype=D), torch.zeros(n, dtype=torch.long),
                                 odmn.point_data(np.zeros(n, dtype=int)))
            st, F0, F = warm(odmn, odmn.setup(pts, "cpu", D), n)
            res = {}
            t_odmn = timeit(lambda: res.update(r=odmn.evaluate(F, F0, 1.0, st)), torch.device("cpu"), args.repeat, 0)
            it = res["r"].state["evaluations"]
            assert not res["r"].failed.any()
            t_cold = timeit(lambda: cold.evaluate(F, F0, 1.0, st), torch.device("cpu"), args.repeat, 0)
            q = torch.as_tensor(damask.Rotation.from_random(n * L, rng_seed=1).as_quaternion()).reshape(n, L, 4)
            timings = []
            for K in (1, L):
                tp = MaterialPoints(q[:, :K], torch.full((n, K), 1.0 / K, dtype=D), torch.zeros(n, dtype=torch.long))
                st_t, F0_t, F_t = warm(taylor, taylor.setup(tp, "cpu", D), n)
                timings.append(timeit(lambda: taylor.evaluate(F_t, F0_t, 1.0, st_t), torch.device("cpu"),
                                      args.repeat, 0))
            print(f"{n:>7} | {t_odmn:>10.3f} {float(it.mean()):>5.1f}/{int(it.max()):<4} {n / t_odmn:>9.0f} "
                  f"{t_cold:>15.3f} {t_cold / t_odmn:>6.2f} | "
                  f"{timings[0]:>17.4f} {t_odmn / timings[0]:>6.0f} | {timings[1]:>18.3f} {t_odmn / timings[1]:>6.1f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory {peak:.0f} MiB")


if __name__ == "__main__":
    main()
