"""Batched constitutive backends and their registry.

* :mod:`.base` -- the backend contract (:class:`~.base.Backend`, :class:`~.base.MaterialPoints`,
  :class:`~.base.Response`).
* :mod:`.registry` -- backends by name (built-ins and the entry-point group ``polyfe2.backends``).
* :mod:`.parameters` -- the material.yaml phase parameters as schemas.
* :mod:`.crystal` -- fcc slip systems, the latent-hardening table, orientations as matrices.
* :mod:`.dispatch` -- one material model for the grid: each phase's cells to its backend.
* :mod:`.elastic`, :mod:`.taylor`, :mod:`.gru` (with its network :mod:`.gru_network`) -- the
  built-in backends.

The names below are imported on first use (PEP 562), so that naming or validating a backend
does not load torch (checking a backend's options does: its schema is on its class).
"""
from importlib import import_module

_PUBLIC = {"Backend": "base", "MaterialPoints": "base", "Response": "base", "State": "base",
           "available": "registry", "get": "registry", "register": "registry"}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(import_module(f"{__name__}.{_PUBLIC[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
