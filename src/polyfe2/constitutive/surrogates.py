"""The learned surrogates the ``gru`` backend runs, read from their files by kind."""
from __future__ import annotations

import os

import torch

from .grain_gru_network import CHECKPOINT_FORMAT as GRAIN_FORMAT, GrainGRUSurrogate
from .gru_network import GRUSurrogate

__all__ = ["load_surrogate", "is_grain_model"]


def load_surrogate(path) -> "GRUSurrogate | GrainGRUSurrogate":
    """The model in ``path``: a :class:`GrainGRUSurrogate` for its format, else a
    :class:`GRUSurrogate` (whose loader reports a missing, unreadable or foreign file in one line)."""
    try:
        fmt = torch.load(os.fspath(path), map_location="cpu", weights_only=True).get("format")
    except Exception:  # noqa: BLE001 - the loader below says what is wrong
        fmt = None
    return GrainGRUSurrogate.load(path) if fmt == GRAIN_FORMAT else GRUSurrogate.load(path)


def is_grain_model(model) -> bool:
    """Whether ``model`` keeps one recurrent state per grain (no fused split-step kernels)."""
    return isinstance(model, GrainGRUSurrogate)
