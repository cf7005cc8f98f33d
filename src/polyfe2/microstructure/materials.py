"""Material parameter sets shipped with polyfe2 (``polyfe2/data/phases/*.yaml``).

Each file is one phase entry of DAMASK's ``material.yaml`` (``lattice``, ``mechanical: {elastic,
plastic}``), so a set can be pasted into a material file as it is.
"""
from __future__ import annotations

from importlib import resources

import yaml

from ..errors import InputError

#: stiffness of the soft phase that stands for voids and free surfaces, relative to the crystal
SOFT_FACTOR = 1e-6


def available_phases() -> list[str]:
    """Names of the shipped parameter sets."""
    folder = resources.files("polyfe2") / "data" / "phases"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_phase(name: str) -> dict:
    """The phase entry ``name`` (e.g. ``aluminium``) as a new dict."""
    if name not in available_phases():
        raise InputError(f"unknown parameter set {name!r}; shipped: {', '.join(available_phases())}", key="phase")
    text = (resources.files("polyfe2") / "data" / "phases" / f"{name}.yaml").read_text()
    return yaml.safe_load(text)


def soft_phase(phase: dict, factor: float = SOFT_FACTOR) -> dict:
    """An elastic phase with ``factor`` times the stiffness of ``phase`` (voids, free surfaces)."""
    el = phase["mechanical"]["elastic"]
    return {"lattice": phase["lattice"], "mechanical": {"output": ["F", "P"], "elastic": {
        "type": "Hooke", **{c: float(el[c]) * factor for c in ("C_11", "C_12", "C_44")}}}}


def aluminium() -> dict:
    """DAMASK's aluminium (phenopowerlaw), a new dict."""
    return load_phase("aluminium")
