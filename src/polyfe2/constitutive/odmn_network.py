"""The orientation-aware interaction-based deep material network (ODMN; paper 000, section 2.3,
and its reference 17, Wei, Su & Chen, CMAME 441 (2025) 117977): the tree, its interaction
coefficients, its homogenised elastic stiffness (the offline stage) and its parameter files.

Tree of depth N, stored in heap order: internal node j = 0 .. 2^N − 2 (level l holds
j = 2^l − 1 .. 2^(l+1) − 2, its children are 2j + 1 and 2j + 2), leaves i = 0 .. 2^N − 1 from left
to right. Parameters (eq. 8): per leaf a weight z^i (W^i = softplus(z^i)) and an orientation (Bunge
Euler angles, radians, DAMASK's passive convention); per internal node (θ, φ) with the unit
normal (eq. 7)

    N = (cos 2πφ sin πθ, sin 2πφ sin πθ, cos πθ).

Depth 6 has 64 + 3·64 + 2·63 = 382 parameters.

Interaction coefficients. For node j with the total leaf weights W_L and W_R of its left and
right subtree,

    α^{ij} = W_R / (W_L + W_R)  for leaves i of the left subtree,
    α^{ij} = −W_L / (W_L + W_R) for leaves i of the right subtree,   0 elsewhere,

so that Σ_i W^i α^{ij} = 0 and the downscaling F^i = F̄ + Σ_j α^{ij} a^j ⊗ N^j (eq. 9) keeps the
average F̄ = Σ W^i F^i / Σ W^i. α (2^N × 2^N − 1) is two matrix products with the tree's fixed
membership masks.

Offline stiffness. In linear elasticity the tree is a hierarchy of rank-one laminates: node by
node, from the leaves up, with f₁ = W_L/(W_L + W_R), f₂ = 1 − f₁ and the children's stiffnesses
C₁ (left) and C₂ (right) in Mandel form,

    C̄ = f₁C₁ + f₂C₂ − f₁f₂ ΔC H (Hᵀ Ĉ H)⁻¹ Hᵀ ΔC,   ΔC = C₁ − C₂,  Ĉ = f₂C₁ + f₁C₂,

with H (6×3) the Mandel vector of sym(a ⊗ N) as a linear map of a (the exact stiffness of a
laminate of normal N; e.g. Milton, The Theory of Composites, ch. 9). Every level is one batched
step over its nodes and all samples; the whole computation is differentiable in torch, so the
parameters are fitted to DNS stiffness with the relative Frobenius loss (eq. 13).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..checkpoints import plain_data, read_checkpoint, save_checkpoint
from ..errors import InputError
from ..mechanics import MANDEL_WEIGHTS, VOIGT_PAIRS, cubic_stiffness, rotate_stiffness, to_mandel

PARAMETERS_FORMAT = "polyfe2.odmn_parameters"
PARAMETERS_VERSION = 1


# ----------------------------------------------------------------------------------------------
# the tree
# ----------------------------------------------------------------------------------------------
def subtree_masks(depth: int, *, dtype=torch.float64, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(left, right): (2^N, 2^N − 1) 0/1 matrices, leaf i in the left/right subtree of node j."""
    n_leaves, n_nodes = 2**depth, 2**depth - 1
    left = torch.zeros(n_leaves, n_nodes, dtype=dtype, device=device)
    right = torch.zeros_like(left)
    for level in range(depth):
        block = 2 ** (depth - level)
        for p in range(2**level):
            j = 2**level - 1 + p
            left[p * block: p * block + block // 2, j] = 1.0
            right[p * block + block // 2: (p + 1) * block, j] = 1.0
    return left, right


def interaction_coefficients(W: torch.Tensor, depth: int) -> torch.Tensor:
    """α (..., 2^N, 2^N − 1) from the leaf weights W (..., 2^N) (module docstring)."""
    left, right = subtree_masks(depth, dtype=W.dtype, device=W.device)
    W_L, W_R = W @ left, W @ right
    total = W_L + W_R
    return left * (W_R / total)[..., None, :] - right * (W_L / total)[..., None, :]


def normals(theta: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """Unit normals (..., 3) of eq. 7 from θ and φ (...)."""
    s = torch.sin(math.pi * theta)
    return torch.stack([torch.cos(2 * math.pi * phi) * s, torch.sin(2 * math.pi * phi) * s,
                        torch.cos(math.pi * theta)], dim=-1)


def euler_to_matrix(euler: torch.Tensor) -> torch.Tensor:
    """Lab-to-crystal rotation matrices (..., 3, 3) from Bunge Euler angles (..., 3) in radians,
    DAMASK's passive convention (``damask.Rotation.from_Euler_angles(...).as_matrix()``), in
    torch so that the orientations can be fitted."""
    c1, c, c2 = torch.cos(euler).unbind(-1)
    s1, s, s2 = torch.sin(euler).unbind(-1)
    rows = [torch.stack([c1 * c2 - s1 * c * s2, s1 * c2 + c1 * c * s2, s * s2], -1),
            torch.stack([-c1 * s2 - s1 * c * c2, -s1 * s2 + c1 * c * c2, s * c2], -1),
            torch.stack([s1 * s, -c1 * s, c], -1)]
    return torch.stack(rows, dim=-2)


def laminate_projector(n: torch.Tensor) -> torch.Tensor:
    """H (..., 6, 3): the Mandel vector of sym(a ⊗ n) is H a."""
    w = torch.as_tensor(MANDEL_WEIGHTS, dtype=n.dtype, device=n.device)
    H = n.new_zeros(n.shape[:-1] + (6, 3))
    for m, (i, j) in enumerate(VOIGT_PAIRS):
        H[..., m, i] += 0.5 * w[m] * n[..., j]
        H[..., m, j] += 0.5 * w[m] * n[..., i]
    return H


def tree_stiffness(C_leaves: torch.Tensor, W: torch.Tensor, N: torch.Tensor) -> torch.Tensor:
    """Homogenised stiffness (..., 6, 6) of the tree (module docstring).

    Parameters
    ----------
    C_leaves : (..., 2^N, 6, 6) Mandel stiffness of every leaf.
    W : (2^N,) or (..., 2^N) leaf weights.
    N : (2^N − 1, 3) or (..., 2^N − 1, 3) unit normals of the internal nodes, heap order.
    """
    n_leaves = C_leaves.shape[-3]
    depth = int(round(math.log2(n_leaves)))
    C = C_leaves
    Wl = W.expand(C.shape[:-2])
    for level in reversed(range(depth)):
        C1, C2 = C[..., 0::2, :, :], C[..., 1::2, :, :]
        W1, W2 = Wl[..., 0::2], Wl[..., 1::2]
        f1 = (W1 / (W1 + W2))[..., None, None]
        f2 = 1.0 - f1
        n = N[..., 2**level - 1: 2 ** (level + 1) - 1, :]
        H = laminate_projector(n).expand(C1.shape[:-2] + (6, 3))
        dC = C1 - C2
        hat = f2 * C1 + f1 * C2
        HtdC = H.transpose(-1, -2) @ dC
        C = f1 * C1 + f2 * C2 - f1 * f2 * HtdC.transpose(-1, -2) @ torch.linalg.solve(H.transpose(-1, -2) @ hat @ H, HtdC)
        Wl = W1 + W2
    return C[..., 0, :, :]


# ----------------------------------------------------------------------------------------------
# parameters
# ----------------------------------------------------------------------------------------------
@dataclass
class ODMNParameters:
    """One ODMN parameter set (eq. 8): ``z`` (2^N,), ``euler`` (2^N, 3) radians, ``theta``,
    ``phi`` (2^N − 1,); ``crystal`` the lattice of the leaves, ``provenance`` how it was made."""

    z: torch.Tensor
    euler: torch.Tensor
    theta: torch.Tensor
    phi: torch.Tensor
    crystal: str = "cF"
    provenance: dict = field(default_factory=dict)

    @property
    def depth(self) -> int:
        return int(round(math.log2(self.z.shape[-1])))

    @property
    def weights(self) -> torch.Tensor:
        return torch.nn.functional.softplus(self.z)

    @property
    def normals(self) -> torch.Tensor:
        return normals(self.theta, self.phi)

    def count(self) -> int:
        """Number of scalar parameters (depth 6: 382)."""
        return sum(t.numel() for t in (self.z, self.euler, self.theta, self.phi))

    @classmethod
    def random(cls, depth: int, seed: int = 0, dtype=torch.float64) -> "ODMNParameters":
        """A random set: weights near 1, uniform orientations, random normals."""
        g = torch.Generator().manual_seed(seed)
        n = 2**depth
        euler = torch.stack([2 * math.pi * torch.rand(n, generator=g, dtype=dtype),
                             torch.arccos(2 * torch.rand(n, generator=g, dtype=dtype) - 1),
                             2 * math.pi * torch.rand(n, generator=g, dtype=dtype)], -1)
        return cls(z=0.5 + 0.1 * torch.randn(n, generator=g, dtype=dtype), euler=euler,
                   theta=torch.rand(n - 1, generator=g, dtype=dtype), phi=torch.rand(n - 1, generator=g, dtype=dtype))

    def leaf_stiffness(self, c11, c12, c44) -> torch.Tensor:
        """(..., 2^N, 6, 6) Mandel stiffness of the leaves for cubic constants (scalars or (...,))."""
        R = euler_to_matrix(self.euler)
        c = [torch.as_tensor(x, dtype=self.z.dtype) for x in (c11, c12, c44)]
        base = torch.stack([cubic_stiffness(1.0, 0.0, 0.0, dtype=self.z.dtype), cubic_stiffness(0.0, 1.0, 0.0,
                            dtype=self.z.dtype), cubic_stiffness(0.0, 0.0, 1.0, dtype=self.z.dtype)])
        C = torch.einsum("...k,kabcd->...abcd", torch.stack(torch.broadcast_tensors(*c), -1), base)
        return to_mandel(rotate_stiffness(C[..., None, :, :, :, :], R))

    def stiffness(self, c11, c12, c44) -> torch.Tensor:
        """Homogenised Mandel stiffness (..., 6, 6) for single-crystal constants (scalars or (...,))."""
        return tree_stiffness(self.leaf_stiffness(c11, c12, c44), self.weights, self.normals)

    def save(self, path: Path) -> Path:
        save_checkpoint(path, {"format": PARAMETERS_FORMAT, "version": PARAMETERS_VERSION, "depth": self.depth,
                               "crystal": self.crystal, "provenance": plain_data(dict(self.provenance), "provenance"),
                               **{k: getattr(self, k).detach().cpu() for k in ("z", "euler", "theta", "phi")}})
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> "ODMNParameters":
        """Read a parameter file; a missing, malformed or mismatched one is a one-line InputError."""
        path = Path(path)
        data = read_checkpoint(path, PARAMETERS_FORMAT, PARAMETERS_VERSION, "ODMN parameter file", mappings=())
        depth = data.get("depth")
        shapes = {"z": (2**depth,), "euler": (2**depth, 3), "theta": (2**depth - 1,), "phi": (2**depth - 1,)} \
            if isinstance(depth, int) and 0 <= depth <= 12 else None
        if shapes is None:
            raise InputError(f"expected a depth 0..12, got {depth!r}", file=path, key="depth")
        for k, shape in shapes.items():
            t = data.get(k)
            if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape or not torch.isfinite(t).all():
                raise InputError(f"expected finite values of shape {shape} for depth {depth}", file=path, key=k)
        return cls(**{k: data[k].to(torch.float64) for k in shapes}, crystal=str(data.get("crystal", "cF")),
                   provenance=dict(data.get("provenance", {})))


# ----------------------------------------------------------------------------------------------
# fitting (offline stage)
# ----------------------------------------------------------------------------------------------
def relative_frobenius_loss(C: torch.Tensor, C_ref: torch.Tensor) -> torch.Tensor:
    """Eq. 13: mean over samples of ||C − C_ref||_F / ||C_ref||_F."""
    return (torch.linalg.matrix_norm(C - C_ref) / torch.linalg.matrix_norm(C_ref)).mean()


def fit(targets: torch.Tensor, constants: torch.Tensor, depth: int = 6, steps: int = 2000, lr: float = 0.02,
        seed: int = 0, initial: ODMNParameters | None = None, progress=None) -> tuple[ODMNParameters, list[float]]:
    """Fit a parameter set to DNS stiffness.

    Parameters
    ----------
    targets : (S, 6, 6) Mandel stiffness of the microstructure for S single-crystal triplets.
    constants : (S, 3) the triplets (C11, C12, C44) in Pa.
    Adam with a cosine decay of the learning rate to 1 % of ``lr``; returns the parameters and the
    loss (eq. 13) of every step.
    """
    p = initial or ODMNParameters.random(depth, seed)
    leaves = {k: getattr(p, k).clone().requires_grad_(True) for k in ("z", "euler", "theta", "phi")}
    opt = torch.optim.Adam(leaves.values(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1), eta_min=0.01 * lr)
    scale = targets.abs().amax()
    c = constants / scale
    history = []
    for _ in range(steps):
        opt.zero_grad()
        q = ODMNParameters(**leaves, crystal=p.crystal)
        loss = relative_frobenius_loss(q.stiffness(c[:, 0], c[:, 1], c[:, 2]), targets / scale)
        loss.backward()
        opt.step()
        schedule.step()
        history.append(float(loss.detach()))
        if progress is not None:
            progress(len(history), history[-1])
    out = ODMNParameters(**{k: v.detach() for k, v in leaves.items()}, crystal=p.crystal,
                         provenance={"fit": {"samples": int(targets.shape[0]), "steps": steps, "lr": lr, "seed": seed,
                                             "loss": history[-1] if history else None}})
    return out, history
