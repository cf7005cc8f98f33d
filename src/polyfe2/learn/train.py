"""Training of the GRU surrogate (paper 003, section 2): MSE on the min-max scaled stress over
all steps, Adam, a 94:6 train/validation split, checkpoints every epoch.

``polyfe2 train gru DATA.h5 [...] --out DIR`` writes into ``DIR``:

* ``checkpoint.pt`` -- model, optimiser and history after the last finished epoch (a new call
  with the same ``DIR`` resumes from it);
* ``model.pt`` -- the model of the best validation loss (:meth:`GRUSurrogate.save`, with the
  normalisation, descriptor layout, version and the training settings in ``meta``);
* ``history.csv`` -- epoch, train loss, validation loss, validation eq. 5 error (MPa), time;
* ``loss.png`` and ``val_error.png`` -- the curves, and the eq. 5 error per step.
"""
from __future__ import annotations

import csv
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..devices import resolve_device
from ..errors import InputError
from .datagen import read_dataset
from .evaluate import error_stats, plot_error_per_step
from ..constitutive.gru_network import GRUSurrogate
from ..constitutive.grain_gru_network import GrainGRUSurrogate
from ..constitutive.surrogates import is_grain_model, load_surrogate
from ..microstructure.descriptor import DESCRIPTOR_WIDTH

__all__ = ["TrainSpec", "train", "load_training_data"]


@dataclass
class TrainSpec:
    epochs: int = 200
    batch: int = 128
    lr: float = 1e-3
    lr_min: float = 1e-5
    hidden: int = 256
    layers: int = 2
    val_fraction: float = 0.06
    seed: int = 0
    threads: int | None = None
    max_minutes: float | None = None
    clip: float = 1.0
    init: str | None = None     # start from this model file (its weights and scaling)
    device: str = "auto"         # auto | cpu | cuda[:N]; the data and the model live there
    features: str | None = None  # FEATURES; None: 'F' for a new model, the init model's otherwise
    pooling: str | None = None   # POOLINGS; None: 'mean' for a new model, the init model's otherwise
    augment: bool = False        # every epoch, every training sample in one of the cube's 24 rotations
    positions: bool | None = None  # seed positions as an input; None: True for a new model, the init model's otherwise
    squash: float | None = None  # asinh width of the standardised step features; None: none for a new model, the init model's otherwise
    orientation: str | None = None  # ORIENTATIONS; None: 'quaternion' for a new model, the init model's otherwise
    beyond_weight: float = 1.0   # loss weight of the iso-strain labels beyond the full-field sets' strain (mixed sets)
    arch: str | None = None      # voxel (GRUSurrogate) | grain (GrainGRUSurrogate); None: the init model's, voxel for a new one


#: options that must match to resume (epochs, threads, device and the time limit may change)
_RESUME_KEYS = ("batch", "lr", "lr_min", "hidden", "layers", "val_fraction", "seed", "clip", "init", "features",
                "pooling", "augment", "positions", "squash", "beyond_weight",
                "orientation", "arch")


