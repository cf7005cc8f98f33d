"""3D variational autoencoder of voxel orientation fields: the microstructure fingerprint of
paper 001 (White et al., "3D variational autoencoder for fingerprinting microstructure volume
elements").

Data (paper 001, section 2.1)
    Each voxel's fundamental-zone quaternion (as :mod:`.fm_data` stores it) becomes its Bunge
    Euler angles divided by (2π, π, 2π): three channels in [0, 1] (:func:`euler_channels`),
    a batch ``x`` of shape (B, 3, D, D, D) float32. :func:`quaternions_from_channels` is the
    inverse, used on the (sigmoid) reconstructions.

Architecture (section 2.2.2, Table 3)
    Encoder: a stem ``Conv3d`` (3 -> w0, 3³ kernel) with BN and ReLU, then four layers of
    residual blocks (conv-BN-ReLU-conv-BN, plus the block's input, ReLU; no downsampling
    inside a layer) of widths ``w0 .. w3``, with a separate strided ``Conv3d`` (3³ kernel,
    stride 2) + BN + ReLU between consecutive layers: ``D -> D/8``. An optional 1³
    ``Conv3d`` narrows the last layer to ``bottleneck`` channels; the flattened result (the
    "hidden layer", ``hidden = channels * (D/8)³``) is mapped by two ``Linear`` layers to μ
    and ln σ² (latent width ``latent``, 256 in the paper).
    Decoder: the mirror image: ``Linear(latent -> hidden)``, the same layers in reverse order
    with ``ConvTranspose3d`` (2³ kernel, stride 2: each voxel becomes a 2³ block, as the
    paper describes the transposed convolutions) between them, and a final ``Conv3d``
    (w0 -> 3) with a sigmoid: normalised Euler angles in (0, 1).
    Eq. 1: ``z = μ + exp(½ ln σ²) ε``, ε ~ N(0, 1), in training mode; ``z = μ`` in eval mode.
    μ is the fingerprint (:meth:`ResNetVAE.encode`, :func:`fingerprints`).

Loss (section 2.2.3)
    ``α L_BCE + (1 − α) L_FFT + β KL`` (:func:`vae_loss`): eq. 2 summed over voxels and
    channels, eq. 3 the mean squared modulus of the difference of the 3D FFTs over all
    entries, weighted by eq. 4 (α = 0.999), plus the Kullback-Leibler divergence of
    N(μ, σ²) from N(0, 1) with weight β (``kl_weight``): the paper's eq. 4 names no KL term;
    the standard VAE evidence lower bound adds it (β = 1), β = 0 drops it.

Accuracy (section 3.1.2)
    φ4 = 1 − |q1 · q2| per voxel (eq. 5, :func:`phi4`), averaged first per RVE
    (:func:`mean_misorientation`), then mean ± std over a data set.

Training (:func:`train_vae`)
    On the RVEs of an ``fm data`` file through :func:`~.fm_train.fit_loop` (resume,
    ``history.csv``, ``loss.png``, time limit). The paper's optimiser is Adam with learning
    rate 1e-5 and weight decay 1e-5 (:data:`PAPER_OPTIMISER`, to be put into the
    :class:`~.fm_train.FitSpec`; ``fit_loop`` uses AdamW with a cosine learning rate from
    ``lr`` to ``lr_min``).

Checkpoints
    :func:`save_vae` / :func:`load_vae`: a plain ``torch.save`` dict (``format`` =
    ``"polyfe2.vae"``, ``version`` 1, ``polyfe2_version``, ``config``, ``state_dict``,
    ``normalisation``, ``metadata``) read with ``weights_only=True``; a wrong file is a one-line
    :class:`~polyfe2.errors.InputError` naming the file and the key.
"""
from __future__ import annotations

import math
import numbers
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Dict, NamedTuple, Optional, Tuple

import damask
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import __version__
from ..checkpoints import load_weights, plain_data, read_checkpoint, save_checkpoint
from ..devices import resolve_device
from ..errors import InputError
from .fm_data import pretraining_quaternions, read_fm_dataset
from .fm_train import Batches, FitSpec, fit_loop, split_rves
from .mae import count_parameters

