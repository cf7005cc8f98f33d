"""Where a GRU surrogate's held-out error sits: in the map from a VE's grains to its encoding, or
in the path dynamics that read the encoding.

Given data sets of the same VEs on different paths (``polyfe2 datagen gru`` with one ``--seed``
and several ``--path-seed``), every VE's encoding (the microstructure vector m, optionally the
initial hidden state h0) is fitted to its labels on the first ``--fit`` sets with the network
fixed, starting from the model's own encoding; the error on the other sets (paths of the same VEs
that the fit did not see) then says whether any per-VE encoding answers new paths better.

    python tools/gru_encoding_oracle.py MODEL.pt A.h5 B.h5 C.h5 --fit 2 [--free m+h0]
"""
import argparse

import numpy as np
import torch

from polyfe2.constitutive.gru_network import GRUSurrogate
from polyfe2.learn.datagen import read_dataset
from polyfe2.learn.evaluate import error_stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("sets", nargs="+", help="data sets of the same VEs on different paths")
    ap.add_argument("--fit", type=int, default=1, help="fit on the first FIT sets, judge on the rest")
    ap.add_argument("--free", choices=("m", "m+h0"), default="m")
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    model = GRUSurrogate.load(args.model).eval()
    model.requires_grad_(False)
    data = [read_dataset(f) for f in args.sets]
    for f, s in zip(args.sets[1:], data[1:]):
        if not np.array_equal(s["descriptor"], data[0]["descriptor"]):
            raise SystemExit(f"{f}: not the VEs of {args.sets[0]} (make the sets with one --seed)")
    dtype = next(model.parameters()).dtype
    as_t = lambda x: torch.as_tensor(x, dtype=dtype)
    feats = [model.scale_path(as_t(s["F"][:, 1:]), as_t(s["dt"])) for s in data]
    labels = [model.scale_stress(as_t(s["sigma_dev"])) for s in data]
    with torch.no_grad():
        h0, m = model.initial_state(as_t(data[0]["descriptor"]), as_t(data[0]["fractions"]))

    def outputs(k):  # scaled stress paths of set k for the current encoding
        out, _ = model.gru(model._inputs(feats[k], m), h0)
        return model.output_layer(out)

    def errors() -> str:
        with torch.no_grad():
            e = [error_stats(model.unscale_stress(outputs(k)).double().numpy(), s["sigma_dev"])["mean_MPa"]
                 for k, s in enumerate(data)]
        return "  ".join(f"{'fitted' if k < args.fit else 'unseen'} path {k}: {x:.3f}" for k, x in enumerate(e))

    print(f"model's encoding     {errors()}  (mean eq. 5 error, MPa)")
    m.requires_grad_(True)
    h0.requires_grad_(args.free == "m+h0")
    opt = torch.optim.Adam([m, h0] if args.free == "m+h0" else [m], lr=args.lr)
    for it in range(1, args.iters + 1):
        opt.zero_grad()
        sum(((outputs(k) - labels[k]) ** 2).mean() for k in range(args.fit)).backward()
        opt.step()
        if it in (1, 25, 50, 100) or it % 100 == 0 or it == args.iters:
            print(f"{args.free} fitted, {it:4d} it  {errors()}", flush=True)


if __name__ == "__main__":
    main()