def log_strain_size(F: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (...) ||ln U||_F, the Hencky strain magnitude of the paths' max_strain."""
    C = np.swapaxes(F, -1, -2) @ F
    return 0.5 * np.linalg.norm(np.log(np.linalg.eigvalsh(C)), axis=-1)


def label_weights(parts: list[dict], beyond: float = 1.0) -> list[np.ndarray]:
    """(n, T) weight of every step's label in the loss, one array per data set.

    Where full-field and iso-strain sets are trained together, the iso-strain labels count only
    beyond the full-field sets' largest strain, with weight ``beyond``: below it the same states
    have the (more accurate) full-field labels, and the two references differ by several MPa, so
    the network would learn their average. Large-strain stresses are larger, so their squared
    errors would otherwise dominate the loss. Otherwise every label counts."""
    ff = [float(p["attrs"]["max_strain"]) for p in parts if str(p["attrs"]["method"]) == "fullfield"]
    out = []
    for p in parts:
        w = np.ones(p["F"].shape[:2], dtype=np.float32)[:, 1:]
        if ff and str(p["attrs"]["method"]) != "fullfield":
            w[:] = beyond
            w[log_strain_size(p["F"][:, 1:]) <= max(ff) * (1 + 1e-9)] = 0.0
        out.append(w)
    return out


def load_training_data(files: list[Path], beyond_weight: float = 1.0) -> dict:
    """Concatenate data sets. ``weight`` (n, T) says which labels count and how much
    (:func:`label_weights`), ``parts`` keeps every file's attributes. Sets of fewer steps (longer
    steps along paths of the same strains) are padded to the longest: their last F held, labels
    of weight 0 (the network is causal, so the padding changes nothing before it)."""
    parts = [read_dataset(f) for f in files]
    for f, p in zip(files, parts):
        if len(p["F"]) == 0:
            raise InputError("no finished samples", file=f, key="chunk_done")
    weights = label_weights(parts, beyond_weight)
    T = max(p["sigma_dev"].shape[1] for p in parts)
    for p, w in zip(parts, weights):
        pad = T - p["sigma_dev"].shape[1]
        if pad:
            p["F"] = np.concatenate([p["F"], np.repeat(p["F"][:, -1:], pad, axis=1)], axis=1)
            p["sigma_dev"] = np.concatenate([p["sigma_dev"], np.repeat(p["sigma_dev"][:, -1:], pad, axis=1)], axis=1)
    data = {k: np.concatenate([p[k] for p in parts])
            for k in ("descriptor", "fractions", "F", "sigma_dev", "dt", "texture")}
    data["weight"] = np.concatenate([np.pad(w, ((0, 0), (0, T - w.shape[1]))) for w in weights])
    data["attrs"] = parts[0]["attrs"]
    data["parts"] = [p["attrs"] for p in parts]
    return data


def weighted_mse(pred: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Mean squared error of (B, T, 6) outputs over the labels of weight ``w`` (B, T); with all
    weights 1 it is ``mse_loss``."""
    return (w[..., None] * (pred - y) ** 2).sum() / (6 * w.sum()).clamp_min(1)


def _split(n: int, val_fraction: float, seed: int):
    perm = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(val_fraction * n)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def train(files: list[Path], out: Path, spec: TrainSpec, progress: bool = True, log=print,
          descriptors: np.ndarray | None = None, microstructure_input: str = "grains") -> dict:
    """Train (or resume) a surrogate; returns a summary. ``descriptors`` (n, G, W), one per
    sample of the files, replace the files' grain descriptors as the microstructure input (e.g.
    fingerprints (n, 1, W) named ``microstructure_input``)."""
    from tqdm import tqdm

    if spec.threads:
        torch.set_num_threads(int(spec.threads))
    dev = resolve_device(spec.device)
    out.mkdir(parents=True, exist_ok=True)
    if not spec.beyond_weight > 0:   # the options first: a wrong one stops before the data load
        raise InputError(f"expected a positive weight, got {spec.beyond_weight!r}", file="command line",
                         key="beyond-weight")
    if spec.squash is not None and not (spec.squash > 0 and (spec.features or "F+dF+dt") == "F+dF+dt"):
        raise InputError(f"expected a positive width with features 'F+dF+dt', got {spec.squash!r}",
                         file="command line", key="squash")
    data = load_training_data(files, spec.beyond_weight)
    tr, va = _split(len(data["F"]), spec.val_fraction, spec.seed)
    if descriptors is not None:
        if spec.augment:
            raise InputError("rotates grain rows; microstructure fingerprints cannot be rotated", file="command line",
                             key="augment")
        if len(descriptors) != len(data["F"]):
            raise ValueError(f"{len(descriptors)} descriptors for {len(data['F'])} samples")
        data["descriptor"] = np.asarray(descriptors)
    d_all = torch.as_tensor(data["descriptor"], dtype=torch.float32, device=dev)
    F_all = torch.as_tensor(data["F"][:, 1:], dtype=torch.float32, device=dev)
    s_all = torch.as_tensor(data["sigma_dev"], dtype=torch.float32, device=dev)
    dt_all = torch.as_tensor(data["dt"], dtype=torch.float32, device=dev)
    w_all = torch.as_tensor(data["weight"], dtype=torch.float32, device=dev)

    if spec.positions is False and d_all.shape[-1] != DESCRIPTOR_WIDTH:
        raise InputError(f"drops the seed positions of grain rows; the microstructure inputs are "
                         f"{microstructure_input} of width {d_all.shape[-1]}", file="command line", key="no-positions")
    if spec.orientation not in (None, "quaternion") and d_all.shape[-1] != DESCRIPTOR_WIDTH:
        raise InputError(f"re-expresses the orientations of grain rows; the microstructure inputs are "
                         f"{microstructure_input} of width {d_all.shape[-1]}", file="command line", key="orientation")
    torch.manual_seed(spec.seed)
    prior = None
    if spec.init:   # fine-tune: weights *and* normalisation of an existing model
        model = load_surrogate(spec.init).float().to(dev)
        kind = "grain" if is_grain_model(model) else "voxel"
        if spec.arch not in (None, kind):
            raise InputError(f"is a {kind} model, the options ask for --arch {spec.arch}", file=spec.init, key="arch")
        if kind == "grain":
            _check_grain_options(spec, d_all.shape[-1])
        prior = dict(file=Path(spec.init).name, epochs=model.meta.get("epochs"),
                     train_time_s=model.meta.get("train_time_s"), features=model.features, pooling=model.pooling,
                     positions=model.positions, orientation=model.orientation)
        if (model.hidden, model.layers) != (spec.hidden, spec.layers):
            raise InputError(f"is {model.hidden}x{model.layers}, the options ask for {spec.hidden}x{spec.layers}",
                             file=spec.init, key="arch")
        features, pooling = spec.features or model.features, spec.pooling or model.pooling
        positions = model.positions if spec.positions is None else spec.positions
        squash = model.squash if spec.squash is None else float(spec.squash)
        orientation = spec.orientation or model.orientation
        if (features, pooling, positions, squash, orientation) != (model.features, model.pooling, model.positions,
                                                                   model.squash, model.orientation):
            try:   # new inputs
                model = model.with_inputs(features, pooling, F_all[tr], dt_all[tr], positions=positions,
                                          squash=squash, orientation=orientation, descriptors=d_all[tr]).to(dev)
            except ValueError as exc:
                raise InputError(str(exc), file=spec.init, key="arch.features") from None
    elif spec.arch == "grain":
        _check_grain_options(spec, d_all.shape[-1])
        model = GrainGRUSurrogate(hidden=spec.hidden, layers=spec.layers).to(dev)
        model.fit_scaling(d_all[tr], F_all[tr], s_all[tr], dt_all[tr])
    else:
        model = GRUSurrogate(hidden=spec.hidden, layers=spec.layers, descriptor_width=d_all.shape[-1],
                             features=spec.features or "F", pooling=spec.pooling or "mean",
                             positions=True if spec.positions is None else spec.positions,
                             squash=spec.squash, orientation=spec.orientation or "quaternion").to(dev)
        model.fit_scaling(d_all[tr], F_all[tr], s_all[tr], dt_all[tr])
    v_all = (torch.as_tensor(data["fractions"], dtype=torch.float32, device=dev)
             if model.pooling == "volume" else None)
    if v_all is not None and v_all.shape != d_all.shape[:2]:
        raise InputError(f"the model pools grain volumes, the microstructure inputs {tuple(d_all.shape)} are not "
                         f"grain rows", file=files[0], key="fractions")
    y_all = model.scale_stress(s_all)
    f_all = model.scale_path(F_all, dt_all)   # scaled once: training then only runs the network
    rotated = _rotated_training_copies(data, tr, model, dev) if spec.augment else None
    opt = torch.optim.Adam(model.parameters(), lr=spec.lr)
    history, epoch0, best = [], 0, math.inf
    ckpt_path = out / "checkpoint.pt"
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=dev, weights_only=False)
        default = TrainSpec()   # a checkpoint written before an option existed was trained with its default
        changed = [k for k in _RESUME_KEYS if ck["spec"].get(k, getattr(default, k)) != getattr(spec, k)]
        if changed:
            raise InputError(f"was written with other training options {changed}; use another --out",
                             file=ckpt_path, key=changed[0])
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        history, epoch0, best = ck["history"], ck["epoch"], ck["best"]
        log(f"polyfe2: resuming {ckpt_path} after epoch {epoch0}")
    log(f"polyfe2: {len(tr)} training / {len(va)} validation samples, {data['F'].shape[1] - 1} steps, "
        f"GRU {spec.hidden}x{spec.layers}, {sum(p.numel() for p in model.parameters())} parameters, "
        f"{torch.get_num_threads()} threads, device {dev}")

    def lr_at(epoch):  # cosine decay from lr to lr_min over the planned epochs
        return spec.lr_min + 0.5 * (spec.lr - spec.lr_min) * (1 + math.cos(math.pi * min(epoch / spec.epochs, 1)))

    t_start = time.perf_counter() - (history[-1]["time_s"] if history else 0.0)
    rng = np.random.default_rng(spec.seed + epoch0)
    bar = tqdm(total=spec.epochs, initial=epoch0, unit="epoch", desc="train gru", disable=not progress,
               dynamic_ncols=True)
    stopped = "epochs"
    for epoch in range(epoch0, spec.epochs):
        for g in opt.param_groups:
            g["lr"] = lr_at(epoch)
        model.train()
        perm = torch.as_tensor(rng.permutation(tr), device=dev)   # one copy per epoch
        if rotated is not None:   # a rotation per training sample and epoch (row k of tr: rotated[.][:, k])
            row = torch.as_tensor(np.searchsorted(tr, perm.cpu().numpy()), device=dev)
            rot = torch.as_tensor(rng.integers(0, rotated[0].shape[0], size=len(tr)), device=dev)
        total, count = torch.zeros((), device=dev), 0   # summed on the device: no sync per batch
        for i in range(0, len(perm), spec.batch):
            idx = perm[i:i + spec.batch]
            v = v_all[idx] if v_all is not None else None
            if rotated is None:
                d_b, f_b, y_b = d_all[idx], f_all[idx], y_all[idx]
            else:
                r, k = rot[i:i + spec.batch], row[i:i + spec.batch]
                d_b, f_b, y_b = (t[r, k] for t in rotated)
            loss = weighted_mse(model.forward_prescaled(d_b, f_b, v), y_b, w_all[idx])   # a rotation keeps the steps
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), spec.clip)
            opt.step()
            total += loss.detach() * len(idx)
            count += len(idx)
        train_loss = float(total) / count
        with torch.no_grad():   # one forward pass gives the loss and the stresses
            model.eval()
            y_val = model.forward_prescaled(d_all[va], f_all[va], v_all[va] if v_all is not None else None)
            val_loss = float(weighted_mse(y_val, y_all[va], w_all[va]))
            val = error_stats(model.unscale_stress(y_val).double().cpu().numpy(), data["sigma_dev"][va],
                              data["weight"][va] > 0)   # eq. 5 over the labels that count, unweighted
        history.append(dict(epoch=epoch + 1, train_loss=train_loss, val_loss=val_loss,
                            val_eq5_MPa=val["mean_MPa"], val_pct_peak=val["mean_pct_peak"], lr=lr_at(epoch),
                            time_s=time.perf_counter() - t_start))
        if val_loss < best:
            best = val_loss
            model.save(out / "model.pt", meta=dict(_meta(data, files, spec, prior, history, len(tr), len(va)),
                                                   microstructure_input=microstructure_input))
            plot_error_per_step({"validation": val}, out / "val_error.png", f"validation, epoch {epoch + 1}")
        torch.save(dict(model=model.state_dict(), optimizer=opt.state_dict(), history=history, epoch=epoch + 1,
                        best=best, spec=asdict(spec)), ckpt_path)
        _write_history(history, out)
        bar.set_postfix_str(f"loss {train_loss:.3g} val {val_loss:.3g} eq5 {val['mean_MPa']:.2f} MPa "
                            f"({val['mean_pct_peak']:.2f} %)", refresh=False)
        bar.update(1)
        if spec.max_minutes and history[-1]["time_s"] > 60 * spec.max_minutes:
            stopped = f"max_minutes {spec.max_minutes}"
            break
    bar.close()
    last = history[-1] if history else {}
    best_row = min(history, key=lambda h: h["val_loss"]) if history else {}
    return dict(model=out / "model.pt", epochs=last.get("epoch"), stopped_by=stopped,
                best_epoch=best_row.get("epoch"), val_eq5_MPa=best_row.get("val_eq5_MPa"),
                val_pct_peak=best_row.get("val_pct_peak"), train_time_min=round(last.get("time_s", 0) / 60, 1))


def _check_grain_options(spec: TrainSpec, width: int) -> None:
    """The grain model takes grain rows and has its own inputs: the voxel model's input options are errors."""
    if width != DESCRIPTOR_WIDTH or spec.augment or any(
            o is not None for o in (spec.features, spec.pooling, spec.positions, spec.squash, spec.orientation)):
        raise InputError("the grain model takes grain rows and has its own inputs (crystal-frame steps, volume "
                         "fractions; cubic equivalents drawn in training); drop --features, --pooling, --squash, "
                         "--orientation, --no-positions, --augment and --fingerprint", file="command line", key="arch")


def _rotated_training_copies(data, tr, model, dev):
    """(descriptors, scaled features, scaled stress) of the training samples in each of the cube's
    24 rotations (:mod:`.symmetry`), stacked on a first axis (rotation 0 is the identity)."""
    from .symmetry import cube_rotations, rotate_samples

    out = ([], [], [])
    dt = torch.as_tensor(data["dt"][tr], dtype=torch.float32, device=dev)   # a rotation keeps the step times
    for Q in cube_rotations():
        d, F, s = rotate_samples(data["descriptor"][tr], data["F"][tr], data["sigma_dev"][tr], Q)
        F = torch.as_tensor(F[:, 1:], dtype=torch.float32, device=dev)
        with torch.no_grad():
            out[0].append(torch.as_tensor(d, dtype=torch.float32, device=dev))
            out[1].append(model.scale_path(F, dt))
            out[2].append(model.scale_stress(torch.as_tensor(s, dtype=torch.float32, device=dev)))
    return tuple(torch.stack(t) for t in out)


def _meta(data, files, spec, prior, history, n_train, n_val) -> dict:
    a, parts = data["attrs"], data.get("parts", [data["attrs"]])
    methods = sorted({str(p["method"]) for p in parts})
    return dict(trained_on=[Path(f).name for f in files], samples_train=n_train, initialised_from=prior, samples_val=n_val,
                method="+".join(methods), dt=float(a["dt"]), dt_range=[float(data["dt"].min()), float(data["dt"].max())],
                reference=_references(parts), steps=int(a["steps"]),
                max_strain=max(float(p["max_strain"]) for p in parts),
                material=str(a["material"]), epochs=history[-1]["epoch"], train_time_s=history[-1]["time_s"],
                val_eq5_MPa=history[-1]["val_eq5_MPa"], val_pct_peak=history[-1]["val_pct_peak"],
                spec={k: v for k, v in asdict(spec).items() if v is not None})


def _references(parts) -> str:
    """The labels of the training sets in words, with the strains each reference covers."""
    refs = {}
    for p in parts:
        refs[_reference(p)] = max(refs.get(_reference(p), 0.0), float(p["max_strain"]))
    if len(refs) == 1:
        return next(iter(refs))
    ranges, lo = [], 0.0
    for ref, hi in sorted(refs.items(), key=lambda kv: kv[1]):
        ranges.append(f"{ref} for ||ln U|| in ({lo:g}, {hi:g}]")
        lo = hi
    return "; ".join(ranges)


def _reference(attrs) -> str:
    """What the labels of a data set are, in words (stored in the model's metadata)."""
    if str(attrs["method"]) == "fullfield":
        return f"full-field crystal plasticity (taylor K = 1 on the VE's {int(attrs['cells'])}^3 Voronoi grid)"
    return "iso-strain crystal plasticity (taylor K = 20, the VE's grains as constituents)"


def write_history_csv(history: list[dict], path: Path) -> None:
    """One row per epoch, the keys of the history's rows as columns."""
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)


def _write_history(history: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    write_history_csv(history, out / "history.csv")
    e = [h["epoch"] for h in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    a1.semilogy(e, [h["train_loss"] for h in history], label="train")
    a1.semilogy(e, [h["val_loss"] for h in history], label="validation")
    a1.set_xlabel("epoch")
    a1.set_ylabel("MSE (scaled stress)")
    a1.legend()
    a2.plot(e, [h["val_pct_peak"] for h in history])
    a2.set_xlabel("epoch")
    a2.set_ylabel("validation eq. 5 error (% of peak)")
    for a in (a1, a2):
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=110)
    plt.close(fig)
