"""The 24 rotations of the cube as exact copies of a training sample (data augmentation).

A VE is a periodic Voronoi tessellation of the unit cube. Rotating the whole specimen by a
rotation Q of the cube about the cell centre -- the seeds ``x -> Q (x - 1/2) + 1/2 (mod 1)``, the
grains (passive orientation matrices ``R -> R Q^T``) and the load path ``F -> Q F Q^T`` -- gives
the same VE in another frame, so its stress is ``Q sigma Q^T`` (objectivity), for the iso-strain
labels and for full-field labels on an n³ grid alike (cell centres map onto cell centres, the
grain volume fractions stay). The rule is tested on taylor labels in
``tests/learn/test_datagen.py::test_taylor_labels_rotate_with_the_volume_element``.
"""
from __future__ import annotations

import damask
import numpy as np

from ..mechanics import tensor_to_voigt, voigt_to_tensor
from ..microstructure.descriptor import make_descriptor

__all__ = ["cube_rotations", "rotate_samples"]


def cube_rotations() -> np.ndarray:
    """(24, 3, 3) the proper rotations of the cube (the identity first)."""
    return damask.Orientation(lattice="cF").symmetry_operations.as_matrix()


def rotate_samples(descriptor: np.ndarray, F: np.ndarray, sigma_dev: np.ndarray, Q: np.ndarray):
    """The samples rotated by ``Q`` (3, 3).

    Parameters
    ----------
    descriptor : (n, G, 7) rows ``[x, y, z, q0..q3]``; F : (n, T+1, 3, 3); sigma_dev : (n, T, 6)
        (:data:`polyfe2.mechanics.STRESS_ORDER`).

    Returns
    -------
    descriptor, F, sigma_dev of the same shapes (orientations reduced to the fundamental zone).
    """
    seeds = ((descriptor[..., :3] - 0.5) @ Q.T + 0.5) % 1.0
    R = damask.Rotation.from_quaternion(descriptor[..., 3:]).as_matrix() @ Q.T
    d = make_descriptor(seeds, damask.Rotation.from_matrix(R).as_quaternion())
    return d, Q @ F @ Q.T, tensor_to_voigt(Q @ voigt_to_tensor(sigma_dev) @ Q.T)
