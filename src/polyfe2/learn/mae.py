"""3D masked autoencoder of voxel quaternion fields (paper 000, section 2.2; DESIGN "ODMN and
the foundation model").

Data
    A batch of voxel microstructures ``x`` of shape (B, C, D, D, D), float, ``C = 4`` the unit
    quaternion of each voxel (scalar first, cubic fundamental zone, ``q0 >= 0``). The three
    spatial axes are tensor axes 2, 3, 4; ``D`` is a multiple of the patch size ``P``.

Patches and tokens
    The grid is cut into ``G**3`` non-overlapping cubes of ``P**3`` voxels (``G = D / P``).
    Token ``l = (i * G + j) * G + k`` is the cube ``x[:, :, iP:(i+1)P, jP:(j+1)P, kP:(k+1)P]``
    -- the order in which ``nn.Conv3d(C, D_e, kernel_size=P, stride=P)`` flattens its output,
    and the order of :func:`patchify` (which flattens each cube's voxels as (P, P, P, C),
    channels last, ``d = P**3 C`` numbers per patch, as in eq. 5).

Architecture (MAE of He et al., in 3D)
    * Patch embedding: the strided ``Conv3d`` above, flattened to (B, L, D_e).
    * A learnable [CLS] token is prepended; fixed 3D sine-cosine position codes
      (:func:`sincos_3d`, eqs. 3-4) are added, with the [CLS] code zero. Position codes are
      buffers (not parameters and not in the state dict: they follow from the config).
    * Random masking per sample (argsort of uniform noise, :func:`random_masking`); only the
      ``round(L (1 - mask_ratio))`` visible tokens (and [CLS]) enter the encoder.
    * Encoder: ``nn.TransformerEncoder`` of pre-norm ``nn.TransformerEncoderLayer`` blocks
      (GELU MLP of width ``mlp_ratio * D_e``), then a final ``LayerNorm``.
    * Decoder: ``Linear(D_e -> D_d)``, a learnable mask token in every masked slot, the tokens
      put back in grid order, decoder position codes added (again zero for [CLS]), a second
      pre-norm transformer, ``LayerNorm`` and ``Linear(D_d -> P**3 C)``: the predicted voxels
      of every patch.
    * Loss, eq. 5: the mean squared error over the ``d`` numbers of a patch, averaged over the
      masked patches only (:func:`masked_mse`).

Downstream
    :meth:`MaskedAutoencoder.encode` returns the [CLS] output after the final norm (B, D_e),
    the latent descriptor of the RVE (no masking); :class:`StiffnessHead` is the linear head
    of downstream task I (C11, C22, C33 of the homogenised stiffness). The ODMN head lives
    elsewhere.

Sizes
    :class:`MAEConfig` holds every size; :data:`PRESETS` has ``"paper"`` (45^3 grid, 9^3
    patches, encoder 12 x 768 x 12 heads, decoder 8 x 512 x 16 heads; ~87.3 M encoder and
    ~27.1 M decoder parameters) and ``"small"`` (16^3 grid, 4^3 patches, encoder 4 x 128 x 4,
    decoder 2 x 64 x 4; for CPU training on a few thousand RVEs).

Checkpoints
    :func:`save_encoder` writes a plain ``torch.save`` dict (``format``, ``version``,
    ``polyfe2_version``, ``config``, ``parts``, ``state_dict``, ``normalisation``,
    ``metadata``) holding tensors and plain Python data only, so that :func:`load_encoder`
    reads it with ``weights_only=True``. :func:`load_encoder` raises a one-line
    :class:`polyfe2.errors.InputError` naming the file and the key when the file is missing,
    not a polyfe2 MAE checkpoint, or of another architecture than the expected config.
"""
from __future__ import annotations

import math
import numbers
import os
from dataclasses import MISSING, asdict, dataclass, fields, replace
from typing import Any, Dict, NamedTuple, Optional, Tuple

import torch
from torch import Tensor, nn

from .. import __version__
from ..checkpoints import plain_data, read_checkpoint, save_checkpoint
from ..errors import InputError

