"""Model files of polyfe2: plain ``torch.save`` dicts with a ``format`` name and a ``version``,
read with ``weights_only=True`` and checked, so that a wrong or damaged file is a one-line
:class:`~polyfe2.errors.InputError` naming the file and the key.

Every trained model the package ships or writes (GRU surrogate, foundation-model encoder, VAE,
ViT) goes through :func:`save_checkpoint` and :func:`read_checkpoint`.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from .errors import InputError

__all__ = ["plain_data", "save_checkpoint", "read_checkpoint", "load_weights"]


def plain_data(obj, where: str):
    """Copy of ``obj`` made of plain data only (what ``torch.load(weights_only=True)`` reads);
    tensors are detached to the CPU. Anything else raises a one-line ValueError."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain_data(v, f"{where}[{i}]") for i, v in enumerate(obj))
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise ValueError(f"{where}: keys must be str or int, got {type(k).__name__}")
            out[k] = plain_data(v, f"{where}[{k!r}]")
        return out
    raise ValueError(f"{where}: only tensors, numbers, strings, None, lists and dicts can be "
                     f"saved, got {type(obj).__name__}")


def save_checkpoint(path, ckpt: dict) -> None:
    """``torch.save(ckpt)`` to a temporary name, then renamed: a crash leaves the old file."""
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        torch.save(ckpt, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_checkpoint(path, fmt: str, version: "int | tuple[int, ...]", what: str, mappings=("state_dict",)) -> dict:
    """The dict saved at ``path`` (on the CPU), checked for ``format == fmt``, ``version`` (one,
    or a tuple of the versions this polyfe2 reads) and the ``mappings`` keys; ``what`` names the
    kind of file in the messages."""
    path = os.fspath(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"{what} not found", file=path) from None
    except Exception as exc:  # noqa: BLE001 - report one line
        raise InputError(f"not a readable torch checkpoint ({type(exc).__name__})", file=path) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != fmt:
        got = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise InputError(f"not a {what} (format {got!r}, expected {fmt!r})", file=path, key="format")
    versions = version if isinstance(version, tuple) else (version,)
    if ckpt.get("version") not in versions:
        readable = " or ".join(str(v) for v in versions)
        raise InputError(f"checkpoint version {ckpt.get('version')!r}, this polyfe2 reads version {readable}",
                         file=path, key="version")
    for key in mappings:
        if not isinstance(ckpt.get(key), dict):
            raise InputError("missing or not a mapping", file=path, key=key)
    return ckpt


def load_weights(model: nn.Module, state: dict, path, strict: bool = True, key: str = "state_dict"):
    """``model.load_state_dict(state)``; weights that do not fit are a one-line InputError."""
    try:
        return model.load_state_dict(state, strict=strict)
    except (TypeError, RuntimeError, KeyError, AttributeError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"weights do not match the architecture ({msg})", file=os.fspath(path),
                         key=key) from None
