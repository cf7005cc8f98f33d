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


def resolve_device(name: str, file=None, local_rank: int = 0) -> "torch.device":
    """'auto' picks CUDA when present and not disabled by POLYFE2_DISABLE_CUDA=1.

    ``local_rank`` (an MPI rank's index on its node) picks the GPU of an 'auto' or 'cuda'
    device: one GPU per rank, round robin when a node has fewer GPUs than ranks.

    ``cuda`` (or ``cuda:N``) without a CUDA device is an :class:`InputError` naming ``file``
    (when given) and the key ``device``.
    """
    import torch   # here, so that reading a run config does not load torch

    check_device_name(name, file)
    if name == "auto":
        use_cuda = torch.cuda.is_available() and os.environ.get("POLYFE2_DISABLE_CUDA", "0") != "1"
        name = "cuda" if use_cuda else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {name!r} requested but no CUDA device is available; use auto or cpu",
                         file=file, key="device")
    if name == "cuda" and local_rank:
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device(name)