__all__ = [
    "MAEConfig",
    "PRESETS",
    "ARCH_FIELDS",
    "MaskedAutoencoder",
    "StiffnessHead",
    "LoadedEncoder",
    "sincos_3d",
    "patchify",
    "unpatchify",
    "random_masking",
    "masked_mse",
    "count_parameters",
    "save_encoder",
    "load_encoder",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
]

CHECKPOINT_FORMAT = "polyfe2.mae"
CHECKPOINT_VERSION = 1

#: Config fields that fix the weights' shapes (compared on loading). ``mask_ratio`` and
#: ``dropout`` are training settings: a checkpoint may be fine-tuned with other values.
ARCH_FIELDS = ("grid", "patch", "in_channels", "enc_dim", "enc_depth", "enc_heads",
               "dec_dim", "dec_depth", "dec_heads", "mlp_ratio")

#: State-dict prefixes of the encoder part (patch embedding, [CLS], transformer, final norm).
ENCODER_PREFIXES = ("patch_embed.", "cls_token", "encoder.", "enc_norm.")


# --------------------------------------------------------------------------- configuration

@dataclass(frozen=True, kw_only=True)
class MAEConfig:
    """Sizes and training settings of the masked autoencoder.

    Parameters
    ----------
    grid : int
        Voxels per edge ``D`` of the (cubic) input grid.
    patch : int
        Patch edge ``P`` in voxels; ``grid`` must be a multiple of it.
    in_channels : int
        Numbers per voxel ``C`` (4: the quaternion).
    enc_dim, enc_depth, enc_heads : int
        Encoder width ``D_e`` (a multiple of ``enc_heads``, at least 6 for the position
        codes), number of blocks and attention heads.
    dec_dim, dec_depth, dec_heads : int
        The same for the decoder.
    mlp_ratio : float
        Width of the blocks' MLP as a multiple of the model width (4).
    mask_ratio : float
        Fraction of patches masked during pretraining, in [0, 1) (0.4).
    dropout : float
        Dropout in the transformer blocks, in [0, 1) (0).

    Raises
    ------
    ValueError
        One line naming the field and what was expected.
    """

    grid: int
    patch: int
    in_channels: int = 4
    enc_dim: int
    enc_depth: int
    enc_heads: int
    dec_dim: int
    dec_depth: int
    dec_heads: int
    mlp_ratio: float = 4.0
    mask_ratio: float = 0.4
    dropout: float = 0.0

    def __post_init__(self):
        def fail(name, expected):
            raise ValueError(f"MAEConfig.{name}: expected {expected}, got {getattr(self, name)!r}")

        for f in fields(self):
            v = getattr(self, f.name)
            if f.type in ("int", int):
                if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                    fail(f.name, "a positive integer")
                object.__setattr__(self, f.name, int(v))
            else:
                if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                    fail(f.name, "a finite number")
                object.__setattr__(self, f.name, float(v))
        if self.grid % self.patch:
            fail("grid", f"a multiple of patch {self.patch}")
        for part in ("enc", "dec"):
            dim, heads = getattr(self, f"{part}_dim"), getattr(self, f"{part}_heads")
            if dim < 6:
                fail(f"{part}_dim", "at least 6 (3 axes x sin/cos in the position codes)")
            if dim % heads:
                fail(f"{part}_dim", f"a multiple of {part}_heads {heads}")
        if self.mlp_ratio <= 0 or int(self.mlp_ratio * min(self.enc_dim, self.dec_dim)) < 1:
            fail("mlp_ratio", "a positive number")
        if not 0.0 <= self.mask_ratio < 1.0:
            fail("mask_ratio", "a number in [0, 1)")
        if not 0.0 <= self.dropout < 1.0:
            fail("dropout", "a number in [0, 1)")

    @property
    def patches_per_axis(self) -> int:
        """``G = grid / patch``."""
        return self.grid // self.patch

    @property
    def num_patches(self) -> int:
        """``L = G**3`` tokens per RVE (without [CLS])."""
        return self.patches_per_axis ** 3

    @property
    def patch_values(self) -> int:
        """``d = P**3 C``: numbers per patch, the decoder's output width."""
        return self.patch ** 3 * self.in_channels

    def to_dict(self) -> Dict[str, Any]:
        """Plain dict of all fields (for checkpoints and JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data) -> "MAEConfig":
        """Inverse of :meth:`to_dict`; unknown or missing fields raise a one-line ValueError."""
        if not isinstance(data, dict):
            raise ValueError(f"MAEConfig: expected a mapping of fields, got {type(data).__name__}")
        names = [f.name for f in fields(cls)]
        for key in data:
            if key not in names:
                raise ValueError(f"MAEConfig: unknown field {key!r}; expected one of {', '.join(names)}")
        try:
            return cls(**data)
        except TypeError as exc:      # a required field is missing
            missing = [f.name for f in fields(cls) if f.name not in data and f.default is MISSING]
            raise ValueError(f"MAEConfig: missing field(s) {', '.join(missing) or '?'}") from exc


PRESETS: Dict[str, MAEConfig] = {
    # paper 000, section 2.2: 45^3 grid, 9^3 patches (125 tokens), 12 x 768 x 12 / 8 x 512 x 16
    "paper": MAEConfig(grid=45, patch=9, enc_dim=768, enc_depth=12, enc_heads=12,
                       dec_dim=512, dec_depth=8, dec_heads=16),
    # CPU size: 16^3 grid, 4^3 patches (64 tokens), 4 x 128 x 4 / 2 x 64 x 4 (~0.9 M parameters)
    "small": MAEConfig(grid=16, patch=4, enc_dim=128, enc_depth=4, enc_heads=4,
                       dec_dim=64, dec_depth=2, dec_heads=4),
}


# --------------------------------------------------------------------------- building blocks

def sincos_3d(n_per_axis: int, dim: int) -> Tensor:
    """Fixed 3D sine-cosine position codes of a ``n x n x n`` patch grid (paper 000, eqs. 3-4).

    The width is split into three equal, even parts of ``w = 2 * (dim // 6)`` columns, one per
    axis; the ``dim - 3 w`` (0 to 5) remaining last columns are zero. Within the part of an
    axis with integer patch coordinate ``t`` (0 .. n-1)::

        column 2m     = sin(t / 10000**(2m / w))
        column 2m + 1 = cos(t / 10000**(2m / w)),     m = 0 .. w/2 - 1

    (the interleaved form of eq. 3 with the standard MAE per-axis frequencies). Row
    ``l = (i * n + j) * n + k`` is ``concat(PE(i), PE(j), PE(k))`` for the patch at (i, j, k)
    along tensor axes (2, 3, 4) -- the token order of :func:`patchify` and of the Conv3d patch
    embedding. The [CLS] code (zero) is not included; the model prepends it.

    Parameters
    ----------
    n_per_axis : int
        Patches per axis ``G`` (>= 1).
    dim : int
        Code width (>= 6).

    Returns
    -------
    torch.Tensor
        (n_per_axis**3, dim) float32, values in [-1, 1]; all rows differ from each other and
        from the zero [CLS] row (the cosine columns of the lowest frequency are 1 at t = 0).
    """
    n, dim = int(n_per_axis), int(dim)
    if n < 1:
        raise ValueError(f"sincos_3d: n_per_axis expected >= 1, got {n_per_axis!r}")
    if dim < 6:
        raise ValueError(f"sincos_3d: dim expected >= 6, got {dim!r}")
    w = 2 * (dim // 6)
    t = torch.arange(n, dtype=torch.float64)
    omega = 1.0 / 10000.0 ** (torch.arange(w // 2, dtype=torch.float64) * 2.0 / w)   # (w/2,)
    ang = t[:, None] * omega[None, :]                                                # (n, w/2)
    pe_axis = torch.stack((torch.sin(ang), torch.cos(ang)), dim=-1).reshape(n, w)   # interleave
    i, j, k = torch.meshgrid(t.long(), t.long(), t.long(), indexing="ij")
    out = torch.zeros(n ** 3, dim, dtype=torch.float64)
    for a, idx in enumerate((i, j, k)):
        out[:, a * w:(a + 1) * w] = pe_axis[idx.reshape(-1)]
    return out.float()


def patchify(x: Tensor, patch: int) -> Tensor:
    """Cut voxel fields into patch tokens.

    Parameters
    ----------
    x : torch.Tensor
        (B, C, D, D, D), ``D`` a multiple of ``patch``.
    patch : int
        Patch edge ``P``.

    Returns
    -------
    torch.Tensor
        (B, L, P**3 C), ``L = (D/P)**3`` in the token order of :func:`sincos_3d`; each row is
        the patch's voxels flattened as (P, P, P, C) (channels last).
    """
    if x.dim() != 5 or any(s % patch for s in x.shape[2:]) or len(set(x.shape[2:])) != 1:
        raise ValueError(f"patchify: expected (B, C, D, D, D) with D a multiple of {patch}, "
                         f"got {tuple(x.shape)}")
    b, c, d = x.shape[0], x.shape[1], x.shape[2]
    g = d // patch
    t = x.reshape(b, c, g, patch, g, patch, g, patch)
    t = t.permute(0, 2, 4, 6, 3, 5, 7, 1)              # (B, gi, gj, gk, pi, pj, pk, C)
    return t.reshape(b, g ** 3, patch ** 3 * c)


def unpatchify(tokens: Tensor, patch: int, grid: int, channels: int) -> Tensor:
    """Exact inverse of :func:`patchify`: (B, L, P**3 C) -> (B, C, D, D, D)."""
    g = grid // patch
    if grid % patch or tokens.dim() != 3 or tokens.shape[1:] != (g ** 3, patch ** 3 * channels):
        raise ValueError(f"unpatchify: expected (B, {g ** 3}, {patch ** 3 * channels}) for grid "
                         f"{grid}, patch {patch}, {channels} channels, got {tuple(tokens.shape)}")
    b = tokens.shape[0]
    t = tokens.reshape(b, g, g, g, patch, patch, patch, channels)
    t = t.permute(0, 7, 1, 4, 2, 5, 3, 6)              # (B, C, gi, pi, gj, pj, gk, pk)
    return t.reshape(b, channels, grid, grid, grid)


def random_masking(batch: int, length: int, mask_ratio: float, *,
                   generator: Optional[torch.Generator] = None,
                   device=None) -> Tuple[Tensor, Tensor, Tensor]:
    """MAE-style random masking, independently per sample.

    Uniform noise is drawn for every token (from ``generator`` when given, on the generator's
    device); the ``keep = round(length * (1 - mask_ratio))`` tokens of smallest noise stay
    visible.

    Returns
    -------
    ids_keep : torch.Tensor
        (B, keep) long: indices of the visible tokens, in shuffled order.
    mask : torch.Tensor
        (B, length) float: 1 for masked, 0 for visible tokens, in grid order.
    ids_restore : torch.Tensor
        (B, length) long: ``torch.gather(shuffled, 1, ids_restore)`` puts the shuffled
        sequence (visible first, then masked) back into grid order.
    """
    if not 0.0 <= float(mask_ratio) < 1.0:
        raise ValueError(f"mask_ratio: expected a number in [0, 1), got {mask_ratio!r}")
    keep = int(round(length * (1.0 - float(mask_ratio))))
    noise_device = generator.device if generator is not None else device
    noise = torch.rand(batch, length, generator=generator, device=noise_device)
    if device is not None:
        noise = noise.to(device)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    mask = torch.ones(batch, length, device=noise.device)
    mask[:, :keep] = 0.0
    mask = torch.gather(mask, 1, ids_restore)
    return ids_shuffle[:, :keep], mask, ids_restore


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Eq. 5: mean over a patch's ``d`` values of the squared error, averaged over masked patches.

    ``pred`` and ``target`` are (B, L, d) patch tokens, ``mask`` (B, L) with 1 = masked. With no
    masked patch at all the loss is 0 (the sum is divided by ``max(mask.sum(), 1)``).
    """
    per_patch = ((pred - target) ** 2).mean(dim=-1)
    return (per_patch * mask).sum() / mask.sum().clamp_min(1.0)


def _transformer(dim: int, heads: int, depth: int, mlp_ratio: float, dropout: float) -> nn.Module:
    layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=int(dim * mlp_ratio),
                                       dropout=dropout, activation="gelu", batch_first=True,
                                       norm_first=True)
    # nested tensors are not used with norm_first (and there is no padding): say so, no warning
    return nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)


