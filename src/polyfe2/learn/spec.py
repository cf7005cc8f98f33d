"""What a GRU data set (:class:`DatagenSpec`) and a foundation-model RVE set (:class:`FMDataSpec`)
are made of, and their choices.

Kept free of torch so that the command line can offer the choices without loading it.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError
from ..microstructure.textures import TEXTURE_COMPONENTS

#: the idealised load paths of paper 003, eqs. (6)-(8) (see :mod:`.loadpath`)
IDEALISED_KINDS = ("uniaxial_tension", "plane_strain", "pure_shear")
METHODS = ("taylor", "fullfield")
TEXTURES = ("mixed", "random") + tuple(sorted(TEXTURE_COMPONENTS))
LOADS = ("random",) + IDEALISED_KINDS
#: the GRU surrogate's step features, grain poolings and orientation inputs
#: (:data:`polyfe2.constitutive.gru_network.FEATURES`, ``POOLINGS`` and ``ORIENTATIONS``, named here so
#: that the command line offers them without loading torch)
GRU_FEATURES = ("F", "F+dF+dt")
GRU_POOLINGS = ("mean", "volume")
GRU_ORIENTATIONS = ("quaternion", "cubic")


@dataclass
class DatagenSpec:
    """What to generate; stored in the file so that a resumed run continues the same set."""

    n_ve: int = 256
    paths_per_ve: int = 4
    method: str = "taylor"
    steps: int = 100
    max_strain: float = 0.05
    sections: int = 4
    dt: float = 0.5                 # s per step: 1e-3 /s mean rate at the largest strain
    dt_spread: float = 1.0          # per-path dt = dt * dt_spread**u, u on dt_levels points in [-1, 1]
    dt_levels: int = 1
    seed: int = 0                   # VEs
    path_seed: int | None = None    # load paths (default: seed); new paths on the same VEs
    textured_fraction: float = 0.4  # share of VEs drawn from a texture component
    texture: str = "mixed"          # mixed, random or one component (cube, goss, brass, copper)
    spread_deg: float = 10.0        # spread of a fixed texture component
    load: str = "random"            # random monotonic paths, or one of IDEALISED_KINDS
    cells: int = 16                 # fullfield grid (and the grid of the taylor fractions)
    chunk: int = 16                 # VEs per chunk

    def check(self, file=None) -> None:
        if self.method not in METHODS:
            raise InputError(f"expected one of {METHODS}, got {self.method!r}", file=file, key="method")
        for k in ("n_ve", "paths_per_ve", "steps", "sections", "cells", "chunk", "dt_levels"):
            if int(getattr(self, k)) < 1:
                raise InputError(f"expected a positive integer, got {getattr(self, k)!r}", file=file, key=k)
        if self.texture not in TEXTURES:
            raise InputError(f"expected one of {TEXTURES}, got {self.texture!r}", file=file, key="texture")
        if self.load not in LOADS:
            raise InputError(f"expected one of {LOADS}, got {self.load!r}", file=file, key="load")
        for key, ok, expected in (("max_strain", 0 < self.max_strain <= 1, "in (0, 1]"),
                                  ("dt", self.dt > 0, "> 0"),
                                  ("dt_spread", self.dt_spread >= 1, ">= 1"),
                                  ("textured_fraction", 0 <= self.textured_fraction <= 1, "in [0, 1]")):
            if not ok:
                raise InputError(f"expected a number {expected}, got {getattr(self, key)!r}", file=file, key=key)

    @property
    def n_chunks(self) -> int:
        return -(-self.n_ve // self.chunk)

    @property
    def dt_choices(self) -> list[float]:
        """The step times a path can take (log-spaced, ``dt`` in the middle)."""
        if self.dt_levels == 1:
            return [float(self.dt)]
        return [float(self.dt * self.dt_spread ** (2 * k / (self.dt_levels - 1) - 1)) for k in range(self.dt_levels)]


#: the ODMN test textures (:data:`polyfe2.learn.odmn_validation.TEXTURES`)
ODMN_TEST_TEXTURES = ("S1", "S2", "W1", "W2")
#: the plate's texture bands (:data:`polyfe2.learn.odmn_validation.BAND_TEXTURES`)
PLATE_BANDS = 4
#: texture hull samplings, then the named presets
SAMPLINGS = ("hss", "dirichlet") + tuple(sorted(TEXTURE_COMPONENTS)) + ODMN_TEST_TEXTURES


@dataclass
class FMDataSpec:
    """What to generate; stored in the file so that a resumed run continues the same set."""

    n_rve: int = 2048
    cells: int = 16                 # D: the RVE grid is D³ (the paper: 45)
    grains: int = 40                # Voronoi grains per RVE (the paper: about 810 on 45³)
    sampling: str = "hss"           # SAMPLINGS
    resolution_deg: float = 10.0    # of the fundamental orientations (the paper: 10°, 618 orientations)
    scatter_deg: float = 5.0        # grain orientations scattered around the discrete ones
    spread_deg: float = 10.0        # of a texture-component preset
    labelled: int = 0               # the first RVEs that get stiffness labels
    triplets: int = 3               # single-crystal stiffness triplets per labelled RVE
    seed: int = 0
    chunk: int = 16                 # RVEs per chunk

    def check(self, file=None) -> None:
        for k in ("n_rve", "cells", "grains", "triplets", "chunk"):
            if int(getattr(self, k)) < 1:
                raise InputError(f"expected a positive integer, got {getattr(self, k)!r}", file=file, key=k)
        if self.sampling not in SAMPLINGS:
            raise InputError(f"expected one of {SAMPLINGS}, got {self.sampling!r}", file=file, key="sampling")
        if not 0 <= self.labelled <= self.n_rve:
            raise InputError(f"expected 0 <= labelled <= n_rve = {self.n_rve}, got {self.labelled}", file=file,
                             key="labelled")
        for key, lo, hi in (("resolution_deg", 2.0, 30.0), ("scatter_deg", 0.0, 30.0), ("spread_deg", 0.0, 60.0)):
            if not lo <= float(getattr(self, key)) <= hi:
                raise InputError(f"expected a number in [{lo}, {hi}] degrees, got {getattr(self, key)!r}",
                                 file=file, key=key)

    @property
    def n_chunks(self) -> int:
        return -(-self.n_rve // self.chunk)
