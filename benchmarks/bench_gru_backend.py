#!/usr/bin/env python
"""Throughput of the ``gru`` backend per residual evaluation (issue 3).

For each voxel count N, side by side in one run:

* ``split step`` -- the backend as the solver runs it (``kernels: auto``): the committed-state
  terms (W_hh h, microstructure input) were computed once at the commit; per evaluation the
  polar decomposition, one split GRU step (compiled kernel when built) and the stress assembly;
* ``torch reference split`` -- the same split in plain torch (``kernels: reference``);
* ``nn.GRU from committed`` -- no precomputation (``kernels: torch``): every evaluation runs
  the whole nn.GRU step, W_hh h included;
* ``commit`` -- what the split moves to once per increment (its cost is amortised over the
  evaluations of an increment: 6-7 with the default N-GMRES);
* ``split step, fresh memory`` -- the split step writing every trial hidden state into newly
  allocated memory (as before the backend reused the buffers of trial states nothing holds);
* ``per-grain step`` -- for a model with one state per grain (``gru_aluminium_v8.pt``): its step
  in torch, in chunks of points, and its commit.

Figures: the minimum over repeats of the wall time per evaluation and voxels per second; the
ratio is nn.GRU time / split time. The models (H = 256, 2 layers) are the shipped one and the
version before it, measured one after the other in the same run (``--models``); the descriptors
and grain volume fractions are random.

  python benchmarks/bench_gru_backend.py [--sizes 1e4,1e5,3.4e5] [--repeat R] [--device cpu|cuda]
                                         [--models A.pt,B.pt]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

try:
    from polyfe2.constitutive import MaterialPoints, registry
except ImportError:  # running from a checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from polyfe2.constitutive import MaterialPoints, registry
from polyfe2.constitutive.gru import shipped_model_path
from polyfe2.constitutive.surrogates import is_grain_model, load_surrogate
from polyfe2.microstructure.materials import aluminium

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gru_kernels import timeit  # noqa: E402  (same timing rules as the kernel benchmark)


#: the version before the shipped model (its residual evaluation is the "before" of a change)
PREVIOUS_MODEL = "gru_aluminium_v6.pt"


def timed(fn, dev, repeat):
    return timeit(fn, dev, repeat, warmup=1)


def random_descriptors(N, seed=0) -> torch.Tensor:
    """Stands in for a descriptor file: random 20-grain descriptors (N, 20, 7)."""
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((N, 20, 4))
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    q[..., 0] = np.abs(q[..., 0])
    return torch.tensor(np.concatenate([rng.random((N, 20, 3)), q], -1), dtype=torch.float32)


def bench(N, dev, repeat, model):
    d = random_descriptors(N)
    v = torch.as_tensor(np.random.default_rng(2).dirichlet(np.ones(20), size=N), dtype=torch.float32)
    pts = MaterialPoints(torch.zeros(N, 1, 4), torch.ones(N, 1), torch.zeros(N, dtype=torch.long),
                         {"descriptor": d, "fractions": v})
    rng = np.random.default_rng(1)
    A = rng.standard_normal((3, 3)) * 0.01
    F = torch.tensor(np.eye(3) + 0.5 * (A + A.T), device=dev).expand(N, 3, 3).contiguous()
    rows = {}
    variants = (("split step", "auto"), ("torch reference split", "reference"), ("nn.GRU from committed", "torch"))
    if is_grain_model(load_surrogate(model)):
        variants = (("per-grain step", "auto"),)
    for label, kernels in variants:
        b = registry.get("gru")(aluminium(), {"model": str(model), "descriptors": "-", "kernels": kernels})
        state = b.setup(pts, dev, torch.float64)
        t = timed(lambda: b.evaluate(F, F, 0.5, state), dev, repeat)
        rows[label] = (t, b.describe())
        if kernels == "auto" and label == "split step":
            trial = b.evaluate(F, F, 0.5, state).state
            rows["commit (once per increment)"] = (timed(lambda: b.commit(trial), dev, repeat), "")
            del trial
            b._trial_h = torch.empty_like   # every trial hidden state in fresh memory
            rows["split step, fresh memory"] = (timed(lambda: b.evaluate(F, F, 0.5, state), dev, repeat), "")
        elif kernels == "auto":
            trial = b.evaluate(F, F, 0.5, state).state
            rows["commit (once per increment)"] = (timed(lambda: b.commit(trial), dev, repeat), "")
            del trial
        del state
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1e4,1e5,3.4e5")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", default=f"{shipped_model_path().with_name(PREVIOUS_MODEL)},{shipped_model_path()}",
                    help="comma-separated model files (default: the previous and the shipped model)")
    args = ap.parse_args()
    dev = torch.device(args.device)
    models = [m for m in args.models.split(",") if m]
    print(f"gru backend, device {dev}, torch threads {torch.get_num_threads()}")
    print(f"{'N':>8}  {'model':<22} {'variant':<28} {'ms/eval':>9} {'Mvoxel/s':>9}  implementation")
    for N in (int(float(s)) for s in args.sizes.split(",")):
        split = {}
        for model in models:
            name = Path(model).stem
            rows = bench(N, dev, args.repeat, model)
            for label, (t, impl) in rows.items():
                print(f"{N:>8}  {name:<22} {label:<28} {1e3 * t:>9.2f} {N / t / 1e6:>9.3f}  {impl}")
            split[name] = rows.get("split step", rows.get("per-grain step"))[0]
            if "split step" not in rows:
                continue
            ratio = rows["nn.GRU from committed"][0] / rows["split step"][0]
            amort = (rows["split step"][0] * 7 + rows["commit (once per increment)"][0]) / 7
            print(f"{N:>8}  {name:<22} ratio nn.GRU / split step = {ratio:.2f}x; split incl. commit amortised "
                  f"over 7 evaluations: {1e3 * amort:.2f} ms/eval ({rows['nn.GRU from committed'][0] / amort:.2f}x)")
            print(f"{N:>8}  {name:<22} fresh memory / reused buffers = "
                  f"{rows['split step, fresh memory'][0] / rows['split step'][0]:.2f}x the time per evaluation")
        if len(split) > 1:
            (a, ta), (b, tb) = list(split.items())[:2]
            print(f"{N:>8}  step {b} / {a}: {tb / ta:.2f}x the time per evaluation")


if __name__ == "__main__":
    main()
