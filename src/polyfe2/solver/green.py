"""Green operator of a homogeneous reference medium and the divergence norm.

For a reference stiffness C⁰ (in dP/dF form), the periodic Green operator in Fourier space is

    Γ̂_ijkl(ξ) = (K⁻¹)_ik ξ_j ξ_l,   K_ik = C⁰_ijkl ξ_j ξ_l,

(Moulinec & Suquet 1998; DAMASK's ``utilities_updateGamma``). It maps any compatible field
H = a⊗ξ back onto itself through C⁰ (Γ̂:C⁰:H = H), so the basic scheme
F ← F − Γ⁰ * P(F) has exactly the equilibrated fields as fixed points.
"""
from __future__ import annotations

import numpy as np
import torch

from .fft import SerialFFT
from .grid import Grid


def derivative_symbol(grid: Grid, kind: str, device, dtype=torch.float64, fft=None) -> torch.Tensor:
    """Complex Fourier symbol D(k) of the first derivative on the spectral array of ``fft``
    (default: one rank, ``(Nx, Ny, Nz//2+1, 3)``): the Fourier transform of ∂u/∂x_j is D_j û,
    with lengths in voxel spacings (see :func:`frequencies`).

    'continuous': D_j = 2πi ξ_j (Moulinec & Suquet; Nyquist set to zero).
    'rotated': the finite difference on the grid rotated by 45° (Willot 2015, C. R.
    Mécanique 343; DAMASK's ``FWBW_difference``),
    D_1 = ¼ (e^{iθ_1} − 1)(e^{iθ_2} + 1)(e^{iθ_3} + 1)/h_1 and cyclically, θ_j = 2π k_j/N_j.
    Its Green operator converges for voids and gives fields without Gibbs oscillations.
    """
    cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    if kind == "continuous":
        return (2j * np.pi) * frequencies(grid, device, dtype, fft=fft).to(cdtype)
    if kind != "rotated":
        raise ValueError(f"unknown derivative {kind!r}")
    size = np.asarray(grid.size, dtype=float)
    h = size / np.asarray(grid.cells) / np.median(size / np.asarray(grid.cells))
    phases = [torch.as_tensor(np.exp(2j * np.pi * k / n), device=device, dtype=cdtype)
              for n, k in zip(grid.cells, _axis_frequencies(grid, fft))]
    e = torch.stack(torch.meshgrid(*phases, indexing="ij"), dim=-1)
    D = []
    for j in range(3):
        term = (e[..., j] - 1.0) / h[j]
        for m in range(3):
            if m != j:
                term = term * (e[..., m] + 1.0) / 2.0
        D.append(term)
    return torch.stack(D, dim=-1)


def _axis_frequencies(grid: Grid, fft) -> list[np.ndarray]:
    return (fft or SerialFFT(grid)).axis_frequencies()


def frequencies(grid: Grid, device, dtype, *, scaled: bool = True, fft=None) -> torch.Tensor:
    """Wave vectors ξ = k/L on the spectral array of ``fft`` (default: one rank's rfft layout,
    ``(Nx, Ny, Nz//2+1, 3)``).

    ``scaled`` measures lengths in voxel spacings (the median spacing of the three axes),
    which makes the divergence norm independent of the unit of length and of the
    resolution (DAMASK's default divergence correction, 'grid+size').
    The Nyquist frequency of an even axis is set to zero: its sign is ambiguous, so the
    first derivative there is undefined (GooseFFT's and DAMASK's treatment).
    """
    size = np.asarray(grid.size, dtype=float)
    if scaled:
        size = size / np.median(size / np.asarray(grid.cells))
    axes = []
    for n, L, k in zip(grid.cells, size, _axis_frequencies(grid, fft)):
        k = k.copy()
        if n % 2 == 0:
            k[np.abs(k) == n // 2] = 0.0
        axes.append(torch.as_tensor(k / L, device=device, dtype=dtype))
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)


class GreenOperator:
    """Γ⁰ * P and RMS(Div P) on a grid, with tensors on ``device``.

    Parameters
    ----------
    grid : Grid
    C0 : (3, 3, 3, 3) tensor
        Reference stiffness dP/dF.
    fft : SerialFFT, FFTWSlabFFT or TorchSlabFFT, optional
        The transform (:mod:`.fft`); default one rank. With a slab transform every method works
        on this rank's slab and :meth:`divergence_rms` sums over the ranks.
    """

    def __init__(self, grid: Grid, C0: torch.Tensor, derivative: str = "continuous", fft=None):
        self.grid = grid
        self.fft_impl = fft or SerialFFT(grid)
        self.device, self.dtype = C0.device, C0.dtype
        self.D = derivative_symbol(grid, derivative, self.device, self.dtype, fft=self.fft_impl)  # (spectral, 3)
        self.set_reference(C0)

    def set_reference(self, C0: torch.Tensor) -> None:
        """(Re)build K⁻¹ for a new reference stiffness; K_ik = C⁰_ijkl D̄_j D_l is Hermitian."""
        self.C0 = C0
        D = self.D
        K = torch.einsum("ijkl,...j,...l->...ik", C0.to(D.dtype), D.conj(), D)
        zero = (D.abs() < 1e-12).all(dim=-1)
        K[zero] = torch.eye(3, device=self.device, dtype=D.dtype)
        Kinv = torch.linalg.inv(K)
        Kinv[zero] = 0.0  # k = 0 (the average) is handled by the boundary conditions
        self.Kinv = Kinv

    def fft(self, T: torch.Tensor) -> torch.Tensor:
        return self.fft_impl.forward(T)

    def ifft(self, T_hat: torch.Tensor) -> torch.Tensor:
        return self.fft_impl.backward(T_hat)

    def convolve(self, P_hat: torch.Tensor) -> torch.Tensor:
        """Γ⁰ * P in real space, given P̂ (the k = 0 term of the result is zero).

        (Γ̂:P̂)_ij = (K⁻¹)_ik (P̂_kl D̄_l) D_j, evaluated without forming Γ̂ (9× less memory).
        """
        PD = torch.einsum("...kl,...l->...k", P_hat, self.D.conj())
        a = torch.einsum("...ik,...k->...i", self.Kinv, PD)
        return self.ifft(a[..., :, None] * self.D[..., None, :])

    def divergence_rms(self, P_hat: torch.Tensor) -> float:
        """Root mean square over the cells of Div P (Parseval), in units of P per scaled length.

        Div P in Fourier space is P̂_ij D̄_j (the adjoint of the gradient D). With the rfft
        layout, the inner planes 0 < k < N/2 of the halved axis stand for two conjugate
        frequencies and count twice.
        """
        div = torch.einsum("...ij,...j->...i", P_hat, self.D.conj())
        power = (div.real**2 + div.imag**2).sum(dim=-1)
        axis = self.fft_impl.halved
        n = self.grid.cells[axis]
        weight = torch.full((power.shape[axis],), 2.0, device=power.device, dtype=power.dtype)
        weight[0] = 1.0
        if n % 2 == 0:
            weight[-1] = 1.0
        shape = [1, 1, 1]
        shape[axis] = -1
        total = self.fft_impl.sum(float((power * weight.reshape(shape)).sum()))
        return float(np.sqrt(total)) / self.grid.N
