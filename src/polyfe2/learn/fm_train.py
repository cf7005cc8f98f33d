"""Pretraining and fine-tuning of the polycrystal foundation model (paper 000, sections 2.2-2.3).

``pretrain``  the masked autoencoder (:mod:`.mae`) on every RVE of an ``fm data`` set: MSE on
              the masked patches (eq. 5), AdamW with a cosine learning rate.
``finetune``  the encoder with a linear head on [CLS], end to end (section 2.3), on the
              labelled RVEs, from a pretrained encoder or from scratch (the paper's baseline):

              * ``stiffness`` (task I): C̄1111, C̄2222, C̄3333 of the material's own triplet,
                standardised; R² per component on the held-out RVEs;
              * ``odmn`` (task II, eq. 12): the head gives an ODMN parameter set (eq. 8), whose
                closed-form stiffness H_ODMN(F, C_crystal) for every triplet of the RVE enters
                the relative Frobenius loss (eq. 13) against the DNS labels.

Every run writes into its ``--out`` directory ``checkpoint.pt`` (resumed by a new call with
the same options), ``history.csv``, ``loss.png`` and the model of the best validation loss
(``encoder.pt``: :func:`~.mae.save_encoder`, with the head, the normalisation and the provenance
in its metadata). The held-out split is by RVE and fixed by the seed.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..constitutive.odmn_network import ODMNParameters, relative_frobenius_loss
from ..devices import resolve_device
from ..errors import InputError
from .fm_data import pretraining_quaternions, read_fm_dataset
from .train import write_history_csv
from .mae import PRESETS, MAEConfig, MaskedAutoencoder, StiffnessHead, load_encoder, save_encoder

__all__ = ["FitSpec", "fit_loop", "fit_metadata", "Batches", "pretrain", "finetune", "ODMNHead", "r2_scores",
           "quaternion_batch", "split_rves", "cls_latents",
           "plot_latent_map"]

#: Pa: the stiffness and the triplets are divided by it inside the ODMN head's loss
STIFFNESS_SCALE = 1e11


@dataclass
class FitSpec:
    epochs: int = 40
    batch: int = 32
    lr: float = 1e-3
    lr_min: float = 1e-5
    weight_decay: float = 0.05
    val_fraction: float = 0.2
    seed: int = 0
    max_minutes: float | None = None
    device: str = "auto"


#: options that must match to resume (epochs, device and the time limit may change)
_RESUME_KEYS = ("batch", "lr", "lr_min", "weight_decay", "val_fraction", "seed")


def quaternion_batch(q: np.ndarray, device=None) -> torch.Tensor:
    """(B, D, D, D, 4) voxel quaternions -> the encoder's (B, 4, D, D, D) float32 input."""
    return torch.as_tensor(np.ascontiguousarray(q), dtype=torch.float32, device=device).permute(0, 4, 1, 2, 3)


def split_rves(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) RVE positions, fixed by the seed."""
    perm = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(val_fraction * n)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def r2_scores(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Coefficient of determination per column: 1 − SS_res / SS_tot."""
    ss_res = ((pred - true) ** 2).sum(0)
    ss_tot = ((true - true.mean(0)) ** 2).sum(0)
    return 1.0 - ss_res / ss_tot


class ODMNHead(torch.nn.Module):
    """Linear map of [CLS] to an ODMN parameter set of ``depth`` (eq. 8): z, Euler angles,
    θ and φ, its bias a random parameter set so that the untrained head is a valid network."""

    def __init__(self, dim: int, depth: int, seed: int = 0):
        super().__init__()
        self.depth = depth
        n = 2**depth
        self.sizes = (n, 3 * n, n - 1, n - 1)
        self.linear = torch.nn.Linear(dim, sum(self.sizes))
        p = ODMNParameters.random(depth, seed, dtype=torch.float32)
        with torch.no_grad():
            self.linear.weight.mul_(0.1)
            self.linear.bias.copy_(torch.cat([p.z, p.euler.reshape(-1), p.theta, p.phi]))

    def forward(self, latent: torch.Tensor) -> ODMNParameters:
        z, euler, theta, phi = torch.split(self.linear(latent).double(), self.sizes, -1)
        return ODMNParameters(z=z, euler=euler.reshape(*euler.shape[:-1], -1, 3), theta=theta, phi=phi)

    @staticmethod
    def stiffness(params: ODMNParameters, triplets: torch.Tensor) -> torch.Tensor:
        """(B, T, 6, 6) H_ODMN for per-sample parameters (B, ...) and triplets (B, T, 3)."""
        one = ODMNParameters(z=params.z[:, None], euler=params.euler[:, None], theta=params.theta[:, None],
                             phi=params.phi[:, None])
        return one.stiffness(triplets[..., 0], triplets[..., 1], triplets[..., 2])


