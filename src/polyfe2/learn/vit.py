"""2D-section vision-transformer features of voxel microstructures (paper 002).

Pipeline
    A (D, D, D, 4) field of fundamental-zone quaternions -> its three orthogonal mid-sections
    (:func:`mid_sections`), each an RGB image coloured by the inverse pole figure (IPF) colour
    of its section normal, as EBSD maps render orientations -> a DINOv2 vision transformer
    (``transformers.Dinov2Model``) -> the image-level feature of each section, the [CLS]
    output after the final layer norm (``pooler_output``, ``hidden`` numbers) -> the three
    concatenated in the order x, y, z (``3 hidden`` numbers, the paper's best aggregation) or
    their mean (``hidden``). PCA and the polynomial regression of a property follow in
    :mod:`.property_regression`.

Image preprocessing
    Each section (values in [0, 1]) is resized to ``image_size`` by
    ``torch.nn.functional.interpolate(mode="nearest")`` -- the sections are label-like maps of
    grains, which nearest keeps free of invented mixed colours -- and normalised by the
    ImageNet mean and std DINOv2 was trained with. The settings are kept in the model's
    metadata (``metadata["preprocessing"]``) and used by :class:`ViTFeatures`.

Weights (nothing is downloaded)
    :func:`load_vit` reads (a) a directory with a Hugging Face DINOv2 checkpoint downloaded
    beforehand (``config.json`` and ``model.safetensors`` or ``pytorch_model.bin``; its
    ``preprocessor_config.json``, when present, gives the image size -- 224 for the published
    models, whose ``config.json`` says 518 -- and the normalisation), or (b) a polyfe2 file
    of :func:`save_vit` (``format`` ``polyfe2.vit``, version 1: the ``Dinov2Config`` as a dict,
    the state dict and the metadata). :func:`random_vit` builds a randomly initialised model,
    for tests and the "random features" baseline. :func:`pretrain_vit` trains the project's
    own weights on the sections of an ``fm data`` set.

Presets (:data:`PRESETS`, ``Dinov2Config`` arguments)
    ``tiny`` (tests: 16² images, 2² patches, 2 x 32 x 2 heads), ``small`` (the project's weights
    for 16³ RVEs: 16² images, 2² patches, 4 x 192 x 3 heads; 1.80 M parameters; one epoch of
    pretraining over 2500 RVEs x 3 sections took 50-60 s on one CPU thread, 6 blocks 75-100 s),
    ``dinov2-small`` and ``dinov2-base`` (the published ViT-S/14 and ViT-B/14: 224² images,
    14² patches, 12 blocks of 384 x 6 heads / 768 x 12 heads; 21.6 M and 85.7 M parameters,
    the published 22.1 M and 86.6 M less the position codes of 518² images).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from .. import __version__
from ..checkpoints import load_weights, plain_data, read_checkpoint, save_checkpoint
from ..devices import resolve_device
from ..errors import InputError
from .fm_data import pretraining_quaternions, read_fm_dataset
from .fm_train import Batches, FitSpec, fit_loop, fit_metadata, split_rves

__all__ = ["PRESETS", "IMAGENET_MEAN", "IMAGENET_STD", "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "LoadedViT",
           "ViTFeatures", "mid_sections", "ipf_colours", "vit_config", "random_vit", "save_vit", "load_vit",
           "vit_fingerprints", "preprocess", "pretrain_vit", "patch_pixels", "random_patch_mask"]

CHECKPOINT_FORMAT = "polyfe2.vit"
CHECKPOINT_VERSION = 1

#: the normalisation of the images DINOv2 was trained on (ImageNet), per RGB channel
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_PUBLISHED = dict(image_size=224, patch_size=14, num_hidden_layers=12, mlp_ratio=4, layerscale_value=1.0)
#: ``Dinov2Config`` arguments of each preset
PRESETS = {
    "tiny": dict(image_size=16, patch_size=2, hidden_size=32, num_hidden_layers=2, num_attention_heads=2),
    "small": dict(image_size=16, patch_size=2, hidden_size=192, num_hidden_layers=4, num_attention_heads=3),
    "dinov2-small": dict(_PUBLISHED, hidden_size=384, num_attention_heads=6),
    "dinov2-base": dict(_PUBLISHED, hidden_size=768, num_attention_heads=12),
}


class LoadedViT(NamedTuple):
    """A DINOv2 model in eval mode and its metadata (``metadata["preprocessing"]``: image size,
    resize mode, image mean and std)."""

    model: "torch.nn.Module"
    metadata: dict


# --------------------------------------------------------------------------- images

def ipf_colours(q: np.ndarray, normal) -> np.ndarray:
    """(..., 4) unit quaternions (scalar first, cubic crystals) -> (..., 3) float32 IPF colours
    in [0, 1] of the lab direction ``normal`` (damask's ``Orientation.IPF_color``, lattice cF);
    each distinct orientation is coloured once."""
    q = np.asarray(q, dtype=np.float64)
    flat = q.reshape(-1, 4)
    flat = flat / np.linalg.norm(flat, axis=1, keepdims=True)
    flat = np.where(flat[:, :1] < 0, -flat, flat)          # q and -q: the same rotation; damask wants q0 >= 0
    unique, inverse = np.unique(flat, axis=0, return_inverse=True)
    import damask

    rgb = damask.Orientation(rotation=unique, lattice="cF").IPF_color(np.asarray(normal, dtype=np.float64))
    return rgb[inverse.reshape(-1)].reshape(*q.shape[:-1], 3).astype(np.float32)


def mid_sections(q: np.ndarray) -> np.ndarray:
    """The three orthogonal mid-sections of a voxel orientation field as IPF-coloured images.

    Parameters
    ----------
    q : numpy.ndarray, shape (..., D, D, D, 4)
        Quaternions (scalar first) of the voxels; array axes -4, -3, -2 are x, y, z.

    Returns
    -------
    numpy.ndarray, shape (..., 3, 3, D, D), float32 in [0, 1]
        ``[..., s, c, i, j]``: section ``s`` (0: normal x, 1: normal y, 2: normal z), RGB
        channel ``c``, the IPF colour of that section's normal. The sections are the planes
        through index ``D // 2`` of their normal axis; the image rows ``i`` follow the first
        and the columns ``j`` the second of the two in-plane axes: x-section ``(D//2, i, j)``
        rows y, columns z; y-section ``(i, D//2, j)`` rows x, columns z; z-section
        ``(i, j, D//2)`` rows x, columns y.
    """
    q = np.asarray(q)
    if q.ndim < 4 or q.shape[-1] != 4 or not q.shape[-4] == q.shape[-3] == q.shape[-2]:
        raise ValueError(f"mid_sections: expected a (..., D, D, D, 4) quaternion field, got shape {q.shape}")
    m = q.shape[-2] // 2
    cuts = (q[..., m, :, :, :], q[..., :, m, :, :], q[..., :, :, m, :])   # (..., D, D, 4) each
    images = [ipf_colours(c, n) for c, n in zip(cuts, np.eye(3))]        # (..., D, D, 3) each
    return np.moveaxis(np.stack(images, axis=-4), -1, -3)


# --------------------------------------------------------------------------- models and files

def vit_config(preset: str, **overrides):
    """The ``transformers.Dinov2Config`` of a preset of :data:`PRESETS` (with ``overrides``)."""
    from transformers import Dinov2Config

    if preset not in PRESETS:
        raise InputError(f"expected one of {sorted(PRESETS)}, got {preset!r}", key="preset")
    return Dinov2Config(**dict(PRESETS[preset], **overrides))


def _preprocessing(image_size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> dict:
    return dict(image_size=int(image_size), resize="nearest", image_mean=[float(v) for v in mean],
                image_std=[float(v) for v in std])


def _metadata(model, metadata: dict | None) -> dict:
    meta = dict(metadata or {})
    meta.setdefault("preprocessing", _preprocessing(model.config.image_size))
    return meta


def random_vit(preset: str = "tiny", seed: int = 0, **overrides) -> LoadedViT:
    """A randomly initialised DINOv2 model of a preset (the global torch RNG is left as it was)."""
    from transformers import Dinov2Model

    config = vit_config(preset, **overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Dinov2Model(config)
    return LoadedViT(model.eval(), _metadata(model, dict(preset=preset, source=f"random (seed {seed})")))


def save_vit(path, model, metadata: dict | None = None) -> None:
    """Write a ``Dinov2Model`` and plain-data ``metadata`` as a polyfe2 file (``format``
    ``polyfe2.vit``, version 1; replaced atomically). Missing preprocessing settings are filled
    in: the model's image size, nearest resizing, the ImageNet mean and std."""
    meta = dict(_metadata(model, metadata), polyfe2_version=__version__)
    ckpt = dict(format=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION, polyfe2_version=__version__,
                config=plain_data(model.config.to_dict(), "config"),
                state_dict={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                metadata=plain_data(meta, "metadata"))
    save_checkpoint(path, ckpt)


def load_vit(path) -> LoadedViT:
    """A DINOv2 model (eval mode, CPU) from a Hugging Face checkpoint directory or a polyfe2 ViT
    file; never downloads.

    Raises
    ------
    polyfe2.errors.InputError
        One line naming the file and the key: missing path, a directory without
        ``config.json`` or weights, a config that is not ``model_type`` dinov2, a file of
        another format or version, weights that do not fit the config.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("ViT weights not found (a Hugging Face DINOv2 directory or a polyfe2 ViT file)",
                         file=path)
    model, meta = _load_hf_dir(path) if path.is_dir() else _load_polyfe2(path)
    return LoadedViT(model.eval(), meta)


def _check_dinov2(config: dict, file, key: str) -> None:
    if not isinstance(config, dict) or config.get("model_type") != "dinov2":
        got = config.get("model_type") if isinstance(config, dict) else type(config).__name__
        raise InputError(f"expected a DINOv2 config (model_type 'dinov2'), got {got!r}", file=file, key=key)


def _read_json(file: Path) -> dict:
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"not readable JSON ({type(exc).__name__})", file=file) from None


def _load_hf_dir(path: Path):
    from transformers import Dinov2Model

    if not (path / "config.json").is_file():
        raise InputError("no config.json: expected a Hugging Face DINOv2 checkpoint directory", file=path,
                         key="config.json")
    _check_dinov2(_read_json(path / "config.json"), path / "config.json", "model_type")
    if not any((path / w).is_file() for w in ("model.safetensors", "pytorch_model.bin")):
        raise InputError("no model.safetensors or pytorch_model.bin", file=path, key="model.safetensors")
    try:
        model, info = Dinov2Model.from_pretrained(path, local_files_only=True, output_loading_info=True)
    except Exception as exc:  # noqa: BLE001 - one line for the user
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"weights do not load ({msg})", file=path, key="state_dict") from None
    bad = list(info.get("missing_keys") or []) + [str(k) for k in info.get("mismatched_keys") or []]
    if bad:
        raise InputError(f"weights do not match the config ({len(bad)} missing or mismatched, e.g. {bad[0]})",
                         file=path, key="state_dict")
    size, mean, std = model.config.image_size, IMAGENET_MEAN, IMAGENET_STD
    if (path / "preprocessor_config.json").is_file():
        pre = _read_json(path / "preprocessor_config.json")
        crop = pre.get("crop_size")
        size = crop.get("height", size) if isinstance(crop, dict) else (crop or size)
        mean, std = pre.get("image_mean", mean), pre.get("image_std", std)
    meta = dict(preset=None, source=f"huggingface directory {path.name}", preprocessing=_preprocessing(size, mean, std))
    return model, meta


def _load_polyfe2(path: Path):
    from transformers import Dinov2Config, Dinov2Model

    ckpt = read_checkpoint(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "polyfe2 ViT file",
                           mappings=("config", "state_dict", "metadata"))
    _check_dinov2(ckpt["config"], path, "config.model_type")
    try:
        config = Dinov2Config.from_dict(ckpt["config"])
        model = Dinov2Model(config)
    except Exception as exc:  # noqa: BLE001 - one line for the user
        raise InputError(f"not a usable Dinov2Config ({type(exc).__name__}: {exc})", file=path, key="config") from None
    load_weights(model, ckpt["state_dict"], path)
    return model, _metadata(model, ckpt["metadata"])


# --------------------------------------------------------------------------- features

class ViTFeatures:
    """Image-level features of a loaded ViT: [CLS] after the final norm, eval mode, no grad.

    ``image_size`` overrides the metadata's (e.g. 42 for the paper's crop-sized inputs)."""

    def __init__(self, loaded: LoadedViT, image_size: int | None = None, device=None):
        self.model = loaded.model.eval()
        self.pre = dict(_metadata(self.model, loaded.metadata)["preprocessing"])
        if image_size is not None:
            self.pre["image_size"] = int(image_size)
        self.device = torch.device(device) if device is not None else next(self.model.parameters()).device
        self.model.to(self.device)

    @property
    def hidden(self) -> int:
        return int(self.model.config.hidden_size)

    def preprocess(self, images) -> torch.Tensor:
        """(n, 3, H, W) RGB in [0, 1] -> (n, 3, S, S) float32 resized (nearest) and normalised."""
        return preprocess(images, self.pre, self.device)

    def features(self, images) -> np.ndarray:
        """(n, 3, H, W) RGB images in [0, 1] -> (n, hidden) float32 image features."""
        with torch.no_grad():
            return self.model(pixel_values=self.preprocess(images)).pooler_output.cpu().numpy()

    def fingerprint(self, q: np.ndarray, aggregate: str = "concat") -> np.ndarray:
        """(D, D, D, 4) quaternions -> (3 hidden,) the x, y, z sections' features concatenated
        (``aggregate="mean"``: (hidden,) their mean)."""
        return self.fingerprints(np.asarray(q)[None], aggregate=aggregate)[0]

    def fingerprints(self, q: np.ndarray, batch: int = 64, aggregate: str = "concat") -> np.ndarray:
        """(n, D, D, D, 4) quaternions -> (n, 3 hidden) or, ``aggregate="mean"``, (n, hidden)."""
        if aggregate not in ("concat", "mean"):
            raise ValueError(f"aggregate: expected 'concat' or 'mean', got {aggregate!r}")
        out = []
        for i in range(0, len(q), batch):
            images = mid_sections(q[i:i + batch])                            # (b, 3, 3, D, D)
            f = self.features(images.reshape(-1, *images.shape[2:])).reshape(len(images), 3, self.hidden)
            out.append(f.reshape(len(f), -1) if aggregate == "concat" else f.mean(1))
        return np.concatenate(out) if out else np.zeros((0, self.hidden * (3 if aggregate == "concat" else 1)),
                                                         np.float32)


def preprocess(images, pre: dict, device=None) -> torch.Tensor:
    """(n, 3, H, W) RGB in [0, 1] -> (n, 3, S, S) float32: resized to ``pre["image_size"]`` by
    ``pre["resize"]`` interpolation, then ``(x - image_mean) / image_std`` per channel."""
    x = torch.as_tensor(np.asarray(images), dtype=torch.float32, device=device)
    size = int(pre["image_size"])
    if x.shape[-2:] != (size, size):
        x = torch.nn.functional.interpolate(x, size=(size, size), mode=pre.get("resize", "nearest"))
    mean = torch.tensor(pre["image_mean"], dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(pre["image_std"], dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def vit_fingerprints(loaded: LoadedViT, q: np.ndarray, batch: int = 64, aggregate: str = "concat") -> np.ndarray:
    """(n, D, D, D, 4) quaternion fields -> (n, 3 hidden) concatenated x, y, z section features
    (``aggregate="mean"``: (n, hidden))."""
    return ViTFeatures(loaded).fingerprints(q, batch=batch, aggregate=aggregate)


# --------------------------------------------------------------------------- pretraining

def patch_pixels(x: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, S, S) images -> (B, L, P P C) pixels per patch, patches in row-major order (the
    order of DINOv2's patch embedding), ``L = (S / P)²``."""
    B, C, S, _ = x.shape
    g = S // patch
    return x.reshape(B, C, g, patch, g, patch).permute(0, 2, 4, 3, 5, 1).reshape(B, g * g, -1)


def random_patch_mask(batch: int, length: int, ratio: float, generator=None, device=None) -> torch.Tensor:
    """(batch, length) bool: ``max(1, round(ratio length))`` random patches of each image masked."""
    k = max(1, int(round(ratio * length)))
    noise = torch.rand(batch, length, generator=generator, device=device)
    rank = noise.argsort(1).argsort(1)
    return rank < k


def pretrain_vit(data_file, out, spec: FitSpec, preset: str = "small", mask_ratio: float = 0.4,
                 unlabelled_only: bool = True, progress: bool = True, log=print) -> dict:
    """Self-supervised pretraining of a DINOv2 model on the mid-sections of an ``fm data`` set.

    This replaces DINOv2's self-distillation objective by masked patch modelling (published
    DINOv2 weights cannot be fetched here; a downloaded DINOv2 checkpoint goes through
    :func:`load_vit` unchanged): ``mask_ratio`` of the patches of each of the three sections
    of an RVE are replaced by DINOv2's own mask token (``bool_masked_pos``, as in its iBOT
    objective), and a linear head maps each output patch token to that patch's normalised
    pixels; the loss is the MSE over the masked patches only. The RVEs are those without
    stiffness labels (``unlabelled_only``; all when fewer than 2 are unlabelled), so that the
    labelled RVEs stay unseen; a held-out share of them (``spec.val_fraction``) gives the
    validation loss, with the same masks every epoch, beside the baseline of predicting every
    masked patch as its image's mean colour (over the whole image, masked pixels included).

    Writes ``out/vit.pt`` (:func:`save_vit`, the weights of the best held-out loss, with the
    losses in the metadata), ``checkpoint.pt`` (a second call resumes), ``history.csv``,
    ``loss.png``; returns a summary.
    """
    out = Path(out)
    if not 0 < mask_ratio < 1:
        raise InputError(f"expected a number in (0, 1), got {mask_ratio!r}", key="mask_ratio")
    config = vit_config(preset)
    data = read_fm_dataset(data_file)
    data["quaternions"] = pretraining_quaternions(data, data_file, None if unlabelled_only else False)
    dev = resolve_device(spec.device)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(spec.seed)
    from transformers import Dinov2Model

    model = Dinov2Model(config).to(dev)
    P = config.patch_size
    head = torch.nn.Linear(config.hidden_size, P * P * config.num_channels).to(dev)
    pre = _preprocessing(config.image_size)
    images = mid_sections(data["quaternions"])                                      # (n, 3, 3, D, D)
    S = config.image_size
    X = preprocess(images.reshape(-1, *images.shape[2:]), pre, dev).reshape(len(images), 3, 3, S, S)
    tr, va = split_rves(len(X), spec.val_fraction, spec.seed)
    L = (config.image_size // P) ** 2
    log(f"polyfe2: pretraining {preset} ViT ({sum(p.numel() for p in model.parameters())} parameters, "
        f"{config.image_size}² images, patch {P}, mask {mask_ratio}) on 3 sections of {len(tr)} RVEs, "
        f"{len(va)} held out, device {dev}")

    def losses(idx, generator=None):
        x = X[torch.as_tensor(idx, device=dev)].flatten(0, 1)                         # (3b, 3, S, S)
        mask = random_patch_mask(len(x), L, mask_ratio, generator, dev)
        pred = head(model(pixel_values=x, bool_masked_pos=mask).last_hidden_state[:, 1:])
        target = patch_pixels(x, P)
        baseline = x.mean((2, 3))[:, None, :].repeat_interleave(P * P, 1).reshape(len(x), 1, -1)
        return [((p - target) ** 2).mean(-1)[mask].mean() for p in (pred, baseline)]

    g_val = torch.Generator(device=dev)

    def validate():
        g_val.manual_seed(spec.seed)       # the same masks every epoch: comparable losses
        loss, base = losses(va, g_val)
        return dict(val_loss=float(loss), val_baseline=float(base))

    def save_best(history):
        h = history[-1]
        meta = fit_metadata("pretrain vit", data_file, data, spec, history, len(tr), len(va), preset=preset,
                     objective="masked patch modelling (MSE on masked patches of normalised pixels)",
                     mask_ratio=mask_ratio, unlabelled_only=unlabelled_only, val_masked_mse=h["val_loss"],
                     val_mean_colour_mse=h["val_baseline"], sections="x, y, z mid-sections, IPF colours")
        save_vit(out / "vit.pt", model, dict(meta, preprocessing=pre))

    batches = Batches(tr, spec.batch, spec.seed, lambda idx: losses(idx)[0])
    resume_keys = dict(preset=preset, mask_ratio=mask_ratio, rves=len(X), unlabelled_only=unlabelled_only)
    history = fit_loop(out, spec, {"vit": model, "head": head}, batches, validate, save_best, resume_keys,
                       "vit pretrain", progress, log)
    best = min(history, key=lambda h: h["val_loss"])
    return dict(vit=out / "vit.pt", epochs=history[-1]["epoch"], best_epoch=best["epoch"], val_loss=best["val_loss"],
                val_baseline=best["val_baseline"], train_loss=best["train_loss"],
                train_time_min=round(history[-1]["time_s"] / 60, 1))
