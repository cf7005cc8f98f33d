"""Homogenised elastic stiffness of a periodic microstructure (the DNS labels of the ODMN and of
the microstructure encoders).

Six load cases, each solved at F̄ = I ± ε E_b (one increment of the spectral solver with the
whole average F prescribed), E_b the symmetric unit strain of Mandel component b (E_11, E_22,
E_33 and (e_2⊗e_3 + e_3⊗e_2)/√2, ...). Every phase is served by the ``elastic`` backend (cubic
St Venant-Kirchhoff), and the Mandel column b of the homogenised stiffness is the central
difference C̄_ab = (P̄_a(+ε) − P̄_a(−ε)) / 2ε of the symmetrised average P: the quadratic
(geometric) term of the finite-strain law cancels, the error is O(ε²). The material model, the
Green operator and PETSc's solver are built once and serve all twelve solves.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from ..errors import InputError, SolverError
from ..mechanics import MANDEL_WEIGHTS, VOIGT_PAIRS, from_mandel, symmetric, tensor_to_voigt
from ..solver.spectral import SpectralSolver
from .config import Geometry, LoadCase, MaterialConfig, RunConfig
from .runner import build_material_model

#: default strain amplitude of the central differences
STRAIN = 1e-5
#: equilibrium tolerance relative to max|P̄| (tight: the stiffness is P̄ / ε)
EPS_DIV_REL = 1e-7

_W = np.array(MANDEL_WEIGHTS)


def mandel_unit_strain(b: int) -> np.ndarray:
    """The symmetric (3,3) strain whose Mandel vector is the unit vector e_b."""
    E = np.zeros((3, 3))
    i, j = VOIGT_PAIRS[b]
    E[i, j] = E[j, i] = 1.0 / _W[b]
    return E


def load_microstructure(geometry, material) -> RunConfig:
    """A run config of a DAMASK geometry (.vti) and material.yaml for :func:`homogenized_stiffness`."""
    config = RunConfig(Geometry.load(geometry), MaterialConfig.load(material), LoadCase([]), device="cpu")
    config.validate()
    return config


def homogenized_stiffness(config: RunConfig, strain: float = STRAIN, device: str = "cpu") -> np.ndarray:
    """(6, 6) Mandel matrix of the homogenised elastic stiffness of ``config``'s microstructure, Pa.

    Its geometry and materials are used; the load, backend choice and outputs are not (every
    phase is elastic). ``from_mandel`` turns it into C̄_ijkl.
    """
    if not (isinstance(strain, (int, float)) and 0 < strain <= 1e-2):
        raise InputError(f"expected a strain amplitude in (0, 1e-2], got {strain!r}", key="--strain")
    phases = list(config.material.phases)
    solver = replace(config.solver, eps_div_rel=EPS_DIV_REL, eps_div_abs=1e-12, N_iter_min=1, N_iter_max=500)
    config = replace(config, backends={p: "elastic" for p in phases}, solver=solver)
    dev, dtype = torch.device(device), torch.float64
    grid = config.geometry.grid
    model = build_material_model(config, dev, dtype)
    state = model.setup(dev, dtype)
    spectral = SpectralSolver(grid, model, model.stiffness(state), solver)
    I = torch.eye(3, device=dev, dtype=dtype).expand(*grid.cells, 3, 3)
    none = np.zeros((3, 3), dtype=bool)
    C = np.zeros((6, 6))
    for b in range(6):
        for sign in (1.0, -1.0):
            F_aim = np.eye(3) + sign * strain * mandel_unit_strain(b)
            guess = I + torch.as_tensor(F_aim - np.eye(3), device=dev, dtype=dtype)
            res = spectral.solve(guess, I, state, 1.0, F_aim, np.zeros((3, 3)), none, np.zeros((3, 3, 3, 3)))
            if not res.converged:
                raise SolverError(f"elastic load case {b} ({'+' if sign > 0 else '-'}ε) did not converge "
                                  f"({res.reason})")
            C[:, b] += sign * tensor_to_voigt(symmetric(res.P_av)) * _W / (2.0 * strain)
    return 0.5 * (C + C.T)   # the major symmetry, up to the solver's tolerance


def homogenized_stiffness_tensor(config: RunConfig, strain: float = STRAIN) -> np.ndarray:
    """C̄_ijkl (3,3,3,3) of :func:`homogenized_stiffness`."""
    return from_mandel(homogenized_stiffness(config, strain))