def _lr_at(spec: FitSpec, epoch: int) -> float:
    return spec.lr_min + 0.5 * (spec.lr - spec.lr_min) * (1 + math.cos(math.pi * min(epoch / spec.epochs, 1)))


def fit_loop(out: Path, spec: FitSpec, modules: dict, train_step, validate, save_best, extra_resume: dict,
          desc: str, progress: bool, log) -> list[dict]:
    """Epochs of ``train_step(idx_batch) -> loss`` over the training positions and ``validate() ->
    {val_loss, ...}``, with checkpoints, resume, history.csv and loss.png in ``out``."""
    from tqdm import tqdm

    params = [p for m in modules.values() for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)
    history, epoch0, best = [], 0, math.inf
    ckpt_path = out / "checkpoint.pt"
    settings = dict({k: getattr(spec, k) for k in _RESUME_KEYS}, **extra_resume)
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        changed = [k for k in settings if ck["settings"].get(k) != settings[k]]
        if changed:
            raise InputError(f"was written with other options {changed}; use another --out", file=ckpt_path,
                             key=changed[0])
        for name, m in modules.items():
            m.load_state_dict(ck["modules"][name])
        opt.load_state_dict(ck["optimizer"])
        history, epoch0, best = ck["history"], ck["epoch"], ck["best"]
        log(f"polyfe2: resuming {ckpt_path} after epoch {epoch0}")
    t_start = time.perf_counter() - (history[-1]["time_s"] if history else 0.0)
    bar = tqdm(total=spec.epochs, initial=epoch0, unit="epoch", desc=desc, disable=not progress, dynamic_ncols=True)
    for epoch in range(epoch0, spec.epochs):
        for g in opt.param_groups:
            g["lr"] = _lr_at(spec, epoch)
        for m in modules.values():
            m.train()
        total, count = 0.0, 0   # summed on the device: no host sync per batch
        for idx in train_step.batches(epoch):
            loss = train_step(idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            total, count = total + loss.detach() * len(idx), count + len(idx)
        total = float(total)
        for m in modules.values():
            m.eval()
        with torch.no_grad():
            val = validate()
        history.append(dict(epoch=epoch + 1, train_loss=total / count, **val, lr=_lr_at(spec, epoch),
                            time_s=time.perf_counter() - t_start))
        if val["val_loss"] < best:
            best = val["val_loss"]
            save_best(history)
        torch.save(dict(modules={k: m.state_dict() for k, m in modules.items()}, optimizer=opt.state_dict(),
                        history=history, epoch=epoch + 1, best=best, settings=settings), ckpt_path)
        _write_history(history, out)
        bar.set_postfix_str(f"loss {total / count:.3g} val {val['val_loss']:.3g}", refresh=False)
        bar.update(1)
        if spec.max_minutes and history[-1]["time_s"] > 60 * spec.max_minutes:
            log(f"polyfe2: stopped after {spec.max_minutes} min (epoch {epoch + 1}); the same command resumes")
            break
    bar.close()
    return history


class Batches:
    """Shuffled mini-batches of the training positions, one permutation per epoch (by the seed)."""

    def __init__(self, positions: np.ndarray, batch: int, seed: int, fn):
        self.positions, self.batch, self.seed, self.fn = positions, batch, seed, fn

    def batches(self, epoch: int):
        perm = np.random.default_rng([self.seed, epoch]).permutation(self.positions)
        return [perm[i:i + self.batch] for i in range(0, len(perm), self.batch)]

    def __call__(self, idx):
        return self.fn(idx)


def pretrain(data_file: Path, out: Path, spec: FitSpec, preset: str = "small", mask_ratio: float | None = None,
             include_labelled: bool | None = None, progress: bool = True, log=print) -> dict:
    """Self-supervised pretraining (eq. 5) on the RVEs of ``data_file`` without stiffness labels
    (``include_labelled``: on all; by default all only when fewer than 2 are unlabelled), so that
    the fine-tuning's held-out RVEs are unseen; returns a summary."""
    if preset not in PRESETS:
        raise InputError(f"expected one of {sorted(PRESETS)}, got {preset!r}", key="--preset")
    data = read_fm_dataset(data_file)
    # the labelled RVEs are kept for fine-tuning and its held-out set
    data["quaternions"] = pretraining_quaternions(data, data_file, None if include_labelled is None
                                                  else not include_labelled)
    cfg = MAEConfig.from_dict(dict(PRESETS[preset].to_dict(), grid=int(data["attrs"]["cells"]),
                                   **({} if mask_ratio is None else {"mask_ratio": mask_ratio})))
    dev = resolve_device(spec.device)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(spec.seed)
    model = MaskedAutoencoder(cfg).to(dev)
    X = quaternion_batch(data["quaternions"], dev)
    tr, va = split_rves(len(X), spec.val_fraction, spec.seed)
    g_val = torch.Generator(device=dev)
    log(f"polyfe2: pretraining {preset} MAE ({sum(p.numel() for p in model.parameters())} parameters, "
        f"grid {cfg.grid}, patch {cfg.patch}, mask {cfg.mask_ratio}) on {len(tr)} RVEs, {len(va)} held out, "
        f"device {dev}")

    def step(idx):
        return model(X[torch.as_tensor(idx, device=dev)])[0]

    def validate():
        g_val.manual_seed(spec.seed)   # the same masks every epoch: comparable validation losses
        return dict(val_loss=float(model(X[torch.as_tensor(va, device=dev)], generator=g_val)[0]))

    def save_best(history):
        save_encoder(out / "encoder.pt", model, cfg, normalisation={},
                     metadata=fit_metadata("pretrain", data_file, data, spec, history, len(tr), len(va), preset=preset))

    history = fit_loop(out, spec, {"mae": model}, Batches(tr, spec.batch, spec.seed, step), validate, save_best,
                    dict(preset=preset, mask_ratio=cfg.mask_ratio, rves=len(X)), "fm pretrain", progress, log)
    best = min(history, key=lambda h: h["val_loss"])
    plot_latent_map(load_encoder(out / "encoder.pt").model, data_file, out / "latents.png")
    return dict(encoder=out / "encoder.pt", epochs=history[-1]["epoch"], best_epoch=best["epoch"],
                val_loss=best["val_loss"], train_time_min=round(history[-1]["time_s"] / 60, 1))


def finetune(data_file: Path, out: Path, spec: FitSpec, task: str = "stiffness", encoder: Path | None = None,
             preset: str = "small", depth: int = 4, progress: bool = True, log=print) -> dict:
    """Fine-tune encoder + head on the labelled RVEs (``encoder=None``: from scratch); returns a
    summary with the held-out metrics (R² per component, or the eq. 13 error)."""
    if task not in ("stiffness", "odmn"):
        raise InputError(f"expected stiffness or odmn, got {task!r}", key="--task")
    data = read_fm_dataset(data_file, labelled_only=True)
    if len(data["quaternions"]) < 5:
        raise InputError(f"{len(data['quaternions'])} labelled RVEs; expected at least 5 (fm data --labelled)",
                         file=data_file, key="stiffness")
    dev = resolve_device(spec.device)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(spec.seed)
    grid = int(data["attrs"]["cells"])
    if encoder is not None:
        model, cfg = load_encoder(encoder)[:2]
        if cfg.grid != grid:
            raise InputError(f"the encoder takes {cfg.grid}³ grids, the data are {grid}³", file=data_file, key="cells")
        origin = Path(encoder).name
    else:
        cfg = MAEConfig.from_dict(dict(PRESETS[preset].to_dict(), grid=grid))
        model, origin = MaskedAutoencoder(cfg), None
    model = model.to(dev)
    X = quaternion_batch(data["quaternions"], dev)
    tr, va = split_rves(len(X), spec.val_fraction, spec.seed)
    C = torch.as_tensor(data["stiffness"], device=dev)              # (n, T, 6, 6) Pa
    T3 = torch.as_tensor(data["triplets"], device=dev)              # (n, T, 3) Pa
    if task == "stiffness":
        y = torch.diagonal(C[:, 0, :3, :3], dim1=-2, dim2=-1)       # C̄1111, C̄2222, C̄3333 (Mandel = tensor)
        mean, std = y[tr].mean(0), y[tr].std(0).clamp_min(1e-12 * y[tr].abs().max())
        head = StiffnessHead(cfg.enc_dim, 3).to(dev)
        norm = {"mean_Pa": mean.cpu().tolist(), "std_Pa": std.cpu().tolist(),
                "outputs": ["C1111", "C2222", "C3333"]}

        def predict(idx):
            return head(model.encode(X[idx])).double() * std + mean

        def loss_of(idx):
            return torch.nn.functional.mse_loss((predict(idx) - mean) / std, (y[idx] - mean) / std)

        def metrics(idx):
            p = predict(idx).cpu().numpy()
            r2 = r2_scores(p, y[idx].cpu().numpy())
            mape = float(np.mean(np.abs(p - y[idx].cpu().numpy()) / y[idx].cpu().numpy()))
            return {"val_r2_C1111": float(r2[0]), "val_r2_C2222": float(r2[1]), "val_r2_C3333": float(r2[2]),
                    "val_mape": mape}
    else:
        head = ODMNHead(cfg.enc_dim, depth, spec.seed).to(dev)
        norm = {"stiffness_scale_Pa": STIFFNESS_SCALE, "depth": depth}

        def loss_of(idx):
            params = head(model.encode(X[idx]))
            C_hat = ODMNHead.stiffness(params, T3[idx] / STIFFNESS_SCALE)
            return relative_frobenius_loss(C_hat.reshape(-1, 6, 6), (C[idx] / STIFFNESS_SCALE).reshape(-1, 6, 6))

        def metrics(idx):
            return {"val_eq13": float(loss_of(idx))}

    va_t = torch.as_tensor(va, device=dev)

    def step(idx):
        return loss_of(torch.as_tensor(idx, device=dev))

    def validate():
        return dict(val_loss=float(loss_of(va_t)), **metrics(va_t))

    def save_best(history):
        meta = fit_metadata(f"finetune {task}", data_file, data, spec, history, len(tr), len(va), initialised_from=origin,
                     depth=depth if task == "odmn" else None)
        save_encoder(out / "encoder.pt", model, cfg, normalisation=norm, metadata=meta,
                     head={"task": task, "state": {k: v.cpu() for k, v in head.state_dict().items()}})

    history = fit_loop(out, spec, {"encoder": model, "head": head}, Batches(tr, spec.batch, spec.seed, step), validate,
                    save_best, dict(task=task, encoder=origin, preset=preset, depth=depth), f"fm finetune {task}",
                    progress, log)
    best = min(history, key=lambda h: h["val_loss"])
    return dict(encoder=out / "encoder.pt", task=task, pretrained=origin is not None, epochs=history[-1]["epoch"],
                best_epoch=best["epoch"], train_rves=len(tr), held_out_rves=len(va),
                train_time_min=round(history[-1]["time_s"] / 60, 1),
                **{k: v for k, v in best.items() if k.startswith("val_")})


def cls_latents(model: MaskedAutoencoder, quaternions: np.ndarray, batch: int = 64) -> np.ndarray:
    """(n, D_e) [CLS] latents of (n, D, D, D, 4) voxel quaternion fields."""
    model.eval()
    with torch.no_grad():
        return np.concatenate([model.encode(quaternion_batch(quaternions[i:i + batch])).numpy()
                               for i in range(0, len(quaternions), batch)])


def plot_latent_map(model: MaskedAutoencoder, data_file: Path, path: Path, n: int = 2000) -> Path:
    """The first two principal components of the [CLS] latents of up to ``n`` RVEs, coloured by
    the texture measures of the set (texture index J Σp², Voigt C̄1111)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = read_fm_dataset(data_file)
    z = cls_latents(model, data["quaternions"][:n])
    z = z - z.mean(0)
    _, sv, vt = np.linalg.svd(z, full_matrices=False)
    xy = z @ vt[:2].T
    share = sv[:2] ** 2 / (sv**2).sum()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, values, label in ((axes[0], np.log10(data["texture_index"][:n]), "log10 texture index J Σp²"),
                              (axes[1], data["voigt"][:n, 0] / 1e9, "Voigt C̄1111 (GPa)")):
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=values, s=4, cmap="viridis")
        fig.colorbar(sc, ax=ax, label=label)
        ax.set_xlabel(f"PC 1 ({100 * share[0]:.0f} %)")
        ax.set_ylabel(f"PC 2 ({100 * share[1]:.0f} %)")
    fig.suptitle(f"[CLS] latents of {len(xy)} RVEs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def fit_metadata(stage, data_file, data, spec, history, n_train, n_val, **extra) -> dict:
    a = data["attrs"]
    return dict(stage=stage, data=Path(data_file).name, rves_train=n_train, rves_held_out=n_val,
                sampling=str(a["sampling"]), cells=int(a["cells"]), grains=int(a["grains"]),
                material=str(a["material"]), epochs=history[-1]["epoch"], train_time_s=history[-1]["time_s"],
                spec={k: v for k, v in asdict(spec).items() if v is not None},
                **{k: v for k, v in extra.items() if v is not None})


def _write_history(history: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    write_history_csv(history, out / "history.csv")
    e = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.semilogy(e, [h["train_loss"] for h in history], label="train")
    ax.semilogy(e, [h["val_loss"] for h in history], label="held out")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=110)
    plt.close(fig)
