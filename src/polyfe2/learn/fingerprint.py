"""Microstructure fingerprints: a voxel RVE -> one vector that downstream models use.

Three methods share one interface, registered by name like the constitutive backends:

``fm``   the [CLS] latent of the foundation model's masked autoencoder (paper 000; :mod:`.mae`);
``vae``  the mean μ of the 3D ResNet VAE's latent (paper 001; :mod:`.vae`);
``vit``  DINOv2 image features of the RVE's three orthogonal mid-sections, concatenated
         (paper 002; :mod:`.vit`).

Every method reads its weights from a local file only (a shipped model by default, where the
package ships one); nothing is downloaded. An RVE is a field of fundamental-zone quaternions
(D1, D2, D3, 4), or a DAMASK geometry + material.yaml, whose cells are represented by their
largest constituent. A method with a fixed input grid samples a field of another size at the
nearest cell centre (:func:`~.fm_infer.resample_nearest`).

>>> fp = fingerprinter("vae")            # the shipped VAE
>>> z = fp.encode(q)                     # (fp.dim,) for one (D, D, D, 4) field
>>> Z = fp.encode_batch(qs)              # (n, fp.dim)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InputError
from ..microstructure.descriptor import reduce_to_fz, voronoi_grid
from ..simulation.config import Geometry, MaterialConfig
from .fm_infer import resample_nearest, voxel_quaternions

__all__ = ["Fingerprinter", "FINGERPRINTS", "register_fingerprint", "fingerprinter", "shipped_model",
           "rve_quaternions", "ve_fingerprints"]


@dataclass
class Fingerprinter:
    """A loaded fingerprint method: ``encode_batch`` maps (n, D, D, D, 4) fields on ``grid``
    (None: any size) to (n, dim)."""
    name: str
    dim: int
    grid: int | None
    weights: str
    encode_fields: Callable[[np.ndarray], np.ndarray]
    metadata: dict = field(default_factory=dict)

    def encode_batch(self, q: np.ndarray, log=None) -> np.ndarray:
        """(n, dim) fingerprints of (n, D1, D2, D3, 4) quaternion fields."""
        q = np.asarray(q, dtype=np.float32)
        if q.ndim != 5 or q.shape[-1] != 4:
            raise ValueError(f"fingerprint {self.name}: expected (n, D1, D2, D3, 4) quaternions, got {q.shape}")
        if self.grid is not None and q.shape[1:4] != (self.grid,) * 3:
            if log:
                log(f"polyfe2: {q.shape[1:4]} cells sampled at the nearest cell centre to the {self.name} "
                    f"model's {self.grid}³ grid")
            q = np.stack([resample_nearest(x, self.grid) for x in q])
        return np.asarray(self.encode_fields(q), dtype=np.float64)

    def encode(self, rve, log=None) -> np.ndarray:
        """(dim,) fingerprint of one RVE: a (D1, D2, D3, 4) field or a (Geometry, MaterialConfig)."""
        return self.encode_batch(rve_quaternions(rve)[None], log)[0]


#: method name -> (loader(weights path) -> Fingerprinter, shipped default file name or None)
FINGERPRINTS: dict[str, tuple[Callable[[Path], Fingerprinter], str | None]] = {}


def register_fingerprint(name: str, default: str | None = None):
    """Decorator: register ``loader(path) -> Fingerprinter`` as method ``name``; ``default`` is
    the file in ``polyfe2/models`` used when no weights are given."""
    def deco(loader):
        FINGERPRINTS[name] = (loader, default)
        return loader
    return deco


def shipped_model(filename: str) -> Path:
    """Path of a model file shipped in ``polyfe2/models``."""
    return Path(str(resources.files("polyfe2") / "models" / filename))


def fingerprinter(method: str, weights: Path | str | None = None) -> Fingerprinter:
    """The fingerprint method ``method`` with the weights file ``weights`` (default: shipped)."""
    if method not in FINGERPRINTS:
        raise InputError(f"unknown fingerprint method {method!r}; expected one of {sorted(FINGERPRINTS)}",
                         key="method")
    loader, default = FINGERPRINTS[method]
    if weights is None:
        if default is None:
            raise InputError(f"method {method!r} ships no weights; give a local weights file or directory",
                             key="weights")
        weights = shipped_model(default)
    return loader(Path(weights))


def rve_quaternions(rve) -> np.ndarray:
    """(D1, D2, D3, 4) quaternion field of an RVE given as such a field, or as a
    ``(Geometry, MaterialConfig)`` pair or a pair of their file paths."""
    if isinstance(rve, tuple) and len(rve) == 2:
        geometry, material = rve
        geometry = geometry if isinstance(geometry, Geometry) else Geometry.load(Path(geometry))
        material = material if isinstance(material, MaterialConfig) else MaterialConfig.load(Path(material))
        return voxel_quaternions(geometry, material)
    q = np.asarray(rve)
    if q.ndim != 4 or q.shape[-1] != 4:
        raise ValueError(f"expected a (D1, D2, D3, 4) quaternion field, got shape {q.shape}")
    return q


def ve_fingerprints(descriptors: np.ndarray, fp: Fingerprinter, cells: int = 16, batch: int = 256) -> np.ndarray:
    """(n, 1, dim) fingerprints of Voronoi volume elements given by grain descriptors (n, G, 7)
    (:mod:`polyfe2.microstructure.descriptor`), each voxelised on the method's grid (``cells``³
    for a method of any grid); samples that share a VE share its fingerprint (computed once)."""
    d = np.ascontiguousarray(descriptors, dtype=np.float64)
    _, first, inverse = np.unique(d.reshape(len(d), -1), axis=0, return_index=True, return_inverse=True)
    D = fp.grid or cells
    out = []
    for i in range(0, len(first), batch):
        fields = []
        for k in first[i:i + batch]:
            material, q = voronoi_grid(d[k], (D,) * 3)
            fields.append(reduce_to_fz(q)[material])
        out.append(fp.encode_batch(np.stack(fields)))
    return np.concatenate(out)[inverse.reshape(-1)][:, None, :]


# ------------------------------------------------------------------------------------ methods

@register_fingerprint("fm", default="fm_small_v1_stiffness.pt")
def _fm(path: Path) -> Fingerprinter:
    from .fm_train import cls_latents
    from .mae import load_encoder

    loaded = load_encoder(path)
    model = loaded.model.eval()
    return Fingerprinter("fm", loaded.config.enc_dim, loaded.config.grid, str(path),
                         lambda q: cls_latents(model, q), dict(loaded.metadata))


@register_fingerprint("vae", default="vae_small_v1.pt")
def _vae(path: Path) -> Fingerprinter:
    from .vae import fingerprints, load_vae

    loaded = load_vae(path)
    model = loaded.model.eval()
    return Fingerprinter("vae", loaded.config.latent, loaded.config.grid, str(path),
                         lambda q: fingerprints(model, q), dict(loaded.metadata))


@register_fingerprint("vit", default="vit_small_v1.pt")
def _vit(path: Path) -> Fingerprinter:
    from .vit import load_vit, vit_fingerprints

    loaded = load_vit(path)
    return Fingerprinter("vit", 3 * loaded.model.config.hidden_size, None, str(path),
                         lambda q: vit_fingerprints(loaded, q), dict(loaded.metadata))
