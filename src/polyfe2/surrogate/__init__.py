"""GRU surrogate (paper 003, section 2): microstructure descriptors, load paths, the model.

* :mod:`.descriptor` -- 20-grain Voronoi + fundamental-zone orientation descriptors.
* :mod:`.loadpath` -- random monotonic (training) and idealised (test) load paths.
* :mod:`.model` -- :class:`~.model.GRUSurrogate` and its checkpoint format.
"""
from .descriptor import (DESCRIPTOR_LAYOUT, N_GRAINS, TEXTURE_COMPONENTS, from_odf_samples,
                         random_texture, texture_component, voronoi_grid)
from .loadpath import idealised_path, isochoric, random_monotonic_path
from .model import STRESS_ORDER, GRUSurrogate

__all__ = [
    "DESCRIPTOR_LAYOUT", "N_GRAINS", "TEXTURE_COMPONENTS", "from_odf_samples", "random_texture",
    "texture_component", "voronoi_grid", "idealised_path", "isochoric", "random_monotonic_path",
    "STRESS_ORDER", "GRUSurrogate",
]
