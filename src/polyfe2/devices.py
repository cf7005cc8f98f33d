"""Which torch device a run or a training job uses."""
from __future__ import annotations

import os

from .errors import InputError

__all__ = ["check_device_name", "resolve_device"]


def check_device_name(name: str, file=None) -> str:
    """``name`` if it is auto, cpu or cuda[:N]; otherwise an :class:`InputError` naming ``file``
    and the key ``device`` (whether CUDA is present is checked only by :func:`resolve_device`)."""
    valid = name in ("auto", "cpu") or name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit())
    if not valid:
        raise InputError(f"expected auto, cpu or cuda[:N], got {name!r}", file=file, key="device")
    return name


def resolve_device(name: str, file=None) -> "torch.device":
    """'auto' picks CUDA when present and not disabled by POLYFE2_DISABLE_CUDA=1.

    ``cuda`` (or ``cuda:N``) without a CUDA device is an :class:`InputError` naming ``file``
    (when given) and the key ``device``.
    """
    import torch   # here, so that reading a run config does not load torch

    check_device_name(name, file)
    if name == "auto":
        use_cuda = torch.cuda.is_available() and os.environ.get("POLYFE2_DISABLE_CUDA", "0") != "1"
        return torch.device("cuda" if use_cuda else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {name!r} requested but no CUDA device is available; use auto or cpu",
                         file=file, key="device")
    return torch.device(name)