def count_parameters(module: nn.Module, prefixes: Optional[Tuple[str, ...]] = None) -> int:
    """Number of parameters of ``module`` (only those whose name starts with one of ``prefixes``)."""
    return sum(p.numel() for name, p in module.named_parameters()
               if prefixes is None or name.startswith(prefixes))


# --------------------------------------------------------------------------- model

class MaskedAutoencoder(nn.Module):
    """3D masked autoencoder of voxel quaternion fields (see the module docstring).

    Parameters
    ----------
    config : MAEConfig
        Sizes and training settings (e.g. ``PRESETS["paper"]``).

    Attributes
    ----------
    enc_pos, dec_pos : torch.Tensor
        Buffers (1, 1 + L, D_e) and (1, 1 + L, D_d): the [CLS] zero row and :func:`sincos_3d`.
    """

    def __init__(self, config: MAEConfig):
        super().__init__()
        if not isinstance(config, MAEConfig):
            raise TypeError(f"MaskedAutoencoder: expected an MAEConfig, got {type(config).__name__}")
        self.config = config
        c = config
        g, e, dd = c.patches_per_axis, c.enc_dim, c.dec_dim

        self.patch_embed = nn.Conv3d(c.in_channels, e, kernel_size=c.patch, stride=c.patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, e))
        self.register_buffer("enc_pos", torch.cat((torch.zeros(1, e), sincos_3d(g, e)))[None],
                             persistent=False)
        self.encoder = _transformer(e, c.enc_heads, c.enc_depth, c.mlp_ratio, c.dropout)
        self.enc_norm = nn.LayerNorm(e)

        self.dec_embed = nn.Linear(e, dd)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dd))
        self.register_buffer("dec_pos", torch.cat((torch.zeros(1, dd), sincos_3d(g, dd)))[None],
                             persistent=False)
        self.decoder = _transformer(dd, c.dec_heads, c.dec_depth, c.mlp_ratio, c.dropout)
        self.dec_norm = nn.LayerNorm(dd)
        self.dec_pred = nn.Linear(dd, c.patch_values)
        self._init_weights()

    def _init_weights(self) -> None:
        """MAE initialisation: xavier-uniform linears and patch projection, zero biases, unit
        norms, N(0, 0.02) [CLS] and mask tokens (the attention in-projections keep torch's
        xavier-uniform)."""
        w = self.patch_embed.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch_embed.bias)
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    # -- sizes
    @property
    def num_patches(self) -> int:
        """Tokens per RVE ``L`` (without [CLS])."""
        return self.config.num_patches

    def num_parameters(self, part: str = "all") -> int:
        """Parameter count of ``"encoder"`` (patch embedding, [CLS], blocks, norm),
        ``"decoder"`` (the rest) or ``"all"``."""
        if part == "all":
            return count_parameters(self)
        enc = count_parameters(self, ENCODER_PREFIXES)
        if part == "encoder":
            return enc
        if part == "decoder":
            return count_parameters(self) - enc
        raise ValueError(f"num_parameters: part expected 'encoder', 'decoder' or 'all', got {part!r}")

    # -- pieces
    def _check(self, x: Tensor) -> None:
        c = self.config
        want = (c.in_channels, c.grid, c.grid, c.grid)
        if x.dim() != 5 or tuple(x.shape[1:]) != want:
            raise ValueError(f"MaskedAutoencoder: expected input (B, {', '.join(map(str, want))}), "
                             f"got {tuple(x.shape)}")

    def embed(self, x: Tensor) -> Tensor:
        """Patch embedding plus position codes: (B, C, D, D, D) -> (B, L, D_e), no [CLS]."""
        self._check(x)
        t = self.patch_embed(x).flatten(2).transpose(1, 2)     # (B, L, D_e), order of patchify
        return t + self.enc_pos[:, 1:]

    def _with_cls(self, t: Tensor) -> Tensor:
        cls = (self.cls_token + self.enc_pos[:, :1]).expand(t.shape[0], -1, -1)
        return torch.cat((cls, t), dim=1)

    def forward_encoder(self, x: Tensor, mask_ratio: float,
                        generator: Optional[torch.Generator] = None) -> Tuple[Tensor, Tensor, Tensor]:
        """Embed, mask, encode. Returns ``(latent (B, 1 + keep, D_e), mask (B, L),
        ids_restore (B, L))``; ``latent[:, 0]`` is [CLS]."""
        t = self.embed(x)
        ids_keep, mask, ids_restore = random_masking(t.shape[0], t.shape[1], mask_ratio,
                                                     generator=generator, device=t.device)
        t = torch.gather(t, 1, ids_keep[..., None].expand(-1, -1, t.shape[-1]))
        latent = self.enc_norm(self.encoder(self._with_cls(t)))
        return latent, mask.to(t.dtype), ids_restore

    def forward_decoder(self, latent: Tensor, ids_restore: Tensor) -> Tensor:
        """Visible latents (with [CLS]) -> predicted patch voxels (B, L, P**3 C) in grid order."""
        y = self.dec_embed(latent)
        b, n_vis = y.shape[0], y.shape[1] - 1
        masked = self.mask_token.expand(b, ids_restore.shape[1] - n_vis, -1)
        seq = torch.cat((y[:, 1:], masked), dim=1)                       # shuffled order
        seq = torch.gather(seq, 1, ids_restore[..., None].expand(-1, -1, y.shape[-1]))
        y = torch.cat((y[:, :1], seq), dim=1) + self.dec_pos
        y = self.dec_norm(self.decoder(y))
        return self.dec_pred(y[:, 1:])

    def forward(self, x: Tensor, mask_ratio: Optional[float] = None,
                generator: Optional[torch.Generator] = None,
                target: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
        """Masked reconstruction and its eq. 5 loss.

        Parameters
        ----------
        x : torch.Tensor
            (B, C, D, D, D) voxel quaternions.
        mask_ratio : float, optional
            Defaults to ``config.mask_ratio``.
        generator : torch.Generator, optional
            Source of the masking noise; the same seed gives the same mask.
        target : torch.Tensor, optional
            Voxels to reconstruct, same shape as ``x`` (default ``x``).

        Returns
        -------
        loss : torch.Tensor
            Scalar, eq. 5 over the masked patches.
        pred : torch.Tensor
            (B, L, P**3 C) predicted voxels of every patch (:func:`unpatchify` for a grid).
        mask : torch.Tensor
            (B, L), 1 = masked.
        """
        ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        latent, mask, ids_restore = self.forward_encoder(x, ratio, generator)
        pred = self.forward_decoder(latent, ids_restore)
        if target is None:
            target = x
        elif target.shape != x.shape:
            raise ValueError(f"MaskedAutoencoder: target shape {tuple(target.shape)} differs from "
                             f"input shape {tuple(x.shape)}")
        loss = masked_mse(pred, patchify(target, self.config.patch).to(pred.dtype), mask)
        return loss, pred, mask

    def tokens(self, x: Tensor) -> Tensor:
        """All tokens through the encoder, no masking: (B, 1 + L, D_e) after the final norm,
        [CLS] first."""
        return self.enc_norm(self.encoder(self._with_cls(self.embed(x))))

    def encode(self, x: Tensor) -> Tensor:
        """The RVE's latent descriptor: the [CLS] output (B, D_e) of :meth:`tokens`."""
        return self.tokens(x)[:, 0]


class StiffnessHead(nn.Module):
    """Linear head on the [CLS] latent (downstream task I: C11, C22, C33 of the homogenised
    stiffness, in whatever normalised units the training uses).

    Parameters
    ----------
    enc_dim : int
        Latent width ``D_e``.
    n_out : int, optional
        Outputs (3).
    """

    def __init__(self, enc_dim: int, n_out: int = 3):
        super().__init__()
        self.linear = nn.Linear(enc_dim, n_out)

    def forward(self, cls: Tensor) -> Tensor:   # (B, enc_dim) -> (B, n_out)
        return self.linear(cls)


# --------------------------------------------------------------------------- checkpoints

class LoadedEncoder(NamedTuple):
    """What :func:`load_encoder` returns."""
    model: MaskedAutoencoder
    config: MAEConfig
    normalisation: dict
    metadata: dict
    head: dict


def save_encoder(path, model: MaskedAutoencoder, config: Optional[MAEConfig] = None,
                 normalisation: Optional[dict] = None, metadata: Optional[dict] = None, *,
                 include_decoder: bool = True, head: Optional[dict] = None) -> None:
    """Write a checkpoint of ``model`` (a plain ``torch.save`` dict; the file is replaced
    atomically).

    Parameters
    ----------
    path : str or os.PathLike
    model : MaskedAutoencoder
    config : MAEConfig, optional
        Must equal ``model.config`` (default).
    normalisation : dict, optional
        Scaling of inputs/targets (e.g. stiffness mean and std): tensors and plain data.
    metadata : dict, optional
        Plain data (training settings, data set, history ...).
    include_decoder : bool, optional
        Save the decoder too (True: pretraining can resume). Without it, the loaded model's
        decoder is freshly initialised.
    head : dict, optional
        A fine-tuned head: ``{"task": name, "state": its state dict}`` (tensors and plain data).
    """
    config = model.config if config is None else config
    if config != model.config:
        raise ValueError("save_encoder: config differs from model.config")
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()
             if include_decoder or k.startswith(ENCODER_PREFIXES)}
    ckpt = dict(format=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION, polyfe2_version=__version__,
                config=config.to_dict(),
                parts=["encoder", "decoder"] if include_decoder else ["encoder"],
                state_dict=state,
                normalisation=plain_data(dict(normalisation or {}), "normalisation"),
                metadata=plain_data(dict(metadata or {}), "metadata"),
                head=plain_data(dict(head or {}), "head"))
    save_checkpoint(path, ckpt)


