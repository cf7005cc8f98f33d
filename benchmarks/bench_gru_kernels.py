#!/usr/bin/env python
"""Time one GRU step per evaluation: fused kernels vs torch (issue 4).

For each voxel count N (H = 256, L = 2 by default) and device, side by side:

* ``kernel precomputed``: polyfe2.kernels, linear input layer folded (gx_1 = gx_const + W_f f,
  K = 9), gh_l precomputed once per increment; the per-evaluation GEMMs are (L-1) x (N x H x 3H).
* ``kernel general``: same, but the layer-1 input x (N x D) is given (input layer with an
  activation); adds the N x D x 3H GEMM.
* ``torch split reference``: the same split step in plain torch (polyfe2.kernels.reference).
* ``nn.GRU 1 step``: torch.nn.GRU on a length-1 sequence (cuDNN on CUDA), recomputing W_hh h.
* ``GRUCell stack``: L torch.nn.GRUCell calls.
* ``precompute (once/increment)``: the gh_l (and gx_const) GEMMs, amortised over the
  evaluations of an increment; shown for completeness, not part of the per-evaluation time.

GFLOP/s counts 2 * N * (multiply-adds of the GEMMs the variant actually performs) per step;
the element-wise work is not counted. The peak is a large torch fp32 matmul measured here.

  python benchmarks/bench_gru_kernels.py [--sizes 1e4,1e5,3.4e5] [--repeat R] [--device cpu|cuda|all]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

try:
    import polyfe2.kernels as K
except ImportError:  # running from a checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import polyfe2.kernels as K


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timeit(fn, dev, repeat, warmup):
    for _ in range(warmup):
        fn()
    sync(dev)
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync(dev)
        ts.append(time.perf_counter() - t0)
    return min(ts)


def sgemm_peak(dev):
    n = 2048 if dev.type == "cpu" else 8192
    a = torch.randn(n, n, device=dev)
    b = torch.randn(n, n, device=dev)
    t = timeit(lambda: a @ b, dev, repeat=3, warmup=1)
    return 2 * n**3 / t / 1e9


def default_repeat(N):
    return 5 if N <= 20_000 else 3 if N <= 150_000 else 2


@torch.no_grad()
def bench(dev, N, H, L, D, repeat, warmup, peak, rows, math="fp32"):
    torch.manual_seed(0)
    gru = torch.nn.GRU(D, H, L).to(dev)
    lin = torch.nn.Linear(9 + 32, D).to(dev)
    cells = []
    for l in range(L):
        c = torch.nn.GRUCell(D if l == 0 else H, H).to(dev)
        for a, b in (("weight_ih", "weight_ih_l"), ("weight_hh", "weight_hh_l"),
                     ("bias_ih", "bias_ih_l"), ("bias_hh", "bias_hh_l")):
            getattr(c, a).copy_(getattr(gru, f"{b}{l}"))
        cells.append(c)
    f = torch.randn(N, 9, device=dev)
    m = torch.randn(N, 32, device=dev)
    h = torch.rand(L, N, H, device=dev) * 2 - 1
    x = lin(torch.cat([f, m], 1)).contiguous()

    fp = K.FusedGRU(gru, lin, backend="compiled", math=math)
    fgen = K.FusedGRU(gru, None, backend="compiled", math=math)
    pre = fp.precompute(h, m)
    pre_g = K.GRUPrecomputed(pre.gh)
    w_ih, b_ih = fp.w_ih, fp.b_ih

    gemm = lambda k: 2.0 * N * k * 3 * H  # noqa: E731  flops of an N x k x 3H GEMM
    fl_kernel = gemm(9) + (L - 1) * gemm(H)
    fl_general = gemm(D) + (L - 1) * gemm(H)
    fl_torch = gemm(D) + (2 * L - 1) * gemm(H)

    def cell_stack():
        inp = x
        for l in range(L):
            inp = cells[l](inp, h[l])
        return inp

    # The kernels write into reused result buffers (out_h), as the solver does between
    # evaluations; "kernel precomputed, new out" allocates its result on every call like torch.
    out_h = torch.empty_like(h)
    sfx = "" if dev.type == "cpu" else " " + math
    variants = [
        (f"kernel precomputed{sfx}", lambda: fp.step(f, h, pre, out_h=out_h), fl_kernel),
        (f"kernel precomputed{sfx}, new out", lambda: fp.step(f, h, pre), fl_kernel),
        (f"kernel general{sfx}", lambda: fgen.step(x, h, pre_g, out_h=out_h), fl_general),
        ("torch split reference",
         lambda: K.gru_step_precomputed(f, pre.gx_const, fp.w_f, h, pre.gh, w_ih[1:], b_ih[1:],
                                        backend="reference"), fl_kernel),
        ("nn.GRU 1 step" + (" (cuDNN)" if dev.type == "cuda" else ""),
         lambda: gru(x.unsqueeze(0), h), fl_torch),
        ("GRUCell stack", cell_stack, fl_torch),
        ("precompute (once/increment)", lambda: fp.precompute(h, m),
         L * gemm(H) + 2.0 * N * 32 * D + gemm(D)),
    ]
    # Interleave the variants (round robin, min over rounds) so that load from other processes
    # hits all of them alike.
    best = {name: float("inf") for name, _, _ in variants}
    for name, fn, _ in variants:
        for _ in range(warmup):
            fn()
    for _ in range(repeat):
        for name, fn, _ in variants:
            best[name] = min(best[name], timeit(fn, dev, 1, 0))
    times = {name: (best[name], fl) for name, _, fl in variants}
    t_ref = times[variants[4][0]][0]
    for name, (t, fl) in times.items():
        rows.append((dev.type, N, name, t * 1e3, t_ref / t, fl / 1e9, fl / t / 1e9,
                     100 * fl / t / 1e9 / peak))
    del pre, pre_g, x, h, out_h
    if dev.type == "cuda":
        torch.cuda.empty_cache()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--sizes", default="1e4,1e5,3.4e5", help="comma-separated voxel counts")
    p.add_argument("--repeat", type=int, default=None, help="timed runs per variant (min is kept)")
    p.add_argument("--device", default="all", choices=["cpu", "cuda", "all"])
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--input-size", type=int, default=None, help="D (default H)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default torch's)")
    p.add_argument("--math", default="fp32,tf32", help="CUDA GEMM modes for the kernel rows")
    args = p.parse_args(argv)
    sizes = [int(float(s)) for s in args.sizes.split(",") if s]
    H, L = args.hidden, args.layers
    D = args.input_size or H
    if args.threads:
        torch.set_num_threads(args.threads)
    devs = []
    if args.device in ("cpu", "all"):
        devs.append(torch.device("cpu"))
    if args.device in ("cuda", "all"):
        if torch.cuda.is_available():
            devs.append(torch.device("cuda"))
        elif args.device == "cuda":
            p.error("no CUDA device")
    print(f"GRU step benchmark: H={H}, L={L}, D={D}, fp32; torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")
    for dev in devs:
        print(f"[{dev.type}] backend: {K.backend_info(dev)}")
        if dev.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False  # fp32 baselines
        peak = sgemm_peak(dev)
        print(f"[{dev.type}] measured sgemm peak: {peak:.1f} GFLOP/s (torch fp32 matmul)")
        rows = []
        for N in sizes:
            repeat = args.repeat or default_repeat(N)
            warmup = 1 if N <= 150_000 else 0
            maths = ["fp32"] if dev.type == "cpu" else args.math.split(",")
            for i, mth in enumerate(maths):
                sub = []
                bench(dev, N, H, L, D, repeat, warmup, peak, sub, math=mth)
                # torch rows are the same for every math mode: keep them once
                rows.extend(r for r in sub if i == 0 or r[2].startswith("kernel"))
        print(f"{'device':6} {'N':>8}  {'variant':34} {'ms/step':>10} {'vs nn.GRU':>9} "
              f"{'GFLOP':>8} {'GFLOP/s':>8} {'% peak':>7}")
        for dev_t, N, name, ms, ratio, gfl, gfs, pct in rows:
            print(f"{dev_t:6} {N:8d}  {name:34} {ms:10.2f} {ratio:8.2f}x {gfl:8.2f} {gfs:8.1f} "
                  f"{pct:6.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