__all__ = [
    "EULER_SCALE",
    "PAPER_OPTIMISER",
    "VAEConfig",
    "PRESETS",
    "ARCH_FIELDS",
    "ResidualBlock",
    "ResNetVAE",
    "LoadedVAE",
    "euler_channels",
    "quaternions_from_channels",
    "phi4",
    "mean_misorientation",
    "vae_loss",
    "save_vae",
    "load_vae",
    "fingerprints",
    "reconstruct",
    "train_vae",
    "plot_reconstruction",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
]

CHECKPOINT_FORMAT = "polyfe2.vae"
CHECKPOINT_VERSION = 1

#: rad: Bunge Euler angles (φ1, Φ, φ2) are divided by these to lie in [0, 1] (section 2.1)
EULER_SCALE = np.array([2.0 * np.pi, np.pi, 2.0 * np.pi])

#: section 2.2.2: Adam, learning rate 1e-5, weight decay 1e-5 (FitSpec fields)
PAPER_OPTIMISER = dict(lr=1e-5, lr_min=1e-5, weight_decay=1e-5)

#: config fields that fix the weights' shapes
ARCH_FIELDS = ("grid", "latent", "blocks", "widths", "bottleneck")

#: state-dict prefixes of the encoder (stem, layers, downsamplings, μ and ln σ² maps)
ENCODER_PREFIXES = ("encoder.", "fc_mu.", "fc_logvar.")

#: initial bias of the ln σ² layer (see :meth:`ResNetVAE._init_weights`)
LOGVAR_INIT = -4.0

#: downsamplings between the four layers: the grid must be a multiple of 2**3
_DOWNSAMPLINGS = 3


# --------------------------------------------------------------------------- data

def euler_channels(q: np.ndarray) -> np.ndarray:
    """Normalised Bunge Euler angles of voxel quaternions (paper 001, section 2.1).

    Parameters
    ----------
    q : numpy.ndarray
        (..., D, D, D, 4) unit quaternions, scalar first (fundamental zone, q0 >= 0).

    Returns
    -------
    numpy.ndarray
        (..., 3, D, D, D) float32: (φ1 / 2π, Φ / π, φ2 / 2π), each in [0, 1].
    """
    q = np.asarray(q, dtype=np.float64)
    if q.ndim < 4 or q.shape[-1] != 4:
        raise ValueError(f"euler_channels: expected (..., D, D, D, 4) quaternions, got {q.shape}")
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    eu = damask.Rotation(q).as_Euler_angles() / EULER_SCALE          # (..., D, D, D, 3)
    return np.ascontiguousarray(np.moveaxis(np.clip(eu, 0.0, 1.0), -1, -4), dtype=np.float32)


def quaternions_from_channels(x) -> np.ndarray:
    """Inverse of :func:`euler_channels`: (..., 3, D, D, D) normalised Euler angles (clipped to
    [0, 1]) -> (..., D, D, D, 4) unit quaternions (float64, q0 >= 0; not reduced to the
    fundamental zone)."""
    x = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    if x.ndim < 4 or x.shape[-4] != 3:
        raise ValueError(f"quaternions_from_channels: expected (..., 3, D, D, D), got {x.shape}")
    eu = np.moveaxis(np.clip(x.astype(np.float64), 0.0, 1.0), -4, -1) * EULER_SCALE
    return damask.Rotation.from_Euler_angles(eu).quaternion


