"""Array-module dispatch shared by the :mod:`polyfe2.mechanics` modules (private).

Every public routine of the package accepts numpy arrays and torch tensors and returns the type
it was given. If any argument is a :class:`torch.Tensor` the computation runs in torch, with the
other arguments converted to that tensor's device and dtype; otherwise it runs in numpy, with
array-likes converted by :func:`numpy.asarray` (integer input becomes float64).
"""
from __future__ import annotations

from typing import Union

import numpy as np
import torch

#: what the routines of :mod:`polyfe2.mechanics` accept and return
Array = Union[np.ndarray, torch.Tensor]


def xp(*xs):
    """The array module of the arguments: :mod:`torch` if any is a tensor, else :mod:`numpy`."""
    return torch if any(isinstance(x, torch.Tensor) for x in xs) else np


def _numpy(x) -> np.ndarray:
    a = np.asarray(x)
    return a if np.issubdtype(a.dtype, np.inexact) else a.astype(np.float64)


def asarrays(*xs) -> tuple:
    """All arguments as one array type: torch tensors on the first tensor's device and dtype if
    any argument is a tensor, numpy arrays otherwise."""
    ref = next((x for x in xs if isinstance(x, torch.Tensor)), None)
    if ref is None:
        return tuple(_numpy(x) for x in xs)
    return tuple(x if isinstance(x, torch.Tensor) else torch.as_tensor(_numpy(x), device=ref.device, dtype=ref.dtype)
                 for x in xs)


def asarray(x) -> Array:
    """``x`` unchanged if it is a tensor, else as a floating numpy array."""
    return x if isinstance(x, torch.Tensor) else _numpy(x)


def check_shape(x: Array, trailing: tuple[int, ...], name: str) -> None:
    """Raise :class:`ValueError` unless the last axes of ``x`` are ``trailing``."""
    n = len(trailing)
    if x.ndim < n or tuple(x.shape[x.ndim - n:]) != trailing:
        want = "(..., " + ", ".join(str(t) for t in trailing) + ")"
        raise ValueError(f"{name}: expected shape {want}, got {tuple(x.shape)}")


def is_empty(x: Array) -> bool:
    """Whether ``x`` has no elements."""
    return any(s == 0 for s in x.shape)