def load_encoder(path, expect: Optional[MAEConfig] = None) -> LoadedEncoder:
    """Read a checkpoint written by :func:`save_encoder` (on the CPU, ``weights_only=True``).

    Parameters
    ----------
    path : str or os.PathLike
    expect : MAEConfig, optional
        The architecture the caller needs: every field of :data:`ARCH_FIELDS` must match. Its
        training settings (``mask_ratio``, ``dropout``) replace the saved ones in the returned
        model and config.

    Returns
    -------
    LoadedEncoder
        ``(model, config, normalisation, metadata)``; the model is on the CPU in the saved
        dtype, in training mode (call ``.eval()`` for inference).

    Raises
    ------
    polyfe2.errors.InputError
        One line naming the file and the key: file missing or unreadable, not a polyfe2 MAE
        checkpoint (``format``), another version, a bad ``config``, a config differing from
        ``expect`` (``config.<field>``: both values) or weights not fitting it (``state_dict``).
    """
    path = os.fspath(path)
    ckpt = read_checkpoint(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "polyfe2 MAE checkpoint",
                           mappings=("config", "state_dict"))
    try:
        config = MAEConfig.from_dict(ckpt["config"])
    except ValueError as exc:
        raise InputError(str(exc), file=path, key="config") from None
    if expect is not None:
        diff = [(f, getattr(config, f), getattr(expect, f)) for f in ARCH_FIELDS
                if getattr(config, f) != getattr(expect, f)]
        if diff:
            text = "; ".join(f"{f} is {a!r} in the checkpoint, expected {b!r}" for f, a, b in diff)
            raise InputError(f"config mismatch: {text}", file=path, key=f"config.{diff[0][0]}")
        config = replace(config, mask_ratio=expect.mask_ratio, dropout=expect.dropout)
    state = ckpt["state_dict"]
    parts = ckpt.get("parts", ["encoder", "decoder"])
    try:
        model = MaskedAutoencoder(config)
        if "patch_embed.weight" in state:
            model.to(state["patch_embed.weight"].dtype)
        result = model.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys
                   if "decoder" in parts or k.startswith(ENCODER_PREFIXES)]
        if missing or result.unexpected_keys:
            what = (f"missing {missing[0]!r}" if missing
                    else f"unexpected {result.unexpected_keys[0]!r}")
            raise RuntimeError(f"{what}, {len(missing) + len(result.unexpected_keys)} key(s) in all")
    except (TypeError, RuntimeError, KeyError, AttributeError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"weights do not match the config ({msg})", file=path,
                         key="state_dict") from None
    normalisation = ckpt.get("normalisation") or {}
    metadata = ckpt.get("metadata") or {}
    return LoadedEncoder(model, config, dict(normalisation), dict(metadata), dict(ckpt.get("head") or {}))