def phi4(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """Eq. 5: φ4 = 1 − |q1 · q2| in [0, 1] for unit quaternions (..., 4) (broadcast); 0 for
    equal rotations (q and −q alike), 1 − cos(ω/2) for a misorientation angle ω."""
    dot = np.abs(np.sum(np.asarray(q1, dtype=np.float64) * np.asarray(q2, dtype=np.float64), axis=-1))
    return 1.0 - np.minimum(dot, 1.0)


def mean_misorientation(q_true: np.ndarray, q_recon: np.ndarray) -> np.ndarray:
    """(n,) mean φ4 (eq. 5) per RVE of (n, D, D, D, 4) quaternion fields (section 3.1.2: the
    mean per RVE first; mean and std over the RVEs are the paper's Table 4 numbers)."""
    p = phi4(q_true, q_recon)
    return p.reshape(p.shape[0], -1).mean(axis=1)


# --------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class VAEConfig:
    """Sizes and loss weights of :class:`ResNetVAE`.

    Parameters
    ----------
    grid : int
        Voxels per edge ``D`` of the cubic input; a multiple of 8 (three downsamplings).
    latent : int
        Width of μ, ln σ² and z (256 in the paper, section 3.1.1).
    blocks : tuple of 4 int
        Residual blocks per layer (Table 3: ResNet12 (1, 1, 1, 1), ResNet18 (2, 2, 2, 2),
        ResNet34 (3, 4, 6, 3)).
    widths : tuple of 4 int
        Channels of the four layers.
    bottleneck : int or None
        Channels of a 1³ convolution after the last layer (None: none). The hidden layer
        before μ and ln σ² has ``(bottleneck or widths[3]) * (grid / 8)**3`` values; 16
        channels on a 64³ grid give the paper's 8192 (section 3.1).
    alpha : float
        Eq. 4 weight of the BCE term, in [0, 1] (0.999).
    kl_weight : float
        β >= 0, weight of the KL divergence added to eq. 4 (1: the standard VAE evidence
        lower bound; the paper's eq. 4 has no explicit KL term).

    Raises
    ------
    ValueError
        One line naming the field and what was expected.
    """

    grid: int = 16
    latent: int = 256
    blocks: Tuple[int, int, int, int] = (1, 1, 1, 1)
    widths: Tuple[int, int, int, int] = (8, 16, 32, 64)
    bottleneck: Optional[int] = None
    alpha: float = 0.999
    kl_weight: float = 1.0

    def __post_init__(self):
        def fail(name, expected):
            raise ValueError(f"VAEConfig.{name}: expected {expected}, got {getattr(self, name)!r}")

        def positive_int(v):
            return not isinstance(v, bool) and isinstance(v, numbers.Integral) and v >= 1

        for name in ("grid", "latent"):
            if not positive_int(getattr(self, name)):
                fail(name, "a positive integer")
            object.__setattr__(self, name, int(getattr(self, name)))
        if self.grid % 2 ** _DOWNSAMPLINGS:
            fail("grid", f"a multiple of {2 ** _DOWNSAMPLINGS} ({_DOWNSAMPLINGS} downsamplings)")
        for name in ("blocks", "widths"):
            v = getattr(self, name)
            if isinstance(v, (str, bytes)) or not hasattr(v, "__len__") or len(v) != 4 \
                    or not all(positive_int(k) for k in v):
                fail(name, "4 positive integers")
            object.__setattr__(self, name, tuple(int(k) for k in v))
        if self.bottleneck is not None:
            if not positive_int(self.bottleneck):
                fail("bottleneck", "a positive integer or None")
            object.__setattr__(self, "bottleneck", int(self.bottleneck))
        for name, ok in (("alpha", lambda a: 0.0 <= a <= 1.0), ("kl_weight", lambda b: b >= 0.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or not ok(v):
                fail(name, "a number in [0, 1]" if name == "alpha" else "a finite number >= 0")
            object.__setattr__(self, name, float(v))

    @property
    def bottom(self) -> int:
        """Voxels per edge after the three downsamplings, ``grid / 8``."""
        return self.grid // 2 ** _DOWNSAMPLINGS

    @property
    def hidden_channels(self) -> int:
        """Channels of the flattened hidden layer."""
        return self.bottleneck or self.widths[3]

    @property
    def hidden(self) -> int:
        """Size of the hidden layer before μ and ln σ²."""
        return self.hidden_channels * self.bottom ** 3

    def to_dict(self) -> Dict[str, Any]:
        """Plain dict of all fields (lists for the tuples)."""
        d = asdict(self)
        d["blocks"], d["widths"] = list(self.blocks), list(self.widths)
        return d

    @classmethod
    def from_dict(cls, data) -> "VAEConfig":
        """Inverse of :meth:`to_dict`; unknown fields raise a one-line ValueError (missing
        ones take their defaults)."""
        if not isinstance(data, dict):
            raise ValueError(f"VAEConfig: expected a mapping of fields, got {type(data).__name__}")
        names = [f.name for f in fields(cls)]
        for key in data:
            if key not in names:
                raise ValueError(f"VAEConfig: unknown field {key!r}; expected one of {', '.join(names)}")
        return cls(**data)


_PAPER_WIDTHS = (32, 64, 128, 256)

PRESETS: Dict[str, VAEConfig] = {
    # paper 001, Table 3, on its 64³ grids with |z| = 256 and an 8192 hidden layer (16 x 8³)
    "resnet12": VAEConfig(grid=64, blocks=(1, 1, 1, 1), widths=_PAPER_WIDTHS, bottleneck=16),
    "resnet18": VAEConfig(grid=64, blocks=(2, 2, 2, 2), widths=_PAPER_WIDTHS, bottleneck=16),
    "resnet34": VAEConfig(grid=64, blocks=(3, 4, 6, 3), widths=_PAPER_WIDTHS, bottleneck=16),
    # CPU size: ResNet12 depth, a quarter of the paper's widths (1.08 M parameters); an epoch
    # of 2500 RVEs of 16³ (batch 32) takes about 17 s on one CPU thread
    "small": VAEConfig(grid=16, blocks=(1, 1, 1, 1), widths=(8, 16, 32, 64)),
}


# --------------------------------------------------------------------------- model

def _conv_bn_relu(conv: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm3d(channels), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """Section 2.2.2: conv-BN-ReLU-conv-BN, plus the input (skip connection), then ReLU; 3³
    kernels, the grid and the width are kept."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv3d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm3d(channels)
        self.conv2 = nn.Conv3d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(channels)

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(y)) + x, inplace=True)


def _layer(channels: int, n_blocks: int) -> nn.Sequential:
    return nn.Sequential(*(ResidualBlock(channels) for _ in range(n_blocks)))


class ResNetVAE(nn.Module):
    """The 3D ResNet VAE of paper 001 (see the module docstring).

    Parameters
    ----------
    config : VAEConfig

    ``forward(x)`` takes (B, 3, D, D, D) normalised Euler angles (:func:`euler_channels`) and
    returns ``(recon (B, 3, D, D, D) in (0, 1), mu (B, latent), logvar (B, latent))``.
    """

    def __init__(self, config: VAEConfig):
        super().__init__()
        if not isinstance(config, VAEConfig):
            raise TypeError(f"ResNetVAE: expected a VAEConfig, got {type(config).__name__}")
        self.config = c = config
        w, b = c.widths, c.blocks
        enc = [_conv_bn_relu(nn.Conv3d(3, w[0], 3, padding=1, bias=False), w[0])]
        for i in range(4):
            if i:
                enc.append(_conv_bn_relu(nn.Conv3d(w[i - 1], w[i], 3, stride=2, padding=1, bias=False), w[i]))
            enc.append(_layer(w[i], b[i]))
        if c.bottleneck:
            enc.append(_conv_bn_relu(nn.Conv3d(w[3], c.bottleneck, 1, bias=False), c.bottleneck))
        self.encoder = nn.Sequential(*enc)
        self.fc_mu = nn.Linear(c.hidden, c.latent)
        self.fc_logvar = nn.Linear(c.hidden, c.latent)

        self.fc_decode = nn.Linear(c.latent, c.hidden)
        dec = []
        if c.bottleneck:
            dec.append(_conv_bn_relu(nn.Conv3d(c.bottleneck, w[3], 1, bias=False), w[3]))
        for i in range(3, -1, -1):
            dec.append(_layer(w[i], b[i]))
            if i:
                dec.append(_conv_bn_relu(nn.ConvTranspose3d(w[i], w[i - 1], 2, stride=2, bias=False), w[i - 1]))
        dec.append(nn.Conv3d(w[0], 3, 3, padding=1))
        self.decoder = nn.Sequential(*dec)
        self._init_weights()
        # channels-last weights and activations: convolutions and their gradients about 1.7x
        # faster on the CPU (.to(device) and load_state_dict keep the layout)
        self.to(memory_format=torch.channels_last_3d)

    def _init_weights(self) -> None:
        """torch's defaults, except: the last BN of every residual block starts at zero scale
        (each block starts as the identity, Goyal et al. 2017), and ln σ² starts near
        ``LOGVAR_INIT`` (σ ≈ 0.14): the decoder sees z rather than noise from the first steps;
        the KL term raises σ where the latent is not used."""
        for m in self.modules():
            if isinstance(m, ResidualBlock):
                nn.init.zeros_(m.bn2.weight)
        nn.init.constant_(self.fc_logvar.bias, LOGVAR_INIT)

    def num_parameters(self, part: str = "all") -> int:
        """Parameter count of ``"encoder"`` (up to μ and ln σ²), ``"decoder"`` or ``"all"``."""
        if part == "all":
            return count_parameters(self)
        enc = count_parameters(self, ENCODER_PREFIXES)
        if part in ("encoder", "decoder"):
            return enc if part == "encoder" else count_parameters(self) - enc
        raise ValueError(f"num_parameters: part expected 'encoder', 'decoder' or 'all', got {part!r}")

    def _check(self, x: Tensor) -> None:
        want = (3,) + (self.config.grid,) * 3
        if x.dim() != 5 or tuple(x.shape[1:]) != want:
            raise ValueError(f"ResNetVAE: expected input (B, {', '.join(map(str, want))}), got {tuple(x.shape)}")

    def encode_stats(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """(μ, ln σ²), each (B, latent)."""
        self._check(x)
        h = self.encoder(x.contiguous(memory_format=torch.channels_last_3d)).flatten(1)
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z: Tensor) -> Tensor:
        """(B, latent) -> (B, 3, D, D, D) normalised Euler angles in (0, 1) (sigmoid)."""
        c = self.config
        h = F.relu(self.fc_decode(z)).view(-1, c.hidden_channels, c.bottom, c.bottom, c.bottom)
        return torch.sigmoid(self.decoder(h))

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        mu, logvar = self.encode_stats(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training else mu   # eq. 1
        return self.decode(z), mu, logvar

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """The fingerprint μ (B, latent) of (B, 3, D, D, D) inputs, in eval mode (the module's
        mode is restored)."""
        was = self.training
        self.eval()
        try:
            return self.encode_stats(x)[0]
        finally:
            self.train(was)


# --------------------------------------------------------------------------- loss

def vae_loss(x: Tensor, recon: Tensor, mu: Tensor, logvar: Tensor,
             config: VAEConfig) -> Tuple[Tensor, Dict[str, Tensor]]:
    """Eq. 4 plus the KL divergence, averaged over the batch.

    Parameters
    ----------
    x, recon : torch.Tensor
        (B, 3, D, D, D) input and reconstruction, values in [0, 1].
    mu, logvar : torch.Tensor
        (B, latent) μ and ln σ².
    config : VAEConfig
        ``alpha`` (eq. 4) and ``kl_weight`` (β).

    Returns
    -------
    total : torch.Tensor
        Scalar ``α L_BCE + (1 − α) L_FFT + β KL``.
    parts : dict
        ``bce`` (eq. 2, summed over voxels and channels), ``spectral`` (eq. 3, mean over the
        3 D³ Fourier coefficients), ``kl`` (summed over the latent), ``reconstruction``
        (eq. 4): each the batch mean, tensors.
    """
    b = x.shape[0]
    bce = F.binary_cross_entropy(recon, x, reduction="sum") / b                      # eq. 2
    diff = torch.fft.fftn(x, dim=(-3, -2, -1)) - torch.fft.fftn(recon, dim=(-3, -2, -1))
    spectral = (diff.real ** 2 + diff.imag ** 2).mean()                               # eq. 3
    kl = -0.5 * torch.sum(1.0 + logvar - mu ** 2 - logvar.exp()) / b
    rec = config.alpha * bce + (1.0 - config.alpha) * spectral                       # eq. 4
    return rec + config.kl_weight * kl, dict(bce=bce, spectral=spectral, kl=kl, reconstruction=rec)


# --------------------------------------------------------------------------- checkpoints

class LoadedVAE(NamedTuple):
    """What :func:`load_vae` returns."""
    model: ResNetVAE
    config: VAEConfig
    metadata: dict
    normalisation: dict


def save_vae(path, model: ResNetVAE, normalisation: Optional[dict] = None,
             metadata: Optional[dict] = None) -> None:
    """Write ``model`` (its config and weights) with ``normalisation`` (default: the Euler
    scale in rad and the lattice) and ``metadata`` (plain data: training data, epochs, time,
    held-out φ4 ...); the file is replaced atomically."""
    norm = dict(euler_scale_rad=EULER_SCALE.tolist(), lattice="cF") if normalisation is None else normalisation
    ckpt = dict(format=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION, polyfe2_version=__version__,
                config=model.config.to_dict(),
                state_dict={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                normalisation=plain_data(dict(norm), "normalisation"),
                metadata=plain_data(dict(metadata or {}, polyfe2_version=__version__), "metadata"))
    save_checkpoint(path, ckpt)


def load_vae(path) -> LoadedVAE:
    """Read a :func:`save_vae` file (on the CPU, ``weights_only=True``); the model is in eval
    mode.

    Raises
    ------
    polyfe2.errors.InputError
        One line naming the file and the key: missing or unreadable file, another format or
        version, a bad ``config``, weights of another architecture (``state_dict.<name>``).
    """
    path = os.fspath(path)
    ckpt = read_checkpoint(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "polyfe2 VAE checkpoint",
                           mappings=("config", "state_dict"))
    try:
        config = VAEConfig.from_dict(ckpt["config"])
    except (TypeError, ValueError) as exc:
        raise InputError(str(exc), file=path, key="config") from None
    model = ResNetVAE(config)
    state, want = ckpt["state_dict"], model.state_dict()
    for name in sorted(set(want) | set(state)):
        got = state.get(name)
        if name not in want or not isinstance(got, Tensor) or got.shape != want[name].shape:
            what = ("not in this config's model" if name not in want else "missing" if got is None
                    else "not a tensor" if not isinstance(got, Tensor)
                    else f"shape {tuple(got.shape)}, the config's model needs {tuple(want[name].shape)}")
            raise InputError(f"weights do not match the config: {what}", file=path, key=f"state_dict.{name}")
    load_weights(model, state, path)
    model.eval()
    return LoadedVAE(model, config, dict(ckpt.get("metadata") or {}), dict(ckpt.get("normalisation") or {}))


# --------------------------------------------------------------------------- inference

def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def _map_batches(model: ResNetVAE, q: np.ndarray, batch: int, fn) -> list:
    q = np.asarray(q)
    if q.ndim == 4:
        q = q[None]
    was = model.training
    model.eval()
    try:
        dev = _device(model)
        return [fn(torch.from_numpy(euler_channels(q[i:i + batch])).to(dev)) for i in range(0, len(q), batch)]
    finally:
        model.train(was)


def fingerprints(model: ResNetVAE, q: np.ndarray, batch: int = 64) -> np.ndarray:
    """(n, latent) float32 fingerprints μ of (n, D, D, D, 4) voxel quaternion fields (eval
    mode, no gradients, on the model's device)."""
    return np.concatenate(_map_batches(model, q, batch, lambda x: model.encode_stats(x)[0].cpu().numpy()))


def reconstruct(model: ResNetVAE, q: np.ndarray, batch: int = 64) -> np.ndarray:
    """(n, D, D, D, 4) quaternions of the reconstructions ``decode(μ)`` of (n, D, D, D, 4)
    voxel quaternion fields."""
    return np.concatenate(_map_batches(model, q, batch, lambda x: quaternions_from_channels(model(x)[0])))


# --------------------------------------------------------------------------- training

def _config_for(preset, grid: int, data_file) -> Tuple[str, VAEConfig]:
    if isinstance(preset, VAEConfig):
        name, base = "custom", preset
    elif preset in PRESETS:
        name, base = preset, PRESETS[preset]
    else:
        raise InputError(f"expected one of {sorted(PRESETS)} or a VAEConfig, got {preset!r}", key="--preset")
    try:
        return name, replace(base, grid=grid)
    except ValueError as exc:
        raise InputError(str(exc), file=data_file, key="cells") from None


class _Batches(Batches):
    """:class:`~.fm_train.Batches` whose last batch, when it would hold a single RVE, joins the
    one before it (batch normalisation needs two values per channel on a 1³ bottom grid)."""

    def batches(self, epoch: int):
        out = super().batches(epoch)
        if len(out) > 1 and len(out[-1]) == 1:
            out[-2:] = [np.concatenate(out[-2:])]
        return out


def _phi4_stats(values: np.ndarray) -> Tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))


def train_vae(data_file, out, spec: FitSpec, preset="small", unlabelled_only: bool = True,
              progress: bool = True, log=print) -> dict:
    """Train a VAE on the RVEs of an ``fm data`` file; returns a summary.

    Parameters
    ----------
    data_file : path
        An ``fm data`` set (:func:`~.fm_data.generate`); the VAE's grid is its ``cells``.
    out : path
        Directory for ``checkpoint.pt`` (a new call with the same options resumes),
        ``history.csv``, ``loss.png``, ``vae.pt`` (the model of the least held-out loss) and
        ``reconstruction.png`` (a held-out RVE).
    spec : FitSpec
        Epochs, batch, learning rate (cosine to ``lr_min``), weight decay, held-out fraction,
        seed, time limit, device (:data:`PAPER_OPTIMISER` has the paper's optimiser values).
    preset : str or VAEConfig
        A :data:`PRESETS` name or a config (its grid is replaced by the data's).
    unlabelled_only : bool
        Train on the RVEs without stiffness labels only (default), so that the labelled ones
        used by property regression stay unseen.

    Returns
    -------
    dict
        ``vae`` (path), ``epochs``, ``best_epoch``, ``val_loss``, ``train_rves``,
        ``held_out_rves``, ``phi4_held_out`` / ``phi4_held_out_std`` (eq. 5, per RVE then over
        the held-out RVEs), ``phi4_baseline`` / ``phi4_baseline_std`` (every voxel
        reconstructed as the training set's mean normalised Euler angles, held-out RVEs), the
        same on the training RVEs (``phi4_train``, ``phi4_baseline_train`` and their
        ``_std``), ``train_time_min``; all of the model of the least held-out loss, which
        :func:`load_vae` reads with these values in its metadata.
    """
    out = Path(out)
    data = read_fm_dataset(data_file)
    q = pretraining_quaternions(data, data_file, bool(unlabelled_only))
    name, cfg = _config_for(preset, int(data["attrs"]["cells"]), data_file)
    dev = resolve_device(spec.device)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(spec.seed)
    model = ResNetVAE(cfg).to(dev)
    X = torch.from_numpy(euler_channels(q)).to(dev)
    tr, va = split_rves(len(X), spec.val_fraction, spec.seed)
    channels = X[torch.as_tensor(tr, device=dev)].mean(dim=(0, 2, 3, 4)).double().cpu().numpy()
    base = _phi4_stats(_baseline_phi4(channels, q[va]))
    log(f"polyfe2: training {name} VAE ({model.num_parameters()} parameters, grid {cfg.grid}, latent "
        f"{cfg.latent}) on {len(tr)} RVEs, {len(va)} held out, device {dev}; constant baseline "
        f"phi4 {base[0]:.4f}")
    held_out = {}

    def step(idx):
        x = X[torch.as_tensor(idx, device=dev)]
        return vae_loss(x, *model(x), cfg)[0]

    def validate():
        sums, phis = {}, []
        for i in range(0, len(va), spec.batch):
            x = X[torch.as_tensor(va[i:i + spec.batch], device=dev)]
            recon, mu, logvar = model(x)
            for k, v in vae_loss(x, recon, mu, logvar, cfg)[1].items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(x)
            phis.append(mean_misorientation(q[va[i:i + spec.batch]], quaternions_from_channels(recon)))
        held_out["phi4"] = np.concatenate(phis)
        val = {f"val_{k}": v / len(va) for k, v in sums.items()}
        loss = val.pop("val_reconstruction") + cfg.kl_weight * val["val_kl"]
        return dict(val_loss=loss, **val, val_phi4=float(held_out["phi4"].mean()))

    def save_best(history):
        mean, std = _phi4_stats(held_out["phi4"])
        save_vae(out / "vae.pt", model, metadata=_meta(data_file, spec, history, name, len(tr), len(va),
                                                       phi4_held_out=mean, phi4_held_out_std=std,
                                                       phi4_baseline=base[0], phi4_baseline_std=base[1],
                                                       baseline_channels=channels.tolist()))

    history = fit_loop(out, spec, {"vae": model}, _Batches(tr, spec.batch, spec.seed, step), validate, save_best,
                       dict(preset=name, config=cfg.to_dict(), unlabelled_only=bool(unlabelled_only), rves=len(q)),
                       f"vae {name}", progress, log)
    return _finish(out, q, tr, va, history)


def _baseline_phi4(channels: np.ndarray, q: np.ndarray) -> np.ndarray:
    """(n,) mean φ4 per RVE of reconstructing every voxel of (n, D, D, D, 4) ``q`` by the
    normalised Euler angles ``channels`` (3,) (the constant baseline)."""
    q_const = quaternions_from_channels(np.asarray(channels, dtype=np.float64)[:, None, None, None])[0, 0, 0]
    return phi4(q, q_const).reshape(len(q), -1).mean(axis=1)


def _finish(out: Path, q: np.ndarray, tr: np.ndarray, va: np.ndarray, history: list) -> dict:
    """Adds the training set's φ4 of the best model and of the baseline to its metadata, plots
    a held-out RVE, returns the summary."""
    model, cfg, meta, norm = load_vae(out / "vae.pt")
    if meta.get("train_phi4_epoch") != meta["epochs"]:
        mean, std = _phi4_stats(mean_misorientation(q[tr], reconstruct(model, q[tr])))
        b_mean, b_std = _phi4_stats(_baseline_phi4(meta["baseline_channels"], q[tr]))
        meta.update(phi4_train=mean, phi4_train_std=std, phi4_baseline_train=b_mean,
                    phi4_baseline_train_std=b_std, train_phi4_epoch=meta["epochs"])
        save_vae(out / "vae.pt", model, norm, meta)
        plot_reconstruction(model, q[va[0]], out / "reconstruction.png")
    best = min(history, key=lambda h: h["val_loss"])
    keys = ("phi4_held_out", "phi4_held_out_std", "phi4_baseline", "phi4_baseline_std", "phi4_train",
            "phi4_train_std", "phi4_baseline_train", "phi4_baseline_train_std")
    return dict(vae=out / "vae.pt", epochs=history[-1]["epoch"], best_epoch=best["epoch"], val_loss=best["val_loss"],
                train_rves=len(tr), held_out_rves=len(va), train_time_min=round(history[-1]["time_s"] / 60, 2),
                **{k: meta[k] for k in keys})


def _meta(data_file, spec: FitSpec, history: list, preset: str, n_train: int, n_val: int, **extra) -> dict:
    return dict(stage="vae", data=Path(data_file).name, preset=preset, rves_train=n_train, rves_held_out=n_val,
                epochs=history[-1]["epoch"], train_time_s=history[-1]["time_s"],
                spec={k: v for k, v in asdict(spec).items() if v is not None}, **extra)


# --------------------------------------------------------------------------- plots

def plot_reconstruction(model: ResNetVAE, q: np.ndarray, path) -> Path:
    """The mid slice (last grid axis) of one RVE (D, D, D, 4): its normalised Euler angles as
    RGB, those of its reconstruction, and the φ4 map (eq. 5) with a colour bar; PNG at
    ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    q = np.asarray(q)[None] if np.ndim(q) == 4 else np.asarray(q)[:1]
    q_rec = reconstruct(model, q)
    k = q.shape[3] // 2
    rgb_in = np.moveaxis(euler_channels(q)[0, :, :, :, k], 0, -1)
    rgb_out = np.moveaxis(euler_channels(q_rec)[0, :, :, :, k], 0, -1)
    err = phi4(q[0], q_rec[0])
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    axes[0].imshow(rgb_in.transpose(1, 0, 2), origin="lower")
    axes[0].set_title("input (φ1/2π, Φ/π, φ2/2π as RGB)")
    axes[1].imshow(rgb_out.transpose(1, 0, 2), origin="lower")
    axes[1].set_title("reconstruction")
    im = axes[2].imshow(err[:, :, k].T, origin="lower", cmap="magma", vmin=0.0)
    axes[2].set_title(f"φ4 = 1 − |q·q̂| (RVE mean {err.mean():.4f})")
    fig.colorbar(im, ax=axes[2], label="φ4")
    for ax in axes:
        ax.set_xlabel("x (voxel)")
        ax.set_ylabel("y (voxel)")
    fig.suptitle(f"RVE of {q.shape[1]}³ voxels, mid slice z = {k}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
