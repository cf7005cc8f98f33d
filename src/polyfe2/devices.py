"""Which torch device a run or a training job uses."""
from __future__ import annotations

import os

import torch

from .errors import InputError

__all__ = ["resolve_device"]


def resolve_device(name: str, file=None) -> torch.device:
    """'auto' picks CUDA when present and not disabled by POLYFE2_DISABLE_CUDA=1.

    ``cuda`` (or ``cuda:N``) without a CUDA device is an :class:`InputError` naming ``file``
    (when given) and the key ``device``.
    """
    if name == "auto":
        use_cuda = torch.cuda.is_available() and os.environ.get("POLYFE2_DISABLE_CUDA", "0") != "1"
        return torch.device("cuda" if use_cuda else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {name!r} requested but no CUDA device is available; use auto or cpu",
                         file=file, key="device")
    try:
        return torch.device(name)
    except RuntimeError:
        raise InputError(f"device {name!r} is not a torch device; expected auto, cpu or cuda[:N]",
                         file=file, key="device") from None
