"""Green operator of a homogeneous reference medium and the divergence norm.

For a reference stiffness C⁰ (in dP/dF form), the periodic Green operator in Fourier space is

    Γ̂_ijkl(ξ) = (K⁻¹)_ik ξ_j ξ_l,   K_ik = C⁰_ijkl ξ_j ξ_l,

(Moulinec & Suquet 1998; DAMASK's ``utilities_updateGamma``). It maps any compatible field
H = a⊗ξ back onto itself through C⁰ (Γ̂:C⁰:H = H), so the basic scheme
F ← F − Γ⁰ * P(F) has exactly the equilibrated fields as fixed points.
"""
from __future__ import annotations

import torch

from .grid import Grid

FIELD_AXES = (0, 1, 2)


class GreenOperator:
    """Γ⁰ * P and RMS(Div P) on a grid, with tensors on ``device``.

    Parameters
    ----------
    grid : Grid
    C0 : (3, 3, 3, 3) tensor
        Reference stiffness dP/dF.
    """

    def __init__(self, grid: Grid, C0: torch.Tensor, derivative: str = "continuous"):
        self.grid = grid
        self.device, self.dtype = C0.device, C0.dtype
        self.D = grid.derivative_symbol(derivative, self.device, self.dtype)  # (Nx, Ny, Nz/2+1, 3)
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
        return torch.fft.rfftn(T, dim=FIELD_AXES)

    def ifft(self, T_hat: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfftn(T_hat, s=self.grid.cells, dim=FIELD_AXES)

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
        layout, the planes 0 < k_z < Nz/2 stand for two conjugate frequencies and count twice.
        """
        div = torch.einsum("...ij,...j->...i", P_hat, self.D.conj())
        power = (div.real**2 + div.imag**2).sum(dim=-1)
        nz = self.grid.cells[2]
        weight = torch.full((power.shape[-1],), 2.0, device=power.device, dtype=power.dtype)
        weight[0] = 1.0
        if nz % 2 == 0:
            weight[-1] = 1.0
        total = (power * weight).sum()
        return float(torch.sqrt(total)) / self.grid.N
